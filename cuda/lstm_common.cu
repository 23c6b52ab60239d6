// Kernels every strategy shares: batch gather, the ordered GEMMs (input projection, head,
// weight gradients), the losses, global-norm clipping and the optimizers.
//
//   gather        dst[o, b, :] = src[o, idx[b], :]                       (a minibatch, on device)
//   linear        out[r, c] = (bias[c] or out[r, c]) + sum_k x[r, k] * W[c, k]      (k ascending)
//   matmul_nn     out[r, c] = (+0 or out[r, c]) + sum_k A[r, k] * Bm[k, c]          (k ascending)
//   matmul_tn     out[r, c] = +0 + sum_n A[n, r] * Bm[n, c]              (n = t*B + b ascending)
//   colsum        out[c] = +0 + sum_n A[n, c]
//   loss_rows     per (t, b): dy (and the row's cross-entropy term)
//   loss_part     one thread: a group's loss sum over t, b, o in order (undivided)
//   loss_combine  one thread: the groups' sums in order, divided by N;  add_into: a = a + b
//   mask_mul      out = a * m: the dropout masks between stacked layers (forward and backward)
//   rowsq         per gradient row: +0 + sum_c g*g;  clip_norm: one thread, rows in order
//   sgd, momentum, adam_scalars, adam: the updates of docs/arithmetic.md section 6
// Threads split independent outputs only; every output's own sum is sequential (no atomics, no
// trees, no split-K), which is the whole arithmetic contract for these kernels. The GEMMs and
// rowsq stage their operands in shared memory so that global reads are coalesced.
#include "ls_lstm.cuh"

