// The engine for the baseline instruction set of the target (x86-64: SSE2; aarch64: NEON).
#define LS_ISA base
#include "kernels.inc"
