// Node-API glue of the image kernels (native/image): plain functions on the bytes of Uint8Arrays
// (8-bit RGB, 3 bytes a pixel, rows packed), which the augmentations call, in the data loader's worker
// threads too. Every argument is checked here: a bad one is a TypeError or RangeError, never a crash.
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <new>
#include <string>

#include "../native/image/blur.h"
#include "../native/image/color.h"
#include "../native/image/layout.h"
#include "../native/image/resample.h"

namespace {

namespace image = dino::image;

[[noreturn]] void type_error(Napi::Env env, const std::string& msg) {
  throw Napi::TypeError::New(env, msg);
}

[[noreturn]] void range_error(Napi::Env env, const std::string& msg) {
  throw Napi::RangeError::New(env, msg);
}

std::string text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

template <typename T>
struct Array {
  T* data;
  size_t length;
};

template <typename T, napi_typedarray_type kType>
Array<T> typed_array(const Napi::CallbackInfo& info, size_t i, const char* what, const char* kind) {
  Napi::Value v = info[i];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != kType)
    type_error(info.Env(), std::string(what) + " must be a " + kind);
  auto a = v.As<Napi::TypedArrayOf<T>>();
  return {a.Data(), a.ElementLength()};
}

Array<uint8_t> bytes(const Napi::CallbackInfo& info, size_t i, const char* what) {
  return typed_array<uint8_t, napi_uint8_array>(info, i, what, "Uint8Array");
}

Array<float> floats(const Napi::CallbackInfo& info, size_t i, const char* what) {
  return typed_array<float, napi_float32_array>(info, i, what, "Float32Array");
}

double number(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsNumber()) type_error(info.Env(), std::string(what) + " must be a number");
  const double d = info[i].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) range_error(info.Env(), std::string(what) + " must be finite, got " + text(d));
  return d;
}

// Image sizes and positions: integers in [min, 2^31 - 1].
int64_t integer(const Napi::CallbackInfo& info, size_t i, const char* what, int64_t min) {
  if (!info[i].IsNumber()) type_error(info.Env(), std::string(what) + " must be a number");
  const double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= double(min) && d <= double(INT32_MAX) && d == std::floor(d)))
    range_error(info.Env(), std::string(what) + " must be an integer in [" + std::to_string(min) + ", 2^31 - 1], got " + text(d));
  return int64_t(d);
}

// The byte length of a width x height RGB image, or -1 when it does not fit in memory.
int64_t rgb_bytes(int64_t width, int64_t height) {
  int64_t n;
  if (__builtin_mul_overflow(width, height, &n) || __builtin_mul_overflow(n, int64_t(3), &n)) return -1;
  return n;
}

void expect_image(Napi::Env env, const Array<uint8_t>& data, int64_t width, int64_t height, const char* what) {
  const int64_t n = rgb_bytes(width, height);
  if (n < 0 || size_t(n) != data.length)
    range_error(env, std::string(what) + " has " + std::to_string(data.length) + " bytes, expected " +
                         std::to_string(width) + "x" + std::to_string(height) + "x3");
}

// RGB pixels of any image: a whole number of 3-byte pixels.
size_t pixels(Napi::Env env, const Array<uint8_t>& data, const char* what) {
  if (data.length % 3 != 0)
    range_error(env, std::string(what) + " has " + std::to_string(data.length) + " bytes, not a whole number of RGB pixels");
  return data.length / 3;
}

template <typename A, typename B>
bool overlap(const Array<A>& a, const Array<B>& b) {
  const auto a0 = reinterpret_cast<uintptr_t>(a.data), b0 = reinterpret_cast<uintptr_t>(b.data);
  return a0 < b0 + b.length * sizeof(B) && b0 < a0 + a.length * sizeof(A);
}

// Element-wise kernels may write over their input, but only in place: a shifted overlap would read
// values already written.
void expect_in_place_or_apart(Napi::Env env, const Array<uint8_t>& in, const Array<uint8_t>& out, const char* what) {
  if (in.data != out.data && overlap(in, out))
    range_error(env, std::string(what) + " must be the same memory as the input or not overlap it");
}

