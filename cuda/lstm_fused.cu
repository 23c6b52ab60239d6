// Strategy "fused": the input projection for all time steps is one GEMM before the loop
// (linear in lstm_common.cu); then one kernel per time step does the recurrent GEMM, the gates
// and the cell update for one hidden unit per thread (fused_fwd_step); the head is one GEMM
// after the loop. Backward mirrors it: one kernel per step computes dh (head terms, then
// recurrent terms) and the cell's backward (fused_bwd_step); weight gradients are GEMMs after
// the loop.
//
// Memory access (checked by the emulator's counters, tests/test_cuda_raw.py): threads run
// along the hidden unit k, so every per-unit array is read and written in whole sectors. The
// forward step reads the recurrent weights through WT = W_hh^T (H x 4H, made by fused_transpose
// once per training step, after the update), where neighbouring units are neighbouring
// addresses; W_hh itself is already unit-contiguous for the backward step. h_{t-1}[b, :] and
// da_{t+1}[b, :] are the same for every lane of a warp (one sample): broadcasts.
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

// Thread (b, k): a_q = xproj[b, qH+k] + sum_kk h_prev[b, kk] * WT[kk, qH+k] for the four gates
// (WT[kk, j] = W_hh[j, kk]), then the activations and the cell. act_t: the activated i, f, g, o.
template <class T> __device__ __forceinline__ void fused_fwd_step(
    LS_GPTR(const T) xproj_t, LS_GPTR(const T) WT, LS_GPTR(const T) h_prev,
    LS_GPTR(const T) c_prev, LS_GPTR(T) act_t, LS_GPTR(T) c, LS_GPTR(T) tc, LS_GPTR(T) h, int B,
    int H) {
  const long long H4 = 4LL * H;
  LS_FOR(e, (long long)B * H) {
    long long b = e / H, k = e % H;
    LS_GPTR(const T) hp = h_prev + b * H;
    T g4[4];
    for (int q = 0; q < 4; ++q) {
      long long j = (long long)q * H + k;
      T a = xproj_t[b * H4 + j];
      for (int kk = 0; kk < H; ++kk) a = a + (T(hp[kk]) * T(WT[kk * H4 + j]));
      g4[q] = activate<T>(q, a);
      act_t[b * H4 + j] = g4[q];
    }
    cell_forward<T>(g4[0], g4[1], g4[2], g4[3], c_prev[e], c + e, tc + e, h + e);
  }
}

// Thread (b, k): dh = +0 + sum_o dy_t[b, o] W_out[o, k] (+ sum_j da_next[b, j] W_hh[j, k] unless
// first, i.e. t = T-1), then dc and the four da of step t.
template <class T> __device__ __forceinline__ void fused_bwd_step(
    LS_GPTR(const T) dy_t, LS_GPTR(const T) W_out, LS_GPTR(const T) da_next,
    LS_GPTR(const T) W_hh, LS_GPTR(const T) act_t, LS_GPTR(const T) c_prev,
    LS_GPTR(const T) tc_t, LS_GPTR(T) dcn, LS_GPTR(T) da_t, int B, int H, int O, int first) {
  const long long H4 = 4LL * H;
  LS_FOR(e, (long long)B * H) {
    long long b = e / H, k = e % H;
    T dh = T(0);
    for (int o = 0; o < O; ++o) dh = dh + (T(dy_t[b * O + o]) * T(W_out[(long long)o * H + k]));
    if (!first)
      for (long long j = 0; j < H4; ++j) dh = dh + (T(da_next[b * H4 + j]) * T(W_hh[j * H + k]));
    LS_GPTR(const T) g4 = act_t + b * H4;
    LS_GPTR(T) d4 = da_t + b * H4;
    cell_backward<T>(dh, g4[k], g4[H + k], g4[2 * H + k], g4[3 * H + k], c_prev[e], tc_t[e],
                     first ? T(0) : T(dcn[e]), d4 + k, d4 + H + k, d4 + 2 * H + k, d4 + 3 * H + k,
                     dcn + e);
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
