// Strategy "fused": the input projection for all time steps is one GEMM before the loop
// (linear in lstm_common.cu); then one kernel per time step does the recurrent GEMM, the gates
// and the cell update for one hidden unit per thread (fused_fwd_step); the head is one GEMM
// after the loop. Backward mirrors it: one kernel per step computes dh (head terms, then
// recurrent terms) and the cell's backward (fused_bwd_step); weight gradients are GEMMs after
// the loop.
//
// Memory access (checked by the emulator's counters, tests/test_cuda_raw.py): the lanes of a
// warp run along the hidden unit k, so every per-unit array is read and written in whole
// sectors. The forward step reads the recurrent weights through WT = W_hh^T (H x 4H, made by
// fused_transpose once per training step, after the update), where neighbouring units are
// neighbouring addresses; W_hh itself is already unit-contiguous for the backward step. Weights
// and h_{t-1} / da_{t+1} pass through shared memory, shared by the block's FB samples.
#include "ls_lstm.cuh"

namespace lsk {

// WT[c, r] = W[r, c] for W (R x C): 32 x 32 tiles through shared memory (33 columns, so the
// transposed reads hit 32 different banks); reads and writes both run along rows.
template <class T> __device__ __forceinline__ void fused_transpose(LS_GPTR(const T) W,
                                                                   LS_GPTR(T) WT, int R, int C) {
  LS_SHARED(T, tile, 32 * 33);
  const int tx = threadIdx.x, ty = threadIdx.y;  // block (32, 8)
  for (long long r0 = 32LL * blockIdx.y; r0 < R; r0 += 32LL * gridDim.y)
    for (long long c0 = 32LL * blockIdx.x; c0 < C; c0 += 32LL * gridDim.x) {
      for (int i = ty; i < 32; i += blockDim.y)
        if (r0 + i < R && c0 + tx < C) tile[i * 33 + tx] = W[(r0 + i) * C + c0 + tx];
      __syncthreads();  // the tile is loaded
      for (int i = ty; i < 32; i += blockDim.y)
        if (c0 + i < C && r0 + tx < R) WT[(c0 + i) * R + r0 + tx] = tile[tx * 33 + i];
      __syncthreads();  // every thread read the tile before the next one overwrites it
    }
}

// Both step kernels: a block of FU x FB threads owns FU hidden units of FB samples, thread
// (tx, ty) the unit k = u0 + tx of sample b = b0 + ty. The sum over the recurrent index runs
// FK at a time in ascending order; each chunk of the h_{t-1} (da_{t+1}) rows of the block's
// samples and of the weights of its units is staged in shared memory by coalesced loads, so
// the weights come from L2 once per FB samples instead of once per sample. Launch: block
// (FU, FB), any grid (tiles are grid-strided).
constexpr int FU = 32, FB = 8, FK = 32;

// Thread (b, k): a_q = xproj[b, qH+k] + sum_kk h_prev[b, kk] * WT[kk, qH+k] for the four gates
// (WT[kk, j] = W_hh[j, kk]), then the activations and the cell. act_t: the activated i, f, g, o.
template <class T> __device__ __forceinline__ void fused_fwd_step(
    LS_GPTR(const T) xproj_t, LS_GPTR(const T) WT, LS_GPTR(const T) h_prev,
    LS_GPTR(const T) c_prev, LS_GPTR(T) act_t, LS_GPTR(T) c, LS_GPTR(T) tc, LS_GPTR(T) h, int B,
    int H) {
  LS_SHARED(T, hs, FB * (FK + 1));  // hs[bb, kk] = h_prev[b0 + bb, k0 + kk]
  LS_SHARED(T, ws, FK * 4 * FU);    // ws[kk, q, uu] = WT[k0 + kk, q*H + u0 + uu]
  const int tx = threadIdx.x, ty = threadIdx.y;
  const long long H4 = 4LL * H;
  for (long long b0 = (long long)FB * blockIdx.y; b0 < B; b0 += (long long)FB * gridDim.y)
    for (long long u0 = (long long)FU * blockIdx.x; u0 < H; u0 += (long long)FU * gridDim.x) {
      const long long b = b0 + ty, k = u0 + tx;
      const bool ok = b < B && k < H;
      T a[4];
      for (int q = 0; q < 4; ++q) a[q] = ok ? T(xproj_t[b * H4 + q * H + k]) : T(0);
      for (long long k0 = 0; k0 < H; k0 += FK) {
        hs[ty * (FK + 1) + tx] = b < B && k0 + tx < H ? T(h_prev[b * H + k0 + tx]) : T(0);
        for (int kk = ty; kk < FK; kk += FB)
          for (int q = 0; q < 4; ++q)
            ws[(kk * 4 + q) * FU + tx] =
                k0 + kk < H && k < H ? T(WT[(k0 + kk) * H4 + q * H + k]) : T(0);
        __syncthreads();  // both chunks are loaded
        const int kn = H - k0 < FK ? int(H - k0) : FK;
        if (ok)
          for (int kk = 0; kk < kn; ++kk) {
            T hv = hs[ty * (FK + 1) + kk];  // one sample per warp: a broadcast
            for (int q = 0; q < 4; ++q) a[q] = a[q] + (hv * T(ws[(kk * 4 + q) * FU + tx]));
          }
        __syncthreads();  // every thread is done with the chunks before they are refilled
      }
      if (!ok) continue;
      T g4[4];
      for (int q = 0; q < 4; ++q) {
        g4[q] = activate<T>(q, a[q]);
        act_t[b * H4 + q * H + k] = g4[q];
      }
      const long long e = b * H + k;
      cell_forward<T>(g4[0], g4[1], g4[2], g4[3], c_prev[e], c + e, tc + e, h + e);
    }
}

// Thread (b, k): dh = +0 + sum_o dy_t[b, o] W_out[o, k] (the top layer's head terms) or, with
// O = 0 (a layer below the top), dh = dy_t[b, k], dy_t then being that layer's dh_above_t (B x H);
// then + sum_j da_next[b, j] W_hh[j, k] unless first (t = T-1); then dc and the four da of step t.
template <class T> __device__ __forceinline__ void fused_bwd_step(
    LS_GPTR(const T) dy_t, LS_GPTR(const T) W_out, LS_GPTR(const T) da_next,
    LS_GPTR(const T) W_hh, LS_GPTR(const T) act_t, LS_GPTR(const T) c_prev,
    LS_GPTR(const T) tc_t, LS_GPTR(T) dcn, LS_GPTR(T) da_t, int B, int H, int O, int first) {
  LS_SHARED(T, ds, FB * (FK + 1));  // ds[bb, jj] = da_next[b0 + bb, j0 + jj]
  LS_SHARED(T, ws, FK * FU);        // ws[jj, uu] = W_hh[j0 + jj, u0 + uu]
  const int tx = threadIdx.x, ty = threadIdx.y;
  const long long H4 = 4LL * H;
  for (long long b0 = (long long)FB * blockIdx.y; b0 < B; b0 += (long long)FB * gridDim.y)
    for (long long u0 = (long long)FU * blockIdx.x; u0 < H; u0 += (long long)FU * gridDim.x) {
      const long long b = b0 + ty, k = u0 + tx;
      const bool ok = b < B && k < H;
      T dh = T(0);
      if (ok && O > 0) {
        for (int o = 0; o < O; ++o)
          dh = dh + (T(dy_t[b * O + o]) * T(W_out[(long long)o * H + k]));
      } else if (ok) {
        dh = T(dy_t[b * H + k]);  // dh_above_t
      }
      for (long long j0 = 0; !first && j0 < H4; j0 += FK) {
        ds[ty * (FK + 1) + tx] = b < B && j0 + tx < H4 ? T(da_next[b * H4 + j0 + tx]) : T(0);
        for (int jj = ty; jj < FK; jj += FB)
          ws[jj * FU + tx] = j0 + jj < H4 && k < H ? T(W_hh[(j0 + jj) * H + k]) : T(0);
        __syncthreads();  // both chunks are loaded
        const int jn = H4 - j0 < FK ? int(H4 - j0) : FK;
        if (ok)
          for (int jj = 0; jj < jn; ++jj) dh = dh + (T(ds[ty * (FK + 1) + jj]) * T(ws[jj * FU + tx]));
        __syncthreads();  // every thread is done with the chunks before they are refilled
      }
      if (!ok) continue;
      const long long e = b * H + k;
      LS_GPTR(const T) g4 = act_t + b * H4;
      LS_GPTR(T) d4 = da_t + b * H4;
      cell_backward<T>(dh, g4[k], g4[H + k], g4[2 * H + k], g4[3 * H + k], c_prev[e], tc_t[e],
                       first ? T(0) : T(dcn[e]), d4 + k, d4 + H + k, d4 + 2 * H + k,
                       d4 + 3 * H + k, dcn + e);
    }
}

}  // namespace lsk

