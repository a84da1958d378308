// CUDA backend of the image family (math in kernels/cpu/conv.cpp).
// conv2d is im2col + cuBLAS (TF32, f32 accumulation): a chunk of images is unfolded into a
// [n, C*k*k, Ho*Wo] buffer (capped at col_bytes(), so large batches go in several chunks) and one
// strided-batched GEMM multiplies the shared W into all of them. dx gathers its sum from dcol
// (col2im without atomics, deterministic); dW accumulates one GEMM per image into the same output
// (beta = 1). 1x1 stride-1 unpadded kernels skip the unfold: col is x itself.
// The rearrangement, pooling and upsampling kernels index by output element: each writes one
// element and reads what it needs, so every element is written exactly once.
#include <algorithm>

#include "kernels/cuda/launch.cuh"

namespace sd {
namespace {

// The column buffer's cap: 256 MiB, or less when a test shrinks scratch buffers.
int64_t col_bytes() {
  int64_t cap = int64_t(256) << 20, test_cap = cuda_limits().scratch_bytes;
  return test_cap > 0 && test_cap < cap ? test_cap : cap;
}

void check_f32(const char* op, const Tensor& t) {
  SD_CHECK(t.dtype() == DType::F32, op, ": the cuda backend computes this op in f32, got ",
           t.desc());
}

using cuda::gemm;

struct ConvDims {
  int64_t B, C, H, W, O, k, s, p, Ho, Wo;
  __host__ __device__ int64_t hw() const { return Ho * Wo; }
  __host__ __device__ int64_t ckk() const { return C * k * k; }
  bool direct() const { return k == 1 && s == 1 && p == 0; }
  // images per chunk so that one [n, Ckk, HoWo] buffer stays under col_bytes()
  int64_t chunk() const {
    return std::clamp<int64_t>(col_bytes() / (ckk() * hw() * int64_t(sizeof(float))), 1, B);
  }
};

// Sizes only: infer() has validated the shapes and attributes.
ConvDims conv_dims(const Tensor& x, const Tensor& w, const Attrs& at) {
  ConvDims d{x.dim(0), x.dim(1), x.dim(2), x.dim(3), w.dim(0), w.dim(2), at["stride"],
             at["padding"], 0, 0};
  d.Ho = (d.H + 2 * d.p - d.k) / d.s + 1;
  d.Wo = (d.W + 2 * d.p - d.k) / d.s + 1;
  return d;
}

// col[n, (c*k + ky)*k + kx, oy*Wo + ox] = x[n, c, oy*s - p + ky, ox*s - p + kx] (0 outside) for
// n images: coalesced writes; neighbouring threads read neighbouring x (stride s).
__global__ void im2col_kernel(const float* x, ConvDims d, int64_t n, float* col) {
  int64_t hw = d.hw(), ckk = d.ckk();
  CUDA_LOOP(i, n * ckk * hw) {
    int64_t pos = i % hw, row = (i / hw) % ckk, b = i / (hw * ckk);
    int64_t c = row / (d.k * d.k), ky = (row / d.k) % d.k, kx = row % d.k;
    int64_t iy = (pos / d.Wo) * d.s - d.p + ky, ix = (pos % d.Wo) * d.s - d.p + kx;
    bool in = iy >= 0 && iy < d.H && ix >= 0 && ix < d.W;
    col[i] = in ? x[((b * d.C + c) * d.H + iy) * d.W + ix] : 0.f;
  }
}

// dx[n, c, iy, ix] = sum over (ky, kx) with iy = oy*s - p + ky, ix = ox*s - p + kx of
// dcol[n, (c*k + ky)*k + kx, oy*Wo + ox]: a gather, so no atomics and a fixed summation order.
__global__ void col2im_kernel(const float* dcol, ConvDims d, int64_t n, float* dx) {
  int64_t hw = d.hw(), ckk = d.ckk();
  CUDA_LOOP(i, n * d.C * d.H * d.W) {
    int64_t ix = i % d.W, iy = (i / d.W) % d.H, c = (i / (d.W * d.H)) % d.C;
    int64_t b = i / (d.W * d.H * d.C);
    const float* base = dcol + (b * ckk + c * d.k * d.k) * hw;
    float s = 0.f;
    for (int64_t ky = 0; ky < d.k; ++ky) {
      int64_t ty = iy + d.p - ky;
      if (ty < 0 || ty % d.s) continue;
      int64_t oy = ty / d.s;
      if (oy >= d.Ho) continue;
      for (int64_t kx = 0; kx < d.k; ++kx) {
        int64_t tx = ix + d.p - kx;
        if (tx < 0 || tx % d.s) continue;
        int64_t ox = tx / d.s;
        if (ox >= d.Wo) continue;
        s += base[(ky * d.k + kx) * hw + oy * d.Wo + ox];
      }
    }
    dx[i] = s;
  }
}

// y[b, o, :] += bias[o]
__global__ void add_bias_nchw(float* y, const float* bias, int64_t n, int64_t O, int64_t hw) {
  CUDA_LOOP(i, n) y[i] += bias[(i / hw) % O];
}

// db[o] = sum over b and positions of g[b, o, :]: one 256-thread block per channel, a tree
// reduction in shared memory (fixed order: deterministic).
__global__ void bias_grad_nchw(const float* g, int64_t B, int64_t O, int64_t hw, float* db) {
  __shared__ float part[256];
  int64_t o = blockIdx.x;
  float s = 0.f;
  for (int64_t j = threadIdx.x; j < B * hw; j += 256) s += g[((j / hw) * O + o) * hw + j % hw];
  part[threadIdx.x] = s;
  __syncthreads();
  for (int w = 128; w > 0; w /= 2) {
    if (int(threadIdx.x) < w) part[threadIdx.x] += part[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) db[o] = part[0];
}

void im2col(const float* x, const ConvDims& d, int64_t n, float* col) {
  int64_t total = n * d.ckk() * d.hw();
  SD_LAUNCH(im2col_kernel, cuda::grid_for(total, 256), 256, 0, cuda::stream(), x, d, n, col);
}

void conv_forward(OpCall& c) {
  const Tensor &x = c.in[0], &w = c.in[1], &bias = c.in[2];
  check_f32("conv2d", x);
  ConvDims d = conv_dims(x, w, c.attrs);
  int64_t hw = d.hw(), ckk = d.ckk(), chw = d.C * d.H * d.W, nb = d.chunk();
  float* y = c.out[0].data<float>();
  Tensor col = d.direct() ? Tensor() : Tensor::empty({nb, ckk, hw}, DType::F32, Device::CUDA);
  for (int64_t b0 = 0; b0 < d.B; b0 += nb) {
    int64_t n = std::min(nb, d.B - b0);
    const float* src = x.data<float>() + b0 * chw;
    if (!d.direct()) {
      im2col(src, d, n, col.data<float>());
      src = col.data<float>();
    }
    // y_b [O, hw] = W [O, ckk] x col_b [ckk, hw]; col_b is x_b itself in the direct case
    gemm(n, false, false, d.O, hw, ckk, w.data<float>(), ckk, 0, src, hw,
         d.direct() ? chw : ckk * hw, 0.f, y + b0 * d.O * hw, hw, d.O * hw);
  }
  if (bias.defined()) {
    int64_t total = d.B * d.O * hw;
    SD_LAUNCH(add_bias_nchw, cuda::grid_for(total, 256), 256, 0, cuda::stream(), y,
              bias.data<float>(), total, d.O, hw);
  }
}

void conv_backward(GradCall& c) {
  const Tensor &x = c.in[0], &w = c.in[1];
  ConvDims d = conv_dims(x, w, c.attrs);
  int64_t hw = d.hw(), ckk = d.ckk(), chw = d.C * d.H * d.W, nb = d.chunk();
  const float* g = c.grad_out[0].data<float>();
  bool want_dx = c.grad_in[0].defined(), want_dw = c.grad_in[1].defined();
  Tensor col, dcol;
  if (want_dw && !d.direct()) col = Tensor::empty({nb, ckk, hw}, DType::F32, Device::CUDA);
  if (want_dx && !d.direct()) dcol = Tensor::empty({nb, ckk, hw}, DType::F32, Device::CUDA);
  for (int64_t b0 = 0; b0 < d.B; b0 += nb) {
    int64_t n = std::min(nb, d.B - b0);
    const float* gb = g + b0 * d.O * hw;
    if (want_dw) {
      // dW [O, ckk] += g_b [O, hw] x col_b^T [hw, ckk], image by image into the one output
      const float* src = x.data<float>() + b0 * chw;
      int64_t sstride = d.direct() ? chw : ckk * hw;
      if (!d.direct()) {
        im2col(src, d, n, col.data<float>());
        src = col.data<float>();
      }
      for (int64_t i = 0; i < n; ++i)
        gemm(1, false, true, d.O, ckk, hw, gb + i * d.O * hw, hw, 0, src + i * sstride, hw, 0,
             b0 + i ? 1.f : 0.f, c.grad_in[1].data<float>(), ckk, 0);
    }
    if (want_dx) {
      // dcol_b [ckk, hw] = W^T [ckk, O] x g_b [O, hw], then folded back onto dx_b
      float* dxb = c.grad_in[0].data<float>() + b0 * chw;
      float* dst = d.direct() ? dxb : dcol.data<float>();
      gemm(n, true, false, ckk, hw, d.O, w.data<float>(), ckk, 0, gb, hw, d.O * hw, 0.f, dst, hw,
           d.direct() ? chw : ckk * hw);
      if (!d.direct()) {
        int64_t total = n * chw;
        SD_LAUNCH(col2im_kernel, cuda::grid_for(total, 256), 256, 0, cuda::stream(),
                  dcol.data<float>(), d, n, dxb);
      }
    }
  }
  if (c.grad_in[2].defined()) {
    SD_LAUNCH(bias_grad_nchw, unsigned(d.O), 256, 0, cuda::stream(), g, d.B, d.O, hw,
              c.grad_in[2].data<float>());
  }
}

// ---- rearrangements and pooling ([B*C] planes; `big` is the larger image) ----

// small [B, C*p*p, H/p, W/p] <-> big [B, C, H, W]; i indexes the destination.
__global__ void pixel_unshuffle_kernel(const float* src, float* dst, int64_t n, int64_t H,
                                       int64_t W, int64_t p, bool to_small) {
  int64_t h = H / p, w = W / p;
  CUDA_LOOP(i, n) {
    int64_t si, bi;  // small and big offsets of the same element
    if (to_small) {
      si = i;
      int64_t j = i % w, r = (i / w) % h, q = i / (w * h);
      int64_t dx = q % p, dy = (q / p) % p, bc = q / (p * p);
      bi = (bc * H + r * p + dy) * W + j * p + dx;
    } else {
      bi = i;
      int64_t X = i % W, Y = (i / W) % H, bc = i / (W * H);
      int64_t q = (bc * p + Y % p) * p + X % p;
      si = (q * h + Y / p) * w + X / p;
    }
    dst[i] = to_small ? src[bi] : src[si];
  }
}

// small[b, c, i, j] = scale * sum of big over the f x f block at (i*f, j*f)
__global__ void block_sum_kernel(const float* big, float* small, int64_t n, int64_t H, int64_t W,
                                 int64_t f, float scale) {
  int64_t h = H / f, w = W / f;
  CUDA_LOOP(i, n) {
    int64_t j = i % w, r = (i / w) % h, q = i / (w * h);
    const float* b = big + (q * H + r * f) * W + j * f;
    float s = 0.f;
    for (int64_t y = 0; y < f; ++y)
      for (int64_t x = 0; x < f; ++x) s += b[y * W + x];
    small[i] = scale * s;
  }
}

// big[b, c, y, x] = scale * small[b, c, y/f, x/f]
__global__ void block_spread_kernel(const float* small, float* big, int64_t n, int64_t H,
                                    int64_t W, int64_t f, float scale) {
  int64_t h = H / f, w = W / f;
  CUDA_LOOP(i, n) {
    int64_t x = i % W, y = (i / W) % H, q = i / (W * H);
    big[i] = scale * small[(q * h + y / f) * w + x / f];
  }
}

// Copies between big (shape bs) and small in pixel_unshuffle order; dst is written in full.
void pixel_unshuffle(const Tensor& src, const Tensor& dst, const Shape& bs, int64_t p,
                     bool to_small) {
  int64_t n = dst.numel();
  SD_LAUNCH(pixel_unshuffle_kernel, cuda::grid_for(n, 256), 256, 0, cuda::stream(),
            src.data<float>(), dst.data<float>(), n, bs[2], bs[3], p, to_small);
}

void block_sum(const Tensor& big, const Tensor& small, int64_t f, float scale) {
  int64_t n = small.numel();
  SD_LAUNCH(block_sum_kernel, cuda::grid_for(n, 256), 256, 0, cuda::stream(), big.data<float>(),
            small.data<float>(), n, big.dim(2), big.dim(3), f, scale);
}

void block_spread(const Tensor& small, const Tensor& big, int64_t f, float scale) {
  int64_t n = big.numel();
  SD_LAUNCH(block_spread_kernel, cuda::grid_for(n, 256), 256, 0, cuda::stream(),
            small.data<float>(), big.data<float>(), n, big.dim(2), big.dim(3), f, scale);
}

}  // namespace

void register_conv_cuda(Registry& r) {
  r.mutable_at("conv2d").cuda = {conv_forward, conv_backward};

  r.mutable_at("space_to_depth").cuda = {
      [](OpCall& c) {
        check_f32("space_to_depth", c.in[0]);
        pixel_unshuffle(c.in[0], c.out[0], c.in[0].shape(), c.attrs["p"], true);
      },
      [](GradCall& c) {
        if (c.grad_in[0].defined())
          pixel_unshuffle(c.grad_out[0], c.grad_in[0], c.in[0].shape(), c.attrs["p"], false);
      }};
  r.mutable_at("depth_to_space").cuda = {
      [](OpCall& c) {
        check_f32("depth_to_space", c.in[0]);
        pixel_unshuffle(c.in[0], c.out[0], c.out[0].shape(), c.attrs["p"], false);
      },
      [](GradCall& c) {
        if (c.grad_in[0].defined())
          pixel_unshuffle(c.grad_out[0], c.grad_in[0], c.grad_out[0].shape(), c.attrs["p"], true);
      }};
  r.mutable_at("avg_pool2d").cuda = {
      [](OpCall& c) {
        check_f32("avg_pool2d", c.in[0]);
        int64_t k = c.attrs["k"];
        block_sum(c.in[0], c.out[0], k, 1.f / float(k * k));
      },
      [](GradCall& c) {
        int64_t k = c.attrs["k"];
        if (c.grad_in[0].defined()) block_spread(c.grad_out[0], c.grad_in[0], k, 1.f / float(k * k));
      }};
  r.mutable_at("upsample_nearest").cuda = {
      [](OpCall& c) {
        check_f32("upsample_nearest", c.in[0]);
        block_spread(c.in[0], c.out[0], c.attrs["factor"], 1.f);
      },
      [](GradCall& c) {
        if (c.grad_in[0].defined()) block_sum(c.grad_out[0], c.grad_in[0], c.attrs["factor"], 1.f);
      }};
}

}  // namespace sd
