#include "runtime/tensor.h"

#include <cmath>
#include <cstring>
#include <sstream>

#include "runtime/allocator.h"

namespace sd {

// Also refuses a product of the non-zero dimensions that overflows int64 when a zero dimension
// makes the count 0, so that no later arithmetic on the shape can overflow either.
int64_t shape_numel(const Shape& s) {
  int64_t n = 1, nonzero = 1;
  for (int64_t d : s) {
    if (d == 0) n = 0;
    else if (d < 0 || __builtin_mul_overflow(nonzero, d, &nonzero))
      fail("shape ", shape_str(s), d < 0 ? " has a negative dimension" : " overflows: more than 2^63 elements");
  }
  return n ? nonzero : 0;
}

std::string shape_str(const Shape& s) { return detail::cat(s); }

Storage::Storage(size_t b, Device d) : bytes(b), device(d) {
  if (d == Device::CPU) ptr = host_alloc(b ? b : 1);
  else ptr = device_alloc(b ? b : 1);
  if (alloc_poison()) {
    if (d == Device::CPU) std::memset(ptr, 0xFF, b);
    else device_memset(ptr, 0xFF, b);
  }
}

Storage::~Storage() {
  if (!ptr) return;
  if (device == Device::CPU) host_free(ptr);
  else device_free(ptr, bytes ? bytes : 1);
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  size_t bytes;
  if (__builtin_mul_overflow(size_t(shape_numel(shape)), dtype_size(dtype), &bytes))
    fail("Tensor::empty: ", dtype_name(dtype), shape_str(shape), " overflows the byte count");
  Tensor t;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.device_ = device;
  t.storage_ = std::make_shared<Storage>(bytes, device);
  return t;
}

Tensor Tensor::shape_only(const Shape& shape, DType dtype, Device device) {
  Tensor t;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.device_ = device;
  t.storage_ = std::make_shared<Storage>();
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.zero_();
  return t;
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype) {
  Tensor t = empty(shape, dtype, Device::CPU);
  t.fill_(value);
  return t;
}

Tensor Tensor::from_floats(const std::vector<float>& v, const Shape& shape) {
  SD_CHECK(int64_t(v.size()) == shape_numel(shape), "Tensor::from_floats: ", v.size(),
           " values for shape ", shape_str(shape));
  Tensor t = empty(shape, DType::F32);
  std::memcpy(t.raw(), v.data(), v.size() * 4);
  return t;
}

Tensor Tensor::from_ints(const std::vector<int32_t>& v, const Shape& shape) {
  SD_CHECK(int64_t(v.size()) == shape_numel(shape), "Tensor::from_ints: ", v.size(),
           " values for shape ", shape_str(shape));
  Tensor t = empty(shape, DType::I32);
  std::memcpy(t.raw(), v.data(), v.size() * 4);
  return t;
}

int64_t Tensor::dim(int i) const {
  int n = ndim();
  int j = i < 0 ? i + n : i;
  SD_CHECK(j >= 0 && j < n, "dim(", i, ") out of range for ", desc());
  return shape_[j];
}

Tensor Tensor::reshape(const Shape& shape) const {
  Shape s = shape;
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      SD_CHECK(infer < 0, "reshape: more than one -1 in ", shape_str(shape));
      infer = int(i);
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0) {
    SD_CHECK(known > 0 && numel() % known == 0, "reshape: cannot reshape ", desc(), " to ",
             shape_str(shape));
    s[infer] = numel() / known;
  }
  SD_CHECK(shape_numel(s) == numel(), "reshape: cannot reshape ", desc(), " to ",
           shape_str(shape), " (", numel(), " vs ", shape_numel(s), " elements)");
  Tensor t = *this;
  t.shape_ = s;
  return t;
}

Tensor Tensor::slice_flat(int64_t off, const Shape& shape) const {
  SD_CHECK(off >= 0 && off + shape_numel(shape) <= numel(), "slice_flat: [", off, ", ",
           off + shape_numel(shape), ") out of range for ", desc());
  Tensor t = *this;
  t.offset_ = offset_ + size_t(off) * dtype_size(dtype_);
  t.shape_ = shape;
  return t;
}

void Tensor::copy_from(const Tensor& src) const {
  SD_CHECK(src.shape_ == shape_ && src.dtype_ == dtype_, "copy_from: destination ", desc(),
           ", source ", src.desc());
  if (nbytes() == 0) return;
  if (is_cpu() && src.is_cpu()) std::memcpy(raw(), src.raw(), nbytes());
  else if (is_cpu()) device_copy(raw(), src.raw(), nbytes(), CopyKind::DeviceToHost);
  else if (src.is_cpu()) device_copy(raw(), src.raw(), nbytes(), CopyKind::HostToDevice);
  else device_copy(raw(), src.raw(), nbytes(), CopyKind::DeviceToDevice);
}

