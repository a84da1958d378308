// CUDA backend of the shape family (math in kernels/cpu/shape.cpp). Pure data movement, so the
// goal is one read and one write of every element, coalesced on both sides. f32 and bf16 (moved
// as raw 16-bit words).
//   concat / split: the joined tensor is [outer, ra + rb] rows; a flat grid-stride loop over it
//     reads (or writes) a and b row by row, consecutive threads touching consecutive elements.
//   permute: kernels/permute.h reduces the permutation. When the innermost axis stays innermost,
//     a flat index-mapping loop copies contiguous rows. Otherwise the work is a batch of 2-D
//     transposes between output axis k (contiguous in the input) and the last output axis
//     (contiguous in the output): a 32x32 tile is read along k into shared memory and written
//     along the last axis, so both global accesses are coalesced (NCHW <-> NHWC is this case).
//     The tile has 33 columns so the transposed read from shared memory has no bank conflicts.
#include "kernels/cuda/launch.cuh"
#include "kernels/concat_rows.h"
#include "kernels/permute.h"

namespace sd {
namespace {

// y[o, j] = j < ra ? a[o, j] : b[o, j - ra]; an absent part (nullptr) reads as zero.
template <class T>
__global__ void join_kernel(const T* a, const T* b, T* y, int64_t outer, int64_t ra, int64_t rb) {
  int64_t w = ra + rb;
  CUDA_LOOP(i, outer * w) {
    int64_t o = i / w, j = i % w;
    if (j < ra) y[i] = a ? a[o * ra + j] : T(0);
    else y[i] = b ? b[o * rb + j - ra] : T(0);
  }
}

// The inverse; a part that is not wanted (nullptr) is skipped.
template <class T>
__global__ void part_kernel(const T* x, T* a, T* b, int64_t outer, int64_t ra, int64_t rb) {
  int64_t w = ra + rb;
  CUDA_LOOP(i, outer * w) {
    int64_t o = i / w, j = i % w;
    if (j < ra) {
      if (a) a[o * ra + j] = x[i];
    } else if (b) {
      b[o * rb + j - ra] = x[i];
    }
  }
}

// Contiguous case: output element i = row r, column j; the row's input start comes from the plan.
template <class T>
__global__ void permute_rows_kernel(PermutePlan p, const T* x, T* y) {
  int last = p.n - 1;
  int64_t L = p.shape[last];
  CUDA_LOOP(i, p.numel) {
    int64_t in_off, out_off;
    p.offsets(i / L, last, last, in_off, out_off);
    y[i] = x[in_off + i % L];
  }
}

constexpr int kTile = 32, kRowsPerPass = 8;  // block = 32 x 8 threads, 4 elements each per pass

// One tile per block iteration (grid-stride over batch x tiles of A x tiles of B).
// A = output axis k (input stride 1, output stride oa); B = last output axis (input stride sb,
// output stride 1).
template <class T>
__global__ void permute_tile_kernel(PermutePlan p, const T* x, T* y) {
  __shared__ T tile[kTile][kTile + 1];
  int last = p.n - 1;
  int64_t A = p.shape[p.k], B = p.shape[last];
  int64_t sb = p.in_stride[last], oa = p.out_stride[p.k];
  int64_t ta = (A + kTile - 1) / kTile, tb = (B + kTile - 1) / kTile;
  int64_t tasks = p.numel / (A * B) * ta * tb;
  for (int64_t t = blockIdx.x; t < tasks; t += gridDim.x) {
    int64_t bi = t / (ta * tb), a0 = (t / tb) % ta * kTile, b0 = t % tb * kTile;
    int64_t in_off, out_off;
    p.offsets(bi, p.k, last, in_off, out_off);
    int64_t a = a0 + threadIdx.x;  // read: threads along A, contiguous in x
    for (int j = threadIdx.y; j < kTile; j += kRowsPerPass) {
      int64_t b = b0 + j;
      if (a < A && b < B) tile[j][threadIdx.x] = x[in_off + a + b * sb];
    }
    __syncthreads();
    int64_t b = b0 + threadIdx.x;  // write: threads along B, contiguous in y
    for (int j = threadIdx.y; j < kTile; j += kRowsPerPass) {
      int64_t a2 = a0 + j;
      if (a2 < A && b < B) y[out_off + a2 * oa + b] = tile[threadIdx.x][j];
    }
    __syncthreads();  // the next iteration overwrites the tile
  }
}

template <class T>
void launch_permute(const PermutePlan& p, const T* x, T* y) {
  if (p.numel == 0) return;
  if (p.k == p.n - 1) {
    SD_LAUNCH(permute_rows_kernel<T>, cuda::grid_for(p.numel, 256), 256, 0, cuda::stream(), p, x,
              y);
  } else {
    int64_t A = p.shape[p.k], B = p.shape[p.n - 1];
    int64_t tasks = p.numel / (A * B) * ((A + kTile - 1) / kTile) * ((B + kTile - 1) / kTile);
    unsigned grid = cuda::capped_grid(tasks, 65536);
    SD_LAUNCH(permute_tile_kernel<T>, grid, dim3(kTile, kRowsPerPass), 0, cuda::stream(), p, x, y);
  }
}


template <class T>
T* ptr_or_null(const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; }

// Element types moved by this family: f32, and bf16 as its raw 16-bit word.
template <class F>
void dispatch_move(const std::string& op, DType dt, F&& f) {
  if (dt == DType::F32) f(float{});
  else if (dt == DType::BF16) f(uint16_t{});
  else fail(op, ": the cuda backend moves f32 or bf16, got ", dtype_name(dt));
}

template <class T>
void join(const Rows& r, const Tensor& a, const Tensor& b, const Tensor& y) {
  SD_LAUNCH(join_kernel<T>, cuda::grid_for(r.outer * (r.ra + r.rb), 256), 256, 0, cuda::stream(),
            ptr_or_null<T>(a), ptr_or_null<T>(b), y.data<T>(), r.outer, r.ra, r.rb);
}

template <class T>
void part(const Rows& r, const Tensor& x, const Tensor& a, const Tensor& b) {
  SD_LAUNCH(part_kernel<T>, cuda::grid_for(r.outer * (r.ra + r.rb), 256), 256, 0, cuda::stream(),
            x.data<T>(), ptr_or_null<T>(a), ptr_or_null<T>(b), r.outer, r.ra, r.rb);
}

std::vector<int64_t> inverse_perm(const std::vector<int64_t>& p) {
  std::vector<int64_t> inv(p.size());
  for (size_t i = 0; i < p.size(); ++i) inv[p[i]] = int64_t(i);
  return inv;
}

}  // namespace

void register_shape_cuda(Registry& r) {
  r.mutable_at("concat").cuda = {
      [](OpCall& c) {
        int ax = axis_attr(c.attrs, c.in[0].ndim());
        Rows rw = rows_of(c.out[0].shape(), ax, c.in[0].shape()[ax]);
        dispatch_move("concat", c.in[0].dtype(), [&](auto t) {
          join<decltype(t)>(rw, c.in[0], c.in[1], c.out[0]);
        });
      },
      [](GradCall& c) {
        int ax = axis_attr(c.attrs, c.in[0].ndim());
        Rows rw = rows_of(c.out[0].shape(), ax, c.in[0].shape()[ax]);
        dispatch_move("concat", c.in[0].dtype(), [&](auto t) {
          part<decltype(t)>(rw, c.grad_out[0], c.grad_in[0], c.grad_in[1]);
        });
      }};
  r.mutable_at("split").cuda = {
      [](OpCall& c) {
        int ax = axis_attr(c.attrs, c.in[0].ndim());
        Rows rw = rows_of(c.in[0].shape(), ax, c.attrs["first"].get<int64_t>());
        dispatch_move("split", c.in[0].dtype(), [&](auto t) {
          part<decltype(t)>(rw, c.in[0], c.out[0], c.out[1]);
        });
      },
      [](GradCall& c) {
        if (!c.grad_in[0].defined()) return;
        int ax = axis_attr(c.attrs, c.in[0].ndim());
        Rows rw = rows_of(c.in[0].shape(), ax, c.attrs["first"].get<int64_t>());
        dispatch_move("split", c.in[0].dtype(), [&](auto t) {
          join<decltype(t)>(rw, c.grad_out[0], c.grad_out[1], c.grad_in[0]);
        });
      }};
  r.mutable_at("permute").cuda = {
      [](OpCall& c) {
        PermutePlan p = make_permute_plan(c.in[0].shape(), c.attrs["perm"].get<std::vector<int64_t>>());
        dispatch_move("permute", c.in[0].dtype(), [&](auto t) {
          using T = decltype(t);
          launch_permute<T>(p, c.in[0].data<T>(), c.out[0].data<T>());
        });
      },
      [](GradCall& c) {
        if (!c.grad_in[0].defined()) return;
        PermutePlan p = make_permute_plan(
            c.grad_out[0].shape(), inverse_perm(c.attrs["perm"].get<std::vector<int64_t>>()));
        dispatch_move("permute", c.in[0].dtype(), [&](auto t) {
          using T = decltype(t);
          launch_permute<T>(p, c.grad_out[0].data<T>(), c.grad_in[0].data<T>());
        });
      }};
  // Native bf16 (kernels/registry.h): moved as 16-bit words, no round trip through f32.
  for (const char* op : {"concat", "split", "permute"}) r.mutable_at(op).cuda.bf16 = true;
}

}  // namespace sd
