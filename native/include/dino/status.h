// Every failure in the engine is a Status returned up the call chain; the bindings turn it into a JS
// exception. Nothing in native code may exit() or abort(): a bad shape must not kill the user's process.
#pragma once
#include <sstream>
#include <string>
#include <utility>

namespace dino {

enum class Code {
  kOk = 0,
  kInvalidArgument,  // a value that makes no sense (negative size, unknown attribute, ...)
  kShapeMismatch,    // shapes that do not fit together
  kDtypeMismatch,    // a dtype the op does not take
  kOutOfRange,       // an axis or index outside its bounds
  kOutOfMemory,      // an allocation that cannot be satisfied
  kDisposed,         // a tensor used after dispose()
  kUnsupported,      // valid, but not available in this build or on this device
  kDeviceError,      // a CUDA / cuBLAS failure
  kInternal,
};

const char* code_name(Code c);

class Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status OK() { return Status(); }
  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // Prefix the message with context (the op name, the shapes) as the error travels outwards.
  Status with_context(const std::string& context) const {
    return ok() ? *this : Status(code_, context + ": " + message_);
  }

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

// str("x has ", 3, " dims") -> "x has 3 dims"
template <typename... Args>
std::string str(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}

}  // namespace dino

#define DINO_RETURN_IF_ERROR(expr)              \
  do {                                          \
    ::dino::Status dino_status_ = (expr);       \
    if (!dino_status_.ok()) return dino_status_; \
  } while (0)

// DINO_CHECK(cond, kShapeMismatch, "x is ", x.shape_str()) returns a Status from the enclosing function.
#define DINO_CHECK(cond, code, ...)                                          \
  do {                                                                       \
    if (!(cond)) return ::dino::Status(::dino::Code::code, ::dino::str(__VA_ARGS__)); \
  } while (0)
