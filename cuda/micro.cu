// Micro-benchmark kernels for bench/gpu_micro.py (and the SIMT emulator's tests):
//
//   micro_noop      an empty kernel: many launches of it give the launch latency
//   micro_barrier   `iters` grid-wide barriers (cooperative launch): the grid-barrier latency
//   micro_muladd    8 independent chains of a = (a * m) + c per thread, 2 flops per link,
//                   never fused (--fmad=false): the no-FMA arithmetic peak
//   micro_copy      y = x, grid-stride: the memory bandwidth (2 * n * sizeof(T) bytes moved)
#include "ls_cuda.cuh"

#define LS_MICRO(T, S)                                                                      \
  extern "C" __global__ void micro_noop_##S(T* y) {                                          \
    if (y == nullptr) return;                                                               \
  }                                                                                         \
  LS_EXPORT(micro_noop_##S)                                                                 \
  extern "C" __global__ void micro_barrier_##S(unsigned int* bar, int iters, T* y) {        \
    for (int i = 0; i < iters; ++i) LS_GRID_SYNC(bar);                                      \
    if (threadIdx.x == 0 && blockIdx.x == 0) y[0] = T(iters);                               \
  }                                                                                         \
  LS_EXPORT(micro_barrier_##S)                                                              \
  extern "C" __global__ void micro_muladd_##S(T* y, int iters, long long n) {               \
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;                         \
    if (i >= n) return;                                                                     \
    const T m = T(0.999), c = T(0.001);                                                     \
    T a0 = T(i & 7), a1 = a0 + T(1), a2 = a0 + T(2), a3 = a0 + T(3);                        \
    T a4 = a0 + T(4), a5 = a0 + T(5), a6 = a0 + T(6), a7 = a0 + T(7);                       \
    for (int k = 0; k < iters; ++k) {                                                       \
      a0 = (a0 * m) + c; a1 = (a1 * m) + c; a2 = (a2 * m) + c; a3 = (a3 * m) + c;           \
      a4 = (a4 * m) + c; a5 = (a5 * m) + c; a6 = (a6 * m) + c; a7 = (a7 * m) + c;           \
    }                                                                                       \
    y[i] = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7));                               \
  }                                                                                         \
  LS_EXPORT(micro_muladd_##S)                                                               \
  extern "C" __global__ void micro_copy_##S(const T* __restrict__ x, T* __restrict__ y,     \
                                           long long n) {                                   \
    long long stride = (long long)gridDim.x * blockDim.x;                                   \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) \
      y[i] = x[i];                                                                          \
  }                                                                                         \
  LS_EXPORT(micro_copy_##S)

LS_MICRO(float, f32)
LS_MICRO(double, f64)
