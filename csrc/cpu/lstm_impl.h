// The C++ CPU training engine: forward, losses, backpropagation through time, clipping and
// the optimizers, bit for bit the arithmetic of docs/arithmetic.md (see docs/cpu.md).
//
// This file is included by each kernel unit (kernels_base/avx2/avx512.cpp) INSIDE an anonymous
// namespace, after the system headers, so that each instruction set gets its own private copy
// of every function (no inline function compiled with -mavx2 can be picked by the linker for
// the baseline unit). It must not use std:: templates on its own types for the same reason.
//
// Layouts (H rounded up to Hp, a multiple of kGB = 4 kUB, so every column tile is full; kUB = 8
// units with 32-byte vectors, 16 with 64-byte ones):
//   gate columns, "permuted": unit u of gate q sits at column (u/kUB)*kGB + q*kUB + u%kUB, so
//     one kGB-column block holds the i, f, g, o pre-activations of kUB hidden units: a thread that
//     owns a block can run the cell update right after its part of the recurrent product.
//   da, dW_ih^T, dW_hh^T: natural gate order (j = q*H + u), rows padded to Gn columns.
// Parallelism: only independent outputs are split between threads (row tiles x column tiles);
// every output's k-sum runs in one register, sequentially, in the documented order, as
// separate multiply and add (the kernels are compiled with -ffp-contract=off).

#define LS_AI inline __attribute__((always_inline))

typedef std::int64_t i64;
typedef std::ptrdiff_t idx_t;

// ---- small owning buffer (zero-filled, 64-byte aligned) --------------------------------------

template <class T>
struct Buf {
  T* p = nullptr;
  i64 n = 0;
  Buf() {}
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  ~Buf() { std::free(p); }
  // Grow to at least m elements (contents are not kept); new memory is zeroed.
  void reserve(i64 m) {
    if (m <= n) return;
    std::free(p);
    i64 bytes = ((m * (i64)sizeof(T) + 63) / 64) * 64;
    p = static_cast<T*>(std::aligned_alloc(64, (std::size_t)bytes));
    if (!p) throw std::bad_alloc();
    std::memset(p, 0, (std::size_t)bytes);
    n = m;
  }
  void zero() {
    if (p) std::memset(p, 0, (std::size_t)(n * (i64)sizeof(T)));
  }
  T* data() { return p; }
};

// ---- vectors (GCC/Clang vector extensions; split into halves where the ISA is narrower) -------
// LS_VEC_BYTES wide: 32 unless the unit sets it (the AVX-512 unit: 64). Every lane is one output
// or one element with its own expression, so the bits cannot depend on the width (tested).
#ifndef LS_VEC_BYTES
#define LS_VEC_BYTES 32
#endif

template <class T> struct Vec;
template <> struct Vec<float> {
  typedef float V __attribute__((vector_size(LS_VEC_BYTES)));
  static constexpr int L = LS_VEC_BYTES / 4;
};
template <> struct Vec<double> {
  typedef double V __attribute__((vector_size(LS_VEC_BYTES)));
  static constexpr int L = LS_VEC_BYTES / 8;
};

// Gate blocks: kUB hidden units per block (one float vector), so a block is kGB = 4 kUB
// permuted gate columns (i, f, g, o of its units).
constexpr int kUB = LS_VEC_BYTES / 4;
constexpr int kGB = 4 * kUB;

