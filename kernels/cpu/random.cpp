// Random draws (no inputs; run with run_forward_on(device, ...)). Element i of the output is
// element first + i of the Philox stream (seed, offset) (runtime/philox.h), so a draw does not
// depend on the device, on the shape it is drawn in, or on what was drawn before, and rows
// [r0, r1) of a [B, ...] draw are the draw of shape [r1 - r0, ...] with first = r0 * (numel / B)
// (a data-parallel rank draws its shard of the global batch; first defaults to 0):
//   random_uniform: y_i = philox_uniform(seed, offset, first + i)  in (0, 1)
//   random_normal:  y_i = philox_normal(seed, offset, first + i)   (Box-Muller in double)
#include "kernels/cpu/common.h"
#include "runtime/philox.h"

namespace sd {
namespace {

std::vector<OutMeta> infer_draw(const std::string& op, const Attrs& a) {
  const auto& s = a["shape"];
  bool ok = s.is_array();
  if (ok)
    for (const auto& d : s) ok = ok && d.is_number_integer() && d.get<int64_t>() >= 0;
  expect_attr(op, "shape", ok, "a list of integers >= 0", s);
  expect_u64_attr(op, a, "seed");
  expect_u64_attr(op, a, "offset");
  expect_u64_attr(op, a, "first");
  Shape shape = s.get<Shape>();
  try {
    shape_numel(shape);  // a product that wraps would allocate a wrong (or 0-byte) buffer
  } catch (const Error& e) {
    fail(op, ": attribute 'shape': ", e.what());
  }
  return {{shape, DType::F32}};
}

template <bool kNormal>
void draw(OpCall& c) {
  uint64_t seed = c.attrs["seed"].get<uint64_t>(), off = c.attrs["offset"].get<uint64_t>();
  uint64_t first = c.attrs["first"].get<uint64_t>();
  float* y = c.out[0].data<float>();
  int64_t n = c.out[0].numel();
#pragma omp parallel for
  for (int64_t i = 0; i < n; ++i)
    y[i] = kNormal ? philox_normal(seed, off, first + uint64_t(i))
                   : philox_uniform(seed, off, first + uint64_t(i));
}

OpDef draw_def(const std::string& name, const std::string& doc) {
  OpDef d{.name = name, .doc = doc,
          .attrs = {{"shape", "output shape (list of integers)"},
                    {"seed", "Philox key (integer >= 0)"},
                    {"offset", "Philox stream offset (integer >= 0)"},
                    {"first", "stream position of the first element (integer >= 0)", 0}},
          .outputs = {{"y", "f32 of the given shape"}}};
  d.infer = [name](const std::vector<Tensor>&, const Attrs& a) { return infer_draw(name, a); };
  d.tests = {{"[3,5,7]", {}, {{"shape", {3, 5, 7}}, {"seed", 1}, {"offset", 0}}},
             {"[1001] 64-bit seed and offset", {},
              {{"shape", {1001}}, {"seed", 0xfedcba9876ULL}, {"offset", (1ULL << 40) + 3}}},
             {"scalar", {}, {{"shape", Shape{}}, {"seed", 7}, {"offset", 2}}},
             {"[2,3,5] from position 7 (a shard)", {},
              {{"shape", {2, 3, 5}}, {"seed", 3}, {"offset", 1}, {"first", 7}}}};
  d.bench_cases = {{"[64,3,64,64]", {}, {{"shape", {64, 3, 64, 64}}, {"seed", 1}, {"offset", 0}}}};
  return d;
}

}  // namespace

void register_random_ops(Registry& r) {
  OpDef normal = draw_def("random_normal",
                          "standard normal f32 draws from Philox stream (seed, offset): element i "
                          "is the stream's element first + i, the same on every device and for "
                          "any shape. PyTorch: torch.randn, with another generator.");
  normal.cpu.forward = draw<true>;
  // Box-Muller runs in double through log/sin/cos, whose device and host implementations may
  // differ in the last bit of double; after rounding to f32 that is at most an ulp or two.
  normal.parity_tol = 1e-6;
  r.add(std::move(normal));

  OpDef uniform = draw_def("random_uniform",
                           "uniform (0, 1) f32 draws from Philox stream (seed, offset), element i "
                           "the stream's element first + i. PyTorch: torch.rand, with another "
                           "generator.");
  uniform.cpu.forward = draw<false>;
  r.add(std::move(uniform));
}

}  // namespace sd
