// Working memory of one kernel call, left uninitialised: the kernels write every element before
// reading it.
#pragma once
#include <cstddef>
#include <memory>

namespace dino::image {

template <typename T>
std::unique_ptr<T[]> scratch(size_t n) {
  return std::unique_ptr<T[]>(new T[n]);
}

}  // namespace dino::image