namespace lsk {

template <class T> __device__ __forceinline__ void gather(LS_GPTR(const T) src, LS_GPTR(const int) idx, LS_GPTR(T) dst,
                                                          int outer, int N, int B, int inner) {
  LS_FOR(e, (long long)outer * B * inner) {
    long long i = e % inner, b = (e / inner) % B, o = e / ((long long)inner * B);
    dst[e] = src[(o * N + idx[b]) * inner + i];
  }
}

// The three GEMMs are one tiled kernel. A block of 256 threads owns a GM x GN tile of outputs;
// thread (tx, ty) keeps an MU x NU micro-tile in registers (rows ty + TY*i, columns tx + TX*j,
// so that neighbouring threads store neighbouring columns). k runs tile by tile, GK at a time
// in ascending order: both operand tiles are staged in shared memory by loads that run along
// whichever index is contiguous in global memory, then every accumulator takes its GK terms in
// order. No split-K (the contract fixes one sequential sum per output), so a GEMM's
// parallelism is its number of output tiles. Three tile shapes, chosen by gemm_shape (and
// mirrored by CudaRawBackend._gemm for the grid; any grid is correct, tiles are grid-strided):
//   64 x 64 (16 x 16 threads, 4 x 4 each) in general;
//   256 x 16 (one column of 256 threads, 1 x 16 each) when C <= 16 (the head, dW_ih for small
//   I), so that a skinny output still keeps all 256 threads busy;
//   16 x 256 (one row of 256 threads, 16 x 1 each) when R <= 16 (dW_out), likewise for rows.
constexpr int GK = 16, GTHREADS = 256, GPITCH = 256 + 2 + 16 + 2;  // the widest PA + PB

// out[r, c] = init + sum_k A(r, k) * B(k, c), with init = +0 (0), bias[c] (1) or out[r, c] (2).
// AK: A(r, k) = A[r * K + k], else A[k * R + r].  BK: B(k, c) = Bm[c * K + k], else Bm[k * C + c].
template <class T, bool AK, bool BK, int TX, int TY, int MU, int NU>
__device__ __forceinline__ void gemm_tiles(LS_GPTR(T) out, LS_GPTR(const T) A,
                                           LS_GPTR(const T) Bm, LS_GPTR(const T) bias, int R,
                                           int K, int C, int init, LS_DYN_SPTR_T(T) As) {
  static_assert(TX * TY == GTHREADS, "one 256-thread block per tile");
  constexpr int GM = TY * MU, GN = TX * NU;
  // Row pitch G + 2 of the shared tiles: the k-contiguous fills (16 k of two rows per warp)
  // and the row-contiguous ones then hit 32 distinct banks.
  constexpr int PA = GM + 2, PB = GN + 2;
  static_assert(PA + PB <= GPITCH, "the tiles fit the shared buffer");
  LS_DYN_SPTR_T(T) Bs = As + GK * PA;
  const int tid = threadIdx.x, tx = tid % TX, ty = tid / TX;
  for (long long r0 = (long long)GM * blockIdx.y; r0 < R; r0 += (long long)GM * gridDim.y)
    for (long long c0 = (long long)GN * blockIdx.x; c0 < C; c0 += (long long)GN * gridDim.x) {
      // This thread's real rows i < mi and columns j < nj: only real outputs are computed and
      // only real operands are staged (loops of constant trip count with a guard, so the
      // micro-tile stays in registers).
      const long long rr = R - r0 - ty, cr = C - c0 - tx;
      const int mi = rr <= 0 ? 0 : rr >= (long long)TY * MU ? MU : int((rr + TY - 1) / TY);
      const int nj = cr <= 0 ? 0 : cr >= (long long)TX * NU ? NU : int((cr + TX - 1) / TX);
      T acc[MU][NU];
      for (int i = 0; i < MU; ++i)
        for (int j = 0; j < NU; ++j)
          if (i < mi && j < nj) {
            long long r = r0 + ty + TY * i, c = c0 + tx + TX * j;
            acc[i][j] = init == 0 ? T(0) : init == 1 ? T(bias[c]) : T(out[r * C + c]);
          }
      for (long long k0 = 0; k0 < K; k0 += GK) {
        for (int e = tid; e < GM * GK; e += GTHREADS) {
          int i = AK ? e / GK : e % GM, kk = AK ? e % GK : e / GM;
          long long r = r0 + i, k = k0 + kk;
          if (r < R && k < K) As[kk * PA + i] = T(AK ? A[r * K + k] : A[k * R + r]);
        }
        for (int e = tid; e < GN * GK; e += GTHREADS) {
          int j = BK ? e / GK : e % GN, kk = BK ? e % GK : e / GN;
          long long c = c0 + j, k = k0 + kk;
          if (c < C && k < K) Bs[kk * PB + j] = T(BK ? Bm[c * K + k] : Bm[k * C + c]);
        }
        __syncthreads();  // both tiles are loaded
        const int kn = K - k0 < GK ? int(K - k0) : GK;  // only real terms: +0 would turn -0 to +0
        for (int kk = 0; kk < kn; ++kk) {
          T a[MU], b[NU];
          for (int i = 0; i < MU; ++i)
            if (i < mi) a[i] = As[kk * PA + ty + TY * i];
          for (int j = 0; j < NU; ++j)
            if (j < nj) b[j] = Bs[kk * PB + tx + TX * j];
          for (int i = 0; i < MU; ++i)
            for (int j = 0; j < NU; ++j)
              if (i < mi && j < nj) acc[i][j] = acc[i][j] + (a[i] * b[j]);
        }
        __syncthreads();  // every thread is done with the tiles before they are refilled
      }
      for (int i = 0; i < MU; ++i)
        for (int j = 0; j < NU; ++j)
          if (i < mi && j < nj) out[(r0 + ty + TY * i) * C + c0 + tx + TX * j] = acc[i][j];
    }
}

// 0: 64 x 64 tiles, 1: 256 x 16 (C <= 16), 2: 16 x 256 (R <= 16).
__device__ __forceinline__ int gemm_shape(int R, int C) { return C <= 16 ? 1 : R <= 16 ? 2 : 0; }

template <class T, bool AK, bool BK>
__device__ __forceinline__ void gemm(LS_GPTR(T) out, LS_GPTR(const T) A, LS_GPTR(const T) Bm,
                                     LS_GPTR(const T) bias, int R, int K, int C, int init) {
  LS_SHARED(T, sm, GK * GPITCH);  // one buffer for whichever shape runs (f64: 35 KiB)
  switch (gemm_shape(R, C)) {
    case 1: gemm_tiles<T, AK, BK, 1, 256, 1, 16>(out, A, Bm, bias, R, K, C, init, sm); break;
    case 2: gemm_tiles<T, AK, BK, 256, 1, 16, 1>(out, A, Bm, bias, R, K, C, init, sm); break;
    default: gemm_tiles<T, AK, BK, 16, 16, 4, 4>(out, A, Bm, bias, R, K, C, init, sm);
  }
}

template <class T> __device__ __forceinline__ void colsum(LS_GPTR(T) out, LS_GPTR(const T) A, int N, int C) {
  LS_FOR(c, C) {
    T acc = T(0);
    for (int n = 0; n < N; ++n) acc = acc + A[(long long)n * C + c];
    out[c] = acc;
  }
}

// Rows (t, b) of the outputs; with last != 0 only t = T-1 carries a loss (dy = 0 elsewhere).
// MSE: d = z - y, dy = (d + d) / N.  CE (labels stored as exact floats): m = max_o z,
// e = exp(z - m), s = +0 + sum_o e, lrow = log(s) - (z_y - m), dy = ((e / s) - onehot) / N.
// N = nt, the number of loss terms of the whole batch (a group of a sharded batch is smaller).
template <class T> __device__ __forceinline__ void loss_rows(LS_GPTR(const T) z, LS_GPTR(const T) y, LS_GPTR(T) dy, LS_GPTR(T) lrow,
                                                             int Tn, int B, int O, int ce,
                                                             int last, int nt) {
  LS_FOR(row, (long long)Tn * B) {
    long long t = row / B, b = row % B;
    LS_GPTR(const T) zr = z + row * O;
    LS_GPTR(T) dr = dy + row * O;
    if (last && t != Tn - 1) {
      for (int o = 0; o < O; ++o) dr[o] = T(0);
      continue;
    }
    long long yrow = last ? b : row;
    const T n = (T)nt;
    if (!ce) {
      for (int o = 0; o < O; ++o) {
        T d = zr[o] - y[yrow * O + o];
        dr[o] = (d + d) / n;
      }
    } else {
      int lab = (int)T(y[yrow]);
      T m = zr[0];
      for (int o = 1; o < O; ++o) m = zr[o] > m ? zr[o] : m;
      T s = T(0);
      for (int o = 0; o < O; ++o) s = s + lockstep::ls_exp<T>(zr[o] - m);
      lrow[row] = lockstep::ls_log<T>(s) - (zr[lab] - m);
      for (int o = 0; o < O; ++o) {
        T p = lockstep::ls_exp<T>(zr[o] - m) / s;
        dr[o] = (p - (o == lab ? T(1) : T(0))) / n;
      }
    }
  }
}

// One thread: group g's loss sum over its terms (t, then b, then o) from +0, not yet divided.
template <class T> __device__ __forceinline__ void loss_part(LS_GPTR(const T) z, LS_GPTR(const T) y, LS_GPTR(const T) lrow,
                                                             LS_GPTR(T) parts, int g, int Tn, int B,
                                                             int O, int ce, int last) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  long long t0 = last ? Tn - 1 : 0;
  T acc = T(0);
  for (long long row = t0 * B; row < (long long)Tn * B; ++row) {
    if (!ce) {
      long long yrow = last ? row - t0 * B : row;
      for (int o = 0; o < O; ++o) {
        T d = z[row * O + o] - y[yrow * O + o];
        acc = acc + (d * d);
      }
    } else {
      acc = acc + lrow[row];
    }
  }
  parts[g] = acc;
}

