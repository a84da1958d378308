// bf16 attention backward on tensor cores (nvcuda::wmma m16n16k16, bf16 operands, f32
// accumulation), FlashAttention-2's structure with a deterministic dQ. Math (per head, scale s;
// kernels/cpu/attention.cpp derives it):
//   D_i = rowsum(dO_i * O_i),  P_ij = exp(s q_i.k_j - lse_i),  dP = dO V^T,  dS = P * (dP - D_i),
//   dV = P^T dO,  dK = s dS^T Q,  dQ = s dS K.
// Three passes:
//   (1) D_i, one warp per row (attention.cuh: attn_bwd_rowdot<bf16>).
//   (2) dK, dV: a block owns 64 keys (K, V tiles stay in shared memory) and streams the head's
//       queries in 64-row tiles of Q, dO, lse, D_i. Per tile: S^T = K Q^T and dP^T = V dO^T, then
//       P^T and dS^T in bf16, then dV += P^T dO and dK += dS^T Q. Traffic: K, V read once; Q, dO
//       once per 64 keys; dK, dV written once.
//   (3) dQ: a block owns 64 query rows (Q, dO, lse, D_i) and streams K, V in 64-key tiles,
//       recomputing S, dP and dS (two extra products per tile pair) and accumulating dQ += dS K.
//       FlashAttention-2 instead adds dQ from pass 2 with f32 atomics: 5 products instead of 7,
//       but the order of the additions, hence the rounding, changes from run to run.
// Work split (8 warps): for the 64 x 64 score-like products of a tile pair, warp w computes
// rows 16 (w / 2) .. +16 (its "group") and columns 32 (w % 2) .. +32 (its "half") into its own
// f32 scratch in shared memory (store_matrix_sync: the fragment layout is never assumed), turns
// them into bf16 there in place, and after one block barrier every warp multiplies the bf16
// 16 x 16 operand tiles of the two warps of its group with the streamed tile: output rows of its
// group, half of the DP/16 column tiles (accumulators stay in registers across the stream).
// Shared memory: four [64][DP + 8] bf16 tiles, 8 x 4.5 KiB scratch, lse and D_i of 64 rows:
// 104.5 KiB at DP = 128 (two blocks per SM), 72.5 KiB at 64, 56.5 KiB at 32. Padded leading
// dimensions (+8 bf16, +4 f32) keep every wmma pointer 32-byte aligned and spread rows over banks.
#include "kernels/cuda/attention.cuh"

namespace sd::attn {
namespace {

constexpr int kWarps = 8, kThreads = kWarps * 32, kTile = kBlockRows;

using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major>;
using FragBt = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major>;  // X^T of rows X
using FragB = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major>;
using FragC = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

template <int DP>
struct Smem {
  static constexpr int LDB = DP + 8;  // bf16 tiles
  static constexpr int LDS = 32 + 4;  // a warp's f32 16 x 32 scratch; as bf16 its ldm is 2 * LDS
  static constexpr int LDO = DP + 4;  // f32 staging of a 64 x DP result
  static constexpr size_t tile_bytes = size_t(kTile) * LDB * 2;
  static constexpr size_t scratch_off = 4 * tile_bytes;
  static constexpr size_t warp_bytes = 2 * 16 * LDS * 4;  // S (or S^T) then dP (or dP^T)
  static constexpr size_t vec_off = scratch_off + kWarps * warp_bytes;
  static constexpr size_t bytes = vec_off + 2 * kTile * 4;  // lse * log2(e), then D_i
  static constexpr size_t staging_bytes = size_t(kTile) * LDO * 4;
  static_assert(tile_bytes % 128 == 0 && warp_bytes % 32 == 0 && (16 * LDS * 4) % 32 == 0);
  static_assert((LDB * 2) % 16 == 0 && (LDS * 4) % 16 == 0 && (LDO * 4) % 16 == 0 &&
                (16 * LDO * 4) % 32 == 0 && (16 * LDB * 2) % 32 == 0);
  // The staging of a result fits the scratch, and of a second one two tiles.
  static_assert(staging_bytes <= kWarps * warp_bytes && staging_bytes <= 2 * tile_bytes);
  static_assert(bytes <= 227 * 1024);

