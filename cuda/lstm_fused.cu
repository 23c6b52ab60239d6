// Strategy "fused": the input projection for all time steps is one GEMM before the loop
// (linear in lstm_common.cu); then one kernel per time step does the recurrent GEMM, the gates
// and the cell update for one hidden unit per thread (fused_fwd_step); the head is one GEMM
// after the loop. Backward mirrors it: one kernel per step computes dh (head terms, then
// recurrent terms) and the cell's backward (fused_bwd_step); weight gradients are GEMMs after
// the loop.
#include "ls_lstm.cuh"

namespace lsk {

// Thread (b, k): a_q = xproj[b, qH+k] + sum_kk h_prev[b, kk] * W_hh[qH+k, kk] for the four gates,
// then the activations and the cell. act_t holds the activated i, f, g, o of this step.
template <class T> __device__ __forceinline__ void fused_fwd_step(const T* xproj_t, const T* W_hh,
                                                                  const T* h_prev, const T* c_prev,
                                                                  T* act_t, T* c, T* tc, T* h,
                                                                  int B, int H) {
  LS_FOR(e, (long long)B * H) {
    long long b = e / H, k = e % H;
    const T* hp = h_prev + b * H;
    T g4[4];
    for (int q = 0; q < 4; ++q) {
      long long j = (long long)q * H + k;
      T a = xproj_t[b * 4 * H + j];
      for (int kk = 0; kk < H; ++kk) a = a + (hp[kk] * W_hh[j * H + kk]);
      g4[q] = activate<T>(q, a);
      act_t[b * 4 * H + j] = g4[q];
    }
    cell_forward<T>(g4[0], g4[1], g4[2], g4[3], c_prev[e], c + e, tc + e, h + e);
  }
}

// Thread (b, k): dh = +0 + sum_o dy_t[b, o] W_out[o, k] (+ sum_j da_next[b, j] W_hh[j, k] unless
// first, i.e. t = T-1), then dc and the four da of step t.
template <class T> __device__ __forceinline__ void fused_bwd_step(const T* dy_t, const T* W_out,
                                                                  const T* da_next, const T* W_hh,
                                                                  const T* act_t, const T* c_prev,
                                                                  const T* tc_t, T* dcn, T* da_t,
                                                                  int B, int H, int O, int first) {
  LS_FOR(e, (long long)B * H) {
    long long b = e / H, k = e % H;
    T dh = T(0);
    for (int o = 0; o < O; ++o) dh = dh + (dy_t[b * O + o] * W_out[(long long)o * H + k]);
    if (!first)
      for (long long j = 0; j < 4LL * H; ++j) dh = dh + (da_next[b * 4 * H + j] * W_hh[j * H + k]);
    const T* g4 = act_t + b * 4 * H;
    T* d4 = da_t + b * 4 * H;
    cell_backward<T>(dh, g4[k], g4[H + k], g4[2 * H + k], g4[3 * H + k], c_prev[e], tc_t[e],
                     first ? T(0) : dcn[e], d4 + k, d4 + H + k, d4 + 2 * H + k, d4 + 3 * H + k,
                     dcn + e);
  }
}

}  // namespace lsk

#define LS_FUSED_KERNELS(T, S)                                                                   \
  extern "C" __global__ void fused_fwd_step_##S(const T* xproj_t, const T* W_hh, const T* h_prev, \
                                                const T* c_prev, T* act_t, T* c, T* tc, T* h,    \
                                                int B, int H) {                                  \
    lsk::fused_fwd_step<T>(xproj_t, W_hh, h_prev, c_prev, act_t, c, tc, h, B, H);                \
  }                                                                                              \
  LS_EXPORT(fused_fwd_step_##S)                                                                  \
  extern "C" __global__ void fused_bwd_step_##S(const T* dy_t, const T* W_out, const T* da_next, \
                                                const T* W_hh, const T* act_t, const T* c_prev,  \
                                                const T* tc_t, T* dcn, T* da_t, int B, int H,    \
                                                int O, int first) {                              \
    lsk::fused_bwd_step<T>(dy_t, W_out, da_next, W_hh, act_t, c_prev, tc_t, dcn, da_t, B, H, O,  \
                           first);                                                               \
  }                                                                                              \
  LS_EXPORT(fused_bwd_step_##S)

LS_FUSED_KERNELS(float, f32)
LS_FUSED_KERNELS(double, f64)
