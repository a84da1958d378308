// Tensor: a shape, a dtype, a device and a reference-counted contiguous buffer.
// A tensor is always contiguous; views (reshape, flat slices of a parameter arena) share the
// buffer and differ only in offset and shape, so they cost nothing.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/device.h"
#include "runtime/dtype.h"

namespace sd {

using Shape = std::vector<int64_t>;

// The element count; throws on a negative dimension or a count above 2^63 (shapes come from
// files and command lines too).
int64_t shape_numel(const Shape& s);
std::string shape_str(const Shape& s);

// Owns one allocation; frees it through the allocator of its device. A default-constructed
// Storage holds nothing: the storage of a shape-only tensor.
struct Storage {
  void* ptr = nullptr;
  size_t bytes = 0;
  Device device = Device::CPU;
  Storage() = default;
  Storage(size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

class Tensor {
 public:
  Tensor() = default;  // undefined: "no tensor" (e.g. a gradient that is not needed)

  static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
  static Tensor full(const Shape& shape, double value, DType dtype = DType::F32);  // CPU
  static Tensor from_floats(const std::vector<float>& v, const Shape& shape);       // CPU f32
  static Tensor from_ints(const std::vector<int32_t>& v, const Shape& shape);       // CPU i32
  // A defined tensor with a shape, a dtype and a device but no data: what the autograd tape keeps
  // of a tensor that an op's backward does not read (OpDef::saved), so that its memory is freed
  // as soon as nothing else holds it. Reading its data fails with an error naming it.
  static Tensor shape_only(const Shape& shape, DType dtype, Device device);
  Tensor shape_only() const { return shape_only(shape_, dtype_, device_); }

  bool defined() const { return storage_ != nullptr; }
  bool has_data() const { return storage_ && storage_->ptr; }
  const Shape& shape() const { return shape_; }
  int ndim() const { return int(shape_.size()); }
  int64_t dim(int i) const;  // negative counts from the end
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  bool is_cpu() const { return device_ == Device::CPU; }

  void* raw() const {
    SD_CHECK(has_data(), defined() ? "tensor " + desc() + " has no data: an op's backward reads "
             "a tensor its OpDef::saved does not name" : "data access to an undefined tensor");
    return static_cast<char*>(storage_->ptr) + offset_;
  }
  template <class T>
  T* data() const;  // checks that T matches the dtype

  // Views sharing the buffer.
  Tensor reshape(const Shape& shape) const;  // one dimension may be -1
  Tensor slice_flat(int64_t offset_elems, const Shape& shape) const;
  bool same_storage(const Tensor& o) const { return storage_ == o.storage_; }

  // Copies.
  Tensor to(Device device) const;
  Tensor to(DType dtype) const;
  Tensor clone() const;
  void copy_from(const Tensor& src) const;  // same shape and dtype, any devices
  // Element-wise conversion from a tensor of the same shape on the same device, any dtypes (to
  // bf16: round to nearest even, as __float2bfloat16 does). On CUDA through device_convert.
  void convert_from(const Tensor& src) const;  // a handle: writes the shared storage
  void zero_();
  void fill_(double value);  // CPU and CUDA

  std::vector<float> to_floats() const;  // any float dtype, any device -> host f32
  double item() const;                   // one-element tensor -> double

  // "f32[2, 3] cpu": used in every error message about a tensor.
  std::string desc() const;

 private:
  std::shared_ptr<Storage> storage_;
  size_t offset_ = 0;  // bytes
  Shape shape_;
  DType dtype_ = DType::F32;
  Device device_ = Device::CPU;
};

template <class T>
struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::F32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::F64; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::I32; };
template <> struct dtype_of<uint16_t> { static constexpr DType value = DType::BF16; };

template <class T>
T* Tensor::data() const {
  SD_CHECK(defined(), "data(): tensor is undefined");
  SD_CHECK(dtype_of<T>::value == dtype_, "data(): tensor is ", desc(), ", accessed as ",
           dtype_name(dtype_of<T>::value));
  return static_cast<T*>(raw());
}

}  // namespace sd
