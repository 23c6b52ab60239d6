// The engine compiled with -mavx512f -mavx512dq -mavx512vl -mavx512bw (x86-64 only; chosen at
// run time when the CPU has all four). The products run on 64-byte vectors (LS_GEMM_BYTES):
// 32 zmm registers, and on cores with two 512-bit pipes twice the lanes of AVX2 per operation.
// None of these flags enables FMA for our code: -ffp-contract=off forbids contraction, and the
// source never asks for a fused operation, so the bits equal the baseline unit's (tested).
#define LS_ISA avx512
#define LS_GEMM_BYTES 64
#include "kernels.inc"
