// Embedding-style ops.
//   embedding(table [V, D], idx i32 [B]):  y[b] = table[idx[b]]      dtable[v] = sum_{b: idx[b]=v} g[b]
//   sinusoidal_embedding(x [B], dim):     y[b, i] = cos(x_b f_i), y[b, h + i] = sin(x_b f_i),
//       h = dim / 2, f_i = exp(-ln(max_period) i / h);  dx_b = sum_i f_i (cos(x_b f_i) g[b, h+i]
//       - sin(x_b f_i) g[b, i])
//   dropout(x, p, seed, offset, first):   keep_i = philox_uniform(seed, offset, first + i) >= p,
//       y = keep ? x / (1 - p) : 0,  dx = keep ? g / (1 - p) : 0. The mask is regenerated from
//       (seed, offset) in the backward, never stored; CPU and CUDA draw the same stream. `first`
//       places x in a larger tensor's stream: a data-parallel rank holding rows [r0, ...) of the
//       global batch passes r0 * (numel / rows) and draws the masks of exactly those rows.
// Sinusoidal frequencies and angles are computed in double on both backends, so timesteps in the
// hundreds give the same f32 result on CPU and CUDA.
#include <cmath>
#include <cstring>

#include "kernels/cpu/common.h"
#include "runtime/philox.h"

