// CUDA backend of the image family (math in kernels/cpu/conv.cpp).
// conv2d is im2col + cuBLASLt (cuda::gemm: TF32 for f32, bf16 read exactly, f32 accumulation),
// native in f32 and bf16: a chunk of images is unfolded into a [n, C*k*k, Ho*Wo] buffer in x's
// dtype (capped at col_bytes(), so large batches go in several chunks) and one strided-batched
// GEMM multiplies the shared W into all of them. dx gathers its sum from dcol (col2im without
// atomics, deterministic); dW accumulates one GEMM per image into the same output (beta = 1).
// Every sum of several GEMM results (the bias, col2im, dW over images) is made in f32 and a bf16
// result is rounded once at the end. 1x1 stride-1 unpadded kernels skip the unfold: col is x.
// The rearrangement, pooling and upsampling kernels index by output element: each writes one
// element and reads what it needs, so every element is written exactly once.
#include <algorithm>

#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/pack8.cuh"

namespace sd {
namespace {

using namespace cuda;  // gemm, and pack8.cuh's f32/bf16 element access

// The column buffer's cap: 256 MiB, or less when a test shrinks scratch buffers.
int64_t col_bytes() {
  int64_t cap = int64_t(256) << 20, test_cap = cuda_limits().scratch_bytes;
  return test_cap > 0 && test_cap < cap ? test_cap : cap;
}

struct ConvDims {
  int64_t B, C, H, W, O, k, s, p, Ho, Wo;
  __host__ __device__ int64_t hw() const { return Ho * Wo; }
  __host__ __device__ int64_t ckk() const { return C * k * k; }
  bool direct() const { return k == 1 && s == 1 && p == 0; }
  // images per chunk so that one [n, Ckk, HoWo] f32 buffer stays under col_bytes()
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
// n images: coalesced writes; neighbouring threads read neighbouring x (stride s). A copy: bf16
// stays bf16 (2 bytes read and written per element).
template <class T>
__global__ void im2col_kernel(const T* x, ConvDims d, int64_t n, T* col) {
  int64_t hw = d.hw(), ckk = d.ckk();
  CUDA_LOOP(i, n * ckk * hw) {
    int64_t pos = i % hw, row = (i / hw) % ckk, b = i / (hw * ckk);
    int64_t c = row / (d.k * d.k), ky = (row / d.k) % d.k, kx = row % d.k;
    int64_t iy = (pos / d.Wo) * d.s - d.p + ky, ix = (pos % d.Wo) * d.s - d.p + kx;
    bool in = iy >= 0 && iy < d.H && ix >= 0 && ix < d.W;
    col[i] = in ? x[((b * d.C + c) * d.H + iy) * d.W + ix] : from_f32<T>(0.f);
  }
}

// dx[n, c, iy, ix] = sum over (ky, kx) with iy = oy*s - p + ky, ix = ox*s - p + kx of
// dcol[n, (c*k + ky)*k + kx, oy*Wo + ox]: a gather, so no atomics and a fixed summation order.
// dcol is f32 (written so by the GEMM), dx rounded once.
template <class T>
__global__ void col2im_kernel(const float* dcol, ConvDims d, int64_t n, T* dx) {
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
    dx[i] = from_f32<T>(s);
  }
}

// y[b, o, :] = src[b, o, :] + bias[o] for the n elements of a chunk of whole images: src is the
// f32 GEMM result (y itself when y is f32: in place), y rounded once when bf16.
template <class B, class Y>
__global__ void add_bias_nchw(const float* src, const B* bias, Y* y, int64_t n, int64_t O,
                              int64_t hw) {
  CUDA_LOOP(i, n) y[i] = from_f32<Y>(src[i] + float(bias[(i / hw) % O]));
}

// db[o] = sum over b and positions of g[b, o, :]: one 256-thread block per channel, a tree
// reduction in shared memory (fixed order: deterministic), in f32.
template <class G, class DB>
__global__ void bias_grad_nchw(const G* g, int64_t B, int64_t O, int64_t hw, DB* db) {
  __shared__ float part[256];
  int64_t o = blockIdx.x;
  float s = 0.f;
  for (int64_t j = threadIdx.x; j < B * hw; j += 256)
    s += float(g[((j / hw) * O + o) * hw + j % hw]);
  part[threadIdx.x] = s;
  __syncthreads();
  for (int w = 128; w > 0; w /= 2) {
    if (int(threadIdx.x) < w) part[threadIdx.x] += part[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) db[o] = from_f32<DB>(part[0]);
}

// Images b0 .. b0+n-1 of x unfolded into col.
template <class T>
void im2col(const Tensor& x, int64_t b0, const ConvDims& d, int64_t n, const Tensor& col) {
  int64_t total = n * d.ckk() * d.hw();
  SD_LAUNCH(im2col_kernel<T>, cuda::grid_for(total, 256), 256, 0, cuda::stream(),
            static_cast<const T*>(x.raw()) + b0 * d.C * d.H * d.W, d, n,
            static_cast<T*>(col.raw()));
}

// x and w share T (else run_widened); the bias may be f32 or bf16.
template <class T>
void conv_forward_t(OpCall& c) {
  const Tensor &x = c.in[0], &w = c.in[1], &bias = c.in[2], &y = c.out[0];
  const DType dt = x.dtype();
  ConvDims d = conv_dims(x, w, c.attrs);
  int64_t hw = d.hw(), ckk = d.ckk(), chw = d.C * d.H * d.W, nb = d.chunk();
  // A bf16 y with a bias: the GEMM writes f32 chunks, the bias kernel adds and rounds once.
  const bool via_f32 = bias.defined() && dt == DType::BF16;
  Tensor col = d.direct() ? Tensor() : Tensor::empty({nb, ckk, hw}, dt, Device::CUDA);
  Tensor acc = via_f32 ? Tensor::empty({nb, d.O, hw}, DType::F32, Device::CUDA) : Tensor();
  for (int64_t b0 = 0; b0 < d.B; b0 += nb) {
    int64_t n = std::min(nb, d.B - b0);
    if (!d.direct()) im2col<T>(x, b0, d, n, col);
    // y_b [O, hw] = W [O, ckk] x col_b [ckk, hw]; col_b is x_b itself in the direct case
    GemmMat src = d.direct() ? gemm_mat(x, hw, chw, b0 * chw) : gemm_mat(col, hw, ckk * hw);
    GemmMat dst = via_f32 ? gemm_mat(acc, hw, d.O * hw) : gemm_mat(y, hw, d.O * hw, b0 * d.O * hw);
    gemm(n, false, false, d.O, hw, ckk, gemm_mat(w, ckk), src, 0.f, dst);
    if (via_f32)
      dispatch_f32_bf16("conv2d", bias, [&](auto bt) {
        using B = decltype(bt);
        int64_t total = n * d.O * hw;
        SD_LAUNCH((add_bias_nchw<B, T>), cuda::grid_for(total, 256), 256, 0, cuda::stream(),
                  acc.data<float>(), static_cast<const B*>(bias.raw()),
                  static_cast<T*>(y.raw()) + b0 * d.O * hw, total, d.O, hw);
      });
  }
  if (bias.defined() && !via_f32)  // f32 y: in place, once over the whole output
    dispatch_f32_bf16("conv2d", bias, [&](auto bt) {
      using B = decltype(bt);
      int64_t total = d.B * d.O * hw;
      SD_LAUNCH((add_bias_nchw<B, float>), cuda::grid_for(total, 256), 256, 0, cuda::stream(),
                y.data<float>(), static_cast<const B*>(bias.raw()), y.data<float>(), total, d.O,
                hw);
    });
}

template <class T>
void conv_backward_t(GradCall& c) {
  const Tensor &x = c.in[0], &w = c.in[1], &g = c.grad_out[0];
  const DType dt = x.dtype();
  ConvDims d = conv_dims(x, w, c.attrs);
  int64_t hw = d.hw(), ckk = d.ckk(), chw = d.C * d.H * d.W, nb = d.chunk();
  const Tensor &dx = c.grad_in[0], &dw = c.grad_in[1];
  Tensor col, dcol;
  if (dw.defined() && !d.direct()) col = Tensor::empty({nb, ckk, hw}, dt, Device::CUDA);
  if (dx.defined() && !d.direct()) dcol = Tensor::empty({nb, ckk, hw}, DType::F32, Device::CUDA);
  Accumulator dw_sum(dw);  // dW sums one GEMM per image: in f32, rounded once at the end
  for (int64_t b0 = 0; b0 < d.B; b0 += nb) {
    int64_t n = std::min(nb, d.B - b0);
    if (dw.defined()) {
      // dW [O, ckk] += g_b [O, hw] x col_b^T [hw, ckk], image by image into the one output
      if (!d.direct()) im2col<T>(x, b0, d, n, col);
      for (int64_t i = 0; i < n; ++i) {
        GemmMat src =
            d.direct() ? gemm_mat(x, hw, 0, (b0 + i) * chw) : gemm_mat(col, hw, 0, i * ckk * hw);
        gemm(1, false, true, d.O, ckk, hw, gemm_mat(g, hw, 0, (b0 + i) * d.O * hw), src,
             b0 + i ? 1.f : 0.f, gemm_mat(dw_sum.acc, ckk));
      }
    }
    if (dx.defined()) {
      // dcol_b [ckk, hw] = W^T [ckk, O] x g_b [O, hw] (f32), then folded back onto dx_b; in
      // the direct case the GEMM writes dx_b itself
      GemmMat dst = d.direct() ? gemm_mat(dx, hw, chw, b0 * chw) : gemm_mat(dcol, hw, ckk * hw);
      gemm(n, true, false, ckk, hw, d.O, gemm_mat(w, ckk), gemm_mat(g, hw, d.O * hw, b0 * d.O * hw),
           0.f, dst);
      if (!d.direct()) {
        int64_t total = n * chw;
        SD_LAUNCH(col2im_kernel<T>, cuda::grid_for(total, 256), 256, 0, cuda::stream(),
                  dcol.data<float>(), d, n, static_cast<T*>(dx.raw()) + b0 * chw);
      }
    }
  }
  dw_sum.finish();
  if (const Tensor& db = c.grad_in[2]; db.defined())
    dispatch_f32_bf16("conv2d", db, [&](auto bt) {
      using DB = decltype(bt);
      SD_LAUNCH((bias_grad_nchw<T, DB>), unsigned(d.O), 256, 0, cuda::stream(),
                static_cast<const T*>(g.raw()), d.B, d.O, hw, static_cast<DB*>(db.raw()));
    });
}

void conv_forward(OpCall& c) {
  if (c.in[0].dtype() != c.in[1].dtype()) return sd::run_widened(c, conv_forward);
  dispatch_f32_bf16("conv2d", c.in[0], [&](auto t) { conv_forward_t<decltype(t)>(c); });
}

void conv_backward(GradCall& c) {
  SD_CHECK(c.grad_out[0].defined(), "conv2d: the backward needs the output's gradient");
  if (c.in[0].dtype() != c.in[1].dtype()) return sd::run_widened(c, conv_backward);
  dispatch_f32_bf16("conv2d", c.in[0], [&](auto t) { conv_backward_t<decltype(t)>(c); });
}

// ---- rearrangements and pooling ([B*C] planes; `big` is the larger image) ----
// In f32 or bf16 (T, the one dtype of input and output): pixel_unshuffle moves elements as they
// are; block sums add in f32 and round once; spreads scale in f32 (exact for scale 1).

// small [B, C*p*p, H/p, W/p] <-> big [B, C, H, W]; i indexes the destination.
template <class T>
__global__ void pixel_unshuffle_kernel(const T* src, T* dst, int64_t n, int64_t H,
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
template <class T>
__global__ void block_sum_kernel(const T* big, T* small, int64_t n, int64_t H, int64_t W,
                                 int64_t f, float scale) {
  int64_t h = H / f, w = W / f;
  CUDA_LOOP(i, n) {
    int64_t j = i % w, r = (i / w) % h, q = i / (w * h);
    const T* b = big + (q * H + r * f) * W + j * f;
    float s = 0.f;
    for (int64_t y = 0; y < f; ++y)
      for (int64_t x = 0; x < f; ++x) s += float(b[y * W + x]);
    small[i] = from_f32<T>(scale * s);
  }
}

// big[b, c, y, x] = scale * small[b, c, y/f, x/f]
template <class T>
__global__ void block_spread_kernel(const T* small, T* big, int64_t n, int64_t H,
                                    int64_t W, int64_t f, float scale) {
  int64_t h = H / f, w = W / f;
  CUDA_LOOP(i, n) {
    int64_t x = i % W, y = (i / W) % H, q = i / (W * H);
    big[i] = from_f32<T>(scale * float(small[(q * h + y / f) * w + x / f]));
  }
}

// Copies between big (shape bs) and small in pixel_unshuffle order; dst is written in full.
void pixel_unshuffle(const Tensor& src, const Tensor& dst, const Shape& bs, int64_t p,
                     bool to_small) {
  SD_CHECK(src.defined(), "space_to_depth/depth_to_space: the backward needs the output's gradient");
  int64_t n = dst.numel();
  dispatch_f32_bf16("space_to_depth/depth_to_space", src, [&](auto t) {
    using T = decltype(t);
    SD_LAUNCH(pixel_unshuffle_kernel<T>, cuda::grid_for(n, 256), 256, 0, cuda::stream(),
              static_cast<const T*>(src.raw()), static_cast<T*>(dst.raw()), n, bs[2], bs[3], p,
              to_small);
  });
}

void block_sum(const Tensor& big, const Tensor& small, int64_t f, float scale) {
  SD_CHECK(big.defined(), "upsample_nearest: the backward needs the output's gradient");
  int64_t n = small.numel();
  dispatch_f32_bf16("upsample_nearest", big, [&](auto t) {
    using T = decltype(t);
    SD_LAUNCH(block_sum_kernel<T>, cuda::grid_for(n, 256), 256, 0, cuda::stream(),
              static_cast<const T*>(big.raw()), static_cast<T*>(small.raw()), n, big.dim(2),
              big.dim(3), f, scale);
  });
}

void block_spread(const Tensor& small, const Tensor& big, int64_t f, float scale) {
  SD_CHECK(small.defined(), "avg_pool2d: the backward needs the output's gradient");
  int64_t n = big.numel();
  dispatch_f32_bf16("avg_pool2d", big, [&](auto t) {
    using T = decltype(t);
    SD_LAUNCH(block_spread_kernel<T>, cuda::grid_for(n, 256), 256, 0, cuda::stream(),
              static_cast<const T*>(small.raw()), static_cast<T*>(big.raw()), n, big.dim(2),
              big.dim(3), f, scale);
  });
}

}  // namespace

void register_conv_cuda(Registry& r) {
  r.mutable_at("conv2d").cuda = {conv_forward, conv_backward};

  r.mutable_at("space_to_depth").cuda = {
      [](OpCall& c) { pixel_unshuffle(c.in[0], c.out[0], c.in[0].shape(), c.attrs["p"], true); },
      [](GradCall& c) {
        if (c.grad_in[0].defined())
          pixel_unshuffle(c.grad_out[0], c.grad_in[0], c.in[0].shape(), c.attrs["p"], false);
      }};
  r.mutable_at("depth_to_space").cuda = {
      [](OpCall& c) { pixel_unshuffle(c.in[0], c.out[0], c.out[0].shape(), c.attrs["p"], false); },
      [](GradCall& c) {
        if (c.grad_in[0].defined())
          pixel_unshuffle(c.grad_out[0], c.grad_in[0], c.grad_out[0].shape(), c.attrs["p"], true);
      }};
  r.mutable_at("avg_pool2d").cuda = {
      [](OpCall& c) {
        int64_t k = c.attrs["k"];
        block_sum(c.in[0], c.out[0], k, 1.f / float(k * k));
      },
      [](GradCall& c) {
        int64_t k = c.attrs["k"];
        if (c.grad_in[0].defined()) block_spread(c.grad_out[0], c.grad_in[0], k, 1.f / float(k * k));
      }};
  r.mutable_at("upsample_nearest").cuda = {
      [](OpCall& c) { block_spread(c.in[0], c.out[0], c.attrs["factor"], 1.f); },
      [](GradCall& c) {
        if (c.grad_in[0].defined()) block_sum(c.grad_out[0], c.grad_in[0], c.attrs["factor"], 1.f);
      }};
  // Native bf16 (kernels/registry.h): the kernels take f32 or bf16 tensors as they are.
  for (const char* op :
       {"conv2d", "space_to_depth", "depth_to_space", "avg_pool2d", "upsample_nearest"})
    r.mutable_at(op).cuda.bf16 = true;
}

}  // namespace sd