template <class T> LS_AI typename Vec<T>::V vload(const T* p) {
  typename Vec<T>::V v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
template <class T> LS_AI void vstore(T* p, typename Vec<T>::V v) { __builtin_memcpy(p, &v, sizeof v); }
// Register tile: NV vectors of columns, MR rows. C[r, c] = init + sum_k A1[r,k]*B1[k,c]
// (k ascending) + sum_k A2[r,k]*B2[k,c] (k ascending), one accumulator per output.
// init: mode 0 = +0, 1 = S[r, c], 2 = C[r, c] (continue an earlier partial sum).
struct Seg {
  const void* A;
  idx_t ars, acs;  // A[r, k] = A[r*ars + k*acs]
  const void* B;
  idx_t ldb;       // B[k, c] = B[k*ldb + c]
  idx_t K;
};

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Warray-bounds"  // a segment with K = 0 has a null A
template <class T, int MR, int NV>
LS_AI void micro(int mode, T* C, idx_t ldc, const T* S, idx_t lds, const Seg& s1, const Seg& s2) {
  typedef typename Vec<T>::V V;
  constexpr int L = Vec<T>::L;
  V acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) {
      if (mode == 0) acc[r][v] = V{};
      else if (mode == 1) acc[r][v] = vload<T>(S + r * lds + v * L);
      else acc[r][v] = vload<T>(C + r * ldc + v * L);
    }
  const Seg* segs[2] = {&s1, &s2};
  for (int si = 0; si < 2; ++si) {
    const Seg& s = *segs[si];
    const T* A = static_cast<const T*>(s.A);
    const T* B = static_cast<const T*>(s.B);
#pragma GCC unroll 4
    for (idx_t k = 0; k < s.K; ++k) {
      V bv[NV];
      for (int v = 0; v < NV; ++v) bv[v] = vload<T>(B + k * s.ldb + v * L);
      for (int r = 0; r < MR; ++r) {
        const T a = A[r * s.ars + k * s.acs];
        for (int v = 0; v < NV; ++v) acc[r][v] = acc[r][v] + (a * bv[v]);
      }
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) vstore(C + r * ldc + v * L, acc[r][v]);
}

#pragma GCC diagnostic pop

// Register tile: 6 rows x kNV vectors. AVX2 (kNV = 2: 16 floats / 8 doubles): 12 accumulators,
// plus 2 B vectors and 1 broadcast, 15 of the 16 registers, so the B row is loaded once per k
// (8 loads for 12 multiplies and 12 adds: the multiply and add pipes, not the loads, set the
// pace). AVX-512 (LS_NV = 4: 64 floats / 32 doubles, one gate block of floats): 24
// accumulators + 4 + 1 of the 32 registers, half the broadcasts per multiply.
#ifndef LS_NV
#define LS_NV 2
#endif
constexpr int kNV = LS_NV;
constexpr int kMR = 6;
template <class T> constexpr int col_tile() { return kNV * Vec<T>::L; }

// rows [0, m) of one column tile; tail rows use smaller tiles.
template <class T>
void tile_rows(idx_t m, int mode, T* C, idx_t ldc, const T* S, idx_t lds, Seg s1, Seg s2) {
  idx_t r = 0;
  auto adv = [](Seg s, idx_t rows) {
    if (s.K > 0) s.A = static_cast<const T*>(s.A) + rows * s.ars;
    return s;
  };
  for (; r + kMR <= m; r += kMR)
    micro<T, kMR, kNV>(mode, C + r * ldc, ldc, S ? S + r * lds : S, lds, adv(s1, r), adv(s2, r));
  const T* Sr = S ? S + r * lds : S;
  switch (m - r) {
    case 5: micro<T, 5, kNV>(mode, C + r * ldc, ldc, Sr, lds, adv(s1, r), adv(s2, r)); break;
    case 4: micro<T, 4, kNV>(mode, C + r * ldc, ldc, Sr, lds, adv(s1, r), adv(s2, r)); break;
    case 3: micro<T, 3, kNV>(mode, C + r * ldc, ldc, Sr, lds, adv(s1, r), adv(s2, r)); break;
    case 2: micro<T, 2, kNV>(mode, C + r * ldc, ldc, Sr, lds, adv(s1, r), adv(s2, r)); break;
    case 1: micro<T, 1, kNV>(mode, C + r * ldc, ldc, Sr, lds, adv(s1, r), adv(s2, r)); break;
    default: break;
  }
}

// rows [0, m) of one column tile, A packed by row tiles: A[r, k] = Ap[(r / kMR) * art +
// k * kMR + r % kMR] (art: elements per row tile).
template <class T>
void tile_rows_packed(idx_t m, int mode, T* C, idx_t ldc, const T* Ap, idx_t art, const T* B,
                      idx_t ldb, idx_t K) {
  const Seg none{nullptr, 0, 0, nullptr, 0, 0};
  idx_t r = 0;
  for (; r + kMR <= m; r += kMR)
    micro<T, kMR, kNV>(mode, C + r * ldc, ldc, nullptr, 0,
                       Seg{Ap + (r / kMR) * art, 1, kMR, B, ldb, K}, none);
  const Seg s{Ap + (r / kMR) * art, 1, kMR, B, ldb, K};
  switch (m - r) {
    case 5: micro<T, 5, kNV>(mode, C + r * ldc, ldc, nullptr, 0, s, none); break;
    case 4: micro<T, 4, kNV>(mode, C + r * ldc, ldc, nullptr, 0, s, none); break;
    case 3: micro<T, 3, kNV>(mode, C + r * ldc, ldc, nullptr, 0, s, none); break;
    case 2: micro<T, 2, kNV>(mode, C + r * ldc, ldc, nullptr, 0, s, none); break;
    case 1: micro<T, 1, kNV>(mode, C + r * ldc, ldc, nullptr, 0, s, none); break;
    default: break;
  }
}

// ---- canonical sigmoid / tanh on vectors ----------------------------------------------------
// Lane-wise the same expression trees as lockstep::ls_sigmoid / ls_tanh (canonical.h): every
// branch is computed on sanitized inputs and selected, as arith.py does with np.where. floor()
// is exact through truncation (|v| < 2^22 on every lane that is kept); abs and copysign work on
// the bits. tests/test_cpu_engine.py compares them with the scalar functions bit for bit.
template <class T> struct VI;
template <> struct VI<float> {
  typedef std::int32_t I __attribute__((vector_size(LS_VEC_BYTES)));
  typedef std::uint32_t U __attribute__((vector_size(LS_VEC_BYTES)));
  static constexpr std::uint32_t kSign = 0x80000000u;
  static constexpr int kMant = 23, kBias = 127;
};
template <> struct VI<double> {
  typedef std::int64_t I __attribute__((vector_size(LS_VEC_BYTES)));
  typedef std::uint64_t U __attribute__((vector_size(LS_VEC_BYTES)));
  static constexpr std::uint64_t kSign = 0x8000000000000000ull;
  static constexpr int kMant = 52, kBias = 1023;
};

template <class T> struct VM {
  typedef typename Vec<T>::V V;
  typedef typename VI<T>::I I;
  typedef typename VI<T>::U U;
  typedef lockstep::Consts<T> C;

  static LS_AI V bc(T a) { return V{} + a; }  // broadcast (x + 0 == x for every x but -0)
  static LS_AI V splat(T a) {
    V v;
    for (int i = 0; i < Vec<T>::L; ++i) v[i] = a;
    return v;
  }
  static LS_AI U bits(V v) { return (U)v; }
  static LS_AI V from_bits(U u) { return (V)u; }
  static LS_AI V sel(I m, V a, V b) { return m ? a : b; }  // m lanes are 0 or -1
  static LS_AI bool any(I m) {  // some lane of m is set (no arithmetic: an OR of the bits)
    std::uint64_t w[LS_VEC_BYTES / 8], o = 0;
    __builtin_memcpy(w, &m, sizeof w);
    for (int i = 0; i < LS_VEC_BYTES / 8; ++i) o |= w[i];
    return o != 0;
  }
  static LS_AI V vabs(V x) { return from_bits(bits(x) & ~U{} >> 1); }
  static LS_AI V vfloor(V v) {  // exact for |v| < 2^22
    V t = __builtin_convertvector(__builtin_convertvector(v, I), V);
    return sel(t > v, t - splat(T(1)), t);
  }
  static LS_AI V pow2(I k) {
    return from_bits((U)((k + (typename VI<T>::I){} + VI<T>::kBias) << VI<T>::kMant));
  }
  // Cody-Waite reduction; returns k as integer lanes.
  static LS_AI I reduce(V x, V* r, V* corr) {
    V k = vfloor((x * splat(C::log2e())) + splat(T(0.5)));
    V hi = x - (k * splat(C::ln2_hi()));
    V lo = k * splat(C::ln2_lo());
    *r = hi - lo;
    *corr = (hi - *r) - lo;
    return __builtin_convertvector(k, I);
  }
  static LS_AI V tail(V r, V corr) {
    V p = splat(C::exp_coeff(C::kExpCoeffs - 1));
    for (int i = C::kExpCoeffs - 2; i >= 0; --i) p = splat(C::exp_coeff(i)) + (r * p);
    return ((r * r) * p) + (corr + (corr * r));
  }
  static LS_AI void fts(V a, V b, V* s, V* e) {
    *s = a + b;
    *e = (a - *s) + b;
  }
  static LS_AI void scaled_expm1(V a, V s, V r, V corr, V* hi, V* lo) {
    V h, e;
    fts(a, s * r, &h, &e);
    fts(h, e + (s * tail(r, corr)), hi, lo);
  }
  static LS_AI void exp_dw(V x, V* hi, V* lo) {
    V r, corr, ph, pl;
    I k = reduce(x, &r, &corr);
    scaled_expm1(splat(T(1)), splat(T(1)), r, corr, &ph, &pl);
    I k1 = k >> 1;
    V s1 = pow2(k1), s2 = pow2(k - k1);
    *hi = (ph * s1) * s2;
    *lo = (pl * s1) * s2;
  }
  static LS_AI V div_dw(V nh, V nl, V dh, V dl) {
    V q = nh / dh;
    return q + ((nl - (q * dl)) / dh);
  }
  static LS_AI V sigmoid(V x) {
    const V zero = V{}, one = splat(T(1));
    I nan = x != x;
    V m = -vabs(x);
    I in = m >= splat(C::exp_lo());
    V eh, el;
    exp_dw(sel(in, m, zero), &eh, &el);
    eh = sel(in, eh, zero);
    el = sel(in, el, zero);
    V dh, dl;
    fts(one, eh, &dh, &dl);
    dl = dl + el;
    I pos = x >= zero;
    V y = div_dw(sel(pos, one, eh), sel(pos, zero, el), dh, dl);
    return sel(nan, x, y);
  }
  static LS_AI V tanh(V x) {
    const V zero = V{}, one = splat(T(1)), two = splat(T(2));
    I nan = x != x;
    V a = vabs(x);
    I mid = a < splat(C::tanh_mid());
    I low = a < splat(C::tanh_lo());
    I far = a >= splat(C::tanh_one());
    // Each branch is evaluated only when some lane selects it (a branch no lane keeps cannot
    // change the result: the selects below discard it).
    // |x| < tanh_mid: t = expm1(u), u = -(a+a) or a+a
    V y_near = zero;
    if (any(mid)) {
      V u = sel(mid, sel(low, -(a + a), a + a), zero);
      V r, corr;
      V s = pow2(reduce(u, &r, &corr));
      V th, tl;
      scaled_expm1(s - one, s, r, corr, &th, &tl);
      V dh, dl;
      fts(two, th, &dh, &dl);
      dl = dl + tl;
      y_near = div_dw(sel(low, -th, th), sel(low, -tl, tl), dh, dl);
    }
    // tanh_mid <= |x| < tanh_one: 1 - 2/(E+1), E = exp(a+a)
    I high = ~mid & ~far & ~nan;
    V y_high = zero;
    if (any(high)) {
      V eh, el;
      exp_dw(sel(high, a + a, zero), &eh, &el);
      V d2h, d2l;
      fts(eh, one, &d2h, &d2l);
      y_high = one - div_dw(two, zero, d2h, d2l + el);
    }
    V y = sel(mid, y_near, sel(far, one, y_high));
    y = from_bits((bits(y) & ~U{} >> 1) | (bits(x) & (U{} + VI<T>::kSign)));
    return sel(nan, x, y);
  }
};

LS_AI void split(i64 n, int tid, int nth, i64* lo, i64* hi) {
  *lo = n * tid / nth;
  *hi = n * (tid + 1) / nth;
}

inline i64 round_up(i64 a, i64 m) { return (a + m - 1) / m * m; }

template <class T>
class EngineImpl final : public lockstep_cpu::Engine<T> {
  // One LSTM layer: where its tensors sit in the flat buffers, its kernel layouts and the
  // caches of the last forward pass (backward needs every layer's).
  struct Layer {
    i64 K = 0;                     // input size: I for layer 0, H above
    i64 off[3] = {0, 0, 0};        // W_ih, W_hh, b in the flat buffers
    Buf<T> WihT, WhhT, bp, Whh;    // kernel layouts of the parameters (see repack)
    Buf<T> Wih;                    // layer > 0: W_ih like Whh, for the layer below's dh_above
    Buf<T> gates, hb, cb, tc;      // activated gates, h and c (from step -1), tanh(c)
    Buf<T> xin;                    // layer > 0 with dropout: its input h^{l-1} * m_{l-1}
  };

 public:
  EngineImpl(const lockstep_cpu::Config& cfg, int* threads) : cfg_(cfg), threads_(threads) {
    I_ = cfg.I, H_ = cfg.H, O_ = cfg.O, L_ = cfg.num_layers;
    Hp_ = round_up(H_, kGB);
    G_ = 4 * Hp_;
    // da rows: 4H rounded up to whole column tiles, plus 64 bytes so that the row stride is
    // never a multiple of 4 KiB (walking down a column tile would hit one cache set).
    Gn_ = round_up(4 * H_, kGB) + 64 / (i64)sizeof(T);
    Kmax_ = L_ > 1 && H_ > I_ ? H_ : I_;
    // Tensors in param_names(L) order: W_ih, W_hh, b of each layer bottom up, W_out, b_out.
    NT_ = 3 * L_ + 2;
    off_.reserve(NT_);
    size_.reserve(NT_);
    layers_ = new Layer[L_];
    i64 o = 0;
    for (i64 t = 0; t < NT_; ++t) {
      const i64 l = t / 3, K = l == 0 ? I_ : H_;
      const i64 sizes[5] = {4 * H_ * K, 4 * H_ * H_, 4 * H_, O_ * H_, O_};
      const i64 kind = t < 3 * L_ ? t % 3 : 3 + (t - 3 * L_);
      if (kind < 3) layers_[l].K = K, layers_[l].off[kind] = o;
      off_.p[t] = o;
      size_.p[t] = sizes[kind];
      o += sizes[kind];
    }
    P_ = o;
    for (int s = 0; s < lockstep_cpu::kNumSlots; ++s) slots_[s].reserve(P_);
    grad_.reserve(P_);
    rows_.reserve(12 * H_ * L_ + 2 * O_);
    for (i64 l = 0; l < L_; ++l) {
      Layer& ly = layers_[l];
      ly.WihT.reserve(ly.K * G_);
      ly.WhhT.reserve(H_ * G_);
      ly.bp.reserve(G_);
      ly.Whh.reserve(4 * H_ * Hp_);
      if (l > 0) ly.Wih.reserve(4 * H_ * Hp_);
    }
    Wout_.reserve(O_ * Hp_);
    bout_.reserve(O_);
    dWihT_.reserve(Kmax_ * Gn_);
    dWhhT_.reserve(H_ * Gn_);
    db_.reserve(Gn_);
    dWout_.reserve(O_ * Hp_);
    b1_pow_ = T(1);
    b2_pow_ = T(1);
    const char* pe = std::getenv("LOCKSTEP_CPU_PROFILE");
    prof_on_ = pe && *pe && *pe != '0';
    params_changed();
  }
  ~EngineImpl() override { delete[] layers_; }

  T* slot(int s) override { return slots_[s].data(); }
  i64 offset(int t) const override { return off_.p[t]; }
  i64 size(int t) const override { return size_.p[t]; }
  i64& step() override { return step_; }
  T& b1_pow() override { return b1_pow_; }
  T& b2_pow() override { return b2_pow_; }

  i64 bytes() const override {
    i64 n = 0;
    for (int s = 0; s < lockstep_cpu::kNumSlots; ++s) n += slots_[s].n;
    for (i64 l = 0; l < L_; ++l) {
      const Layer& ly = layers_[l];
      n += ly.WihT.n + ly.WhhT.n + ly.bp.n + ly.Whh.n + ly.Wih.n + ly.gates.n + ly.hb.n + ly.cb.n +
           ly.tc.n + ly.xin.n;
    }
    n += grad_.n + rows_.n + Wout_.n + dWihT_.n + dWhhT_.n + db_.n + dWout_.n + da_.n + hT_.n +
         xT_.n + out_.n + dy_.n + lterm_.n + xb_.n + bout_.n + yf_.n + dh_.n + dha_.n + dcn_.n +
         wpack_.n + gacc_.n + gpart_.n;
    return n * (i64)sizeof(T) + (yi_.n + off_.n + size_.n) * (i64)sizeof(i64);
  }

  // Kernel layouts from the natural parameters (exact copies), packed in panels so that a
  // column tile's rows are contiguous (no cache-set conflicts from large power-of-2 strides):
  //   WihT[ub][c/CW][k][CW], WhhT[ub][c/CW][k][CW]: transposed, permuted gate columns, per
  //     unit block and column tile (each tile's k rows are one contiguous stream);
  //   Whh[ct][j][CW], Wih (layers > 0), Wout_[ct][o][CW]: natural rows, hidden-unit columns
  //     per column tile.
  void params_changed() override { repack(0, 1); }
  void repack(int tid, int nth) {
    constexpr int CW = col_tile<T>();
    const T* p = slots_[lockstep_cpu::kParams].data();
    i64 lo, hi, tlo, thi;
    my_gate_tiles(tid, nth, &tlo, &thi, &lo, &hi);
    for (i64 l = 0; l < L_; ++l) {
      Layer& ly = layers_[l];
      const i64 K = ly.K;
      const T *Wih = p + ly.off[0], *Whh = p + ly.off[1], *b = p + ly.off[2];
      // The transposed panels by runs of rows j of one gate and one unit block, which sit at
      // consecutive columns of one tile: k outside, the run inside, so each k writes one
      // contiguous piece of a panel row (a column at a time would touch a cache line per write).
      for (i64 j0 = lo; j0 < hi;) {
        const i64 q = j0 / H_, u = j0 % H_;
        i64 j1 = q * H_ + (u / kUB + 1) * kUB;
        j1 = j1 < (q + 1) * H_ ? j1 : (q + 1) * H_;
        j1 = j1 < hi ? j1 : hi;
        const i64 col = perm(j0), ub = col / kGB, cc = col % kGB;
        const i64 hc = cc / CW, c = cc % CW;  // column tile within the block, column in it
        T* dih = ly.WihT.p + ub * K * kGB + hc * K * CW + c;
        T* dhh = ly.WhhT.p + ub * H_ * kGB + hc * H_ * CW + c;
        for (i64 k = 0; k < K; ++k)
          for (i64 j = j0; j < j1; ++j) dih[k * CW + (j - j0)] = Wih[j * K + k];
        for (i64 k = 0; k < H_; ++k)
          for (i64 j = j0; j < j1; ++j) dhh[k * CW + (j - j0)] = Whh[j * H_ + k];
        j0 = j1;
      }
      for (i64 j = lo; j < hi; ++j) {
        for (i64 k = 0; k < H_; ++k) ly.Whh.p[(k / CW) * 4 * H_ * CW + j * CW + k % CW] = Whh[j * H_ + k];
        if (l > 0)
          for (i64 k = 0; k < H_; ++k) ly.Wih.p[(k / CW) * 4 * H_ * CW + j * CW + k % CW] = Wih[j * H_ + k];
        ly.bp.p[perm(j)] = b[j];
      }
    }
    const T* Wout = p + off_.p[3 * L_];
    const i64 nch = Hp_ / CW;
    my_head_items(tid, nth, &lo, &hi);
    for (i64 ct = lo; ct < hi; ++ct) {
      if (ct == nch) {
        for (i64 o = 0; o < O_; ++o) bout_.p[o] = p[off_.p[3 * L_ + 1] + o];
        continue;
      }
      const i64 k1 = (ct + 1) * CW < H_ ? (ct + 1) * CW : H_;
      for (i64 o = 0; o < O_; ++o)
        for (i64 k = ct * CW; k < k1; ++k) Wout_.p[ct * O_ * CW + o * CW + k % CW] = Wout[o * H_ + k];
    }
  }

  void train_epoch(const T* x, int Tn, i64 N, const void* y, const i64* idx, const i64* off,
                   int nbatch, const T* const* masks, T* losses) override {
    i64 bmax = 0;
    bool any_mask = false;
    for (int b = 0; b < nbatch; ++b) {
      bmax = off[b + 1] - off[b] > bmax ? off[b + 1] - off[b] : bmax;
      any_mask = any_mask || (masks && masks[b]);
    }
    ensure(Tn, bmax, any_mask);  // every buffer of the epoch, before the first step
    update_cap();
    for (int bi = 0; bi < nbatch; ++bi) {
      const i64 B = off[bi + 1] - off[bi];
      const T* mk = masks ? masks[bi] : nullptr;
      if (cfg_.grad_shards == 1) {
        gather(x, Tn, N, y, idx + off[bi], B);
        losses[bi] = train_step(Tn, B, Drop{mk, B});
        continue;
      }
      // Groups of q or q + 1 samples, partials added in group order (arithmetic.md); a group
      // reads its samples' columns of the batch's masks.
      const i64 S = cfg_.grad_shards, q = B / S, r = B % S, nt = nterms(Tn, B);
      gacc_.reserve(P_);
      gpart_.reserve(P_);
      T lsum = T(0);
      for (i64 g = 0; g < S; ++g) {
        const i64 lo = g * q + (g < r ? g : r), Bg = q + (g < r ? 1 : 0);
        const Drop d{mk ? mk + lo * H_ : nullptr, B};
        const T ls = group_partial(x, Tn, N, y, idx + off[bi] + lo, Bg, nt, d, g ? gpart_.p : gacc_.p);
        if (g == 0) {
          lsum = ls;
          continue;
        }
        lsum = lsum + ls;
        for (i64 i = 0; i < P_; ++i) gacc_.p[i] = gacc_.p[i] + gpart_.p[i];
      }
      apply_grads(gacc_.p);
      losses[bi] = lsum / T(nt);
    }
  }

  T shard_partial(const T* x, int Tn, i64 N, const void* y, const i64* ix, i64 B, i64 nt,
                  const T* mask, T* g) override {
    return group_partial(x, Tn, N, y, ix, B, nt, Drop{mask, B}, g);
  }

  void apply_grads(const T* g) override {
    if (g != grad_.p) std::memcpy(grad_.p, g, sizeof(T) * (std::size_t)P_);
    bool scaled = false;
    T scale = T(0);
    // element-wise over P_ values: one thread per 2^16 of them at most (adaptive), as nthreads
    const int n = threads_[0] > 0 ? threads_[0] : 1;
    const i64 k = P_ >> 16;
    const int nt = threads_[1] <= 0 ? n : (k < 1 ? 1 : k < n ? (int)k : n);
#pragma omp parallel num_threads(nt)
    {
      const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
      clip_and_update(tid, nth, &scaled, &scale);
      repack(tid, nth);  // the rows this thread updated
    }
    finish_step();
  }

  T forward_only(const T* x, int Tn, i64 N, const void* y, T* out) override {
    ensure(Tn, N, false);
    if (nthreads(Tn, N, false) > 1) update_cap();
    if (y) {
      if (cfg_.loss == 0) set_targets_f(static_cast<const T*>(y), Tn, N);
      else set_targets_i(static_cast<const i64*>(y), Tn, N);
    }
    const i64 nt = nterms(Tn, N);
#pragma omp parallel num_threads(nthreads(Tn, N, false))
    {
      const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
      forward(x, Tn, N, Drop{nullptr, N}, tid, nth);
      if (y) for_my_rows(Tn, N, tid, nth, [&](i64 n0, i64 n1) { loss_rows(Tn, N, nt, n0, n1); });
    }
    if (out) std::memcpy(out, out_.p, sizeof(T) * (std::size_t)(Tn * N * O_));
    return y ? loss_total(Tn, N) / T(nt) : T(0);
  }

 private:
  // Dropout masks of the samples being trained: m_l[t][b][k] at p[((l*Tn + t)*ld + b)*H + k]
  // (ld: the sample count of the minibatch the masks were drawn for, which is larger than B
  // for a group of a sharded batch); p = nullptr: no dropout.
  struct Drop {
    const T* p;
    i64 ld;
  };
  const T* mask_row(const Drop& d, i64 l, int Tn, i64 B, i64 n) const {
    return d.p + ((l * Tn + n / B) * d.ld + n % B) * H_;
  }

  // natural gate row j -> permuted gate column
  i64 perm(i64 j) const {
    const i64 q = j / H_, u = j % H_;
    return (u / kUB) * kGB + q * kUB + u % kUB;
  }
  // The work items of one thread in the recurrence and BPTT: (row tile rt, column block col)
  // for it in [lo, hi) (item()); a tile's rows are rb + rt*kMR .. min(rb + (rt+1)*kMR, re).
  // With at least two row tiles per thread (by_rows, by_owner's rule) each thread gets an equal
  // share of whole rows (no barriers needed between steps), and its row tiles run inside each
  // column block: the block's weight panel then comes from memory once a step and from L1/L2
  // for the other tiles (at f64 H = 1024, W_hh is 32 MiB: row tiles outside would stream it
  // from L3 once per tile). Otherwise all items of all rows are split (rb = 0, re = B).
  struct Plan {
    i64 lo, hi, rb, re, nrt, ncol;
    bool by_rows;
    LS_AI void item(i64 it, i64* rt, i64* col) const {
      if (by_rows) *col = it / nrt, *rt = it % nrt;
      else *rt = it / ncol, *col = it % ncol;
    }
  };
  static Plan plan_rows(i64 B, i64 ncol, int tid, int nth) {
    Plan p;
    p.ncol = ncol;
    p.by_rows = by_owner(B, nth);
    if (p.by_rows) {
      split(B, tid, nth, &p.rb, &p.re);
      p.nrt = (p.re - p.rb + kMR - 1) / kMR;
      p.lo = 0, p.hi = p.nrt * ncol;
      return p;
    }
    p.rb = 0, p.re = B, p.nrt = (B + kMR - 1) / kMR;
    split(p.nrt * ncol, tid, nth, &p.lo, &p.hi);
    return p;
  }
  // Whether each thread owns whole samples for the whole step (plan_rows' rule: at least two row
  // tiles per thread). Then every phase that works row by row (input projection, recurrence,
  // dropout copies, head, loss, packing, BPTT) runs on the rows n = t*B + b of the thread's
  // samples [rb, re) = split(B), and none of them waits for another thread.
  static bool by_owner(i64 B, int nth) { return (B + kMR - 1) / kMR >= 2 * nth; }
  // Calls f(n0, n1) for this thread's ranges of rows n = t*B + b in the row-wise phases: its
  // samples at every step under by_owner, else an equal share of the T*B rows (and the phase
  // that reads other threads' rows waits at a barrier first).
  template <class F>
  static void for_my_rows(int Tn, i64 B, int tid, int nth, F f) {
    i64 lo, hi;
    if (by_owner(B, nth)) {
      split(B, tid, nth, &lo, &hi);
      if (lo < hi)
        for (int t = 0; t < Tn; ++t) f((i64)t * B + lo, (i64)t * B + hi);
      return;
    }
    split((i64)Tn * B, tid, nth, &lo, &hi);
    if (lo < hi) f(lo, hi);
  }
  // This thread's column tiles of da, [*lo, *hi): it computes their weight gradients, and then
  // for the gate rows j they hold ([*jlo, *jhi) of the 4H, natural order) the natural layout,
  // the optimizer and the repacking, with no barrier in between (the same partition throughout).
  void my_gate_tiles(int tid, int nth, i64* lo, i64* hi, i64* jlo, i64* jhi) const {
    const i64 cw = col_tile<T>(), G4 = 4 * H_;
    split(Gn_ / cw, tid, nth, lo, hi);
    *jlo = *lo * cw < G4 ? *lo * cw : G4;
    *jhi = *hi * cw < G4 ? *hi * cw : G4;
  }
  // This thread's items of the head, [*lo, *hi) of Hp_ / CW + 1: column tiles of W_out (hidden
  // units ct*CW ..), and the last item b_out; as above from the gradients to the repacking.
  void my_head_items(int tid, int nth, i64* lo, i64* hi) const {
    split(Hp_ / col_tile<T>() + 1, tid, nth, lo, hi);
  }
  // threads_[0]: the thread count; threads_[1]: below this many MFLOP of matrix products per
  // call, one thread (the barriers would cost more than they save; 0 = always threads_[0]).
  // The thread count of one call (docs/cpu.md, "Parallelism and threads"). threads_[1] = 0:
  // always threads_[0]. Otherwise (the default) as many threads as the work pays for, at most
  // threads_[0]: one per threads_[1] MFLOP of matrix products in the call (training: forward,
  // dh and weight gradients, 3x the forward), and, when the samples are too few for every
  // thread to own two row tiles (then the threads meet at a barrier every time step), at most
  // one per MFLOP of a time step. A forward over one window (predict) thus runs on one thread.
  int nthreads(int Tn, i64 B, bool train = true) const {
    const int n = threads_[0] > 0 ? threads_[0] : 1;
    if (threads_[1] <= 0 || n == 1) return n;
    const double fwd = 2e-6 * (double)Tn * (double)B * 4.0 * (double)H_ *
                       (double)((H_ + I_) + (L_ - 1) * 2 * H_);
    const double mflop = train ? 3 * fwd : fwd;
    double k = mflop / threads_[1];
    if (k > n) k = n;
    const i64 nrt = (B + kMR - 1) / kMR;
    if ((double)nrt < 2 * k && mflop / Tn < k) k = mflop / Tn;
    if (k > cap_) k = cap_;
    return k < 1 ? 1 : (int)k;
  }
  // Adaptive rule, at the start of an epoch or a forward: the processors other processes
  // leave free, from the kernel's count of running tasks (/proc/stat procs_running, which
  // counts this thread): a barrier with a thread that has no processor costs a time slice.
  void update_cap() {
    cap_ = 1 << 30;
    if (threads_[1] <= 0 || threads_[0] <= 1) return;
    std::FILE* f = std::fopen("/proc/stat", "r");
    if (!f) return;
    char line[256];
    long running = -1;
    while (std::fgets(line, sizeof line, f))
      if (std::strncmp(line, "procs_running ", 14) == 0) running = std::atol(line + 14);
    std::fclose(f);
    const long procs = omp_get_num_procs();
    if (running >= 1) cap_ = (int)(procs - (running - 1) < 1 ? 1 : procs - (running - 1));
  }
  int cap_ = 1 << 30;

  static constexpr i64 kWKC = 256;  // K block (samples) of the weight-gradient products
  void ensure(int Tn, i64 B, bool masks) {
    const i64 TB = (i64)Tn * B;
    wpack_.reserve((i64)(threads_[0] > 1 ? threads_[0] : 1) * kWKC * col_tile<T>());
    for (i64 l = 0; l < L_; ++l) {
      Layer& ly = layers_[l];
      ly.gates.reserve(TB * G_);
      ly.hb.reserve((TB + B) * Hp_);
      ly.cb.reserve((TB + B) * Hp_);
      ly.tc.reserve(TB * Hp_);
      if (l > 0 && masks) ly.xin.reserve(TB * Hp_);
    }
    da_.reserve(TB * Gn_);
    hT_.reserve(TB * round_up(H_, kMR));
    xT_.reserve(TB * round_up(Kmax_, kMR));
    out_.reserve(TB * O_);
    dy_.reserve(TB * O_);
    lterm_.reserve(TB * O_);
    xb_.reserve(TB * I_);
    if (cfg_.loss == 0) yf_.reserve(TB * O_);
    else yi_.reserve(TB);
    dh_.reserve(B * Hp_);
    dcn_.reserve(B * Hp_);
    if (L_ > 1) dha_.reserve(TB * Hp_);
  }

  void gather(const T* x, int Tn, i64 N, const void* y, const i64* ix, i64 B) {
    for (int t = 0; t < Tn; ++t)
      for (i64 b = 0; b < B; ++b)
        std::memcpy(xb_.p + ((i64)t * B + b) * I_, x + ((i64)t * N + ix[b]) * I_, sizeof(T) * (std::size_t)I_);
    const int Ty = cfg_.loss_all ? Tn : 1;
    if (cfg_.loss == 0) {
      const T* yy = static_cast<const T*>(y);
      for (int t = 0; t < Ty; ++t)
        for (i64 b = 0; b < B; ++b)
          std::memcpy(yf_.p + ((i64)t * B + b) * O_, yy + ((i64)t * N + ix[b]) * O_, sizeof(T) * (std::size_t)O_);
    } else {
      const i64* yy = static_cast<const i64*>(y);
      for (int t = 0; t < Ty; ++t)
        for (i64 b = 0; b < B; ++b) yi_.p[(i64)t * B + b] = yy[(i64)t * N + ix[b]];
    }
  }
  void set_targets_f(const T* y, int Tn, i64 N) {
    const i64 n = (cfg_.loss_all ? Tn : 1) * N * O_;
    std::memcpy(yf_.p, y, sizeof(T) * (std::size_t)n);
  }
  void set_targets_i(const i64* y, int Tn, i64 N) {
    const i64 n = (cfg_.loss_all ? Tn : 1) * N;
    std::memcpy(yi_.p, y, sizeof(i64) * (std::size_t)n);
  }

  // The input rows of layer l (row n = t*B + b, row stride *ld): x for layer 0; above it the
  // layer below's h_t, or its masked copy (xin) under dropout.
  const T* layer_input(i64 l, const T* x, i64 B, const Drop& d, i64* ld) const {
    *ld = l == 0 ? I_ : Hp_;
    if (l == 0) return x;
    return d.p ? layers_[l].xin.p : layers_[l - 1].hb.p + B * Hp_;
  }

  // ---- forward (called by every thread of a parallel region) ---------------------------------
  // Layers bottom up, each over the whole sequence, then the head on the top layer's h.
  // No barrier at the end: the rows a thread computes last (head) are the rows it reads next
  // (loss); under by_owner the layers need none between them either.
  void forward(const T* x, int Tn, i64 B, const Drop& d, int tid, int nth) {
    for (i64 l = 0; l < L_; ++l) {
      if (l > 0 && d.p) {
        // x^l = h^{l-1} * m_{l-1}, element-wise
        const T* hs = layers_[l - 1].hb.p + B * Hp_;
        T* xin = layers_[l].xin.p;
        for_my_rows(Tn, B, tid, nth, [&](i64 n0, i64 n1) {
          for (i64 n = n0; n < n1; ++n) {
            const T* m = mask_row(d, l - 1, Tn, B, n);
            for (i64 k = 0; k < H_; ++k) xin[n * Hp_ + k] = hs[n * Hp_ + k] * m[k];
          }
        });
        if (!by_owner(B, nth)) {
#pragma omp barrier
        }
      }
      i64 ld;
      const T* in = layer_input(l, x, B, d, &ld);
      layer_forward(layers_[l], in, ld, Tn, B, tid, nth);
    }
    // Head: out[n, o] = b_out[o] + sum_k h_t[n, k] * W_out[o, k].
    {
      const T* p = slots_[lockstep_cpu::kParams].data();
      const T* Wout = p + off_.p[3 * L_];
      const T* bout = bout_.p;
      const T* hs = layers_[L_ - 1].hb.p + B * Hp_;
      for_my_rows(Tn, B, tid, nth, [&](i64 n0, i64 n1) {
        for (i64 n = n0; n < n1; ++n)
          for (i64 o = 0; o < O_; ++o) {
            T acc = bout[o];
            const T* w = Wout + o * H_;
            const T* hn = hs + n * Hp_;
            for (i64 k = 0; k < H_; ++k) acc = acc + (hn[k] * w[k]);
            out_.p[n * O_ + o] = acc;
          }
      });
    }
    mark(tid, lockstep_cpu::kPhHead);
  }

  // One layer over the sequence: input rows in (stride ld, ly.K columns).
  void layer_forward(Layer& ly, const T* in, i64 ld, int Tn, i64 B, int tid, int nth) {
    constexpr int CW = col_tile<T>();
    const i64 K = ly.K;
    T* gates = ly.gates.p;
    // h_{-1} = c_{-1} = 0 for this thread's samples
    {
      i64 lo, hi;
      split(B, tid, nth, &lo, &hi);
      for (i64 i = lo * Hp_; i < hi * Hp_; ++i) ly.hb.p[i] = T(0), ly.cb.p[i] = T(0);
    }
    if (!by_owner(B, nth)) {
#pragma omp barrier
    }
    mark(tid, lockstep_cpu::kPhInproj);
    // The recurrence, with the input projection in the same tiles (the input rows of step t
    // are there from the start). Work item = (row tile of kMR samples, block of kUB hidden
    // units). With enough samples each thread owns whole rows: samples are independent, so no
    // barrier is needed between steps. Otherwise the items of a row are split too, with a
    // barrier a step (also after the last: the head reads every row).
    const i64 nub = Hp_ / kUB;
    const Plan pl = plan_rows(B, nub, tid, nth);
    const i64 rb = pl.rb, re = pl.re;
    for (int t = 0; t < Tn; ++t) {
      T* gt = gates + (i64)t * B * G_;
      const T* hprev = ly.hb.p + (i64)t * B * Hp_;
      const T* cprev = ly.cb.p + (i64)t * B * Hp_;
      T* hnext = ly.hb.p + (i64)(t + 1) * B * Hp_;
      T* cnext = ly.cb.p + (i64)(t + 1) * B * Hp_;
      T* tct = ly.tc.p + (i64)t * B * Hp_;
      for (i64 it = pl.lo; it < pl.hi; ++it) {
        i64 rt, ub;
        pl.item(it, &rt, &ub);
        const i64 r0 = rb + rt * kMR, m = (re - r0) < kMR ? (re - r0) : kMR;
        const i64 u0 = ub * kUB;
        if (u0 >= H_) continue;  // an all-padding block
        // gates = b, then the input terms k ascending, then the recurrent terms k ascending,
        // one accumulator per output (docs/arithmetic.md), in one pass over the tile
        for (int half = 0; half < kGB; half += CW) {
          Seg s1{in + ((i64)t * B + r0) * ld, ld, 1, ly.WihT.p + ub * K * kGB + half * K, CW, K};
          Seg s2{hprev + r0 * Hp_, Hp_, 1, ly.WhhT.p + ub * H_ * kGB + half * H_, CW, H_};
          tile_rows<T>(m, 1, gt + r0 * G_ + ub * kGB + half, G_, ly.bp.p + ub * kGB + half, 0,
                       s1, s2);
        }
        mark(tid, lockstep_cpu::kPhRecGemm);
        const i64 nu = (H_ - u0) < kUB ? (H_ - u0) : kUB;
        for (i64 r = r0; r < r0 + m; ++r) {
          T* a = gt + r * G_ + ub * kGB;
          cell_forward(a, cprev + r * Hp_ + u0, cnext + r * Hp_ + u0, tct + r * Hp_ + u0,
                       hnext + r * Hp_ + u0, nu);
        }
        mark(tid, lockstep_cpu::kPhRecCell);
      }
      if (!pl.by_rows) {
#pragma omp barrier
      }
      mark(tid, lockstep_cpu::kPhRecSync);
    }
  }

  // Gates of kUB units (i, f, g, o at a[0..kUB-1], a[kUB..], a[2 kUB..], a[3 kUB..]); activates
  // them in place and writes c_t, tanh(c_t), h_t of all kUB units (padding units stay exactly
  // 0: their pre-activations are 0, so c = 0.5*0 + 0.5*0 and h = 0.5*tanh(0)).
  static LS_AI void cell_forward(T* a, const T* cp, T* cn, T* tcn, T* hn, i64) {
    typedef VM<T> M;
    typedef typename Vec<T>::V V;
    constexpr int L = Vec<T>::L;
    for (int v = 0; v < kUB; v += L) {
      const V i = M::sigmoid(vload(a + v));
      const V f = M::sigmoid(vload(a + kUB + v));
      const V g = M::tanh(vload(a + 2 * kUB + v));
      const V o = M::sigmoid(vload(a + 3 * kUB + v));
      vstore(a + v, i), vstore(a + kUB + v, f);
      vstore(a + 2 * kUB + v, g), vstore(a + 3 * kUB + v, o);
      const V c = (f * vload(cp + v)) + (i * g);
      const V tc = M::tanh(c);
      vstore(cn + v, c);
      vstore(tcn + v, tc);
      vstore(hn + v, o * tc);
    }
  }

  // ---- losses (one thread) ----------------------------------------------------------------
  // N, the number of loss terms of a batch of B samples.
  i64 nterms(int Tn, i64 B) const {
    return (cfg_.loss_all ? (i64)Tn : 1) * B * (cfg_.loss == 0 ? O_ : 1);
  }
  // The loss of rows [n0, n1) (any thread, its own rows): dy divided by nt (this batch's N, or
  // the whole batch's N for a group of a sharded batch), and each loss term into lterm_ (MSE:
  // one per output, CE: one per row); rows the loss does not see (loss_on = "last") get dy = 0.
  void loss_rows(int Tn, i64 B, i64 nt, i64 n0, i64 n1) {
    using namespace lockstep;
    const i64 nl = cfg_.loss_all ? 0 : (i64)(Tn - 1) * B;  // first sample row the loss sees
    if (n0 < nl) {
      const i64 e = n1 < nl ? n1 : nl;
      std::memset(dy_.p + n0 * O_, 0, sizeof(T) * (std::size_t)((e - n0) * O_));
      n0 = e;
    }
    const T nT = T(nt);
    if (cfg_.loss == 0) {
      for (i64 n = n0; n < n1; ++n)
        for (i64 o = 0; o < O_; ++o) {
          const T d = out_.p[n * O_ + o] - yf_.p[(n - nl) * O_ + o];
          lterm_.p[n * O_ + o] = d * d;
          dy_.p[n * O_ + o] = (d + d) / nT;
        }
      return;
    }
    for (i64 n = n0; n < n1; ++n) {
      const T* z = out_.p + n * O_;
      T* dz = dy_.p + n * O_;
      T m = z[0];
      for (i64 o = 1; o < O_; ++o) m = z[o] > m ? z[o] : m;
      T s = T(0);
      for (i64 o = 0; o < O_; ++o) {
        dz[o] = ls_exp<T>(z[o] - m);
        s = s + dz[o];
      }
      const i64 yt = yi_.p[n - nl];
      lterm_.p[n] = ls_log<T>(s) - (z[yt] - m);
      for (i64 o = 0; o < O_; ++o) dz[o] = ((dz[o] / s) - (o == yt ? T(1) : T(0))) / nT;
    }
  }
  // The sum of the loss terms (not divided) from +0 in row order, then output order: one
  // thread, once every row's terms are written.
  T loss_total(int Tn, i64 B) const {
    const i64 n0 = (cfg_.loss_all ? 0 : (i64)(Tn - 1) * B) * (cfg_.loss == 0 ? O_ : 1);
    const i64 n1 = (i64)Tn * B * (cfg_.loss == 0 ? O_ : 1);
    T acc = T(0);
    for (i64 i = n0; i < n1; ++i) acc = acc + lterm_.p[i];
    return acc;
  }

  // ---- backward (every thread) --------------------------------------------------------------
  // Layers top down. The top layer's dh starts from the head terms dy_t W_out inside its own
  // tile (as a one-layer model); a layer below starts from dh_above = (da^{l+1} W_ih^{l+1}) * m_l,
  // computed for all steps at once after the layer above (layer_dh_above).
  void backward(int Tn, i64 B, const Drop& d, int tid, int nth) {
    for (i64 l = L_ - 1; l >= 0; --l) {
      layer_backward(l, Tn, B, d, tid, nth);
      if (l > 0) layer_dh_above(l, Tn, B, d, tid, nth);
    }
  }

  // dha_[n, k] = (sum_j da[n, j] * W_ih^l[j, k]) * m_{l-1}[n][k] (j ascending over the 4H gate
  // rows from +0, then the mask if any): the gradient layer l sends to layer l - 1's h.
  // Ends with a barrier.
  void layer_dh_above(i64 l, int Tn, i64 B, const Drop& d, int tid, int nth) {
    constexpr int CW = col_tile<T>();
    const i64 TB = (i64)Tn * B, nct = Hp_ / CW, nrt = (TB + 63) / 64;
    const Seg none{nullptr, 0, 0, nullptr, 0, 0};
    i64 lo, hi;
    split(nrt * nct, tid, nth, &lo, &hi);
    for (i64 it = lo; it < hi; ++it) {
      const i64 ct = it % nct, rt = it / nct;
      const i64 r0 = rt * 64, m = (TB - r0) < 64 ? (TB - r0) : 64, c0 = ct * CW;
      if (c0 >= H_) continue;
      T* out = dha_.p + r0 * Hp_ + c0;
      tile_rows<T>(m, 0, out, Hp_, nullptr, 0,
                   Seg{da_.p + r0 * Gn_, Gn_, 1, layers_[l].Wih.p + ct * 4 * H_ * CW, CW, 4 * H_}, none);
      if (!d.p) continue;
      const i64 nu = (H_ - c0) < CW ? (H_ - c0) : CW;
      for (i64 r = 0; r < m; ++r) {
        const T* mk = mask_row(d, l - 1, Tn, B, r0 + r) + c0;
        for (i64 c = 0; c < nu; ++c) out[r * Hp_ + c] = out[r * Hp_ + c] * mk[c];
      }
    }
#pragma omp barrier
    mark(tid, lockstep_cpu::kPhDhAbove);
  }

  void layer_backward(i64 l, int Tn, i64 B, const Drop& d, int tid, int nth) {
    constexpr int CW = col_tile<T>();
    const i64 TB = (i64)Tn * B;
    const T one = T(1);
    const bool top = l == L_ - 1;
    const Layer& ly = layers_[l];
    const i64 K = ly.K;
    i64 ldx;
    const T* xl = layer_input(l, xb_.p, B, d, &ldx);
    {
      i64 lo, hi;
      split(B, tid, nth, &lo, &hi);
      for (i64 i = lo * Hp_; i < hi * Hp_; ++i) dcn_.p[i] = T(0);  // this thread's samples
      // h_{t-1} and the input transposed for the weight-gradient products, packed by row tiles
      // of kMR rows k: element (k, n) at [k / kMR][n][k % kMR] (the micro-kernel's broadcasts
      // of a tile then read one contiguous stream). This thread's rows (the ones it wrote in
      // the forward pass under by_owner), in blocks of 32 rows n with every k inside: a row's
      // cache lines are read once per block (exact copies; the order cannot matter). Only the
      // weight gradients read them, after BPTT's barrier.
      for_my_rows(Tn, B, tid, nth, [&](i64 r0, i64 r1) {
        for (i64 n0 = r0; n0 < r1; n0 += 32) {
          const i64 n1 = n0 + 32 < r1 ? n0 + 32 : r1;
          for (i64 k = 0; k < H_; ++k) {
            T* dst = hT_.p + (k / kMR) * TB * kMR + k % kMR;
            for (i64 n = n0; n < n1; ++n) dst[n * kMR] = ly.hb.p[n * Hp_ + k];
          }
          for (i64 k = 0; k < K; ++k) {
            T* dst = xT_.p + (k / kMR) * TB * kMR + k % kMR;
            for (i64 n = n0; n < n1; ++n) dst[n * kMR] = xl[n * ldx + k];
          }
        }
      });
    }
    if (!by_owner(B, nth)) {  // the BPTT items of a sample run on several threads: its dcn
#pragma omp barrier
    }
    mark(tid, lockstep_cpu::kPhBwdPack);
    const i64 nct = Hp_ / CW;
    const Plan pl = plan_rows(B, nct, tid, nth);  // as in forward()
    const i64 rb = pl.rb, re = pl.re;
    for (int t = Tn - 1; t >= 0; --t) {
      const bool head = top && (cfg_.loss_all || t == Tn - 1);  // dy_t is zero elsewhere: skipped
      const bool rec = t + 1 < Tn;
      const T* dyt = dy_.p + (i64)t * B * O_;
      const T* dhat = dha_.p + (i64)t * B * Hp_;
      const T* danext = da_.p + (i64)(t + 1) * B * Gn_;
      T* dat = da_.p + (i64)t * B * Gn_;
      const T* gt = ly.gates.p + (i64)t * B * G_;
      const T* cprev = ly.cb.p + (i64)t * B * Hp_;
      const T* tct = ly.tc.p + (i64)t * B * Hp_;
      for (i64 it = pl.lo; it < pl.hi; ++it) {
        i64 rt, ct;
        pl.item(it, &rt, &ct);
        const i64 r0 = rb + rt * kMR, m = (re - r0) < kMR ? (re - r0) : kMR;
        const i64 c0 = ct * CW;
        if (c0 >= H_) continue;
        // dh = dh_above (top: +0, then the head terms o ascending), then the recurrent terms
        // j ascending over 4H rows, one accumulator.
        Seg rs{danext + r0 * Gn_, Gn_, 1, ly.Whh.p + ct * 4 * H_ * CW, CW, rec ? 4 * H_ : 0};
        if (top) {
          Seg hs{dyt + r0 * O_, O_, 1, Wout_.p + ct * O_ * CW, CW, head ? O_ : 0};
          tile_rows<T>(m, 0, dh_.p + r0 * Hp_ + c0, Hp_, nullptr, 0, hs, rs);
        } else {
          const Seg none{nullptr, 0, 0, nullptr, 0, 0};
          tile_rows<T>(m, 1, dh_.p + r0 * Hp_ + c0, Hp_, dhat + r0 * Hp_ + c0, Hp_, rs, none);
        }
        mark(tid, lockstep_cpu::kPhBwdGemm);
        const i64 nu = (H_ - c0) < CW ? (H_ - c0) : CW;
        for (i64 r = r0; r < r0 + m; ++r) {
          const T* dh = dh_.p + r * Hp_;
          T* dcn = dcn_.p + r * Hp_;
          const T* g4 = gt + r * G_;
          T* da = dat + r * Gn_;
          i64 u = c0;
          // L units at a time (u is a multiple of L, so they sit in one block): vectors,
          // the same expressions lane by lane
          typedef typename Vec<T>::V V;
          constexpr int L = Vec<T>::L;
          const V vone = VM<T>::splat(one);
          for (; u + L <= c0 + nu; u += L) {
            const i64 col = (u / kUB) * kGB + u % kUB;
            const V ig = vload(g4 + col), fg = vload(g4 + col + kUB),
                    gg = vload(g4 + col + 2 * kUB), og = vload(g4 + col + 3 * kUB);
            const V tc = vload(tct + r * Hp_ + u);
            const V dhv = vload(dh + u);
            const V dc = ((dhv * og) * (vone - (tc * tc))) + vload(dcn + u);
            vstore(da + u, (dc * gg) * (ig * (vone - ig)));
            vstore(da + H_ + u, (dc * vload(cprev + r * Hp_ + u)) * (fg * (vone - fg)));
            vstore(da + 2 * H_ + u, (dc * ig) * (vone - (gg * gg)));
            vstore(da + 3 * H_ + u, (dhv * tc) * (og * (vone - og)));
            vstore(dcn + u, dc * fg);
          }
          for (; u < c0 + nu; ++u) {
            const i64 col = (u / kUB) * kGB + u % kUB;
            const T ig = g4[col], fg = g4[col + kUB], gg = g4[col + 2 * kUB], og = g4[col + 3 * kUB];
            const T tc = tct[r * Hp_ + u];
            const T dhv = dh[u];
            const T dc = ((dhv * og) * (one - (tc * tc))) + dcn[u];
            da[u] = (dc * gg) * (ig * (one - ig));
            da[H_ + u] = (dc * cprev[r * Hp_ + u]) * (fg * (one - fg));
            da[2 * H_ + u] = (dc * ig) * (one - (gg * gg));
            da[3 * H_ + u] = (dhv * tc) * (og * (one - og));
            dcn[u] = dc * fg;
          }
        }
        mark(tid, lockstep_cpu::kPhBwdCell);
      }
      if (!pl.by_rows) {
#pragma omp barrier
      }
      mark(tid, lockstep_cpu::kPhBwdSync);
    }
#pragma omp barrier
    mark(tid, lockstep_cpu::kPhBwdSync);
    // Weight gradients: one sum per output over n = t*B + b ascending, in K blocks of KC rows
    // (a partial sum is stored and reloaded exactly). Threads own column tiles of da.
    constexpr i64 KC = kWKC;
    i64 lo, hi, jlo, jhi;
    my_gate_tiles(tid, nth, &lo, &hi, &jlo, &jhi);
    // K blocks outside, column tiles inside: the packed block of h^T (H x KC) is reused from
    // L2/L3 while the thread's column tiles pass over it (each output sums its K blocks in order).
    for (i64 k0 = 0; k0 < TB; k0 += KC) {
      for (i64 ct = lo; ct < hi; ++ct) {
        const i64 c0 = ct * CW;
        const i64 Kn = (TB - k0) < KC ? (TB - k0) : KC;
        const int mode = k0 == 0 ? 0 : 2;
        // rows n of this column tile, packed contiguously (exact copies): the products then
        // stream one 64-byte row per k instead of walking da with its large row stride.
        const T* das = da_.p + k0 * Gn_ + c0;
        T* dak = wpack_.p + (i64)tid * KC * CW;
        for (i64 n = 0; n < Kn; ++n)
          for (int c = 0; c < CW; ++c) dak[n * CW + c] = das[n * Gn_ + c];
        // dW_hh^T[k, j] = sum_n h_{t-1}[n, k] * da[n, j]
        tile_rows_packed<T>(H_, mode, dWhhT_.p + c0, Gn_, hT_.p + k0 * kMR, TB * kMR, dak, CW, Kn);
        // dW_ih^T[k, j] = sum_n x^l[n, k] * da[n, j]
        tile_rows_packed<T>(K, mode, dWihT_.p + c0, Gn_, xT_.p + k0 * kMR, TB * kMR, dak, CW, Kn);
        // db[j] = sum_n da[n, j]
        T* db = db_.p + c0;
        if (mode == 0)
          for (int c = 0; c < CW; ++c) db[c] = T(0);
        for (i64 n = 0; n < Kn; ++n)
          for (int c = 0; c < CW; ++c) db[c] = db[c] + dak[n * CW + c];
      }
    }
    if (top) head_grads(Tn, B, tid, nth);
    mark(tid, lockstep_cpu::kPhWgrad);
    // Natural layout of the gradients this thread computed (no barrier: its own outputs).
    T* g = grad_.p;
    for (i64 j = jlo; j < jhi; ++j) {
      for (i64 k = 0; k < K; ++k) g[ly.off[0] + j * K + k] = dWihT_.p[k * Gn_ + j];
      for (i64 k = 0; k < H_; ++k) g[ly.off[1] + j * H_ + k] = dWhhT_.p[k * Gn_ + j];
      g[ly.off[2] + j] = db_.p[j];
    }
    if (top) {
      const i64 nch = Hp_ / CW;
      my_head_items(tid, nth, &lo, &hi);
      for (i64 ct = lo; ct < hi && ct < nch; ++ct) {
        const i64 k1 = (ct + 1) * CW < H_ ? (ct + 1) * CW : H_;
        for (i64 o = 0; o < O_; ++o)
          for (i64 k = ct * CW; k < k1; ++k) g[off_.p[3 * L_] + o * H_ + k] = dWout_.p[o * Hp_ + k];
      }
    }
    mark(tid, lockstep_cpu::kPhNatural);
  }

  // dW_out[o, k] = sum_n dy[n, o] * h_t[n, k]; db_out[o] = sum_n dy[n, o] (skipping the rows
  // where dy is known to be zero under loss_on = "last": the sums start at +0).
  void head_grads(int Tn, i64 B, int tid, int nth) {
    constexpr int CW = col_tile<T>();
    const i64 TB = (i64)Tn * B;
    const i64 n0 = cfg_.loss_all ? 0 : (i64)(Tn - 1) * B;
    const i64 nch = Hp_ / CW;
    const T* htop = layers_[L_ - 1].hb.p;
    i64 lo, hi;
    my_head_items(tid, nth, &lo, &hi);
    for (i64 ct = lo; ct < hi; ++ct) {
      if (ct == nch) {
        T* g = grad_.p + off_.p[3 * L_ + 1];
        for (i64 o = 0; o < O_; ++o) {
          T acc = T(0);
          for (i64 n = n0; n < TB; ++n) acc = acc + dy_.p[n * O_ + o];
          g[o] = acc;
        }
        continue;
      }
      const i64 c0 = ct * CW;
      Seg none{nullptr, 0, 0, nullptr, 0, 0};
      tile_rows<T>(O_, 0, dWout_.p + c0, Hp_, nullptr, 0,
                   Seg{dy_.p + n0 * O_, 1, O_, htop + (B + n0) * Hp_ + c0, Hp_, TB - n0}, none);
    }
  }

  // ---- clipping and the optimizer (every thread) -------------------------------------------
  // Every thread, after its gradients are in grad_ (natural layout): the clipping norm (over
  // all threads' gradients: barriers) and then, for this thread's parameters only (the rows of
  // my_gate_tiles and the items of my_head_items, which its repack reads next), the scaling and
  // the optimizer step. Without clipping no barrier at all.
  void clip_and_update(int tid, int nth, bool* scaled, T* scale) {
    using namespace lockstep;
    T* g = grad_.p;
    if (cfg_.clip > 0) {
#pragma omp barrier
      // rows of the tensors in param_names order (4H rows of each layer's W_ih, W_hh, b; O
      // rows of W_out, b_out), numbered consecutively; this thread's share [lo, hi)
      const i64 nrows = 12 * H_ * L_ + 2 * O_;
      i64 lo, hi;
      split(nrows, tid, nth, &lo, &hi);
      for (i64 t = 0, r0 = 0; t < NT_; ++t) {
        const i64 nr = t < 3 * L_ ? 4 * H_ : O_, len = size_.p[t] / nr;
        for (i64 r = (lo > r0 ? lo : r0); r < hi && r < r0 + nr; ++r) {
          const T* row = g + off_.p[t] + (r - r0) * len;
          T acc = T(0);
          for (i64 c = 0; c < len; ++c) acc = acc + (row[c] * row[c]);
          rows_.p[r] = acc;
        }
        r0 += nr;
      }
#pragma omp barrier
#pragma omp single
      {
        T n2 = T(0);
        for (i64 r = 0; r < nrows; ++r) n2 = n2 + rows_.p[r];
        const T norm = ls_sqrt<T>(n2);
        const T clip = T(cfg_.clip);
        *scaled = norm > clip;
        if (*scaled) *scale = clip / norm;
      }  // implicit barrier
    }
    const bool sc = cfg_.clip > 0 && *scaled;
    const T s = sc ? *scale : T(0);
    i64 tlo, thi, jlo, jhi, hlo, hhi;
    my_gate_tiles(tid, nth, &tlo, &thi, &jlo, &jhi);
    for (i64 l = 0; l < L_; ++l) {
      const Layer& ly = layers_[l];
      update(ly.off[0] + jlo * ly.K, ly.off[0] + jhi * ly.K, sc, s);
      update(ly.off[1] + jlo * H_, ly.off[1] + jhi * H_, sc, s);
      update(ly.off[2] + jlo, ly.off[2] + jhi, sc, s);
    }
    const i64 nch = Hp_ / col_tile<T>();
    my_head_items(tid, nth, &hlo, &hhi);
    for (i64 ct = hlo; ct < hhi; ++ct) {
      if (ct == nch) {
        update(off_.p[3 * L_ + 1], off_.p[3 * L_ + 1] + O_, sc, s);
        continue;
      }
      const i64 k0 = ct * col_tile<T>(), k1 = k0 + col_tile<T>() < H_ ? k0 + col_tile<T>() : H_;
      for (i64 o = 0; o < O_; ++o) update(off_.p[3 * L_] + o * H_ + k0, off_.p[3 * L_] + o * H_ + k1, sc, s);
    }
  }

  // Elements [lo, hi) of the flat buffers: g scaled by s if sc, then one optimizer step.
  void update(i64 lo, i64 hi, bool sc, T s) {
    using namespace lockstep;
    T* g = grad_.p;
    if (sc)
      for (i64 i = lo; i < hi; ++i) g[i] = g[i] * s;
    T* p = slots_[lockstep_cpu::kParams].data();
    const T lr = T(cfg_.lr), one = T(1);
    if (cfg_.optimizer == 0) {
      if (cfg_.momentum != 0) {
        const T mu = T(cfg_.momentum);
        T* v = slots_[lockstep_cpu::kVelocity].data();
        for (i64 i = lo; i < hi; ++i) {
          v[i] = (mu * v[i]) + g[i];
          p[i] = p[i] - (lr * v[i]);
        }
      } else {
        for (i64 i = lo; i < hi; ++i) p[i] = p[i] - (lr * g[i]);
      }
      return;
    }
    const T b1 = T(cfg_.beta1), b2 = T(cfg_.beta2), eps = T(cfg_.eps);
    const T b1p = b1_pow_ * b1, b2p = b2_pow_ * b2;  // every thread, same value
    const T stp = lr / (one - b1p);
    const T bc = ls_sqrt<T>(one - b2p);
    const T c1 = one - b1, c2 = one - b2;
    T* m = slots_[lockstep_cpu::kAdamM].data();
    T* v = slots_[lockstep_cpu::kAdamV].data();
    for (i64 i = lo; i < hi; ++i) {
      m[i] = (b1 * m[i]) + (c1 * g[i]);
      v[i] = (b2 * v[i]) + (c2 * (g[i] * g[i]));
      p[i] = p[i] - (stp * (m[i] / ((ls_sqrt<T>(v[i]) / bc) + eps)));
    }
  }

  // One group of a sharded batch (or the Python-level shard_partial): gathers the samples ix
  // and leaves the flat gradients in g; d holds the group's masks.
  T group_partial(const T* x, int Tn, i64 N, const void* y, const i64* ix, i64 B, i64 nt,
                  const Drop& d, T* g) {
    if (B == 0) {  // an empty group: +0 partials
      for (i64 i = 0; i < P_; ++i) g[i] = T(0);
      return T(0);
    }
    ensure(Tn, B, d.p != nullptr);
    update_cap();
    gather(x, Tn, N, y, ix, B);
    T lsum = T(0);
#pragma omp parallel num_threads(nthreads(Tn, B))
    grad_pass(Tn, B, nt, d, &lsum);
    std::memcpy(g, grad_.p, sizeof(T) * (std::size_t)P_);
    return lsum;
  }

  // Forward, the loss sum (dy divided by nt) and backward of the gathered batch, by every
  // thread of a parallel region; the gradients land in grad_.
  void grad_pass(int Tn, i64 B, i64 nt, const Drop& d, T* lsum) {
    const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
    forward(xb_.p, Tn, B, d, tid, nth);
    for_my_rows(Tn, B, tid, nth, [&](i64 n0, i64 n1) { loss_rows(Tn, B, nt, n0, n1); });
    if (!by_owner(B, nth)) {  // the BPTT items of a sample run on several threads: its dy
#pragma omp barrier
    }
    mark(tid, lockstep_cpu::kPhLoss);
    backward(Tn, B, d, tid, nth);
    if (tid == 0) *lsum = loss_total(Tn, B);  // every thread's terms: written before BPTT's barrier
  }

  // One unsharded step in a single parallel region (no fork/join between the gradients and
  // the update, unlike shard_partial + apply_grads).
  T train_step(int Tn, i64 B, const Drop& d) {
    T lsum = T(0);
    bool scaled = false;
    T scale = T(0);
    const i64 nt = nterms(Tn, B);
#pragma omp parallel num_threads(nthreads(Tn, B))
    {
      const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
      mark_start(tid);
      grad_pass(Tn, B, nt, d, &lsum);
      // This thread's gradients are complete, and no thread reads a parameter or a kernel
      // layout after BPTT's barrier: its rows go straight on to the optimizer and the repacking.
      clip_and_update(tid, nth, &scaled, &scale);
      mark(tid, lockstep_cpu::kPhOptim);
      repack(tid, nth);
    }
    mark(0, lockstep_cpu::kPhRepack);
    finish_step();
    return lsum / T(nt);
  }

  void finish_step() {
    if (cfg_.optimizer == 1) {
      b1_pow_ = b1_pow_ * T(cfg_.beta1);
      b2_pow_ = b2_pow_ * T(cfg_.beta2);
    }
    step_ += 1;
  }

  lockstep_cpu::Config cfg_;
  int* threads_;
  i64 I_, H_, O_, L_, Hp_, G_, Gn_, P_, Kmax_, NT_;
  Buf<i64> off_, size_;  // per tensor (param_names order): offset and size in the flat buffers
  i64 step_ = 0;
  T b1_pow_, b2_pow_;
  Layer* layers_ = nullptr;
  Buf<T> slots_[lockstep_cpu::kNumSlots], grad_, rows_;
  Buf<T> Wout_, bout_;                     // kernel layouts of the head
  Buf<T> dWihT_, dWhhT_, db_, dWout_;      // one layer's gradients in kernel layouts
  Buf<T> da_, hT_, xT_, out_, dy_, xb_, yf_, dh_, dha_, dcn_;  // per-step work of one layer
  Buf<T> lterm_;  // the loss terms of the batch (loss_rows), summed by loss_total
  Buf<T> wpack_;  // per thread: a K block of one column tile of da, packed
  Buf<T> gacc_, gpart_;  // sharded batches: the combined and the current group's gradients
  Buf<i64> yi_;
  // LOCKSTEP_CPU_PROFILE=1: seconds per phase, measured on thread 0 (a phase that ends in a
  // barrier includes the wait for the other threads). Off: one predictable branch per mark.
  bool prof_on_ = false;
  double prof_[lockstep_cpu::kNumPhases] = {};
  double plast_ = 0;
  LS_AI void mark(int tid, int ph) {
    if (!prof_on_ || tid != 0) return;
    const double n = omp_get_wtime();
    prof_[ph] += n - plast_;
    plast_ = n;
  }
  LS_AI void mark_start(int tid) {
    if (prof_on_ && tid == 0) plast_ = omp_get_wtime();
  }
 public:
  double* profile() override { return prof_; }
};

// which: 0 = sigmoid, 1 = tanh; the vector functions above on n values (any n).
template <class T>
void vector_act(const T* x, T* y, i64 n, int which) {
  constexpr int L = Vec<T>::L;
  i64 i = 0;
  for (; i + L <= n; i += L)
    vstore(y + i, which ? VM<T>::tanh(vload(x + i)) : VM<T>::sigmoid(vload(x + i)));
  T buf[L] = {};
  for (i64 k = i; k < n; ++k) buf[k - i] = x[k];
  typename Vec<T>::V v = vload(buf);
  vstore(buf, which ? VM<T>::tanh(v) : VM<T>::sigmoid(v));
  for (i64 k = i; k < n; ++k) y[k] = buf[k - i];
}

template <class T>
void muladd(const T* a, const T* b, const T* c, T* o, i64 n) {
  for (i64 i = 0; i < n; ++i) o[i] = (a[i] * b[i]) + c[i];
}
