// Google Benchmark over the op registry: every op's bench cases, forward and backward, on the
// CPU and (when present) the GPU. Memory-bound ops report GB/s of the bytes they must move
// (inputs + outputs; backward: inputs, outputs, output gradients, input gradients); ops with a
// flop count report TFLOP/s. On the GPU the device-to-device copy bandwidth is measured in the
// same run (copy/cuda) so each GB/s figure can be read as a fraction of it.
//   simdiff_bench --benchmark_filter=cuda      GPU only (what tools/gpu_check.sh runs)
//   simdiff_bench --benchmark_filter='layer_norm.*cpu'
// A case that throws (out of memory, a CUDA error, an unsupported shape) is reported as that
// benchmark's error (bench/guard.h) and the run goes on.
#include <benchmark/benchmark.h>

#include "bench/guard.h"
#include "kernels/op_inputs.h"
#include "runtime/allocator.h"

namespace sd {
namespace {

double bytes_of(const std::vector<Tensor>& ts) {
  double b = 0;
  for (auto& t : ts)
    if (t.defined()) b += double(t.nbytes());
  return b;
}

void sync(Device d) {
  if (d == Device::CUDA) device_synchronize();
}

// Float inputs in `dt` (F32, or BF16 for the "bf16 <label>" run of every case: the dtype rule
// of kernels/registry.h, native where the backend says so, else through the f32 adapter).
std::vector<Tensor> bench_inputs(const TestCase& tc, Device dev, DType dt) {
  std::vector<Tensor> in = make_op_inputs(tc, 1, DType::F32, dev);
  if (dt == DType::BF16)
    for (auto& t : in)
      if (t.defined() && t.dtype() == DType::F32) t = t.to(DType::BF16);
  return in;
}

void bench_forward(benchmark::State& st, const OpDef* def, TestCase tc, Device dev, DType dt) {
  std::vector<Tensor> in = bench_inputs(tc, dev, dt);
  auto fwd = [&] {
    return def->inputs.empty() ? run_forward_on(dev, def->name, tc.attrs)
                               : run_forward(def->name, in, tc.attrs);
  };
  std::vector<Tensor> out = fwd();
  for (auto _ : st) {
    out = fwd();
    sync(dev);
  }
  double n = double(st.iterations());
  if (def->flops)
    st.counters["TFLOP/s"] = benchmark::Counter(def->flops(in, resolve_attrs(*def, tc.attrs)) * n / 1e12, benchmark::Counter::kIsRate);
  st.counters["GB/s"] = benchmark::Counter((bytes_of(in) + bytes_of(out)) * n / 1e9, benchmark::Counter::kIsRate);
}

void bench_backward(benchmark::State& st, const OpDef* def, TestCase tc, Device dev, DType dt) {
  std::vector<Tensor> in = bench_inputs(tc, dev, dt);
  std::vector<Tensor> out = run_forward(def->name, in, tc.attrs);
  std::vector<Tensor> gout;
  for (size_t j = 0; j < out.size(); ++j)
    gout.push_back(def->outputs[j].differentiable
                       ? random_uniform_tensor(out[j].shape(), 2, j, out[j].dtype()).to(dev)
                       : Tensor());
  std::vector<bool> need;
  for (size_t i = 0; i < in.size(); ++i) need.push_back(in[i].defined() && def->inputs[i].differentiable);
  std::vector<Tensor> gin;
  for (auto _ : st) {
    gin = run_backward(def->name, in, out, gout, need, tc.attrs);
    sync(dev);
  }
  double n = double(st.iterations());
  if (def->flops)
    st.counters["TFLOP/s"] = benchmark::Counter(
        def->backward_flops_ratio * def->flops(in, resolve_attrs(*def, tc.attrs)) * n / 1e12, benchmark::Counter::kIsRate);
  st.counters["GB/s"] = benchmark::Counter(
      (bytes_of(in) + bytes_of(out) + bytes_of(gout) + bytes_of(gin)) * n / 1e9, benchmark::Counter::kIsRate);
}

// The reference for memory-bound kernels: read + write of a 256 MiB buffer.
void bench_copy(benchmark::State& st) {
  Tensor a = Tensor::zeros({64 << 20}, DType::F32, Device::CUDA), b = a.clone();
  for (auto _ : st) {
    b.copy_from(a);
    sync(Device::CUDA);
  }
  st.counters["GB/s"] = benchmark::Counter(2.0 * double(a.nbytes()) * double(st.iterations()) / 1e9,
                                           benchmark::Counter::kIsRate);
}

void register_all() {
  std::vector<Device> devs{Device::CPU};
  if (cuda_available()) {
    devs.push_back(Device::CUDA);
    benchmark::RegisterBenchmark("copy/cuda", guarded(bench_copy))->UseRealTime()->Unit(benchmark::kMicrosecond);
  }
  for (const OpDef* def : Registry::get().all())
    for (const TestCase& tc : def->bench_cases)
      for (Device dev : devs)
        for (DType dt : {DType::F32, DType::BF16}) {
          if (dev == Device::CUDA && !def->cuda.forward) continue;
          // An op without a float input (the random draws) has no bf16 run.
          bool has_float = false;
          for (const TestInput& ti : tc.inputs) has_float |= !ti.integer && !ti.absent;
          if (dt == DType::BF16 && !has_float) continue;
          std::string label =
              dt == DType::F32 ? tc.label : tc.label.empty() ? "bf16" : "bf16 " + tc.label;
          std::string name = def->name + (label.empty() ? "" : "/" + label) + "/" + device_name(dev);
          benchmark::RegisterBenchmark((name + "/fwd").c_str(), guarded(bench_forward), def, tc, dev, dt)
              ->UseRealTime()->Unit(benchmark::kMicrosecond);
          if (def->differentiable())
            benchmark::RegisterBenchmark((name + "/bwd").c_str(), guarded(bench_backward), def, tc, dev, dt)
                ->UseRealTime()->Unit(benchmark::kMicrosecond);
        }
}

}  // namespace
}  // namespace sd

int main(int argc, char** argv) {
  sd::register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
