// The engine compiled with -mavx2 (x86-64 only; chosen at run time when the CPU has AVX2).
// -mavx2 does not enable FMA (-mfma), so no fused multiply-add can be emitted at all, and
// -ffp-contract=off forbids contraction anyway: the bits equal the baseline unit's (tested).
#define LS_ISA avx2
#include "kernels.inc"