// One thread: loss = (((L_0 + L_1) + L_2) + ...) / nt over the S groups in order (docs/
// arithmetic.md, "Sharded gradients"; S = 1: L_0 / nt, the unsharded loss).
template <class T> __device__ __forceinline__ void loss_combine(LS_GPTR(const T) parts, int S, int nt,
                                                                LS_GPTR(T) loss) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  T acc = parts[0];
  for (int g = 1; g < S; ++g) acc = acc + parts[g];
  loss[0] = acc / (T)nt;
}

// a = a + b element-wise: a sharded batch's gradient partials, added in group order.
template <class T> __device__ __forceinline__ void add_into(LS_GPTR(T) a, LS_GPTR(const T) b, int n) {
  LS_FOR(e, n) a[e] = a[e] + b[e];
}

// out = a * m element-wise (out may be a): a layer's input x^l = h^{l-1} * m_{l-1}, and
// dh_above * m_l on the way down (docs/arithmetic.md, "Stacked layers").
template <class T> __device__ __forceinline__ void mask_mul(LS_GPTR(T) out, LS_GPTR(const T) a,
                                                            LS_GPTR(const T) m, int n) {
  LS_FOR(e, n) out[e] = a[e] * m[e];
}

// The gradient rows in param_names order (a 1-D tensor: one element a row) over the flat
// layout [W_ih | W_hh | b | W_ih_l1 | W_hh_l1 | b_l1 | ... | W_out | b_out] of L layers, each
// 12H rows (layer 0's W_ih has I columns, the others H), then the head's 2 * O rows.
__device__ __forceinline__ void grad_row(long long r, int I, int H, int O, int L, long long* off,
                                         int* cols) {
  const long long H4 = 4LL * H, RL = 3 * H4 * L, P0 = H4 * (I + H + 1), PL = H4 * (2LL * H + 1);
  if (r < RL) {
    const long long l = r / (3 * H4), q = r % (3 * H4), base = l == 0 ? 0 : P0 + (l - 1) * PL;
    const int K = l == 0 ? I : H;
    if (q < H4) { *off = base + q * K; *cols = K; }
    else if (q < 2 * H4) { *off = base + H4 * K + (q - H4) * H; *cols = H; }
    else { *off = base + H4 * (K + H) + (q - 2 * H4); *cols = 1; }
  } else {
    const long long q = r - RL, oWout = P0 + (L - 1) * PL;
    if (q < O) { *off = oWout + q * H; *cols = H; }
    else { *off = oWout + (long long)O * H + (q - O); *cols = 1; }
  }
}

