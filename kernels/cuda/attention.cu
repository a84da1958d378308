// CUDA backend of attention (math in kernels/cpu/attention.cpp). Nothing N x N is ever stored.
//
// f32 (forward and backward). A query (or key) row is owned by TPR = DP/16 adjacent lanes that
// each hold 16 of its DP dims (DP = D padded to 32, 64 or 128 with zeros, so any D <= 128 works);
// a dot product is 16 FMAs per lane plus a log2(TPR)-step xor shuffle. Dims are dealt to lanes in
// chunks of 4 so every shared-memory read is a conflict-free float4.
//   forward: block = 64 query rows; 32-key tiles of K and V in shared memory; online softmax in
//     registers (running max m and sum l, O rescaled by exp(m_old - m_new) once per tile).
//     Traffic: Q read once, K and V once per 64 query rows, O and lse written once.
//   backward (FlashAttention-2): (1) D_i = rowsum(dO_i * O_i), one warp per row; (2) dK, dV:
//     block = 64 keys held in registers, loop over 32-row tiles of Q, dO, lse, D_i in shared
//     memory, P_ij = exp(s q_i.k_j - lse_i), dV += P dO, dK += dS q with dS = P (dO.v_j - D_i);
//     (3) dQ: block = 64 query rows, loop over K, V tiles recomputing P and dS, dQ += dS k.
//     The separate dQ pass recomputes the scores once more instead of using atomics: simple and
//     deterministic.
// bf16 forward: tensor cores through nvcuda::wmma (m16n16k16, bf16 in, f32 accumulate). Block =
//   4 warps x 16 query rows; 64-key tiles of K and V in shared memory. Each warp computes its
//   16 x 64 score tile, lanes run the softmax statistics in f32 (two lanes per row, log2 domain),
//   write P as bf16, rescale the O accumulator fragments by exp2(m_old - m_new) (a fragment's
//   row of each element is read back once from a loaded row-index matrix, since the wmma layout
//   is opaque) and accumulate P V. out is bf16, lse f32.
// bf16 backward: tensor cores too, in kernels/cuda/attention_bf16_bwd.cu.
#include "kernels/cuda/attention.cuh"

