// Strategy "persistent" (Persistent RNNs; cuDNN PERSIST_STATIC): one launch per sequence
// direction (and per layer of a stack: the layers run one after another). Block p owns hidden
// units k in [k0, k0 + nk), k0 = p*hs, and keeps its slice of
// W_hh in shared memory for the whole sequence; a grid-wide barrier (LS_GRID_SYNC) separates time
// steps, because step t+1 reads h_t (forward) or da_{t+1} (backward) of every unit. The input
// projection of all steps is one GEMM before the launch (linear in lstm_common.cu), as in fused.
// The launch must be cooperative with gridDim.x = ceil(H / hs) blocks, all resident, and the
// dynamic shared memory of cuda_raw.persistent_plan (docs/cuda.md has the limits).
//
// Thread e of a chunk of cs = min(blockDim, 32 * nk) threads owns (b, kl) = (e / nk, e % nk): with hs a multiple of 8 (the plan's
// choice when it fits) a warp covers 32 / nk samples of 8+ consecutive units, so per-unit arrays
// move in whole sectors. h_{t-1} (da_{t+1}) rows of the chunk's samples are staged in shared
// tiles of 32 columns (33 with padding: no bank conflicts), loaded along the row (coalesced).
#include "ls_lstm.cuh"

namespace lsk {

constexpr int kPersistTile = 32;  // columns of h_{t-1} / da_{t+1} staged per tile
constexpr int kPersistRows = 32;  // samples per chunk at most (the tile has one row more)

// tile[r, c] = src[(b0 + r) * ld + c0 + c] for r < nb, c < min(32, n - c0): read with LS_LDCG,
// because other blocks wrote src before the grid barrier.
template <class T> __device__ __forceinline__ void persistent_stage(LS_GPTR(const T) src,
                                                                    long long ld, long long b0,
                                                                    int nb, int c0, int n,
                                                                    LS_DYN_SPTR_T(T) tile) {
  for (int i = threadIdx.x; i < nb * kPersistTile; i += blockDim.x) {
    int r = i / kPersistTile, c = i % kPersistTile;
    if (c0 + c < n) tile[r * (kPersistTile + 1) + c] = LS_LDCG(src + (b0 + r) * ld + c0 + c);
  }
}

// Forward: w[kk * 4hs + q * hs + kl] = W_hh[q*H + k0 + kl, kk] (unit-contiguous for a fixed kk).
// a_q = xproj[t, b, qH+k] + sum_kk h_{t-1}[b, kk] * W_hh[qH+k, kk], kk ascending tile by tile.
template <class T> __device__ __forceinline__ void persistent_fwd(
    LS_GPTR(const T) xproj, LS_GPTR(const T) W_hh, LS_GPTR(T) act, LS_GPTR(T) h, LS_GPTR(T) c,
    LS_GPTR(T) tc, int Tn, int B, int H, int hs, unsigned int* bar) {
  LS_DYN_SPTR(T, w);
  auto tile = w + 4LL * hs * H;
  const int k0 = blockIdx.x * hs;
  const int nk = H - k0 < hs ? H - k0 : hs;
  const long long H4 = 4LL * H;
  const int cs = (int)blockDim.x < kPersistRows * nk ? (int)blockDim.x : kPersistRows * nk;
  for (long long e = threadIdx.x; e < 4LL * nk * H; e += blockDim.x) {  // W_hh slice on chip
    long long row = e / H, kk = e % H, q = row / nk, kl = row % nk;     // read along kk
    w[kk * 4 * hs + q * hs + kl] = W_hh[(q * H + k0 + kl) * H + kk];
  }
  __syncthreads();  // the slice is loaded
  for (int t = 0; t < Tn; ++t) {
    LS_GPTR(const T) hp = h + (long long)t * B * H;
    for (long long e0 = 0; e0 < (long long)B * nk; e0 += cs) {  // uniform over the block
      long long e = e0 + threadIdx.x, b = e / nk, kl = e % nk, k = k0 + kl, b0 = e0 / nk;
      bool on = (int)threadIdx.x < cs && e < (long long)B * nk;
      long long b1 = (e0 + cs - 1) / nk + 1;
      int nb = (int)((b1 < B ? b1 : B) - b0);
      long long r = (long long)t * B + b;
      T a[4];
      for (int q = 0; q < 4; ++q) a[q] = on ? T(xproj[r * H4 + q * H + k]) : T(0);
      for (int c0 = 0; c0 < H; c0 += kPersistTile) {
        persistent_stage<T>(hp, H, b0, nb, c0, H, tile);
        __syncthreads();  // the tile of h_{t-1} is staged
        if (on) {
          int n = H - c0 < kPersistTile ? H - c0 : kPersistTile;
          for (int kk = 0; kk < n; ++kk) {
            T hv = tile[(b - b0) * (kPersistTile + 1) + kk];
            for (int q = 0; q < 4; ++q)
              a[q] = a[q] + (hv * T(w[(long long)(c0 + kk) * 4 * hs + q * hs + kl]));
          }
        }
        __syncthreads();  // every thread read the tile before it is refilled
      }
      if (on) {
        T g4[4];
        for (int q = 0; q < 4; ++q) {
          g4[q] = activate<T>(q, a[q]);
          act[r * H4 + q * H + k] = g4[q];
        }
        long long o = r * H + k;  // c, tc, h of step t; c/h are offset by B*H
        cell_forward<T>(g4[0], g4[1], g4[2], g4[3], c[o], c + o + (long long)B * H, tc + o,
                        h + o + (long long)B * H);
      }
    }
    if (t + 1 < Tn) LS_GRID_SYNC(bar);  // h_t of every unit is written
  }
}

// Backward: w[j * hs + kl] = W_hh[j, k0 + kl] for all 4H rows j. dh = +0 + sum_o dy W_out (the
// top layer) or, with O = 0 (a layer below the top), dh = dy[t, b, k], dy then being that layer's
// dh_above (T x B x H); then + sum_j da_{t+1}[b, j] W_hh[j, k] (j ascending, tile by tile). dcn is
// touched by its owner only.
template <class T> __device__ __forceinline__ void persistent_bwd(
    LS_GPTR(const T) dy, LS_GPTR(const T) W_out, LS_GPTR(const T) W_hh, LS_GPTR(const T) act,
    LS_GPTR(const T) c, LS_GPTR(const T) tc, LS_GPTR(T) dcn, LS_GPTR(T) da, int Tn, int B, int H,
    int O, int hs, unsigned int* bar) {
  LS_DYN_SPTR(T, w);
  auto tile = w + 4LL * hs * H;
  const int k0 = blockIdx.x * hs;
  const int nk = H - k0 < hs ? H - k0 : hs;
  const long long H4 = 4LL * H;
  const int cs = (int)blockDim.x < kPersistRows * nk ? (int)blockDim.x : kPersistRows * nk;
  for (long long e = threadIdx.x; e < H4 * nk; e += blockDim.x) {
    long long j = e / nk, kl = e % nk;
    w[j * hs + kl] = W_hh[j * H + k0 + kl];
  }
  __syncthreads();  // the slice is loaded
  for (int t = Tn - 1; t >= 0; --t) {
    LS_GPTR(const T) dan = da + ((long long)t + 1) * B * H4;
    for (long long e0 = 0; e0 < (long long)B * nk; e0 += cs) {
      long long e = e0 + threadIdx.x, b = e / nk, kl = e % nk, k = k0 + kl, b0 = e0 / nk;
      bool on = (int)threadIdx.x < cs && e < (long long)B * nk;
      long long b1 = (e0 + cs - 1) / nk + 1;
      int nb = (int)((b1 < B ? b1 : B) - b0);
      long long r = (long long)t * B + b;
      T dh = T(0);
      if (on && O > 0) {
        for (int o = 0; o < O; ++o) dh = dh + (T(dy[r * O + o]) * T(W_out[(long long)o * H + k]));
      } else if (on) {
        dh = T(dy[r * H + k]);  // dh_above
      }
      if (t + 1 < Tn)
        for (int c0 = 0; c0 < 4 * H; c0 += kPersistTile) {
          persistent_stage<T>(dan, H4, b0, nb, c0, 4 * H, tile);
          __syncthreads();  // the tile of da_{t+1} is staged
          if (on) {
            int n = 4 * H - c0 < kPersistTile ? 4 * H - c0 : kPersistTile;
            for (int jj = 0; jj < n; ++jj)
              dh = dh + (T(tile[(b - b0) * (kPersistTile + 1) + jj]) *
                         T(w[(long long)(c0 + jj) * hs + kl]));
          }
          __syncthreads();  // every thread read the tile before it is refilled
        }
      if (on) {
        LS_GPTR(const T) g4 = act + r * H4;
        LS_GPTR(T) d4 = da + r * H4;
        cell_backward<T>(dh, g4[k], g4[H + k], g4[2 * H + k], g4[3 * H + k], c[r * H + k],
                         tc[r * H + k], t + 1 < Tn ? T(dcn[b * H + k]) : T(0), d4 + k,
                         d4 + H + k, d4 + 2 * H + k, d4 + 3 * H + k, dcn + b * H + k);
      }
    }
    if (t > 0) LS_GRID_SYNC(bar);  // da_t of every unit is written
  }
}

}  // namespace lsk

#define LS_PERSISTENT_KERNELS(T, S)                                                               \
  extern "C" __global__ void persistent_fwd_##S(const T* xproj, const T* W_hh, T* act, T* h,      \
                                                T* c, T* tc, int Tn, int B, int H, int hs,        \
                                                unsigned int* bar) {                              \
    lsk::persistent_fwd<LS_REAL(T)>(xproj, W_hh, act, h, c, tc, Tn, B, H, hs, bar);               \
  }                                                                                               \
  LS_EXPORT(persistent_fwd_##S)                                                                   \
  extern "C" __global__ void persistent_bwd_##S(const T* dy, const T* W_out, const T* W_hh,       \
                                                const T* act, const T* c, const T* tc, T* dcn,    \
                                                T* da, int Tn, int B, int H, int O, int hs,       \
                                                unsigned int* bar) {                              \
    lsk::persistent_bwd<LS_REAL(T)>(dy, W_out, W_hh, act, c, tc, dcn, da, Tn, B, H, O, hs, bar); \
  }                                                                                               \
  LS_EXPORT(persistent_bwd_##S)

LS_PERSISTENT_KERNELS(float, f32)
LS_PERSISTENT_KERNELS(double, f64)
