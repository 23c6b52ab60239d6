"""Numba CUDA kernels of the "numba-cuda" backend (docs/numba.md).

``math``: non-contracting helpers and canonical exp/log/sigmoid/tanh as device functions.
``common``: the kernels both strategies share (loss sum, weight gradients, clipping, optimizers).
``per_sample``: one thread owns one sample for the whole sequence.
``fused``: threads over (sample, hidden unit), shared-memory tiles, one launch per time step.
``ptx``: PTX of every kernel for a compute capability (no GPU needed) and its contract check.
Everything is generated per working dtype from the same source, so float32 kernels hold no
float64 arithmetic.
"""
