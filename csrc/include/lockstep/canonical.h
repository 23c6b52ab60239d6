// lockstep canonical arithmetic for C++ and CUDA: the twin of python/lockstep/arith.py.
//
// Every function evaluates exactly the expression tree written in docs/arithmetic.md with the
// same hex constants as arith.py (tests/test_arith.py parses them from this file). Build with
// -ffp-contract=off (g++) or --fmad=false (NVRTC/nvcc) and never with fast math or
// flush-to-zero: the parentheses below are the contract, the compiler must not fuse them.
#pragma once

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define LS_HD __host__ __device__ __forceinline__
#define LS_DEVICE_CODE 1
#else
#define LS_HD inline
#include <cmath>
#include <cstdint>
#include <cstring>
#endif

namespace lockstep {

#if defined(LS_DEVICE_CODE)
typedef unsigned int ls_u32;
typedef unsigned long long ls_u64;
typedef long long ls_i64;
#else
typedef std::uint32_t ls_u32;
typedef std::uint64_t ls_u64;
typedef std::int64_t ls_i64;
#endif

// ---- exact helpers -------------------------------------------------------------------------

LS_HD float bits_to_float(ls_u32 u) {
#if defined(LS_DEVICE_CODE)
  return __int_as_float((int)u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}
LS_HD double bits_to_double(ls_u64 u) {
#if defined(LS_DEVICE_CODE)
  return __longlong_as_double((long long)u);
#else
  double d;
  std::memcpy(&d, &u, sizeof d);
  return d;
#endif
}
LS_HD ls_u32 float_to_bits(float f) {
#if defined(LS_DEVICE_CODE)
  return (ls_u32)__float_as_int(f);
#else
  ls_u32 u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}
LS_HD ls_u64 double_to_bits(double d) {
#if defined(LS_DEVICE_CODE)
  return (ls_u64)__double_as_longlong(d);
#else
  ls_u64 u;
  std::memcpy(&u, &d, sizeof u);
  return u;
#endif
}
// Exact operations (and the correctly rounded sqrt) from the platform's math library.
#if defined(LS_DEVICE_CODE)
LS_HD float ls_floor(float x) { return floorf(x); }
LS_HD double ls_floor(double x) { return floor(x); }
LS_HD float ls_fabs(float x) { return fabsf(x); }
LS_HD double ls_fabs(double x) { return fabs(x); }
LS_HD float ls_copysign(float x, float s) { return copysignf(x, s); }
LS_HD double ls_copysign(double x, double s) { return copysign(x, s); }
LS_HD float ls_sqrt(float x) { return __fsqrt_rn(x); }
LS_HD double ls_sqrt(double x) { return __dsqrt_rn(x); }
#else
template <class T> inline T ls_floor(T x) { return std::floor(x); }
template <class T> inline T ls_fabs(T x) { return std::fabs(x); }
template <class T> inline T ls_copysign(T x, T s) { return std::copysign(x, s); }
template <class T> inline T ls_sqrt(T x) { return std::sqrt(x); }
#endif

// ---- constants: identical hex literals to arith.py -----------------------------------------

template <class T> struct Consts;

template <> struct Consts<float> {
  typedef ls_u32 U;
  static constexpr int kMantBits = 23, kBias = 127, kLogSubnormalScaleBits = 25;
  static constexpr int kExpCoeffs = 7, kLogCoeffs = 4;
  static LS_HD float exp_coeff(int i) {  // 1/n!, n = 2..8
    const float c[kExpCoeffs] = {0x1p-1f, 0x1.555556p-3f, 0x1.555556p-5f, 0x1.111112p-7f,
                                 0x1.6c16c2p-10f, 0x1.a01a02p-13f, 0x1.a01a02p-16f};
    return c[i];
  }
  static LS_HD float log_coeff(int i) {  // 2/(2j+1), j = 1..4
    const float c[kLogCoeffs] = {0x1.555556p-1f, 0x1.99999ap-2f, 0x1.24924ap-2f, 0x1.c71c72p-3f};
    return c[i];
  }
  static LS_HD float log2e() { return 0x1.715476p+0f; }
  static LS_HD float ln2_hi() { return 0x1.62e4p-1f; }
  static LS_HD float ln2_lo() { return 0x1.7f7d1cp-20f; }
  static LS_HD float sqrt2() { return 0x1.6a09e6p+0f; }
  static LS_HD float exp_hi() { return 0x1.64p+6f; }
  static LS_HD float exp_lo() { return -0x1.ap+6f; }
  static LS_HD float tanh_lo() { return 0x1.c9p-4f; }
  static LS_HD float tanh_mid() { return 0x1.19p-1f; }
  static LS_HD float tanh_one() { return 0x1.4p+4f; }
  static LS_HD float tiny() { return 0x1p-126f; }  // smallest normal
  static LS_HD float log_subnormal_scale() { return 0x1p+25f; }
  static LS_HD float inf() { return bits_to_float(0x7f800000u); }
  static LS_HD float nan() { return bits_to_float(0x7fc00000u); }
  static LS_HD U to_bits(float x) { return float_to_bits(x); }
  static LS_HD float from_bits(U u) { return bits_to_float(u); }
};

template <> struct Consts<double> {
  typedef ls_u64 U;
  static constexpr int kMantBits = 52, kBias = 1023, kLogSubnormalScaleBits = 54;
  static constexpr int kExpCoeffs = 12, kLogCoeffs = 10;
  static LS_HD double exp_coeff(int i) {  // 1/n!, n = 2..13
    const double c[kExpCoeffs] = {
        0x1p-1, 0x1.5555555555555p-3, 0x1.5555555555555p-5, 0x1.1111111111111p-7,
        0x1.6c16c16c16c17p-10, 0x1.a01a01a01a01ap-13, 0x1.a01a01a01a01ap-16,
        0x1.71de3a556c734p-19, 0x1.27e4fb7789f5cp-22, 0x1.ae64567f544e4p-26,
        0x1.1eed8eff8d898p-29, 0x1.6124613a86d09p-33};
    return c[i];
  }
  static LS_HD double log_coeff(int i) {  // 2/(2j+1), j = 1..10
    const double c[kLogCoeffs] = {
        0x1.5555555555555p-1, 0x1.999999999999ap-2, 0x1.2492492492492p-2,
        0x1.c71c71c71c71cp-3, 0x1.745d1745d1746p-3, 0x1.3b13b13b13b14p-3,
        0x1.1111111111111p-3, 0x1.e1e1e1e1e1e1ep-4, 0x1.af286bca1af28p-4,
        0x1.8618618618618p-4};
    return c[i];
  }
  static LS_HD double log2e() { return 0x1.71547652b82fep+0; }
  static LS_HD double ln2_hi() { return 0x1.62e42feep-1; }
  static LS_HD double ln2_lo() { return 0x1.a39ef35793c76p-33; }
  static LS_HD double sqrt2() { return 0x1.6a09e667f3bcdp+0; }
  static LS_HD double exp_hi() { return 0x1.63p+9; }
  static LS_HD double exp_lo() { return -0x1.750p+9; }
  static LS_HD double tanh_lo() { return 0x1.c9p-4; }
  static LS_HD double tanh_mid() { return 0x1.19p-1; }
  static LS_HD double tanh_one() { return 0x1.4p+5; }
  static LS_HD double tiny() { return 0x1p-1022; }
  static LS_HD double log_subnormal_scale() { return 0x1p+54; }
  static LS_HD double inf() { return bits_to_double(0x7ff0000000000000ull); }
  static LS_HD double nan() { return bits_to_double(0x7ff8000000000000ull); }
  static LS_HD U to_bits(double x) { return double_to_bits(x); }
  static LS_HD double from_bits(U u) { return bits_to_double(u); }
};

// 2**k from its bits; k must be in the normal exponent range.
template <class T> LS_HD T pow2i(ls_i64 k) {
  typedef Consts<T> C;
  return C::from_bits((typename C::U)(k + C::kBias) << C::kMantBits);
}

// ---- transcendental functions ----------------------------------------------------------------

// A value carried as an unevaluated sum hi + lo (|lo| <= ulp(hi)/2).
template <class T> struct DW {
  T hi, lo;
};

// (s, e) with s = a + b rounded and s + e == a + b exactly, given |a| >= |b| or a == 0.
template <class T> LS_HD DW<T> fast_two_sum(T a, T b) {
  T s = a + b;
  return DW<T>{s, (a - s) + b};
}

// (n_hi + n_lo) / (d_hi + d_lo) to within ~1 ulp: q = n_hi/d_hi, then one correction.
template <class T> LS_HD T div_dw(T n_hi, T n_lo, T d_hi, T d_lo) {
  T q = n_hi / d_hi;
  return q + ((n_lo - (q * d_lo)) / d_hi);
}

// Cody-Waite: k = floor(x*log2e + 1/2), hi = x - k*ln2_hi (exact), lo = k*ln2_lo,
// r = hi - lo, corr = (hi - r) - lo (what rounding r dropped).
template <class T> LS_HD T reduce_ln2(T x, T* r, T* corr) {
  typedef Consts<T> C;
  T k = ls_floor((x * C::log2e()) + T(0.5));
  T hi = x - (k * C::ln2_hi());
  T lo = k * C::ln2_lo();
  *r = hi - lo;
  *corr = (hi - *r) - lo;
  return k;
}

// exp(r + corr) - 1 - r for |r| <= ~ln2/2: ((r*r) * P(r)) + (corr + (corr*r)),
// P(r) = 1/2! + r*(1/3! + r*(...)) by Horner from the highest coefficient.
template <class T> LS_HD T expm1_tail(T r, T corr) {
  typedef Consts<T> C;
  T p = C::exp_coeff(C::kExpCoeffs - 1);
  for (int i = C::kExpCoeffs - 2; i >= 0; --i) p = C::exp_coeff(i) + (r * p);
  return ((r * r) * p) + (corr + (corr * r));
}

// a + s*exp(r + corr) - s as a double word, with a = s or s - 1 and s = 2**k exact:
// h = a + s*r by Fast2Sum, then everything else is added at the result's scale.
template <class T> LS_HD DW<T> scaled_expm1_dw(T a, T s, T r, T corr) {
  DW<T> h = fast_two_sum(a, s * r);
  return fast_two_sum(h.hi, h.lo + (s * expm1_tail(r, corr)));
}

// exp(x) as a double word for finite x in [exp_lo, exp_hi]; .hi is exactly ls_exp(x).
template <class T> LS_HD DW<T> exp_dw(T x) {
  T r, corr;
  ls_i64 k = (ls_i64)reduce_ln2(x, &r, &corr);
  DW<T> p = scaled_expm1_dw(T(1), T(1), r, corr);  // exp(r), in [0.7, 1.42]
  ls_i64 k1 = k >> 1;  // floor(k/2): both halves normal, only the last multiply rounds
  T s1 = pow2i<T>(k1), s2 = pow2i<T>(k - k1);
  return DW<T>{(p.hi * s1) * s2, (p.lo * s1) * s2};
}

template <class T> LS_HD T ls_exp(T x) {
  typedef Consts<T> C;
  if (x != x) return x;
  if (x > C::exp_hi()) return C::inf();
  if (x < C::exp_lo()) return T(0);
  return exp_dw(x).hi;
}

// exp(u) - 1 as a double word for -0.25 <= u <= 1.1 only (tanh's near range).
template <class T> LS_HD DW<T> expm1_small_dw(T u) {
  T r, corr;
  T s = pow2i<T>((ls_i64)reduce_ln2(u, &r, &corr));
  return scaled_expm1_dw(s - T(1), s, r, corr);
}

template <class T> LS_HD T ls_log(T x) {
  typedef Consts<T> C;
  typedef typename C::U U;
  if (x != x || x < T(0)) return C::nan();
  if (x == T(0)) return -C::inf();
  if (x == C::inf()) return x;
  ls_i64 e_adj = 0;
  if (x < C::tiny()) {
    x = x * C::log_subnormal_scale();  // exact
    e_adj = C::kLogSubnormalScaleBits;
  }
  U bits = C::to_bits(x);
  ls_i64 e = (ls_i64)(bits >> C::kMantBits) - C::kBias;
  U mant_mask = (((U)1) << C::kMantBits) - 1;
  T m = C::from_bits((bits & mant_mask) | (((U)C::kBias) << C::kMantBits));  // [1, 2)
  if (m > C::sqrt2()) {
    m = m * T(0.5);
    e = e + 1;
  }
  e = e - e_adj;
  T f = m - T(1);  // exact (Sterbenz)
  T s = f / (T(2) + f);
  T z = s * s;
  T p = C::log_coeff(C::kLogCoeffs - 1);
  for (int i = C::kLogCoeffs - 2; i >= 0; --i) p = C::log_coeff(i) + (z * p);
  T R = z * p;
  T hfsq = (T(0.5) * f) * f;
  T dk = (T)e;
  return (dk * C::ln2_hi()) - ((hfsq - ((s * (hfsq + R)) + (dk * C::ln2_lo()))) - f);
}

// 1/(1+E) for x >= 0, E/(1+E) below, with E = exp(-|x|) as a double word and 1+E by
// Fast2Sum: only the quotient and its correction round.
template <class T> LS_HD T ls_sigmoid(T x) {
  typedef Consts<T> C;
  if (x != x) return x;
  T m = -ls_fabs(x);
  DW<T> e = {T(0), T(0)};
  if (m >= C::exp_lo()) e = exp_dw(m);
  DW<T> d = fast_two_sum(T(1), e.hi);
  d.lo = d.lo + e.lo;
  if (x >= T(0)) return div_dw(T(1), T(0), d.hi, d.lo);
  return div_dw(e.hi, e.lo, d.hi, d.lo);
}

// |x| < tanh_lo: -t/(2+t), t = expm1(-2|x|); |x| < tanh_mid: t/(t+2), t = expm1(2|x|);
// |x| < tanh_one: 1 - 2/(E+1), E = exp(2|x|); beyond: 1. The sign is copied from x.
template <class T> LS_HD T ls_tanh(T x) {
  typedef Consts<T> C;
  if (x != x) return x;
  T a = ls_fabs(x);
  T y;
  if (a < C::tanh_mid()) {
    bool low = a < C::tanh_lo();
    DW<T> t = expm1_small_dw(low ? -(a + a) : (a + a));
    DW<T> d = fast_two_sum(T(2), t.hi);
    d.lo = d.lo + t.lo;
    y = low ? div_dw(-t.hi, -t.lo, d.hi, d.lo) : div_dw(t.hi, t.lo, d.hi, d.lo);
  } else if (a >= C::tanh_one()) {
    y = T(1);
  } else {
    DW<T> e = exp_dw(a + a);
    DW<T> d = fast_two_sum(e.hi, T(1));
    y = T(1) - div_dw(T(2), T(0), d.hi, d.lo + e.lo);
  }
  return ls_copysign(y, x);
}

}  // namespace lockstep
