// Element-wise canonical math and the contraction canary, for checking canonical.h on a device
// (and, through lockstep._simt, on the CPU): y[i] = f(x[i]) for i < n.
#include "ls_cuda.cuh"

#define LS_MAP(NAME, FN, T, SUFFIX)                                                    \
  extern "C" __global__ void NAME##_##SUFFIX(const T* __restrict__ x, T* __restrict__ y, \
                                             long long n) {                             \
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;                     \
    if (i < n) y[i] = lockstep::FN<T>(x[i]);                                            \
  }                                                                                     \
  LS_EXPORT(NAME##_##SUFFIX)

LS_MAP(canonical_exp, ls_exp, float, f32)
LS_MAP(canonical_exp, ls_exp, double, f64)
LS_MAP(canonical_log, ls_log, float, f32)
LS_MAP(canonical_log, ls_log, double, f64)
LS_MAP(canonical_sigmoid, ls_sigmoid, float, f32)
LS_MAP(canonical_sigmoid, ls_sigmoid, double, f64)
LS_MAP(canonical_tanh, ls_tanh, float, f32)
LS_MAP(canonical_tanh, ls_tanh, double, f64)

// (a*b)+c: with --fmad=false this must not become an fma.
#define LS_MULADD(T, SUFFIX)                                                                 \
  extern "C" __global__ void muladd_##SUFFIX(const T* a, const T* b, const T* c, T* y,       \
                                             long long n) {                                  \
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;                          \
    if (i < n) y[i] = (a[i] * b[i]) + c[i];                                                  \
  }                                                                                          \
  LS_EXPORT(muladd_##SUFFIX)
LS_MULADD(float, f32)
LS_MULADD(double, f64)
