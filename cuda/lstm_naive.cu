// Strategy "naive": one kernel per operation per time step. Per step t the forward pass runs
//   linear (a = b + x_t W_ih^T), linear accumulate (a += h_{t-1} W_hh^T), naive_gates,
//   naive_cell, linear (y_t = b_out + h_t W_out^T)
// and the backward pass runs
//   matmul_nn (dh = +0 + dy_t W_out), matmul_nn accumulate (dh += da_{t+1} W_hh), naive_cell_bwd.
// The GEMMs and everything around the recurrence live in lstm_common.cu.
#include "ls_lstm.cuh"

namespace lsk {

// act[b, j] = sigmoid(a[b, j]) for the i, f, o rows, tanh(a[b, j]) for the g rows.
template <class T> __device__ __forceinline__ void naive_gates(LS_GPTR(const T) a, LS_GPTR(T) act, int B, int H) {
  LS_FOR(e, (long long)B * 4 * H) act[e] = activate<T>((int)((e % (4LL * H)) / H), a[e]);
}

// One hidden unit (b, k): c_t, tanh(c_t), h_t from the activated gates.
template <class T> __device__ __forceinline__ void naive_cell(LS_GPTR(const T) act, LS_GPTR(const T) c_prev, LS_GPTR(T) c,
                                                              LS_GPTR(T) tc, LS_GPTR(T) h, int B, int H) {
  LS_FOR(e, (long long)B * H) {
    long long b = e / H, k = e % H;
    LS_GPTR(const T) g4 = act + b * 4 * H;
    cell_forward<T>(g4[k], g4[H + k], g4[2 * H + k], g4[3 * H + k], c_prev[e], c + e, tc + e,
                    h + e);
  }
}

// One hidden unit (b, k) of step t: dc, the four da, and dcn = dc * f for step t-1.
template <class T> __device__ __forceinline__ void naive_cell_bwd(LS_GPTR(const T) dh, LS_GPTR(const T) act,
                                                                  LS_GPTR(const T) c_prev, LS_GPTR(const T) tc,
                                                                  LS_GPTR(T) dcn, LS_GPTR(T) da, int B, int H,
                                                                  int first) {
  LS_FOR(e, (long long)B * H) {
    long long b = e / H, k = e % H;
    LS_GPTR(const T) g4 = act + b * 4 * H;
    LS_GPTR(T) d4 = da + b * 4 * H;
    cell_backward<T>(dh[e], g4[k], g4[H + k], g4[2 * H + k], g4[3 * H + k], c_prev[e], tc[e],
                     first ? T(0) : dcn[e], d4 + k, d4 + H + k, d4 + 2 * H + k, d4 + 3 * H + k,
                     dcn + e);
  }
}

}  // namespace lsk

#define LS_NAIVE_KERNELS(T, S)                                                                  \
  extern "C" __global__ void naive_gates_##S(const T* a, T* act, int B, int H) {                \
    lsk::naive_gates<LS_REAL(T)>(a, act, B, H);                                                          \
  }                                                                                             \
  LS_EXPORT(naive_gates_##S)                                                                    \
  extern "C" __global__ void naive_cell_##S(const T* act, const T* c_prev, T* c, T* tc, T* h,   \
                                            int B, int H) {                                     \
    lsk::naive_cell<LS_REAL(T)>(act, c_prev, c, tc, h, B, H);                                            \
  }                                                                                             \
  LS_EXPORT(naive_cell_##S)                                                                     \
  extern "C" __global__ void naive_cell_bwd_##S(const T* dh, const T* act, const T* c_prev,     \
                                                const T* tc, T* dcn, T* da, int B, int H,       \
                                                int first) {                                    \
    lsk::naive_cell_bwd<LS_REAL(T)>(dh, act, c_prev, tc, dcn, da, B, H, first);                          \
  }                                                                                             \
  LS_EXPORT(naive_cell_bwd_##S)

LS_NAIVE_KERNELS(float, f32)
LS_NAIVE_KERNELS(double, f64)
