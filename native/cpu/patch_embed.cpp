#include "patch_embed.h"

#include <algorithm>
#include <cstring>

#include "dino/gemm.h"
#include "elementwise.h"

namespace dino::cpu {
namespace {

// Calls f(image_offset, cols_offset) for every run of p pixels that a patch reads from one image row,
// where cols (B*N, K) is the im2col matrix: row b*N + py*cols + px holds its patch's pixels in
// (c, ky, kx) order, the order of the weight's (C, p, p) dims. Each (b, py) band of p image rows is
// one unit of work; runs are disjoint, so the units need no synchronisation in either direction.
template <typename F>
void for_each_run(const PatchGeometry& g, F f) {
  const int64_t R = g.rows(), Q = g.cols(), p = g.p, K = g.patch_size();
#pragma omp parallel for schedule(static) if (g.B * g.C * g.H * g.W > 65536)
  for (int64_t u = 0; u < g.B * R; ++u) {
    const int64_t b = u / R, py = u % R;
    for (int64_t c = 0; c < g.C; ++c)
      for (int64_t ky = 0; ky < p; ++ky)
        for (int64_t px = 0; px < Q; ++px)
          f(((b * g.C + c) * g.H + py * p + ky) * g.W + px * p, (u * Q + px) * K + (c * p + ky) * p);
  }
}

// x (B, C, H, W) -> cols (B*N, K)
void im2col(float* cols, const float* x, const PatchGeometry& g) {
  const size_t run = static_cast<size_t>(g.p) * sizeof(float);
  for_each_run(g, [&](int64_t xi, int64_t ci) { std::memcpy(cols + ci, x + xi, run); });
}

// cols (B*N, K) -> x (B, C, H, W); pixels that no patch covers (floor semantics) are zero.
void col2im(float* x, const float* cols, const PatchGeometry& g) {
  if (g.H % g.p != 0 || g.W % g.p != 0) std::fill(x, x + g.B * g.C * g.H * g.W, 0.0f);
  const size_t run = static_cast<size_t>(g.p) * sizeof(float);
  for_each_run(g, [&](int64_t xi, int64_t ci) { std::memcpy(x + xi, cols + ci, run); });
}

}  // namespace

int64_t patch_embed_scratch(const PatchGeometry& g) { return g.B * g.patches() * g.patch_size(); }

void patch_embed_forward(float* y, const float* x, const float* weight, const float* bias, float* scratch,
                         const PatchGeometry& g, int64_t D) {
  const int64_t M = g.B * g.patches(), K = g.patch_size();
  im2col(scratch, x, g);
#pragma omp parallel for schedule(static) if (M * D > 65536)
  for (int64_t m = 0; m < M; ++m) std::memcpy(y + m * D, bias, static_cast<size_t>(D) * sizeof(float));
  // y (M, D) = bias + cols (M, K) @ weight^T
  sgemm_batched(false, true, M, D, K, 1.0f, scratch, K, 0, weight, K, 0, 1.0f, y, D, 0, 1);
}

void patch_embed_backward(float* dx, float* dweight, float* dbias, const float* dy, const float* x,
                          const float* weight, float* scratch, const PatchGeometry& g, int64_t D) {
  const int64_t M = g.B * g.patches(), K = g.patch_size();
  if (dx) {
    // dcols (M, K) = dy (M, D) @ weight (D, K), scattered back to the image
    sgemm_batched(false, false, M, K, D, 1.0f, dy, D, 0, weight, K, 0, 0.0f, scratch, K, 0, 1);
    col2im(dx, scratch, g);
  }
  // dweight (D, K) = dy^T @ cols, with the im2col matrix rebuilt in the same scratch
  im2col(scratch, x, g);
  sgemm_batched(true, false, D, K, M, 1.0f, dy, D, 0, scratch, K, 0, 0.0f, dweight, K, 0, 1);
  sum_axis_forward(dbias, dy, 1, M, D, 1.0f);
}

}  // namespace dino::cpu
