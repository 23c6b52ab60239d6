// Portable spellings shared by the device (NVRTC) and the SIMT emulator (csrc/simt/simt.h):
//   LS_EXPORT(fn)          registers an extern "C" kernel with the emulator (nothing on a GPU)
//   LS_GRID_SYNC(bar)      grid-wide barrier; `bar` is a zeroed unsigned int[2] in global memory
//                          and the launch must be cooperative (every block resident)
//   LS_DYN_SHARED(T, p)    T* p = the launch's dynamic shared memory
//   LS_LDCG(p)             *p, bypassing L1: for data other blocks wrote before LS_GRID_SYNC
// Counted spellings (plain types here; in the emulator they record the cost counters of
// csrc/simt/simt_count.h, so the kernels stay one source):
//   LS_REAL(T)             the working scalar: T (emulator: counts + - * / sqrt, compares)
//   LS_GPTR(T)             a global-memory pointer: T* (emulator: logs every load and store)
//   LS_SHARED(T, p, n)     __shared__ T p[n] (emulator: p logs its accesses for bank conflicts)
//   LS_DYN_SPTR(T, p)      the dynamic shared memory as a counted pointer; LS_DYN_SPTR_T(T) its type
#pragma once
#include "lockstep/canonical.h"

#if !defined(LOCKSTEP_SIMT)
#define LS_EXPORT(fn)
#define LS_DYN_SHARED(T, name) \
  extern __shared__ double ls_dyn_smem_[]; \
  T* name = reinterpret_cast<T*>(ls_dyn_smem_)

// Sense-counting grid barrier on integer atomics (float atomics are forbidden by the contract;
// cooperative_groups' header is not among NVRTC's built-in headers). bar[0] counts arrivals,
// bar[1] is the generation; the last block to arrive resets the count and bumps the generation.
__device__ __forceinline__ void ls_grid_sync(unsigned int* bar) {
  __syncthreads();
  if (threadIdx.x == 0 && threadIdx.y == 0 && threadIdx.z == 0) {
    volatile unsigned int* vbar = bar;
    unsigned int nb = gridDim.x * gridDim.y * gridDim.z;
    unsigned int gen = vbar[1];
    __threadfence();  // this block's writes before its arrival
    if (atomicAdd(&bar[0], 1u) == nb - 1u) {
      vbar[0] = 0u;
      __threadfence();
      atomicAdd(&bar[1], 1u);
    } else {
      while (vbar[1] == gen) {
      }
    }
    __threadfence();  // the other blocks' writes after the barrier
  }
  __syncthreads();
}
#define LS_GRID_SYNC(bar) ls_grid_sync(bar)
#define LS_REAL(T) T
#define LS_GPTR(T) T*
#define LS_SHARED(T, name, n) __shared__ T name[n]
#define LS_DYN_SPTR(T, name) LS_DYN_SHARED(T, name)
#define LS_DYN_SPTR_T(T) T*
#define LS_LDCG(p) __ldcg(p)
#endif