// A warp per 32 consecutive rows: the long rows' entries come in 32 x 32 chunks, each loaded
// along the row (lane = column, one request per row) into shared memory; then lane l adds the
// chunk of row l in column order. Rows of one entry (b, b_out) are read directly: there
// neighbouring rows are neighbouring addresses. Launch: block 32, any grid.
template <class T> __device__ __forceinline__ void rowsq(LS_GPTR(const T) g, LS_GPTR(T) rows, int I, int H, int O,
                                                         int L) {
  LS_SHARED(T, tile, 32 * 33);
  const int lane = threadIdx.x;
  const long long R = 12LL * H * L + 2LL * O;
  for (long long r0 = 32LL * blockIdx.x; r0 < R; r0 += 32LL * gridDim.x) {
    long long off;
    int cols = 0, maxcols = 0;
    if (r0 + lane < R) grad_row(r0 + lane, I, H, O, L, &off, &cols);
    for (int l = 0; l < 32; ++l) {
      long long o;
      int n = 0;
      if (r0 + l < R) grad_row(r0 + l, I, H, O, L, &o, &n);
      maxcols = n > maxcols ? n : maxcols;
    }
    T acc = T(0);
    if (cols == 1) {
      T v = g[off];
      acc = acc + (v * v);
    }
    for (int c0 = 0; c0 < maxcols && maxcols > 1; c0 += 32) {
      for (int l = 0; l < 32; ++l) {  // row r0 + l, columns c0 + lane
        long long o;
        int n = 0;
        if (r0 + l < R) grad_row(r0 + l, I, H, O, L, &o, &n);
        if (n > 1 && c0 + lane < n) tile[l * 33 + lane] = g[o + c0 + lane];
      }
      __syncthreads();  // the chunk is loaded
      if (cols > 1)
        for (int c = 0; c < 32 && c0 + c < cols; ++c) {
          T v = tile[lane * 33 + c];
          acc = acc + (v * v);
        }
      __syncthreads();  // every lane is done with the chunk before it is refilled
    }
    if (r0 + lane < R) rows[r0 + lane] = acc;
  }
}

