// The LSTM's per-unit expression trees (docs/arithmetic.md section 5), written once and used by
// every strategy, so that naive, fused and persistent evaluate exactly the same operations.
#pragma once
#include "ls_cuda.cuh"

namespace lsk {

// Grid-stride loop over [0, n): correct for any grid, so each launcher picks its own grid.
#define LS_FOR(e, n)                                                                 \
  for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < (long long)(n); \
       e += (long long)gridDim.x * blockDim.x)

// Gate q of a pre-activation: sigmoid for i, f, o (q = 0, 1, 3), tanh for g (q = 2).
template <class T> __device__ __forceinline__ T activate(int q, T a) {
  return q == 2 ? lockstep::ls_tanh<T>(a) : lockstep::ls_sigmoid<T>(a);
}

// c_t = (f * c_{t-1}) + (i * g);  tc = tanh(c_t);  h_t = o * tc
template <class T, class P> __device__ __forceinline__ void cell_forward(T i, T f, T g, T o, T cp,
                                                                         P c, P tc, P h) {
  T cn = (f * cp) + (i * g);
  T t = lockstep::ls_tanh<T>(cn);
  *c = cn;
  *tc = t;
  *h = o * t;
}

// dc = ((dh * o) * (1 - (tc * tc))) + dcn_in   (dcn_in = dc_{t+1} * f_{t+1}, +0 at T-1)
// da_i = (dc * g) * (i * (1 - i));  da_f = (dc * c_{t-1}) * (f * (1 - f))
// da_g = (dc * i) * (1 - (g * g));  da_o = (dh * tc) * (o * (1 - o));  dcn_out = dc * f
template <class T, class P> __device__ __forceinline__ void cell_backward(
    T dh, T i, T f, T g, T o, T cp, T tc, T dcn_in, P da_i, P da_f, P da_g, P da_o, P dcn_out) {
  const T one = T(1);
  T dc = ((dh * o) * (one - (tc * tc))) + dcn_in;
  *da_i = (dc * g) * (i * (one - i));
  *da_f = (dc * cp) * (f * (one - f));
  *da_g = (dc * i) * (one - (g * g));
  *da_o = (dh * tc) * (o * (one - o));
  *dcn_out = dc * f;
}

}  // namespace lsk