// resampleU8(filter: 'bicubic' | 'bilinear', src, width, height, left, top, boxWidth, boxHeight, dst,
// outWidth, outHeight): the box of src resampled into dst.
void Resample(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string name = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  if (name != "bicubic" && name != "bilinear") type_error(env, "filter must be 'bicubic' or 'bilinear'");
  const auto src = bytes(info, 1, "source");
  const int64_t width = integer(info, 2, "width", 1), height = integer(info, 3, "height", 1);
  expect_image(env, src, width, height, "source");
  const image::Box box{integer(info, 4, "box left", 0), integer(info, 5, "box top", 0),
                       integer(info, 6, "box width", 0), integer(info, 7, "box height", 0)};
  if (box.width < 1 || box.height < 1 || box.left + box.width > width || box.top + box.height > height)
    range_error(env, "box (left " + std::to_string(box.left) + ", top " + std::to_string(box.top) + ", width " +
                         std::to_string(box.width) + ", height " + std::to_string(box.height) +
                         ") is not a non-empty box inside the " + std::to_string(width) + "x" + std::to_string(height) + " image");
  const auto dst = bytes(info, 8, "output");
  const double out_width = info[9].IsNumber() ? info[9].As<Napi::Number>().DoubleValue() : NAN;
  const double out_height = info[10].IsNumber() ? info[10].As<Napi::Number>().DoubleValue() : NAN;
  if (!(out_width >= 1 && out_height >= 1 && out_width <= INT32_MAX && out_height <= INT32_MAX &&
        out_width == std::floor(out_width) && out_height == std::floor(out_height)))
    range_error(env, "output size must be positive integers, got " + text(out_width) + "x" + text(out_height));
  expect_image(env, dst, int64_t(out_width), int64_t(out_height), "output");
  if (overlap(src, dst)) range_error(env, "the output image must not share memory with the input");
  image::resample(name == "bicubic" ? image::Filter::kBicubic : image::Filter::kBilinear, src.data, width, box,
                  dst.data, int64_t(out_width), int64_t(out_height));
}

// gaussianBlurU8(data, width, height, sigma), in place.
void GaussianBlur(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto data = bytes(info, 0, "image");
  const int64_t width = integer(info, 1, "width", 1), height = integer(info, 2, "height", 1);
  expect_image(env, data, width, height, "image");
  const double sigma = info[3].IsNumber() ? info[3].As<Napi::Number>().DoubleValue() : NAN;
  if (!(sigma >= 0 && sigma <= image::kMaxBlurSigma))
    range_error(env, "blur sigma must be a number in [0, " + text(image::kMaxBlurSigma) + "], got " + text(sigma));
  image::gaussian_blur(data.data, width, height, float(sigma));
}

// flipHorizontalU8(data, width, height), in place.
void FlipHorizontal(const Napi::CallbackInfo& info) {
  const auto data = bytes(info, 0, "image");
  const int64_t width = integer(info, 1, "width", 1), height = integer(info, 2, "height", 1);
  expect_image(info.Env(), data, width, height, "image");
  image::flip_horizontal(data.data, width, height);
}

// normalizeU8(src, table: Float32Array(768), dst: Float32Array): HWC bytes to CHW values.
void Normalize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto src = bytes(info, 0, "image");
  const size_t n = pixels(env, src, "image");
  const auto table = floats(info, 1, "normalisation table");
  if (table.length != 3 * 256) range_error(env, "the normalisation table must hold 3 x 256 values, got " + std::to_string(table.length));
  const auto dst = floats(info, 2, "output");
  if (dst.length != src.length)
    range_error(env, "output has " + std::to_string(dst.length) + " values, expected " + std::to_string(src.length));
  if (overlap(dst, src) || overlap(dst, table)) range_error(env, "the output must not share memory with the image or the table");
  image::to_normalized_chw(src.data, int64_t(n), table.data, dst.data);
}

// blendU8(a, b, factor, out): Image.blend on equally long byte arrays.
void Blend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto a = bytes(info, 0, "first image"), b = bytes(info, 1, "second image");
  const double factor = number(info, 2, "blend factor");
  const auto out = bytes(info, 3, "output");
  if (a.length != b.length || out.length != a.length)
    range_error(env, "blend needs equal lengths, got " + std::to_string(a.length) + ", " + std::to_string(b.length) +
                         " and " + std::to_string(out.length));
  expect_in_place_or_apart(env, a, out, "the output");
  expect_in_place_or_apart(env, b, out, "the output");
  image::blend(a.data, b.data, float(factor), out.data, a.length);
}