// info = (scale, 1) when norm > clip, else (_, 0): the update kernels then use g * scale or g.
template <class T>
__device__ __forceinline__ void clip_norm(LS_GPTR(const T) rows, int R, T clip, LS_GPTR(T) info) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  T acc = T(0);
  for (int r = 0; r < R; ++r) acc = acc + rows[r];
  T norm = lockstep::ls_sqrt(acc);
  if (norm > clip) {
    info[0] = clip / norm;
    info[1] = T(1);
  } else {
    info[1] = T(0);
  }
}

template <class T> __device__ __forceinline__ T clipped(T g, LS_GPTR(const T) info) {
  return info[1] != T(0) ? g * info[0] : g;
}

template <class T> __device__ __forceinline__ void sgd(LS_GPTR(T) p, LS_GPTR(const T) g, int n, T lr,
                                                       LS_GPTR(const T) info) {
  LS_FOR(e, n) p[e] = p[e] - (lr * clipped<T>(g[e], info));
}

template <class T> __device__ __forceinline__ void momentum(LS_GPTR(T) p, LS_GPTR(const T) g, LS_GPTR(T) vel, int n, T lr,
                                                            T mu, LS_GPTR(const T) info) {
  LS_FOR(e, n) {
    T v = (mu * vel[e]) + clipped<T>(g[e], info);
    vel[e] = v;
    p[e] = p[e] - (lr * v);
  }
}

// pw = (b1_pow, b2_pow, step, bc): the running powers and this step's two scalars.
template <class T> __device__ __forceinline__ void adam_scalars(LS_GPTR(T) pw, T b1, T b2, T lr) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  const T one = T(1);
  pw[0] = pw[0] * b1;
  pw[1] = pw[1] * b2;
  pw[2] = lr / (one - pw[0]);
  pw[3] = lockstep::ls_sqrt(one - pw[1]);
}

template <class T> __device__ __forceinline__ void adam(LS_GPTR(T) p, LS_GPTR(const T) g, LS_GPTR(T) m, LS_GPTR(T) v, int n, T b1,
                                                        T b2, T eps, LS_GPTR(const T) pw, LS_GPTR(const T) info) {
  const T one = T(1);
  LS_FOR(e, n) {
    T gg = clipped<T>(g[e], info);
    T mm = (b1 * m[e]) + ((one - b1) * gg);
    T vv = (b2 * v[e]) + ((one - b2) * (gg * gg));
    m[e] = mm;
    v[e] = vv;
    p[e] = p[e] - (pw[2] * (mm / ((lockstep::ls_sqrt(vv) / pw[3]) + eps)));
  }
}

template <class T> __device__ __forceinline__ void fill(LS_GPTR(T) a, int n, T value) {
  LS_FOR(e, n) a[e] = value;
}

}  // namespace lsk