namespace sd::attn {
namespace {

constexpr int kDpt = 16;      // f32 kernels: dims per lane
constexpr int kRowsF = 64;    // f32 forward / dQ: query rows per block
constexpr int kKeysF = 32;    // f32 forward / dQ: keys per shared-memory tile
constexpr int kKeysB = 64;    // f32 dK/dV: keys per block
constexpr int kRowsB = 32;    // f32 dK/dV: query rows per shared-memory tile

// Dim of element e (0..15) of lane `ld` (0..TPR-1): chunks of 4 dims, chunk c of lane ld at
// (c * TPR + ld) * 4. Covers 0..16*TPR-1 once.
template <int TPR>
__device__ __forceinline__ int dim_of(int ld, int e) {
  return ((e / 4) * TPR + ld) * 4 + e % 4;
}

// Sum over the TPR lanes of a row (aligned groups of adjacent lanes); every lane gets the sum.
template <int TPR>
__device__ __forceinline__ float group_sum(float x) {
#pragma unroll
  for (int off = TPR / 2; off > 0; off >>= 1) x += __shfl_xor_sync(kFull, x, off);
  return x;
}

// x . row (a DP-wide shared-memory row) over this lane's 16 dims.
template <int TPR>
__device__ __forceinline__ float lane_dot(const float (&x)[kDpt], const float* row, int ld) {
  float s = 0.f;
#pragma unroll
  for (int c = 0; c < kDpt / 4; ++c) {
    float4 r = *reinterpret_cast<const float4*>(row + (c * TPR + ld) * 4);
    s = fmaf(x[4 * c], r.x, s);
    s = fmaf(x[4 * c + 1], r.y, s);
    s = fmaf(x[4 * c + 2], r.z, s);
    s = fmaf(x[4 * c + 3], r.w, s);
  }
  return s;
}

// acc += w * row over this lane's 16 dims.
template <int TPR>
__device__ __forceinline__ void lane_axpy(float (&acc)[kDpt], float w, const float* row, int ld) {
#pragma unroll
  for (int c = 0; c < kDpt / 4; ++c) {
    float4 r = *reinterpret_cast<const float4*>(row + (c * TPR + ld) * 4);
    acc[4 * c] = fmaf(w, r.x, acc[4 * c]);
    acc[4 * c + 1] = fmaf(w, r.y, acc[4 * c + 1]);
    acc[4 * c + 2] = fmaf(w, r.z, acc[4 * c + 2]);
    acc[4 * c + 3] = fmaf(w, r.w, acc[4 * c + 3]);
  }
}

// This lane's 16 dims of global row `row` (zeros past D or past N), times `mul`.
template <int TPR>
__device__ __forceinline__ void load_lane_row(float (&x)[kDpt], const float* base, int row, int N,
                                              int D, int ld, float mul) {
#pragma unroll
  for (int e = 0; e < kDpt; ++e) {
    int d = dim_of<TPR>(ld, e);
    x[e] = row < N && d < D ? base[size_t(row) * D + d] * mul : 0.f;
  }
}

template <int TPR>
__device__ __forceinline__ void store_lane_row(const float (&x)[kDpt], float* base, int row, int D,
                                               int ld, float mul) {
#pragma unroll
  for (int e = 0; e < kDpt; ++e) {
    int d = dim_of<TPR>(ld, e);
    if (d < D) base[size_t(row) * D + d] = x[e] * mul;
  }
}

// rows [r0, r0 + ROWS) of two [N, D] matrices into zero-padded [ROWS][DP] shared tiles.
template <int DP, int ROWS>
__device__ __forceinline__ void load_tiles_f32(const float* a, const float* b, float (*as)[DP],
                                               float (*bs)[DP], int r0, int N, int D) {
  for (int i = threadIdx.x; i < ROWS * DP; i += blockDim.x) {
    int r = i / DP, d = i % DP;
    bool in = r0 + r < N && d < D;
    size_t at = size_t(r0 + r) * D + d;
    as[r][d] = in ? a[at] : 0.f;
    bs[r][d] = in ? b[at] : 0.f;
  }
}

// ---- f32 forward: grid (ceil(N/64), B*H), block 64 * TPR ----
template <int DP>
__global__ void __launch_bounds__(kRowsF * (DP / kDpt))
attn_fwd_f32(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
             float* __restrict__ o, float* __restrict__ lse, int N, int D, float scale) {
  constexpr int TPR = DP / kDpt;
  __shared__ __align__(16) float ks[kKeysF][DP];
  __shared__ __align__(16) float vs[kKeysF][DP];
  const int ld = threadIdx.x % TPR, row = blockIdx.x * kRowsF + threadIdx.x / TPR;
  const size_t head = size_t(blockIdx.y) * N * D;
  float qr[kDpt], acc[kDpt];
  load_lane_row<TPR>(qr, q + head, row, N, D, ld, scale);
#pragma unroll
  for (int e = 0; e < kDpt; ++e) acc[e] = 0.f;
  float m = -INFINITY, l = 0.f;
  for (int k0 = 0; k0 < N; k0 += kKeysF) {
    __syncthreads();  // the previous tile is consumed
    load_tiles_f32<DP, kKeysF>(k + head, v + head, ks, vs, k0, N, D);
    __syncthreads();
    float sc[kKeysF];
    float mx = -INFINITY;
#pragma unroll
    for (int j = 0; j < kKeysF; ++j) {
      float x = group_sum<TPR>(lane_dot<TPR>(qr, ks[j], ld));
      sc[j] = k0 + j < N ? x : -INFINITY;
      mx = fmaxf(mx, sc[j]);
    }
    float mnew = fmaxf(m, mx);  // finite: the tile has at least one key
    float alpha = expf(m - mnew), sum = 0.f;
#pragma unroll
    for (int j = 0; j < kKeysF; ++j) {
      sc[j] = expf(sc[j] - mnew);
      sum += sc[j];
    }
    l = l * alpha + sum;
    m = mnew;
#pragma unroll
    for (int e = 0; e < kDpt; ++e) acc[e] *= alpha;
#pragma unroll
    for (int j = 0; j < kKeysF; ++j) lane_axpy<TPR>(acc, sc[j], vs[j], ld);
  }
  if (row < N) {
    store_lane_row<TPR>(acc, o + head, row, D, ld, 1.f / l);
    if (ld == 0) lse[size_t(blockIdx.y) * N + row] = m + logf(l);
  }
}

// ---- f32 backward (1): dvec[r] = sum_d dO[r, d] O[r, d]: attn_bwd_rowdot<float> (attention.cuh)
// ---- f32 backward (2): dK, dV. grid (ceil(N/64), B*H), block 64 * TPR; dk or dv may be null ----
template <int DP>
__global__ void __launch_bounds__(kKeysB * (DP / kDpt))
attn_bwd_dkdv_f32(const float* __restrict__ q, const float* __restrict__ k,
                  const float* __restrict__ v, const float* __restrict__ g,
                  const float* __restrict__ lse, const float* __restrict__ dvec,
                  float* __restrict__ dk, float* __restrict__ dv, int N, int D, float scale) {
  constexpr int TPR = DP / kDpt;
  __shared__ __align__(16) float qs[kRowsB][DP];
  __shared__ __align__(16) float gs[kRowsB][DP];
  __shared__ float ls[kRowsB], ds[kRowsB];
  const int ld = threadIdx.x % TPR, key = blockIdx.x * kKeysB + threadIdx.x / TPR;
  const size_t head = size_t(blockIdx.y) * N * D, hrow = size_t(blockIdx.y) * N;
  float kr[kDpt], vr[kDpt], dka[kDpt], dva[kDpt];
  load_lane_row<TPR>(kr, k + head, key, N, D, ld, 1.f);
  load_lane_row<TPR>(vr, v + head, key, N, D, ld, 1.f);
#pragma unroll
  for (int e = 0; e < kDpt; ++e) dka[e] = dva[e] = 0.f;
  for (int i0 = 0; i0 < N; i0 += kRowsB) {
    __syncthreads();
    load_tiles_f32<DP, kRowsB>(q + head, g + head, qs, gs, i0, N, D);
    if (threadIdx.x < kRowsB) {  // blockDim >= 128 > kRowsB
      bool in = i0 + int(threadIdx.x) < N;
      ls[threadIdx.x] = in ? lse[hrow + i0 + threadIdx.x] : 0.f;
      ds[threadIdx.x] = in ? dvec[hrow + i0 + threadIdx.x] : 0.f;
    }
    __syncthreads();
    const int rows = min(kRowsB, N - i0);  // uniform over the block: shuffles stay converged
    for (int i = 0; i < rows; ++i) {
      float sdot = group_sum<TPR>(lane_dot<TPR>(kr, qs[i], ld));
      float pdot = group_sum<TPR>(lane_dot<TPR>(vr, gs[i], ld));
      float p = expf(sdot * scale - ls[i]);
      float dsij = p * (pdot - ds[i]);
      lane_axpy<TPR>(dva, p, gs[i], ld);
      lane_axpy<TPR>(dka, dsij, qs[i], ld);
    }
  }
  if (key < N) {
    if (dk) store_lane_row<TPR>(dka, dk + head, key, D, ld, scale);
    if (dv) store_lane_row<TPR>(dva, dv + head, key, D, ld, 1.f);
  }
}

// ---- f32 backward (3): dQ. grid (ceil(N/64), B*H), block 64 * TPR ----
template <int DP>
__global__ void __launch_bounds__(kRowsF * (DP / kDpt))
attn_bwd_dq_f32(const float* __restrict__ q, const float* __restrict__ k,
                const float* __restrict__ v, const float* __restrict__ g,
                const float* __restrict__ lse, const float* __restrict__ dvec,
                float* __restrict__ dq, int N, int D, float scale) {
  constexpr int TPR = DP / kDpt;
  __shared__ __align__(16) float ks[kKeysF][DP];
  __shared__ __align__(16) float vs[kKeysF][DP];
  const int ld = threadIdx.x % TPR, row = blockIdx.x * kRowsF + threadIdx.x / TPR;
  const size_t head = size_t(blockIdx.y) * N * D, hrow = size_t(blockIdx.y) * N;
  float qr[kDpt], gr[kDpt], dqa[kDpt];
  load_lane_row<TPR>(qr, q + head, row, N, D, ld, 1.f);
  load_lane_row<TPR>(gr, g + head, row, N, D, ld, 1.f);
#pragma unroll
  for (int e = 0; e < kDpt; ++e) dqa[e] = 0.f;
  const float li = row < N ? lse[hrow + row] : 0.f, di = row < N ? dvec[hrow + row] : 0.f;
  for (int k0 = 0; k0 < N; k0 += kKeysF) {
    __syncthreads();
    load_tiles_f32<DP, kKeysF>(k + head, v + head, ks, vs, k0, N, D);
    __syncthreads();
    const int cols = min(kKeysF, N - k0);  // uniform over the block
    for (int j = 0; j < cols; ++j) {
      float sdot = group_sum<TPR>(lane_dot<TPR>(qr, ks[j], ld));
      float pdot = group_sum<TPR>(lane_dot<TPR>(gr, vs[j], ld));
      float p = expf(sdot * scale - li);
      lane_axpy<TPR>(dqa, p * (pdot - di), ks[j], ld);
    }
  }
  if (row < N) store_lane_row<TPR>(dqa, dq + head, row, D, ld, scale);
}

// ---- bf16 forward (wmma): grid (ceil(N/64), B*H), block 128 = 4 warps x 16 query rows ----
constexpr int kWarpsH = 4, kRowsH = 16 * kWarpsH, kKeysH = 64;

// Dynamic shared-memory layout; leading dimensions are padded (+8 bf16 / +4 f32) against bank
// conflicts and keep every wmma pointer 32-byte aligned.
template <int DP>
struct SmemH {
  static constexpr int LDB = DP + 8;       // Q, K, V tiles (bf16)
  static constexpr int LDS = kKeysH + 4;   // per-warp scores (f32)
  static constexpr int LDP = kKeysH + 8;   // per-warp probabilities (bf16)
  static constexpr int LDO = DP + 4;       // per-warp output staging (f32), reuses K and V
  static constexpr size_t q_off = 0;
  static constexpr size_t k_off = q_off + size_t(kRowsH) * LDB * 2;
  static constexpr size_t v_off = k_off + size_t(kKeysH) * LDB * 2;
  static constexpr size_t s_off = v_off + size_t(kKeysH) * LDB * 2;
  static constexpr size_t p_off = s_off + size_t(kWarpsH) * 16 * LDS * 4;
  static constexpr size_t r_off = p_off + size_t(kWarpsH) * 16 * LDP * 2;
  static constexpr size_t bytes = r_off + size_t(kWarpsH) * 16 * 4;
  static_assert(k_off % 128 == 0 && s_off % 128 == 0 && p_off % 128 == 0 && r_off % 128 == 0);
  static_assert((16 * LDB * 2) % 32 == 0 && (16 * LDS * 4) % 32 == 0 && (16 * LDP * 2) % 32 == 0 &&
                (16 * LDO * 4) % 32 == 0);
  static_assert(size_t(kWarpsH) * 16 * LDO * 4 <= 2 * size_t(kKeysH) * LDB * 2);
};

template <int DP>
__global__ void __launch_bounds__(kWarpsH * 32)
attn_fwd_bf16(const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
              bf16* __restrict__ o, float* __restrict__ lse, int N, int D, float scale_log2) {
  using L = SmemH<DP>;
  using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major>;
  using FragKt = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major>;
  using FragV = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major>;
  using FragC = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;
  SD_DYNAMIC_SHARED(unsigned char, smem);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  bf16* qs = reinterpret_cast<bf16*>(smem + L::q_off);
  bf16* ks = reinterpret_cast<bf16*>(smem + L::k_off);
  bf16* vs = reinterpret_cast<bf16*>(smem + L::v_off);
  float* ss = reinterpret_cast<float*>(smem + L::s_off) + warp * 16 * L::LDS;
  bf16* ps = reinterpret_cast<bf16*>(smem + L::p_off) + warp * 16 * L::LDP;
  float* rowv = reinterpret_cast<float*>(smem + L::r_off) + warp * 16;
  const size_t head = size_t(blockIdx.y) * N * D;
  const int q0 = blockIdx.x * kRowsH;

  // Row (0..15) of each accumulator element, read back from a loaded row-index matrix.
  for (int i = lane; i < 256; i += 32) ss[(i / 16) * L::LDS + i % 16] = float(i / 16);
  __syncwarp();
  FragC rowf;
  wmma::load_matrix_sync(rowf, ss, L::LDS, wmma::mem_row_major);
  int rid[FragC::num_elements];
#pragma unroll
  for (int i = 0; i < FragC::num_elements; ++i) rid[i] = int(rowf.x[i]);

  load_tile_bf16<DP, kRowsH, L::LDB>(q + head, qs, q0, N, D);  // published by the loop's barrier
  const bf16* qw = qs + warp * 16 * L::LDB;  // this warp's 16 query rows
  FragC of[DP / 16];
#pragma unroll
  for (int n = 0; n < DP / 16; ++n) wmma::fill_fragment(of[n], 0.f);

  // Softmax statistics: lanes 2r and 2r+1 share row r, each scanning 32 of the 64 columns.
  const int r = lane / 2, half = lane % 2;
  float m = -INFINITY, l = 0.f;  // running max (log2 units) and sum of row r
  for (int k0 = 0; k0 < N; k0 += kKeysH) {
    __syncthreads();  // every warp is done with the previous K, V tiles
    load_tile_bf16<DP, kKeysH, L::LDB>(k + head, ks, k0, N, D);
    load_tile_bf16<DP, kKeysH, L::LDB>(v + head, vs, k0, N, D);
    __syncthreads();
    FragC sf[kKeysH / 16];
#pragma unroll
    for (int n = 0; n < kKeysH / 16; ++n) wmma::fill_fragment(sf[n], 0.f);
#pragma unroll
    for (int kk = 0; kk < DP / 16; ++kk) {
      FragA qa;  // reloaded per tile: keeping all DP/16 in registers would spill at DP = 128
      wmma::load_matrix_sync(qa, qw + kk * 16, L::LDB);
#pragma unroll
      for (int n = 0; n < kKeysH / 16; ++n) {
        FragKt kb;  // K^T: element (d, key) at ks[key * LDB + d]
        wmma::load_matrix_sync(kb, ks + n * 16 * L::LDB + kk * 16, L::LDB);
        wmma::mma_sync(sf[n], qa, kb, sf[n]);
      }
    }
#pragma unroll
    for (int n = 0; n < kKeysH / 16; ++n)
      wmma::store_matrix_sync(ss + n * 16, sf[n], L::LDS, wmma::mem_row_major);
    __syncwarp();
    float* srow = ss + r * L::LDS + half * 32;
    bf16* prow = ps + r * L::LDP + half * 32;
    const int c0 = k0 + half * 32;
    float mx = -INFINITY;
#pragma unroll 8
    for (int c = 0; c < 32; ++c) {
      float x = c0 + c < N ? srow[c] * scale_log2 : -INFINITY;
      srow[c] = x;
      mx = fmaxf(mx, x);
    }
    mx = fmaxf(mx, __shfl_xor_sync(kFull, mx, 1));  // finite: the tile has at least one key
    float mnew = fmaxf(m, mx), alpha = exp2f(m - mnew), sum = 0.f;
#pragma unroll 8
    for (int c = 0; c < 32; ++c) {
      float p = exp2f(srow[c] - mnew);
      prow[c] = __float2bfloat16(p);
      sum += p;
    }
    sum += __shfl_xor_sync(kFull, sum, 1);
    l = l * alpha + sum;
    m = mnew;
    if (half == 0) rowv[r] = alpha;
    __syncwarp();
#pragma unroll
    for (int n = 0; n < DP / 16; ++n)
#pragma unroll
      for (int i = 0; i < FragC::num_elements; ++i) of[n].x[i] *= rowv[rid[i]];
#pragma unroll
    for (int kk = 0; kk < kKeysH / 16; ++kk) {
      FragA pa;
      wmma::load_matrix_sync(pa, ps + kk * 16, L::LDP);
#pragma unroll
      for (int n = 0; n < DP / 16; ++n) {
        FragV vb;
        wmma::load_matrix_sync(vb, vs + kk * 16 * L::LDB + n * 16, L::LDB);
        wmma::mma_sync(of[n], pa, vb, of[n]);
      }
    }
  }

  __syncthreads();  // K and V tiles are free: stage the output there
  float* os = reinterpret_cast<float*>(smem + L::k_off) + warp * 16 * L::LDO;
#pragma unroll
  for (int n = 0; n < DP / 16; ++n)
    wmma::store_matrix_sync(os + n * 16, of[n], L::LDO, wmma::mem_row_major);
  if (half == 0) rowv[r] = 1.f / l;
  __syncwarp();
  const int wrow = q0 + warp * 16;
  for (int i = lane; i < 16 * D; i += 32) {
    int rr = i / D, c = i % D;
    if (wrow + rr < N)
      o[head + size_t(wrow + rr) * D + c] = __float2bfloat16(os[rr * L::LDO + c] * rowv[rr]);
  }
  if (half == 0 && wrow + r < N)
    lse[size_t(blockIdx.y) * N + wrow + r] = (m + log2f(l)) * 0.69314718055994531f;
}

// ---- launchers ----
// Dims::grid serves every kernel; the f32 kernels keep 16 dims of D padded to DP per lane.
static_assert(kRowsF == kBlockRows && kKeysB == kBlockRows && kRowsH == kBlockRows);

template <int DP>
void fwd_f32(const Dims& d, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
             const Tensor& lse, float s) {
  SD_LAUNCH(attn_fwd_f32<DP>, d.grid, kRowsF * (DP / kDpt), 0, cuda::stream(), q.data<float>(),
            k.data<float>(), v.data<float>(), o.data<float>(), lse.data<float>(), d.N, d.D, s);
}

template <int DP>
void fwd_bf16(const Dims& d, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
              const Tensor& lse, float s) {
  constexpr size_t bytes = SmemH<DP>::bytes;
  static const bool configured = (allow_dynamic_smem(attn_fwd_bf16<DP>, bytes), true);
  (void)configured;
  auto p = [](const Tensor& t) { return static_cast<const bf16*>(t.raw()); };
  SD_LAUNCH(attn_fwd_bf16<DP>, d.grid, kWarpsH * 32, bytes, cuda::stream(), p(q), p(k), p(v),
            static_cast<bf16*>(o.raw()), lse.data<float>(), d.N, d.D, s * 1.44269504088896341f);
}

void forward_cuda(OpCall& c) {
  const Tensor &q = c.in[0], &k = c.in[1], &v = c.in[2];
  if (q.numel() == 0) return;  // B or H is 0: nothing to write (and no empty grid to launch)
  Dims d = dims_of(q);
  float s = attention_scale(c.attrs, d.D);
  if (q.dtype() == DType::F32) {
    if (d.DP == 32) fwd_f32<32>(d, q, k, v, c.out[0], c.out[1], s);
    else if (d.DP == 64) fwd_f32<64>(d, q, k, v, c.out[0], c.out[1], s);
    else fwd_f32<128>(d, q, k, v, c.out[0], c.out[1], s);
    return;
  }
  SD_CHECK(q.dtype() == DType::BF16,
           "attention: the cuda backend computes in f32 or bf16, got 'q' ", q.desc());
  check_bf16(d, q, {&q, &k, &v});
  if (d.DP == 32) fwd_bf16<32>(d, q, k, v, c.out[0], c.out[1], s);
  else if (d.DP == 64) fwd_bf16<64>(d, q, k, v, c.out[0], c.out[1], s);
  else fwd_bf16<128>(d, q, k, v, c.out[0], c.out[1], s);
}

template <int DP>
void bwd_f32_kernels(const Dims& d, const float* q, const float* k, const float* v,
                     const float* g, const float* lse, const float* dvec, float* dq, float* dk,
                     float* dv, float s) {
  constexpr int threads = kRowsF * (DP / kDpt);  // = kKeysB * (DP / kDpt), the launch bounds
  if (dk || dv) {
    SD_LAUNCH(attn_bwd_dkdv_f32<DP>, d.grid, threads, 0, cuda::stream(), q, k, v, g, lse, dvec, dk,
              dv, d.N, d.D, s);
  }
  if (dq) {
    SD_LAUNCH(attn_bwd_dq_f32<DP>, d.grid, threads, 0, cuda::stream(), q, k, v, g, lse, dvec, dq,
              d.N, d.D, s);
  }
}

// f32 tensors; gradient pointers may be null (not needed).
void backward_f32(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
                  const Tensor& lse, const Tensor& g, float* dq, float* dk, float* dv, float s) {
  Dims d = dims_of(q);
  Tensor dvec = attention_rowdot<float>(d, o.data<float>(), g.data<float>());
  const float *pq = q.data<float>(), *pk = k.data<float>(), *pv = v.data<float>();
  const float *pg = g.data<float>(), *pl = lse.data<float>(), *pd = dvec.data<float>();
  if (d.DP == 32) bwd_f32_kernels<32>(d, pq, pk, pv, pg, pl, pd, dq, dk, dv, s);
  else if (d.DP == 64) bwd_f32_kernels<64>(d, pq, pk, pv, pg, pl, pd, dq, dk, dv, s);
  else bwd_f32_kernels<128>(d, pq, pk, pv, pg, pl, pd, dq, dk, dv, s);
}

void backward_cuda(GradCall& c) {
  bool any = false;
  for (auto& t : c.grad_in) any |= t.defined();
  if (!any || c.in[0].numel() == 0) return;
  if (!c.grad_out[0].defined()) {  // no gradient reaches the output: all input gradients are 0
    for (auto& t : c.grad_in)
      if (t.defined()) t.zero_();
    return;
  }
  float s = attention_scale(c.attrs, c.in[0].dim(3));
  if (c.in[0].dtype() == DType::F32) {
    auto p = [](Tensor& t) { return t.defined() ? t.data<float>() : nullptr; };
    backward_f32(c.in[0], c.in[1], c.in[2], c.out[0], c.out[1], c.grad_out[0], p(c.grad_in[0]),
                 p(c.grad_in[1]), p(c.grad_in[2]), s);
    return;
  }
  SD_CHECK(c.in[0].dtype() == DType::BF16,
           "attention: the cuda backend computes in f32 or bf16, got 'q' ", c.in[0].desc());
  Dims d = dims_of(c.in[0]);
  Tensor* grads[3];
  std::vector<const Tensor*> all{&c.in[0], &c.in[1], &c.in[2], &c.out[0], &c.grad_out[0]};
  for (int i = 0; i < 3; ++i) {
    grads[i] = c.grad_in[i].defined() ? &c.grad_in[i] : nullptr;
    if (grads[i]) all.push_back(grads[i]);
  }
  for (const Tensor* t : all) check_bf16(d, c.in[0], {t});
  backward_bf16(d, c.in[0], c.in[1], c.in[2], c.out[0], c.out[1], c.grad_out[0], grads[0],
                grads[1], grads[2], s);
}

}  // namespace
}  // namespace sd::attn

namespace sd {

void register_attention_cuda(Registry& r) {
  r.mutable_at("attention").cuda = {attn::forward_cuda, attn::backward_cuda, /*bf16=*/true};
  r.mutable_at("attention").bf16_parity_factor = 4;  // P and dS rounded to bf16 for the mma
}

}  // namespace sd
