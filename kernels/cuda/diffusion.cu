// CUDA backend of the diffusion family (math and validation in kernels/cpu/diffusion.cpp; the
// attributes and the data-dependent checks were done by infer() before these run).
// The schedule and alpha/sigma work on [B] values, in double as on the CPU. noising and
// sampler_step are memory bound over [B, inner]: a 2-D grid, blockIdx.y = sample, so each thread
// computes its sample's coefficients once (in double, rounded to f32 as on the CPU) and then
// streams a few elements of that sample with coalesced loads; inputs are read once, outputs
// written once. Outputs may alias inputs (each element reads before it writes), so no __restrict__.
#include <cmath>

#include "kernels/cuda/launch.cuh"

namespace sd {
namespace {

constexpr int kBlock = 256;

void check_f32(const char* op, const char* arg, const Tensor& t) {
  SD_CHECK(t.dtype() == DType::F32, op, ": the cuda backend computes in f32, '", arg, "' is ",
           t.desc());
}

__device__ double alpha_of(double l) { return 1.0 / sqrt(1.0 + exp(-l)); }
__device__ double sigma_of(double l) { return 1.0 / sqrt(1.0 + exp(l)); }

// ---- logsnr_schedule: l = -2 log tan(t_min + t (t_max - t_min)) + s0 + t (s1 - s0) ----
struct Schedule {
  double t_min, t_max, s0, s1;
};

Schedule parse_schedule(const Attrs& a) {
  double lmin = a["logsnr_min"], lmax = a["logsnr_max"], image_d = a["image_d"];
  double high_d = a["high_d"];
  if (high_d == 0) high_d = image_d;
  Schedule s{std::atan(std::exp(-0.5 * lmax)), std::atan(std::exp(-0.5 * lmin)), 0, 0};
  if (a["kind"] == "shifted") s.s0 = s.s1 = 2 * std::log(double(a["noise_d"]) / image_d);
  if (a["kind"] == "interpolated") {
    s.s0 = 2 * std::log(high_d / image_d);
    s.s1 = 2 * std::log(double(a["low_d"]) / image_d);
  }
  return s;
}

__global__ void schedule_kernel(const float* t, float* l, int64_t n, Schedule s) {
  CUDA_LOOP(i, n) {
    double ti = t[i];
    l[i] = float(-2.0 * log(tan(s.t_min + ti * (s.t_max - s.t_min))) + s.s0 + ti * (s.s1 - s.s0));
  }
}

__global__ void alpha_sigma_kernel(const float* l, float* a, float* s, int64_t n) {
  CUDA_LOOP(i, n) {
    double li = l[i];
    a[i] = float(alpha_of(li));
    s[i] = float(sigma_of(li));
  }
}

// ---- per-sample 2-D launch: grid.y walks samples, grid.x strides over a sample's elements ----
dim3 sample_grid(int64_t B, int64_t inner) {
  int64_t gx = (inner + 4 * kBlock - 1) / (4 * kBlock);  // ~4 elements per thread
  return dim3(cuda::capped_grid(gx, 1024), cuda::capped_grid(B, 65535));
}

#define SAMPLE_LOOP(b, B) for (int64_t b = blockIdx.y; b < (B); b += gridDim.y)
#define INNER_LOOP(i, n)                                                    \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += int64_t(blockDim.x) * gridDim.x)

__global__ void noising_kernel(const float* x, const float* e, const float* logsnr, float* z,
                               float* v, int64_t B, int64_t inner) {
  SAMPLE_LOOP(b, B) {
    double l = logsnr[b];
    float a = float(alpha_of(l)), s = float(sigma_of(l));
    int64_t o = b * inner;
    INNER_LOOP(i, inner) {
      float xi = x[o + i], ei = e[o + i];
      z[o + i] = a * xi + s * ei;
      v[o + i] = a * ei - s * xi;
    }
  }
}

enum SamplerMode { kLast, kDdpm, kDdim };

template <int Mode, bool Clip>
__global__ void sampler_kernel(const float* z, const float* vh, const float* lt_, const float* ls_,
                               const float* nz, float* out, int64_t B, int64_t inner) {
  SAMPLE_LOOP(b, B) {
    double lt = lt_[b], ls = ls_[b];
    double atd = alpha_of(lt), std_ = sigma_of(lt), asd = alpha_of(ls), ssd = sigma_of(ls);
    double cd = -expm1(lt - ls);
    float at = float(atd), st = float(std_), inv_st = float(1.0 / std_);
    float kz = float(asd * exp(lt - ls) / atd), kx = float(asd * cd), kn = float(ssd * sqrt(cd));
    float as = float(asd), ss = float(ssd);
    int64_t o = b * inner;
    INNER_LOOP(i, inner) {
      float zi = z[o + i], vi = vh[o + i];
      float xh = at * zi - st * vi;
      if (Clip) xh = fminf(1.f, fmaxf(-1.f, xh));
      if (Mode == kLast) {
        out[o + i] = xh;
      } else if (Mode == kDdpm) {
        out[o + i] = kz * zi + kx * xh + kn * nz[o + i];
      } else {
        float eh = Clip ? (zi - at * xh) * inv_st : st * zi + at * vi;
        out[o + i] = as * xh + ss * eh;
      }
    }
  }
}

template <int Mode, bool Clip>
void launch_sampler(OpCall& c, int64_t B, int64_t inner) {
  SD_LAUNCH((sampler_kernel<Mode, Clip>), sample_grid(B, inner), kBlock, 0, cuda::stream(),
            c.in[0].data<float>(), c.in[1].data<float>(), c.in[2].data<float>(),
            c.in[3].data<float>(), c.in[4].data<float>(), c.out[0].data<float>(), B, inner);
}

template <int Mode>
void launch_sampler(OpCall& c, bool clip, int64_t B, int64_t inner) {
  if (clip) launch_sampler<Mode, true>(c, B, inner);
  else launch_sampler<Mode, false>(c, B, inner);
}

void sampler_forward(OpCall& c) {
  const char* names[] = {"z", "v_hat", "logsnr_t", "logsnr_s", "noise"};
  for (int k = 0; k < 5; ++k) check_f32("sampler_step", names[k], c.in[k]);
  int64_t B = c.in[0].dim(0), inner = B ? c.in[0].numel() / B : 0;
  if (B == 0 || inner == 0) return;
  bool clip = c.attrs["clip_x"];
  if (c.attrs["last"].get<bool>()) launch_sampler<kLast>(c, clip, B, inner);
  else if (c.attrs["mode"] == "ddpm") launch_sampler<kDdpm>(c, clip, B, inner);
  else launch_sampler<kDdim>(c, clip, B, inner);
}

}  // namespace

void register_diffusion_cuda(Registry& r) {
  r.mutable_at("logsnr_schedule").cuda.forward = [](OpCall& c) {
    check_f32("logsnr_schedule", "t", c.in[0]);
    int64_t n = c.in[0].numel();
    if (n == 0) return;
    SD_LAUNCH(schedule_kernel, cuda::grid_for(n, kBlock), kBlock, 0, cuda::stream(),
              c.in[0].data<float>(), c.out[0].data<float>(), n, parse_schedule(c.attrs));
  };
  r.mutable_at("alpha_sigma").cuda.forward = [](OpCall& c) {
    check_f32("alpha_sigma", "logsnr", c.in[0]);
    int64_t n = c.in[0].numel();
    if (n == 0) return;
    SD_LAUNCH(alpha_sigma_kernel, cuda::grid_for(n, kBlock), kBlock, 0, cuda::stream(),
              c.in[0].data<float>(), c.out[0].data<float>(), c.out[1].data<float>(), n);
  };
  r.mutable_at("noising").cuda.forward = [](OpCall& c) {
    const char* names[] = {"x", "eps", "logsnr"};
    for (int k = 0; k < 3; ++k) check_f32("noising", names[k], c.in[k]);
    int64_t B = c.in[0].dim(0), inner = B ? c.in[0].numel() / B : 0;
    if (B == 0 || inner == 0) return;
    SD_LAUNCH(noising_kernel, sample_grid(B, inner), kBlock, 0, cuda::stream(),
              c.in[0].data<float>(), c.in[1].data<float>(), c.in[2].data<float>(),
              c.out[0].data<float>(), c.out[1].data<float>(), B, inner);
  };
  r.mutable_at("sampler_step").cuda.forward = sampler_forward;
}

}  // namespace sd