#define LS_COMMON_KERNELS(T, S)                                                                   \
  extern "C" __global__ void gather_##S(const T* src, const int* idx, T* dst, int outer, int N,   \
                                        int B, int inner) {                                       \
    lsk::gather<LS_REAL(T)>(src, idx, dst, outer, N, B, inner);                                            \
  }                                                                                               \
  LS_EXPORT(gather_##S)                                                                           \
  extern "C" __global__ void linear_##S(T* out, const T* x, const T* W, const T* bias, int R,     \
                                        int K, int C, int accumulate) {                           \
    lsk::gemm<LS_REAL(T), true, true>(out, x, W, bias, R, K, C, accumulate ? 2 : 1);              \
  }                                                                                               \
  LS_EXPORT(linear_##S)                                                                           \
  extern "C" __global__ void matmul_nn_##S(T* out, const T* A, const T* Bm, int R, int K, int C,  \
                                           int accumulate) {                                      \
    lsk::gemm<LS_REAL(T), true, false>(out, A, Bm, nullptr, R, K, C, accumulate ? 2 : 0);         \
  }                                                                                               \
  LS_EXPORT(matmul_nn_##S)                                                                        \
  extern "C" __global__ void matmul_tn_##S(T* out, const T* A, const T* Bm, int N, int R, int C) { \
    lsk::gemm<LS_REAL(T), false, false>(out, A, Bm, nullptr, R, N, C, 0);                         \
  }                                                                                               \
  LS_EXPORT(matmul_tn_##S)                                                                        \
  extern "C" __global__ void colsum_##S(T* out, const T* A, int N, int C) {                       \
    lsk::colsum<LS_REAL(T)>(out, A, N, C);                                                                 \
  }                                                                                               \
  LS_EXPORT(colsum_##S)                                                                           \
  extern "C" __global__ void loss_rows_##S(const T* z, const T* y, T* dy, T* lrow, int Tn, int B, \
                                           int O, int ce, int last, int nt) {               \
    lsk::loss_rows<LS_REAL(T)>(z, y, dy, lrow, Tn, B, O, ce, last, nt);                           \
  }                                                                                               \
  LS_EXPORT(loss_rows_##S)                                                                        \
  extern "C" __global__ void loss_part_##S(const T* z, const T* y, const T* lrow, T* parts,       \
                                           int g, int Tn, int B, int O, int ce, int last) {       \
    lsk::loss_part<LS_REAL(T)>(z, y, lrow, parts, g, Tn, B, O, ce, last);                         \
  }                                                                                               \
  LS_EXPORT(loss_part_##S)                                                                        \
  extern "C" __global__ void loss_combine_##S(const T* parts, int S, int nt, T* loss) {           \
    lsk::loss_combine<LS_REAL(T)>(parts, S, nt, loss);                                            \
  }                                                                                               \
  LS_EXPORT(loss_combine_##S)                                                                     \
  extern "C" __global__ void add_into_##S(T* a, const T* b, int n) {                              \
    lsk::add_into<LS_REAL(T)>(a, b, n);                                                           \
  }                                                                                               \
  LS_EXPORT(add_into_##S)                                                                         \
  extern "C" __global__ void mask_mul_##S(T* out, const T* a, const T* m, int n) {                \
    lsk::mask_mul<LS_REAL(T)>(out, a, m, n);                                                      \
  }                                                                                               \
  LS_EXPORT(mask_mul_##S)                                                                         \
  extern "C" __global__ void rowsq_##S(const T* g, T* rows, int I, int H, int O, int L) {         \
    lsk::rowsq<LS_REAL(T)>(g, rows, I, H, O, L);                                                  \
  }                                                                                               \
  LS_EXPORT(rowsq_##S)                                                                            \
  extern "C" __global__ void clip_norm_##S(const T* rows, int R, T clip, T* info) {               \
    lsk::clip_norm<LS_REAL(T)>(rows, R, clip, info);                                                       \
  }                                                                                               \
  LS_EXPORT(clip_norm_##S)                                                                        \
  extern "C" __global__ void sgd_##S(T* p, const T* g, int n, T lr, const T* info) {              \
    lsk::sgd<LS_REAL(T)>(p, g, n, lr, info);                                                               \
  }                                                                                               \
  LS_EXPORT(sgd_##S)                                                                              \
  extern "C" __global__ void momentum_##S(T* p, const T* g, T* vel, int n, T lr, T mu,            \
                                          const T* info) {                                        \
    lsk::momentum<LS_REAL(T)>(p, g, vel, n, lr, mu, info);                                                 \
  }                                                                                               \
  LS_EXPORT(momentum_##S)                                                                         \
  extern "C" __global__ void adam_scalars_##S(T* pw, T b1, T b2, T lr) {                          \
    lsk::adam_scalars<LS_REAL(T)>(pw, b1, b2, lr);                                                         \
  }                                                                                               \
  LS_EXPORT(adam_scalars_##S)                                                                     \
  extern "C" __global__ void adam_##S(T* p, const T* g, T* m, T* v, int n, T b1, T b2, T eps,     \
                                      const T* pw, const T* info) {                               \
    lsk::adam<LS_REAL(T)>(p, g, m, v, n, b1, b2, eps, pw, info);                                           \
  }                                                                                               \
  LS_EXPORT(adam_##S)                                                                             \
  extern "C" __global__ void fill_##S(T* a, int n, T value) { lsk::fill<LS_REAL(T)>(a, n, value); }        \
  LS_EXPORT(fill_##S)

LS_COMMON_KERNELS(float, f32)
LS_COMMON_KERNELS(double, f64)