Tensor Tensor::to(Device device) const {
  if (device == device_) return *this;
  Tensor t = empty(shape_, dtype_, device);
  t.copy_from(*this);
  return t;
}

Tensor Tensor::clone() const {
  Tensor t = empty(shape_, dtype_, device_);
  t.copy_from(*this);
  return t;
}

namespace {
double load_host(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::F32: return t.data<float>()[i];
    case DType::F64: return t.data<double>()[i];
    case DType::BF16: return bf16_to_f32(t.data<uint16_t>()[i]);
    case DType::I32: return t.data<int32_t>()[i];
  }
  return 0;
}
void store_host(const Tensor& t, int64_t i, double v) {
  switch (t.dtype()) {
    case DType::F32: t.data<float>()[i] = float(v); break;
    case DType::F64: t.data<double>()[i] = v; break;
    case DType::BF16: t.data<uint16_t>()[i] = f32_to_bf16(float(v)); break;
    case DType::I32: t.data<int32_t>()[i] = int32_t(v); break;
  }
}

// The conversions mixed precision makes at every op boundary (kernels/registry.cpp) get loops
// the compiler vectorises, split over the threads when large; the rest go element by element.
constexpr int64_t kParallelConvert = 1 << 16;
template <class S, class D, class F>
void convert_host(const S* s, D* d, int64_t n, F f) {
#pragma omp parallel for simd if (n >= kParallelConvert)
  for (int64_t i = 0; i < n; ++i) d[i] = f(s[i]);
}
}  // namespace

void Tensor::convert_from(const Tensor& src) const {
  SD_CHECK(src.shape_ == shape_ && src.device_ == device_, "convert_from: destination ", desc(),
           ", source ", src.desc());
  int64_t n = numel();
  if (n == 0) return;
  if (src.dtype_ == dtype_) {
    copy_from(src);
  } else if (device_ == Device::CUDA) {
    // The device converts f32 <-> bf16 and f32 <-> f64; bf16 <-> f64 goes through f32, as the
    // host does (bf16 -> f32 is exact; f64 -> bf16 rounds twice, f64 -> f32 -> bf16).
    if (src.dtype_ != DType::F32 && dtype_ != DType::F32) {
      convert_from(src.to(DType::F32));
      return;
    }
    device_convert(src.raw(), int(src.dtype_), raw(), int(dtype_), size_t(n));
  } else if (src.dtype_ == DType::F32 && dtype_ == DType::BF16) {
    convert_host(src.data<float>(), data<uint16_t>(), n, [](float x) { return f32_to_bf16(x); });
  } else if (src.dtype_ == DType::BF16 && dtype_ == DType::F32) {
    convert_host(src.data<uint16_t>(), data<float>(), n, [](uint16_t x) { return bf16_to_f32(x); });
  } else if (src.dtype_ == DType::F32 && dtype_ == DType::F64) {
    convert_host(src.data<float>(), data<double>(), n, [](float x) { return double(x); });
  } else if (src.dtype_ == DType::F64 && dtype_ == DType::F32) {
    convert_host(src.data<double>(), data<float>(), n, [](double x) { return float(x); });
  } else {
    for (int64_t i = 0; i < n; ++i) store_host(*this, i, load_host(src, i));
  }
}

Tensor Tensor::to(DType dtype) const {
  if (dtype == dtype_) return *this;
  Tensor t = empty(shape_, dtype, device_);
  t.convert_from(*this);
  return t;
}

void Tensor::zero_() {
  if (nbytes() == 0) return;
  if (is_cpu()) std::memset(raw(), 0, nbytes());
  else device_memset(raw(), 0, nbytes());
}

void Tensor::fill_(double v) {
  if (device_ == Device::CUDA) {
    SD_CHECK(dtype_ == DType::F32 || dtype_ == DType::F64, "fill_: unsupported on ", desc());
    if (dtype_ == DType::F32) device_fill_f32(data<float>(), size_t(numel()), float(v));
    else device_fill_f64(data<double>(), size_t(numel()), v);
    return;
  }
  for (int64_t i = 0; i < numel(); ++i) store_host(*this, i, v);
}

std::vector<float> Tensor::to_floats() const {
  Tensor h = to(Device::CPU);
  std::vector<float> out(size_t(h.numel()));
  for (int64_t i = 0; i < h.numel(); ++i) out[size_t(i)] = float(load_host(h, i));
  return out;
}

double Tensor::item() const {
  SD_CHECK(numel() == 1, "item(): expected one element, got ", desc());
  return load_host(to(Device::CPU), 0);
}

std::string Tensor::desc() const {
  if (!defined()) return "undefined tensor";
  std::ostringstream os;
  std::string dt = dtype_name(dtype_);
  for (auto& c : dt) c = char(std::tolower(c));
  os << dt << shape_str(shape_) << ' ' << device_name(device_);
  if (!has_data()) os << " (shape only)";
  return os.str();
}

}  // namespace sd