// adjust...U8(data, factor): one of the ImageEnhance operations, in place.
template <void (*Op)(uint8_t*, size_t, float)>
void Enhance(const Napi::CallbackInfo& info) {
  const auto data = bytes(info, 0, "image");
  const size_t n = pixels(info.Env(), data, "image");
  const double factor = number(info, 1, "enhance factor");
  if (n > 0) Op(data.data, n, float(factor));
}

// adjustHueU8(data, hueFactor), in place.
void AdjustHue(const Napi::CallbackInfo& info) {
  const auto data = bytes(info, 0, "image");
  const size_t n = pixels(info.Env(), data, "image");
  const double hue = info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : NAN;
  if (!(hue >= -0.5 && hue <= 0.5)) range_error(info.Env(), "hue factor must be in [-0.5, 0.5], got " + text(hue));
  image::adjust_hue(data.data, n, hue);
}

// grayscaleU8(data), in place.
void Grayscale(const Napi::CallbackInfo& info) {
  const auto data = bytes(info, 0, "image");
  image::grayscale(data.data, pixels(info.Env(), data, "image"));
}

// solarizeU8(data), in place.
void Solarize(const Napi::CallbackInfo& info) {
  const auto data = bytes(info, 0, "image");
  image::solarize(data.data, data.length);
}

// rgbToHsvU8(src, dst) and hsvToRgbU8(src, dst); dst may be src.
template <void (*Convert)(const uint8_t*, uint8_t*, size_t)>
void ConvertPixels(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto src = bytes(info, 0, "input");
  const auto dst = bytes(info, 1, "output");
  const size_t n = pixels(env, src, "input");
  if (dst.length != src.length)
    range_error(env, "output has " + std::to_string(dst.length) + " bytes, expected " + std::to_string(src.length));
  expect_in_place_or_apart(env, src, dst, "the output");
  Convert(src.data, dst.data, n);
}

// A kernel that cannot get its working memory throws an Error instead of ending the process.
template <void (*F)(const Napi::CallbackInfo&)>
Napi::Value Guarded(const Napi::CallbackInfo& info) {
  try {
    F(info);
  } catch (const std::bad_alloc&) {
    throw Napi::Error::New(info.Env(), "out of memory for the image kernel's working buffers");
  }
  return info.Env().Undefined();
}

}  // namespace

void InitImage(Napi::Env env, Napi::Object exports) {
  exports.Set("resampleU8", Napi::Function::New(env, Guarded<Resample>));
  exports.Set("gaussianBlurU8", Napi::Function::New(env, Guarded<GaussianBlur>));
  exports.Set("flipHorizontalU8", Napi::Function::New(env, Guarded<FlipHorizontal>));
  exports.Set("normalizeU8", Napi::Function::New(env, Guarded<Normalize>));
  exports.Set("blendU8", Napi::Function::New(env, Guarded<Blend>));
  exports.Set("adjustBrightnessU8", Napi::Function::New(env, Guarded<Enhance<image::adjust_brightness>>));
  exports.Set("adjustContrastU8", Napi::Function::New(env, Guarded<Enhance<image::adjust_contrast>>));
  exports.Set("adjustSaturationU8", Napi::Function::New(env, Guarded<Enhance<image::adjust_saturation>>));
  exports.Set("adjustHueU8", Napi::Function::New(env, Guarded<AdjustHue>));
  exports.Set("grayscaleU8", Napi::Function::New(env, Guarded<Grayscale>));
  exports.Set("solarizeU8", Napi::Function::New(env, Guarded<Solarize>));
  exports.Set("rgbToHsvU8", Napi::Function::New(env, Guarded<ConvertPixels<image::rgb_to_hsv>>));
  exports.Set("hsvToRgbU8", Napi::Function::New(env, Guarded<ConvertPixels<image::hsv_to_rgb>>));
}
