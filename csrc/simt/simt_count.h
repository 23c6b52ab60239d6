// The emulator's cost counters: what a kernel would cost on a GPU, counted exactly while it runs.
//
// Three spellings stand in for plain CUDA types inside the emulator (cuda/ls_cuda.cuh maps them
// to plain types under NVRTC, so every kernel stays one source):
//   real<T>   a float/double whose + - * / sqrt and comparisons count themselves by kind
//   gptr<T>   a global-memory pointer whose loads and stores are logged per thread
//   sptr<T>   the same for shared memory
// Logged accesses are grouped into warp requests when the block reaches a barrier or ends
// (simt.cpp, `Tally`): the k-th execution of one access site (one load or store in the source,
// identified by its return address) by the lanes of a warp is one request. Lanes that diverge
// simply contribute to the requests of the sites they executed; see docs/cuda.md.
// With counting off (the default) every hook is one well-predicted branch.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace simt {

// ---- switches and hooks (simt.cpp) ---------------------------------------------------------
extern bool g_counting;  // written only between launches (set_counting)

enum FlopKind { F_ADD, F_MUL, F_DIV, F_SQRT, F_CMP, F_KINDS };
struct FlopCount {
  std::uint64_t n[2][F_KINDS];  // [0] float32, [1] float64
  std::uint64_t total;
};
extern thread_local FlopCount* t_flops;  // the running fiber's, or nullptr when not counting

template <class T> inline void count_flop(FlopKind k) {
  if (FlopCount* c = t_flops) {
    ++c->n[sizeof(T) == 8][k];
    ++c->total;
  }
}

// One logged access; `site` is the return address of log_access's caller (the inlined
// load/store of a gptr/sptr in the kernel).
struct Access {
  std::uintptr_t addr;
  const void* site;
  std::int32_t arg;     // the kernel argument the pointer came from (-1: unknown / shared)
  std::uint8_t size;
  std::uint8_t store;
  std::uint8_t shared;
};
__attribute__((noinline)) void log_access(const void* p, unsigned size, bool store, bool shared,
                                          int arg);
int arg_of(const void* p);  // index of the launch argument whose array holds p, or -1

// ---- real<T> ----------------------------------------------------------------------------------
template <class T> struct real {
  static_assert(std::is_floating_point_v<T>, "real<T> wraps float or double");
  T v;
  real() = default;
  constexpr real(T x) : v(x) {}
  template <class U, std::enable_if_t<std::is_arithmetic_v<U> && !std::is_same_v<U, T>, int> = 0>
  explicit constexpr real(U x) : v(static_cast<T>(x)) {}
  template <class U, std::enable_if_t<std::is_arithmetic_v<U>, int> = 0>
  explicit constexpr operator U() const { return static_cast<U>(v); }

  friend real operator+(real a, real b) { count_flop<T>(F_ADD); return real(a.v + b.v); }
  friend real operator-(real a, real b) { count_flop<T>(F_ADD); return real(a.v - b.v); }
  friend real operator*(real a, real b) { count_flop<T>(F_MUL); return real(a.v * b.v); }
  friend real operator/(real a, real b) { count_flop<T>(F_DIV); return real(a.v / b.v); }
  friend real operator-(real a) { return real(-a.v); }  // exact: a sign flip
  friend bool operator==(real a, real b) { count_flop<T>(F_CMP); return a.v == b.v; }
  friend bool operator!=(real a, real b) { count_flop<T>(F_CMP); return a.v != b.v; }
  friend bool operator<(real a, real b) { count_flop<T>(F_CMP); return a.v < b.v; }
  friend bool operator>(real a, real b) { count_flop<T>(F_CMP); return a.v > b.v; }
  friend bool operator<=(real a, real b) { count_flop<T>(F_CMP); return a.v <= b.v; }
  friend bool operator>=(real a, real b) { count_flop<T>(F_CMP); return a.v >= b.v; }
  // canonical.h's exact helpers, found by argument-dependent lookup inside its templates.
  friend real ls_floor(real a) { return real(std::floor(a.v)); }
  friend real ls_fabs(real a) { return real(std::fabs(a.v)); }
  friend real ls_copysign(real a, real s) { return real(std::copysign(a.v, s.v)); }
  friend real ls_sqrt(real a) { count_flop<T>(F_SQRT); return real(std::sqrt(a.v)); }
};

template <class T> struct plain { typedef T type; };
template <class T> struct plain<real<T>> { typedef T type; };
template <class T> struct plain<const real<T>> { typedef const T type; };

// ---- recording pointers ---------------------------------------------------------------------
template <class T, bool Shared> struct ref {
  T* p;
  int arg;
  typedef std::remove_const_t<T> V;
  __attribute__((always_inline)) operator V() const {
    if (g_counting) log_access(p, sizeof(T), false, Shared, arg);
    return *p;
  }
  __attribute__((always_inline)) ref& operator=(V v) {
    static_assert(!std::is_const_v<T>, "store through a pointer to const");
    if (g_counting) log_access(p, sizeof(T), true, Shared, arg);
    *p = v;
    return *this;
  }
  __attribute__((always_inline)) ref& operator=(const ref& o) { return *this = V(o); }
  template <class U, bool S2> __attribute__((always_inline)) ref& operator=(const ref<U, S2>& o) {
    return *this = V(o);
  }
};

template <class T, bool Shared> struct ptr {
  T* p = nullptr;
  int arg = -1;
  ptr() = default;
  ptr(std::nullptr_t) {}
  ptr(T* q, int a) : p(q), arg(a) {}
  // From the kernel's raw parameter (float*, for a real<float> pointer): remember the argument.
  ptr(typename plain<T>::type* q)
      : p(reinterpret_cast<T*>(q)), arg(Shared || !g_counting ? -1 : arg_of(q)) {}
  template <class U, std::enable_if_t<std::is_same_v<const U, T> && !std::is_same_v<U, T>, int> = 0>
  ptr(const ptr<U, Shared>& o) : p(o.p), arg(o.arg) {}  // T* -> const T*

  __attribute__((always_inline)) ref<T, Shared> operator[](long long i) const {
    return ref<T, Shared>{p + i, arg};
  }
  __attribute__((always_inline)) ref<T, Shared> operator*() const { return ref<T, Shared>{p, arg}; }
  ptr operator+(long long i) const { return ptr(p + i, arg); }
  ptr operator-(long long i) const { return ptr(p - i, arg); }
  explicit operator bool() const { return p != nullptr; }
};
template <class T> using gptr = ptr<T, false>;
template <class T> using sptr = ptr<T, true>;

}  // namespace simt