namespace sd {
namespace {


// Valid rows are 0..V-1; checked on the host before any kernel runs (idx is a small label batch,
// copied from the device when needed).
void check_indices(const Tensor& idx, int64_t V) {
  Tensor h = idx.is_cpu() ? idx : idx.to(Device::CPU);
  const int32_t* p = h.data<int32_t>();
  for (int64_t b = 0; b < h.numel(); ++b)
    SD_CHECK(p[b] >= 0 && p[b] < V, "embedding: 'idx' element ", b, " is index ", p[b],
             ", out of range for a table of V = ", V, " rows (valid 0..", V - 1, ")");
}

template <class T>
void dropout_apply(const T* x, T* y, int64_t n, double p, uint64_t seed, uint64_t offset,
                   uint64_t first) {
  if (p == 0) {  // every u in (0, 1) is kept and scaled by 1: skip the generator
    if (y != x) std::memcpy(y, x, size_t(n) * sizeof(T));
    return;
  }
  const T s = T(1.0 / (1.0 - p));
  // Block j covers stream words 4 (first / 4 + j) ..+3, elements i = 4j + lane - skew.
  const int64_t skew = int64_t(first % 4);
  int64_t blocks = (n + skew + 3) / 4;
#pragma omp parallel for
  for (int64_t j = 0; j < blocks; ++j) {
    PhiloxBlock blk = philox_block(seed, offset, first / 4 + uint64_t(j));
    for (int lane = 0; lane < 4; ++lane) {
      int64_t i = 4 * j + lane - skew;
      if (i < 0) continue;
      if (i >= n) break;
      bool keep = double(philox_u01(blk.v[lane])) >= p;
      y[i] = keep ? x[i] * s : T(0);
    }
  }
}

}  // namespace

void register_embed_ops(Registry& r) {
  OpDef emb{.name = "embedding",
            .doc = "rows of a table: y[b] = table[idx[b]]; an index outside [0, V) is an error. "
                   "PyTorch: F.embedding(idx, table).",
            .inputs = {{"table", "[V, D]"}, {"idx", "i32 [B], values in [0, V)", false}},
            .outputs = {{"y", "[B, D]"}}};
  emb.infer = [](const std::vector<Tensor>& in, const Attrs&) {
    const Tensor &t = in[0], &idx = in[1];
    expect_float("embedding", "table", t);
    expect_ndim("embedding", "table", t, 2);
    expect_dtype("embedding", "idx", idx, DType::I32);
    expect_ndim("embedding", "idx", idx, 1);
    check_indices(idx, t.shape()[0]);
    return std::vector<OutMeta>{{{idx.shape()[0], t.shape()[1]}, t.dtype()}};
  };
  emb.cpu.forward = [](OpCall& c) {
    cpu::dispatch_float("embedding", c.in[0].dtype(), [&](auto t) {
      using T = decltype(t);
      const T* tab = c.in[0].data<T>();
      const int32_t* idx = c.in[1].data<int32_t>();
      T* y = c.out[0].data<T>();
      int64_t B = c.in[1].numel(), D = c.in[0].shape()[1];
      for (int64_t b = 0; b < B; ++b) std::memcpy(y + b * D, tab + idx[b] * D, D * sizeof(T));
    });
  };
  // Serial scatter-add: rows may repeat, and B x D is a label batch times a width (small).
  emb.cpu.backward = [](GradCall& c) {
    if (!c.grad_in[0].defined()) return;
    cpu::dispatch_float("embedding", c.in[0].dtype(), [&](auto t) {
      using T = decltype(t);
      const int32_t* idx = c.in[1].data<int32_t>();
      const T* g = c.grad_out[0].data<T>();
      T* dt = c.grad_in[0].data<T>();
      int64_t B = c.in[1].numel(), D = c.in[0].shape()[1];
      std::fill(dt, dt + c.grad_in[0].numel(), T(0));
      for (int64_t b = 0; b < B; ++b) {
        T* row = dt + int64_t(idx[b]) * D;
        for (int64_t d = 0; d < D; ++d) row[d] += g[b * D + d];
      }
    });
  };
  emb.tests = {{"V=7 D=5 B=11 (repeats)", {{{7, 5}}, {{11}, true, 0, 6}}},
               {"V=3 D=1 B=2", {{{3, 1}}, {{2}, true, 0, 2}}}};
  emb.bench_cases = {{"classes 1000 x 512, B=256", {{{1000, 512}}, {{256}, true, 0, 999}}}};
  emb.saved = {"idx"};
  r.add(std::move(emb));

  OpDef sine{.name = "sinusoidal_embedding",
            .doc = "[cos(x f_i), sin(x f_i)], f_i = max_period^(-i / (dim/2)), i < dim/2, for "
                   "x [B] -> [B, dim]: cosines first. PyTorch has no op; the same as guided "
                   "diffusion's timestep_embedding (the model feeds it logSNR, not t).",
            .inputs = {{"x", "[B]"}},
            .attrs = {{"dim", "output width (even)"},
                      {"max_period", "the slowest period", 10000.0}},
            .outputs = {{"y", "[B, dim]"}}};
  sine.infer = [](const std::vector<Tensor>& in, const Attrs& a) {
    expect_float("sinusoidal_embedding", "x", in[0]);
    expect_ndim("sinusoidal_embedding", "x", in[0], 1);
    const auto& dim = a["dim"];
    expect_attr("sinusoidal_embedding", "dim",
                dim.is_number_integer() && dim.get<int64_t>() > 0 && dim.get<int64_t>() % 2 == 0,
                "an even integer > 0", dim);
    expect_attr("sinusoidal_embedding", "max_period",
                a["max_period"].is_number() && a["max_period"].get<double>() > 0, "a number > 0",
                a["max_period"]);
    return std::vector<OutMeta>{{{in[0].shape()[0], dim.get<int64_t>()}, in[0].dtype()}};
  };
  sine.cpu.forward = [](OpCall& c) {
    int64_t h = c.attrs["dim"].get<int64_t>() / 2, B = c.in[0].numel();
    double lp = std::log(c.attrs["max_period"].get<double>());
    cpu::dispatch_float("sinusoidal_embedding", c.in[0].dtype(), [&](auto t) {
      using T = decltype(t);
      const T* x = c.in[0].data<T>();
      T* y = c.out[0].data<T>();
#pragma omp parallel for collapse(2)
      for (int64_t b = 0; b < B; ++b)
        for (int64_t i = 0; i < h; ++i) {
          double ang = double(x[b]) * std::exp(-lp * double(i) / double(h));
          y[b * 2 * h + i] = T(std::cos(ang));
          y[b * 2 * h + h + i] = T(std::sin(ang));
        }
    });
  };
  // d/dx cos(x f) = -f sin(x f) and d/dx sin(x f) = f cos(x f): each output pair adds
  // f_i (cos(x f_i) g[h + i] - sin(x f_i) g[i]) to dx (the model's logsnr input needs none, but
  // the op is differentiable like any other).
  sine.cpu.backward = [](GradCall& c) {
    if (!c.grad_in[0].defined()) return;
    int64_t h = c.attrs["dim"].get<int64_t>() / 2, B = c.in[0].numel();
    double lp = std::log(c.attrs["max_period"].get<double>());
    cpu::dispatch_float("sinusoidal_embedding", c.in[0].dtype(), [&](auto t) {
      using T = decltype(t);
      const T* x = c.in[0].data<T>();
      const T* g = c.grad_out[0].data<T>();
      T* dx = c.grad_in[0].data<T>();
#pragma omp parallel for
      for (int64_t b = 0; b < B; ++b) {
        double acc = 0;
        for (int64_t i = 0; i < h; ++i) {
          double f = std::exp(-lp * double(i) / double(h)), ang = double(x[b]) * f;
          acc += f * (std::cos(ang) * double(g[b * 2 * h + h + i]) -
                      std::sin(ang) * double(g[b * 2 * h + i]));
        }
        dx[b] = T(acc);
      }
    });
  };
  sine.tests = {{"dim=6", {{{5}, false, -3, 3}}, {{"dim", 6}}},
               {"dim=16 max_period=100", {{{3}, false, 0, 2}}, {{"dim", 16}, {"max_period", 100.0}}},
               {"timesteps up to 1000", {{{7}, false, 0, 1000}}, {{"dim", 10}}}};
  sine.bench_cases = {{"B=256 dim=512", {{{256}, false, 0, 1000}}, {{"dim", 512}}}};
  sine.saved = {"x"};
  r.add(std::move(sine));

  OpDef drop{.name = "dropout",
             .doc = "zeroes each element with probability p (Philox mask), scales the rest by "
                    "1/(1-p); the backward regenerates the mask from (seed, offset, first). "
                    "PyTorch: F.dropout(x, p), with torch's own random mask.",
             .inputs = {{"x", "any shape"}},
             .attrs = {{"p", "drop probability in [0, 1)"},
                       {"seed", "Philox key (integer >= 0)"},
                       {"offset", "Philox stream offset (integer >= 0)"},
                       {"first", "stream position of x's first element (integer >= 0)", 0}},
             .outputs = {{"y", "x's shape"}}};
  drop.infer = [](const std::vector<Tensor>& in, const Attrs& a) {
    expect_float("dropout", "x", in[0]);
    const auto& p = a["p"];
    expect_attr("dropout", "p", p.is_number() && p.get<double>() >= 0 && p.get<double>() < 1,
                "a number in [0, 1)", p);
    expect_u64_attr("dropout", a, "seed");
    expect_u64_attr("dropout", a, "offset");
    expect_u64_attr("dropout", a, "first");
    return std::vector<OutMeta>{{in[0].shape(), in[0].dtype()}};
  };
  auto run = [](const Tensor& src, const Tensor& dst, const Attrs& a) {
    cpu::dispatch_float("dropout", src.dtype(), [&](auto t) {
      using T = decltype(t);
      dropout_apply<T>(src.data<T>(), dst.data<T>(), src.numel(), a["p"].get<double>(),
                       a["seed"].get<uint64_t>(), a["offset"].get<uint64_t>(),
                       a["first"].get<uint64_t>());
    });
  };
  drop.cpu.forward = [run](OpCall& c) { run(c.in[0], c.out[0], c.attrs); };
  drop.cpu.backward = [run](GradCall& c) {
    if (c.grad_in[0].defined()) run(c.grad_out[0], c.grad_in[0], c.attrs);
  };
  drop.tests = {{"p=0", {{{3, 7, 5}}}, {{"p", 0.0}, {"seed", 5}, {"offset", 0}}},
                {"p=0.3", {{{3, 7, 5}}}, {{"p", 0.3}, {"seed", 11}, {"offset", 3}}},
                {"p=0.5 odd tail, 64-bit seed", {{{1, 1023}}},
                 {{"p", 0.5}, {"seed", 0x123456789abcULL}, {"offset", 1ULL << 33}}},
                {"p=0.4 from position 6 (a shard)", {{{2, 3, 5}}},
                 {{"p", 0.4}, {"seed", 9}, {"offset", 2}, {"first", 6}}}};
  drop.bench_cases = {{"[32,256,1024] p=0.1", {{{32, 256, 1024}}},
                       {{"p", 0.1}, {"seed", 1}, {"offset", 0}}}};
  drop.saved = {};
  r.add(std::move(drop));
}

}  // namespace sd
