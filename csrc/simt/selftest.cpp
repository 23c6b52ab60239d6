// Kernels that test the emulator's CUDA features one by one (tests/test_simt.py). Written
// exactly as CUDA kernels; they are not in cuda/ because they test the emulator, not the model.
#include "simt.h"

// Every thread writes its ids: out[8 * g + ...] with g the global linear thread index.
extern "C" __global__ void simt_selftest_ids(int* out) {
  unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  unsigned b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  unsigned g = b * (blockDim.x * blockDim.y * blockDim.z) + t;
  int* o = out + 12 * (long long)g;
  o[0] = threadIdx.x; o[1] = threadIdx.y; o[2] = threadIdx.z;
  o[3] = blockIdx.x; o[4] = blockIdx.y; o[5] = blockIdx.z;
  o[6] = blockDim.x; o[7] = blockDim.y; o[8] = blockDim.z;
  o[9] = gridDim.x; o[10] = gridDim.y; o[11] = gridDim.z;
}
LS_EXPORT(simt_selftest_ids)

// Static shared memory + __syncthreads: reverse each block's slice (n <= 1024 = blockDim.x).
// With sync = 0 the barrier is skipped, and thread t reads s[n-1-t] before its owner wrote it.
extern "C" __global__ void simt_selftest_reverse(const float* in, float* out, int sync) {
  __shared__ float s[1024];
  unsigned n = blockDim.x, t = threadIdx.x;
  s[t] = in[blockIdx.x * n + t];
  if (sync) __syncthreads();
  out[blockIdx.x * n + t] = s[n - 1 - t];
  if (sync) __syncthreads();  // nobody overwrites s before everyone read it (next launch)
  s[t] = -1.0f;               // poison for the next block on this OS thread
}
LS_EXPORT(simt_selftest_reverse)

// Many barriers in a loop: rotate a block-wide vector `rounds` times through shared memory.
extern "C" __global__ void simt_selftest_rotate(const double* in, double* out, int rounds) {
  __shared__ double s[1024];
  unsigned n = blockDim.x, t = threadIdx.x;
  double v = in[blockIdx.x * n + t];
  for (int r = 0; r < rounds; ++r) {
    s[t] = v;
    __syncthreads();            // everyone wrote
    v = s[(t + 1) % n];
    __syncthreads();            // everyone read before the next round writes
  }
  out[blockIdx.x * n + t] = v;
}
LS_EXPORT(simt_selftest_rotate)

// Dynamic shared memory: thread 0 sums the block's values in order after a barrier.
extern "C" __global__ void simt_selftest_dynsum(const double* in, double* out) {
  LS_DYN_SHARED(double, s);
  unsigned n = blockDim.x, t = threadIdx.x;
  s[t] = in[blockIdx.x * n + t];
  __syncthreads();
  if (t == 0) {
    double acc = 0.0;
    for (unsigned k = 0; k < n; ++k) acc = acc + s[k];
    out[blockIdx.x] = acc;
  }
}
LS_EXPORT(simt_selftest_dynsum)

// Grid barrier: in each round every block publishes a value, then reads its left neighbour's
// value of the same round. Needs every block resident and a barrier between write and read.
extern "C" __global__ void simt_selftest_grid(long long* buf, long long* out, int rounds,
                                              unsigned int* bar) {
  unsigned nb = gridDim.x, b = blockIdx.x;
  long long v = b;
  for (int r = 0; r < rounds; ++r) {
    if (threadIdx.x == 0) buf[(r & 1) * nb + b] = v;
    LS_GRID_SYNC(bar);          // every block published round r
    v = buf[(r & 1) * nb + (b + nb - 1) % nb] + v;
    __syncthreads();
  }
  if (threadIdx.x == 0) out[b] = v;
}
LS_EXPORT(simt_selftest_grid)

// A thread that returns before a barrier the others wait at (a bug the emulator must report).
extern "C" __global__ void simt_selftest_early_return(float* out) {
  if (threadIdx.x == 0) return;
  __syncthreads();
  out[threadIdx.x] = 1.0f;
}
LS_EXPORT(simt_selftest_early_return)

// Every parameter kind: scalars are written back through the pointers.
extern "C" __global__ void simt_selftest_args(int a, long long b, unsigned int c, float d,
                                              double e, const int* ci, int* oi, long long* ol,
                                              float* of, double* od, const unsigned int* cu,
                                              unsigned int* ou) {
  oi[0] = a + ci[0];
  ol[0] = b;
  ou[0] = c + cu[0];
  of[0] = d;
  od[0] = e;
}
LS_EXPORT(simt_selftest_args)

// Block 0 skips the grid barrier that the others wait at (a bug the emulator must report
// instead of hanging).
extern "C" __global__ void simt_selftest_grid_skip(int* out, unsigned int* bar) {
  if (blockIdx.x == 0) return;
  LS_GRID_SYNC(bar);
  out[blockIdx.x] = 1;
}
LS_EXPORT(simt_selftest_grid_skip)

// ---- cost-counter self-tests (tests/test_simt.py): accesses with a known count -----------------
// y[i] = x[i * stride] for i < n (stride 1: a coalesced copy, 4 sectors per float32 request;
// stride 32: every lane in its own sector, 32 per request). One multiply per element.
extern "C" __global__ void simt_selftest_strided(const float* xr, float* yr, int stride, int n) {
  LS_GPTR(const LS_REAL(float)) x = xr;
  LS_GPTR(LS_REAL(float)) y = yr;
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = x[(long long)i * stride] * LS_REAL(float)(2.0f);
}
LS_EXPORT(simt_selftest_strided)

// The same in float64: 8 sectors per coalesced request.
extern "C" __global__ void simt_selftest_strided64(const double* xr, double* yr, int stride,
                                                   int n) {
  LS_GPTR(const LS_REAL(double)) x = xr;
  LS_GPTR(LS_REAL(double)) y = yr;
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = x[(long long)i * stride] + LS_REAL(double)(1.0);
}
LS_EXPORT(simt_selftest_strided64)

// Shared memory: a warp fills s[0..1024) (32 conflict-free stores), then lane t reads
// s[(t * stride) % 1024]: gcd(stride, 32) lanes share each bank with different words, so the
// read takes that many wavefronts (1 for stride 33: every lane in its own bank).
extern "C" __global__ void simt_selftest_banks(float* out, int stride) {
  LS_SHARED(float, s, 1024);
  unsigned t = threadIdx.x;
  for (unsigned j = t; j < 1024; j += blockDim.x) s[j] = (float)j;
  __syncthreads();
  out[t] = s[(t * stride) % 1024];
}
LS_EXPORT(simt_selftest_banks)

// Divergence: even lanes load x[i], odd lanes load x[i + 64] (two sites, two requests of 16
// lanes each); then all lanes take a second load at one site.
extern "C" __global__ void simt_selftest_diverge(const float* xr, float* yr) {
  LS_GPTR(const LS_REAL(float)) x = xr;
  LS_GPTR(LS_REAL(float)) y = yr;
  unsigned i = threadIdx.x;
  LS_REAL(float) v = (i % 2 == 0) ? LS_REAL(float)(x[i]) : LS_REAL(float)(x[i + 64]);
  y[i] = v + LS_REAL(float)(x[i]);
}
LS_EXPORT(simt_selftest_diverge)
