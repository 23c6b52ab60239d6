// lockstep SIMT-on-CPU: just enough CUDA to run cuda/*.cu kernels as C++ on the CPU.
//
// Each block runs on one OS thread; its CUDA threads are fibers (ucontext) on that thread.
// __shared__ is `static thread_local` (a block's fibers share one OS thread), __syncthreads()
// is a fiber barrier, LS_GRID_SYNC() a barrier across the OS threads of a cooperative launch
// (all blocks resident). threadIdx/blockIdx/blockDim/gridDim are per fiber / per block.
// Only the CUDA features the kernels use are here; each has a self-test (tests/test_simt.py).
// This header is force-included before every .cu file compiled into lockstep._simt.
#pragma once
#define LOCKSTEP_SIMT 1

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "simt_count.h"

namespace simt {

struct uint3 {
  unsigned int x, y, z;
};

struct Fiber;   // one CUDA thread
struct Block;   // one CUDA block (one OS thread while it runs)

struct ThreadState {
  uint3 tid;
};
struct BlockState {
  uint3 bid, bdim, gdim;
  void* dyn_smem;
};

extern thread_local ThreadState* t_thread;
extern thread_local BlockState* t_block;

void syncthreads();  // block barrier: every thread of the block must reach it
void grid_sync();    // grid barrier: every thread of every block (cooperative launches only)

// ---- kernel registry: name -> typed launcher ---------------------------------------------------

enum ArgKind {
  A_I32, A_I64, A_U32, A_F32, A_F64,                                // scalars
  A_PTR_F32, A_PTR_F64, A_PTR_I32, A_PTR_I64, A_PTR_U32,            // writable pointers
  A_CPTR_F32, A_CPTR_F64, A_CPTR_I32, A_CPTR_I64, A_CPTR_U32,       // const pointers
};

union ArgVal {
  std::int32_t i32;
  std::int64_t i64;
  std::uint32_t u32;
  float f32;
  double f64;
  void* ptr;
};

struct KernelInfo {
  std::string name;
  std::vector<ArgKind> kinds;
  void (*invoke)(void* fn, const ArgVal* args);
  void* fn;
};

void register_kernel(const KernelInfo& k);

template <class A> constexpr ArgKind kind_of() {
  using P = std::remove_pointer_t<A>;
  using B = std::remove_cv_t<P>;
  constexpr bool c = std::is_const_v<P>;
  if constexpr (std::is_pointer_v<A>) {
    if constexpr (std::is_same_v<B, float>) return c ? A_CPTR_F32 : A_PTR_F32;
    else if constexpr (std::is_same_v<B, double>) return c ? A_CPTR_F64 : A_PTR_F64;
    else if constexpr (std::is_same_v<B, int>) return c ? A_CPTR_I32 : A_PTR_I32;
    else if constexpr (std::is_same_v<B, long long>) return c ? A_CPTR_I64 : A_PTR_I64;
    else if constexpr (std::is_same_v<B, unsigned int>) return c ? A_CPTR_U32 : A_PTR_U32;
    else static_assert(sizeof(A) == 0, "unsupported kernel pointer parameter type");
  } else {
    if constexpr (std::is_same_v<A, int>) return A_I32;
    else if constexpr (std::is_same_v<A, long long>) return A_I64;
    else if constexpr (std::is_same_v<A, unsigned int>) return A_U32;
    else if constexpr (std::is_same_v<A, float>) return A_F32;
    else if constexpr (std::is_same_v<A, double>) return A_F64;
    else static_assert(sizeof(A) == 0, "unsupported kernel scalar parameter type");
  }
}

template <class A> A arg_get(const ArgVal& v) {
  if constexpr (std::is_pointer_v<A>) return static_cast<A>(v.ptr);
  else if constexpr (std::is_same_v<A, int>) return v.i32;
  else if constexpr (std::is_same_v<A, long long>) return v.i64;
  else if constexpr (std::is_same_v<A, unsigned int>) return v.u32;
  else if constexpr (std::is_same_v<A, float>) return v.f32;
  else return v.f64;
}

template <class... A, std::size_t... I>
void call_with(void (*f)(A...), const ArgVal* args, std::index_sequence<I...>) {
  f(arg_get<A>(args[I])...);
}

template <class... A> struct Registrar {
  Registrar(const char* name, void (*f)(A...)) {
    KernelInfo k;
    k.name = name;
    k.kinds = {kind_of<A>()...};
    k.fn = reinterpret_cast<void*>(f);
    k.invoke = [](void* fn, const ArgVal* args) {
      call_with(reinterpret_cast<void (*)(A...)>(fn), args, std::index_sequence_for<A...>{});
    };
    register_kernel(k);
  }
};

}  // namespace simt

// ---- the CUDA surface the kernels use -----------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static thread_local
#define threadIdx (simt::t_thread->tid)
#define blockIdx (simt::t_block->bid)
#define blockDim (simt::t_block->bdim)
#define gridDim (simt::t_block->gdim)
#define __syncthreads() simt::syncthreads()

// lockstep's portable spellings (cuda/ls_cuda.cuh gives the device versions).
#define LS_GRID_SYNC(bar) simt::grid_sync()
#define LS_LDCG(p) (*(p))
#define LS_DYN_SHARED(T, name) T* name = static_cast<T*>(simt::t_block->dyn_smem)
#define LS_DYN_SPTR(T, name) simt::sptr<T> name(static_cast<T*>(simt::t_block->dyn_smem), -1)
#define LS_DYN_SPTR_T(T) simt::sptr<T>
#define LS_SHARED(T, name, n) \
  __shared__ T name##_smem_[n];  \
  simt::sptr<T> name(name##_smem_, -1)
#define LS_REAL(T) simt::real<T>
#define LS_GPTR(T) simt::gptr<T>
#define LS_EXPORT(fn) static simt::Registrar ls_registrar_##fn(#fn, &fn);

// canonical.h on the counted scalar: the same constants and bit patterns as for T itself.
#include "lockstep/canonical.h"
namespace lockstep {
template <class T> struct Consts<simt::real<T>> : Consts<T> {
  typedef typename Consts<T>::U U;
  static simt::real<T> from_bits(U u) { return simt::real<T>(Consts<T>::from_bits(u)); }
  static U to_bits(simt::real<T> x) { return Consts<T>::to_bits(x.v); }
};
// For the kernels' qualified calls (lockstep::ls_sqrt(x)), which skip argument-dependent lookup.
template <class T> inline simt::real<T> ls_sqrt(simt::real<T> a) {
  simt::count_flop<T>(simt::F_SQRT);
  return simt::real<T>(std::sqrt(a.v));
}
}  // namespace lockstep
