// Strategy "persistent" (Persistent RNNs; cuDNN PERSIST_STATIC): one launch per sequence
// direction. Block p owns hidden units k in [p*hs, min(H, (p+1)*hs)) and keeps its slice of W_hh
// in shared memory for the whole sequence; a grid-wide barrier (LS_GRID_SYNC) separates time
// steps, because step t+1 reads h_t (forward) or da_{t+1} (backward) of every unit. The launch
// must be cooperative with gridDim.x = ceil(H / hs) blocks, all resident, and
// 4 * hs * H * sizeof(T) bytes of dynamic shared memory (docs/cuda.md has the limits).

#include "ls_lstm.cuh"

namespace lsk {

// Forward: the slice is the 4*hs gate rows {q*H + k} of W_hh (row-major, H columns each). The
// input projection of the block's own rows is done in place (a = b + x_t W_ih^T, then the
// recurrent terms continue the same accumulator), so no other block ever needs it.
template <class T> __device__ __forceinline__ void persistent_fwd(
    LS_GPTR(const T) x, LS_GPTR(const T) W_ih, LS_GPTR(const T) bias, LS_GPTR(const T) W_hh, LS_GPTR(T) act, LS_GPTR(T) h, LS_GPTR(T) c, LS_GPTR(T) tc, int Tn,
    int B, int I, int H, int hs, unsigned int* bar) {
  LS_DYN_SPTR(T, w);
  const int k0 = blockIdx.x * hs;
  const int nk = H - k0 < hs ? H - k0 : hs;
  for (long long e = threadIdx.x; e < 4LL * nk * H; e += blockDim.x) {  // W_hh slice on chip
    long long q = e / ((long long)nk * H), kl = (e / H) % nk, kk = e % H;
    w[(q * hs + kl) * H + kk] = W_hh[(q * H + k0 + kl) * H + kk];
  }
  __syncthreads();  // the slice is loaded
  for (int t = 0; t < Tn; ++t) {
    LS_GPTR(const T) hp = h + (long long)t * B * H;
    for (long long e = threadIdx.x; e < (long long)B * nk; e += blockDim.x) {
      long long b = e / nk, kl = e % nk, k = k0 + kl;
      LS_GPTR(const T) xr = x + ((long long)t * B + b) * I;
      T g4[4];
      for (int q = 0; q < 4; ++q) {
        long long j = (long long)q * H + k;
        T a = bias[j];
        for (int i = 0; i < I; ++i) a = a + (xr[i] * W_ih[j * I + i]);
        auto wr = w + ((long long)q * hs + kl) * H;
        for (int kk = 0; kk < H; ++kk) a = a + (LS_LDCG(hp + b * H + kk) * wr[kk]);
        g4[q] = activate<T>(q, a);
        act[((long long)t * B + b) * 4 * H + j] = g4[q];
      }
      long long o = ((long long)t * B + b) * H + k;  // c, tc, h of step t; c/h are offset by B*H
      cell_forward<T>(g4[0], g4[1], g4[2], g4[3], c[o], c + o + (long long)B * H, tc + o,
                      h + o + (long long)B * H);
    }
    if (t + 1 < Tn) LS_GRID_SYNC(bar);  // h_t of every unit is written
  }
}

// Backward: the slice is the hs columns {k} of W_hh for all 4H rows, w[j * hs + kl]. Thread
// (b, k) keeps dcn in global memory it alone touches.
template <class T> __device__ __forceinline__ void persistent_bwd(
    LS_GPTR(const T) dy, LS_GPTR(const T) W_out, LS_GPTR(const T) W_hh, LS_GPTR(const T) act, LS_GPTR(const T) c, LS_GPTR(const T) tc, LS_GPTR(T) dcn,
    LS_GPTR(T) da, int Tn, int B, int H, int O, int hs, unsigned int* bar) {
  LS_DYN_SPTR(T, w);
  const int k0 = blockIdx.x * hs;
  const int nk = H - k0 < hs ? H - k0 : hs;
  for (long long e = threadIdx.x; e < 4LL * H * nk; e += blockDim.x) {
    long long j = e / nk, kl = e % nk;
    w[j * hs + kl] = W_hh[j * H + k0 + kl];
  }
  __syncthreads();  // the slice is loaded
  for (int t = Tn - 1; t >= 0; --t) {
    LS_GPTR(const T) dyt = dy + (long long)t * B * O;
    LS_GPTR(const T) dan = da + ((long long)t + 1) * B * 4 * H;
    for (long long e = threadIdx.x; e < (long long)B * nk; e += blockDim.x) {
      long long b = e / nk, kl = e % nk, k = k0 + kl;
      T dh = T(0);
      for (int o = 0; o < O; ++o) dh = dh + (dyt[b * O + o] * W_out[(long long)o * H + k]);
      if (t + 1 < Tn)
        for (long long j = 0; j < 4LL * H; ++j)
          dh = dh + (LS_LDCG(dan + b * 4 * H + j) * w[j * hs + kl]);
      long long r = ((long long)t * B + b);
      LS_GPTR(const T) g4 = act + r * 4 * H;
      LS_GPTR(T) d4 = da + r * 4 * H;
      cell_backward<T>(dh, g4[k], g4[H + k], g4[2 * H + k], g4[3 * H + k], c[r * H + k],
                       tc[r * H + k], t + 1 < Tn ? dcn[b * H + k] : T(0), d4 + k, d4 + H + k,
                       d4 + 2 * H + k, d4 + 3 * H + k, dcn + b * H + k);
    }
    if (t > 0) LS_GRID_SYNC(bar);  // da_t of every unit is written
  }
}

}  // namespace lsk

#define LS_PERSISTENT_KERNELS(T, S)                                                               \
  extern "C" __global__ void persistent_fwd_##S(const T* x, const T* W_ih, const T* bias,         \
                                                const T* W_hh, T* act, T* h, T* c, T* tc, int Tn, \
                                                int B, int I, int H, int hs, unsigned int* bar) { \
    lsk::persistent_fwd<LS_REAL(T)>(x, W_ih, bias, W_hh, act, h, c, tc, Tn, B, I, H, hs, bar);             \
  }                                                                                               \
  LS_EXPORT(persistent_fwd_##S)                                                                   \
  extern "C" __global__ void persistent_bwd_##S(const T* dy, const T* W_out, const T* W_hh,       \
                                                const T* act, const T* c, const T* tc, T* dcn,    \
                                                T* da, int Tn, int B, int H, int O, int hs,       \
                                                unsigned int* bar) {                              \
    lsk::persistent_bwd<LS_REAL(T)>(dy, W_out, W_hh, act, c, tc, dcn, da, Tn, B, H, O, hs, bar);           \
  }                                                                                               \
  LS_EXPORT(persistent_bwd_##S)

LS_PERSISTENT_KERNELS(float, f32)
LS_PERSISTENT_KERNELS(double, f64)