  __device__ static bf16* tile(unsigned char* s, int i) { return reinterpret_cast<bf16*>(s + i * tile_bytes); }
  __device__ static float* scratch(unsigned char* s, int warp) {
    return reinterpret_cast<float*>(s + scratch_off + warp * warp_bytes);
  }
  __device__ static float* vec(unsigned char* s) { return reinterpret_cast<float*>(s + vec_off); }
};

// Blocks per SM the launch bounds ask registers for: what the shared memory allows.
template <int DP>
[[maybe_unused]] constexpr int kMinBlocks = DP == 128 ? 2 : 3;

// out[16][32] (row-major, ldm LDS, f32) = A B^T for this warp: A = 16 rows at a, B = 32 rows at
// b, both [rows][DP] bf16 tiles with leading dimension LDB.
template <int DP>
__device__ __forceinline__ void warp_scores(const bf16* a, const bf16* b, float* out) {
  using L = Smem<DP>;
  FragC acc[2];
  wmma::fill_fragment(acc[0], 0.f);
  wmma::fill_fragment(acc[1], 0.f);
#pragma unroll
  for (int kk = 0; kk < DP / 16; ++kk) {
    FragA fa;
    wmma::load_matrix_sync(fa, a + kk * 16, L::LDB);
#pragma unroll
    for (int n = 0; n < 2; ++n) {
      FragBt fb;  // B^T: element (d, row) at b[row * LDB + d]
      wmma::load_matrix_sync(fb, b + n * 16 * L::LDB + kk * 16, L::LDB);
      wmma::mma_sync(acc[n], fa, fb, acc[n]);
    }
  }
#pragma unroll
  for (int n = 0; n < 2; ++n)
    wmma::store_matrix_sync(out + n * 16, acc[n], L::LDS, wmma::mem_row_major);
}

// acc[n] += A_group B[:, (half * DP/32 + n) * 16 ...] over the 64 streamed rows: A's 16 x 64 bf16
// operand lies in the scratch (region `which`: 0 = first, 1 = second) of the group's two warps,
// B is a [64][DP] bf16 tile. The warps of a group read each other's scratch: a block barrier
// must separate this from the writes.
template <int DP>
__device__ __forceinline__ void accumulate(FragC (&acc)[DP / 32], unsigned char* smem, int group,
                                           int which, const bf16* b, int half) {
  using L = Smem<DP>;
#pragma unroll
  for (int kk = 0; kk < kTile / 16; ++kk) {
    const bf16* a = reinterpret_cast<const bf16*>(L::scratch(smem, 2 * group + kk / 2) +
                                                  which * 16 * L::LDS) + (kk % 2) * 16;
    FragA fa;
    wmma::load_matrix_sync(fa, a, 2 * L::LDS);
#pragma unroll
    for (int n = 0; n < DP / 32; ++n) {
      FragB fb;
      wmma::load_matrix_sync(fb, b + kk * 16 * L::LDB + (half * (DP / 32) + n) * 16, L::LDB);
      wmma::mma_sync(acc[n], fa, fb, acc[n]);
    }
  }
}

// Stages this warp's accumulators (rows of its group, columns of its half) into a [64][LDO] f32
// tile at `stage`.
template <int DP>
__device__ __forceinline__ void stage_result(const FragC (&acc)[DP / 32], float* stage, int group,
                                             int half) {
  using L = Smem<DP>;
#pragma unroll
  for (int n = 0; n < DP / 32; ++n)
    wmma::store_matrix_sync(stage + group * 16 * L::LDO + (half * (DP / 32) + n) * 16, acc[n],
                            L::LDO, wmma::mem_row_major);
}

// Rows [r0, r0 + 64) of an [N, D] bf16 result from a staged [64][LDO] f32 tile, times mul; one
// 16-byte store per 8 elements.
template <int DP>
__device__ __forceinline__ void store_result(const float* stage, bf16* dst, int r0, int N, int D,
                                             float mul) {
  using L = Smem<DP>;
  union Pack {
    uint4 u;
    bf16 h[8];
  };
  const int chunks = D / 8;
  for (int i = threadIdx.x; i < kTile * chunks; i += blockDim.x) {
    int r = i / chunks, c = (i % chunks) * 8;
    if (r0 + r >= N) break;  // rows only grow with i
    const float* s = stage + r * L::LDO + c;
    float4 a = *reinterpret_cast<const float4*>(s), b = *reinterpret_cast<const float4*>(s + 4);
    Pack p;
    p.h[0] = __float2bfloat16(a.x * mul);
    p.h[1] = __float2bfloat16(a.y * mul);
    p.h[2] = __float2bfloat16(a.z * mul);
    p.h[3] = __float2bfloat16(a.w * mul);
    p.h[4] = __float2bfloat16(b.x * mul);
    p.h[5] = __float2bfloat16(b.y * mul);
    p.h[6] = __float2bfloat16(b.z * mul);
    p.h[7] = __float2bfloat16(b.w * mul);
    *reinterpret_cast<uint4*>(dst + size_t(r0 + r) * D + c) = p.u;
  }
}

// Pass (2): dK, dV. grid (ceil(N/64), B*H), block 256; dk or dv may be null.
template <int DP>
__global__ void __launch_bounds__(kThreads, kMinBlocks<DP>)
attn_bwd_dkdv_bf16(const bf16* __restrict__ q, const bf16* __restrict__ k,
                   const bf16* __restrict__ v, const bf16* __restrict__ g,
                   const float* __restrict__ lse, const float* __restrict__ dvec,
                   bf16* __restrict__ dk, bf16* __restrict__ dv, int N, int D, float scale,
                   float scale_log2) {
  using L = Smem<DP>;
  SD_DYNAMIC_SHARED(unsigned char, smem);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, group = warp / 2, half = warp % 2;
  bf16 *ks = L::tile(smem, 0), *vs = L::tile(smem, 1), *qs = L::tile(smem, 2), *gs = L::tile(smem, 3);
  float* sc = L::scratch(smem, warp);  // S^T (16 keys x 32 queries), then dP^T below it
  float* dp = sc + 16 * L::LDS;
  float *lse2 = L::vec(smem), *dd = lse2 + kTile;
  const size_t head = size_t(blockIdx.y) * N * D, hrow = size_t(blockIdx.y) * N;
  const int k0 = blockIdx.x * kTile;
  load_tile_bf16<DP, kTile, L::LDB>(k + head, ks, k0, N, D);  // published by the loop's barriers
  load_tile_bf16<DP, kTile, L::LDB>(v + head, vs, k0, N, D);
  FragC dva[DP / 32], dka[DP / 32];
#pragma unroll
  for (int n = 0; n < DP / 32; ++n) {
    wmma::fill_fragment(dva[n], 0.f);
    wmma::fill_fragment(dka[n], 0.f);
  }
  const int col = half * 32 + lane;  // this lane's query column of the tile
  for (int i0 = 0; i0 < N; i0 += kTile) {
    __syncthreads();  // every warp is done with the previous Q, dO tiles and scratch operands
    load_tile_bf16<DP, kTile, L::LDB>(q + head, qs, i0, N, D);
    load_tile_bf16<DP, kTile, L::LDB>(g + head, gs, i0, N, D);
    if (threadIdx.x < kTile) {
      bool in = i0 + int(threadIdx.x) < N;
      lse2[threadIdx.x] = in ? lse[hrow + i0 + threadIdx.x] * kLog2e : 0.f;
      dd[threadIdx.x] = in ? dvec[hrow + i0 + threadIdx.x] : 0.f;
    }
    __syncthreads();
    warp_scores<DP>(ks + group * 16 * L::LDB, qs + half * 32 * L::LDB, sc);
    warp_scores<DP>(vs + group * 16 * L::LDB, gs + half * 32 * L::LDB, dp);
    __syncwarp();
    // P^T and dS^T in place, as bf16 (ldm 2 LDS): a bf16 row covers the first half of its own
    // f32 row, so each half of the rows is read by every lane before any lane overwrites it.
    const bool in = i0 + col < N;
    const float l2 = lse2[col], di = dd[col];
    bf16 *pb = reinterpret_cast<bf16*>(sc), *db = reinterpret_cast<bf16*>(dp);
#pragma unroll
    for (int r0 = 0; r0 < 16; r0 += 8) {
      bf16 pv[8], dsv[8];
#pragma unroll
      for (int r = 0; r < 8; ++r) {
        int at = (r0 + r) * L::LDS + lane;
        float p = in ? exp2f(fmaf(sc[at], scale_log2, -l2)) : 0.f;
        pv[r] = __float2bfloat16(p);
        dsv[r] = __float2bfloat16(p * (dp[at] - di));
      }
      __syncwarp();
#pragma unroll
      for (int r = 0; r < 8; ++r) {
        pb[(r0 + r) * 2 * L::LDS + lane] = pv[r];
        db[(r0 + r) * 2 * L::LDS + lane] = dsv[r];
      }
    }
    __syncthreads();  // every group's P^T and dS^T operands are complete
    accumulate<DP>(dva, smem, group, 0, gs, half);  // dV += P^T dO
    accumulate<DP>(dka, smem, group, 1, qs, half);  // dK += dS^T Q
  }
  __syncthreads();  // scratch and the Q, dO tiles are free: stage dV and dK there
  float *sv = L::scratch(smem, 0), *sk = reinterpret_cast<float*>(qs);
  stage_result<DP>(dva, sv, group, half);
  stage_result<DP>(dka, sk, group, half);
  __syncthreads();
  if (dv) store_result<DP>(sv, dv + head, k0, N, D, 1.f);
  if (dk) store_result<DP>(sk, dk + head, k0, N, D, scale);
}

// Pass (3): dQ. grid (ceil(N/64), B*H), block 256.
template <int DP>
__global__ void __launch_bounds__(kThreads, kMinBlocks<DP>)
attn_bwd_dq_bf16(const bf16* __restrict__ q, const bf16* __restrict__ k,
                 const bf16* __restrict__ v, const bf16* __restrict__ g,
                 const float* __restrict__ lse, const float* __restrict__ dvec,
                 bf16* __restrict__ dq, int N, int D, float scale, float scale_log2) {
  using L = Smem<DP>;
  SD_DYNAMIC_SHARED(unsigned char, smem);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, group = warp / 2, half = warp % 2;
  bf16 *qs = L::tile(smem, 0), *gs = L::tile(smem, 1), *ks = L::tile(smem, 2), *vs = L::tile(smem, 3);
  float* sc = L::scratch(smem, warp);  // S (16 queries x 32 keys), then dP below it
  float* dp = sc + 16 * L::LDS;
  float *lse2 = L::vec(smem), *dd = lse2 + kTile;
  const size_t head = size_t(blockIdx.y) * N * D, hrow = size_t(blockIdx.y) * N;
  const int q0 = blockIdx.x * kTile;
  load_tile_bf16<DP, kTile, L::LDB>(q + head, qs, q0, N, D);  // published by the loop's barriers
  load_tile_bf16<DP, kTile, L::LDB>(g + head, gs, q0, N, D);
  if (threadIdx.x < kTile) {
    bool in = q0 + int(threadIdx.x) < N;
    lse2[threadIdx.x] = in ? lse[hrow + q0 + threadIdx.x] * kLog2e : 0.f;
    dd[threadIdx.x] = in ? dvec[hrow + q0 + threadIdx.x] : 0.f;
  }
  FragC dqa[DP / 32];
#pragma unroll
  for (int n = 0; n < DP / 32; ++n) wmma::fill_fragment(dqa[n], 0.f);
  const int col = half * 32 + lane;  // this lane's key column of the tile
  for (int k0 = 0; k0 < N; k0 += kTile) {
    __syncthreads();  // every warp is done with the previous K, V tiles and scratch operands
    load_tile_bf16<DP, kTile, L::LDB>(k + head, ks, k0, N, D);
    load_tile_bf16<DP, kTile, L::LDB>(v + head, vs, k0, N, D);
    __syncthreads();
    warp_scores<DP>(qs + group * 16 * L::LDB, ks + half * 32 * L::LDB, sc);
    warp_scores<DP>(gs + group * 16 * L::LDB, vs + half * 32 * L::LDB, dp);
    __syncwarp();
    // dS in place of dP, as bf16 (see the dK, dV pass); keys past N get 0.
    const bool in = k0 + col < N;
    bf16* db = reinterpret_cast<bf16*>(dp);
#pragma unroll
    for (int r0 = 0; r0 < 16; r0 += 8) {
      bf16 dsv[8];
#pragma unroll
      for (int r = 0; r < 8; ++r) {
        int at = (r0 + r) * L::LDS + lane, row = group * 16 + r0 + r;
        float p = exp2f(fmaf(sc[at], scale_log2, -lse2[row]));
        dsv[r] = __float2bfloat16(in ? p * (dp[at] - dd[row]) : 0.f);
      }
      __syncwarp();
#pragma unroll
      for (int r = 0; r < 8; ++r) db[(r0 + r) * 2 * L::LDS + lane] = dsv[r];
    }
    __syncthreads();  // every group's dS operand is complete
    accumulate<DP>(dqa, smem, group, 1, ks, half);  // dQ += dS K
  }
  __syncthreads();  // the scratch is free: stage dQ there
  float* sq = L::scratch(smem, 0);
  stage_result<DP>(dqa, sq, group, half);
  __syncthreads();
  store_result<DP>(sq, dq + head, q0, N, D, scale);
}

template <int DP>
void launch_backward(const Dims& d, const bf16* q, const bf16* k, const bf16* v, const bf16* g,
                     const float* lse, const float* dvec, bf16* dq, bf16* dk, bf16* dv,
                     float s) {
  constexpr size_t bytes = Smem<DP>::bytes;
  static const bool configured = [] {
    allow_dynamic_smem(attn_bwd_dkdv_bf16<DP>, bytes);
    allow_dynamic_smem(attn_bwd_dq_bf16<DP>, bytes);
    return true;
  }();
  (void)configured;
  const float sl2 = s * kLog2e;
  if (dk || dv) {
    SD_LAUNCH(attn_bwd_dkdv_bf16<DP>, d.grid, kThreads, bytes, cuda::stream(), q, k, v, g, lse,
              dvec, dk, dv, d.N, d.D, s, sl2);
  }
  if (dq) {
    SD_LAUNCH(attn_bwd_dq_bf16<DP>, d.grid, kThreads, bytes, cuda::stream(), q, k, v, g, lse, dvec,
              dq, d.N, d.D, s, sl2);
  }
}

}  // namespace

void backward_bf16(const Dims& d, const Tensor& q, const Tensor& k, const Tensor& v,
                   const Tensor& o, const Tensor& lse, const Tensor& g, Tensor* dq, Tensor* dk,
                   Tensor* dv, float scale) {
  auto in = [](const Tensor& t) { return static_cast<const bf16*>(t.raw()); };
  auto out = [](Tensor* t) { return t ? static_cast<bf16*>(t->raw()) : nullptr; };
  Tensor dvec = attention_rowdot<bf16>(d, in(o), in(g));
  const float* pd = dvec.data<float>();
  const float* pl = lse.data<float>();
  if (d.DP == 32)
    launch_backward<32>(d, in(q), in(k), in(v), in(g), pl, pd, out(dq), out(dk), out(dv), scale);
  else if (d.DP == 64)
    launch_backward<64>(d, in(q), in(k), in(v), in(g), pl, pd, out(dq), out(dk), out(dv), scale);
  else
    launch_backward<128>(d, in(q), in(k), in(v), in(g), pl, pd, out(dq), out(dk), out(dv), scale);
}

}  // namespace sd::attn
