// The engine compiled with -mavx512f -mavx512dq -mavx512vl -mavx512bw (x86-64 only; chosen at
// run time when the CPU has all four). Everything runs on 64-byte vectors (LS_VEC_BYTES): gate
// blocks of 16 units, so the canonical sigmoid/tanh of a gate is one 16-float vector, and 6 x 4
// register tiles in the products (LS_NV), which the 32 zmm registers hold.
// None of these flags enables FMA for our code: -ffp-contract=off forbids contraction, and the
// source never asks for a fused operation, so the bits equal the baseline unit's (tested).
#define LS_ISA avx512
#define LS_VEC_BYTES 64
#define LS_NV 4
#include "kernels.inc"