#define LS_FUSED_KERNELS(T, S)                                                                   \
  extern "C" __global__ void fused_transpose_##S(const T* W, T* WT, int R, int C) {              \
    lsk::fused_transpose<LS_REAL(T)>(W, WT, R, C);                                               \
  }                                                                                              \
  LS_EXPORT(fused_transpose_##S)                                                                 \
  extern "C" __global__ void fused_fwd_step_##S(const T* xproj_t, const T* WT, const T* h_prev,  \
                                                const T* c_prev, T* act_t, T* c, T* tc, T* h,    \
                                                int B, int H) {                                  \
    lsk::fused_fwd_step<LS_REAL(T)>(xproj_t, WT, h_prev, c_prev, act_t, c, tc, h, B, H);         \
  }                                                                                              \
  LS_EXPORT(fused_fwd_step_##S)                                                                  \
  extern "C" __global__ void fused_bwd_step_##S(const T* dy_t, const T* W_out, const T* da_next, \
                                                const T* W_hh, const T* act_t, const T* c_prev,  \
                                                const T* tc_t, T* dcn, T* da_t, int B, int H,    \
                                                int O, int first) {                              \
    lsk::fused_bwd_step<LS_REAL(T)>(dy_t, W_out, da_next, W_hh, act_t, c_prev, tc_t, dcn, da_t,  \
                                    B, H, O, first);                                             \
  }                                                                                              \
  LS_EXPORT(fused_bwd_step_##S)

LS_FUSED_KERNELS(float, f32)
LS_FUSED_KERNELS(double, f64)
