"""PTX of every numba-cuda kernel, compiled ahead of time for a given compute capability, and
the contract check on it (no ``fma``; no f64 arithmetic in float32 kernels). Works without a
GPU: only NVVM is needed.
"""

from __future__ import annotations

import contextlib
from types import SimpleNamespace
from unittest import mock

import numpy as np

from .. import cuda_build
from .common import make_common, signature
from .fused import make_fused
from .per_sample import make_per_sample


@contextlib.contextmanager
def _compute_capability(cc):
    """Numba compiles a called device function for the *current* device, which needs a
    driver; without a GPU, answer with ``cc`` instead (the kernel itself is compiled for
    ``cc`` by compile_ptx)."""
    from numba import cuda
    from numba.cuda import dispatcher
    if cuda.is_available():
        yield
        return
    fake = SimpleNamespace(compute_capability=tuple(cc))
    with mock.patch.object(dispatcher, "get_current_device", lambda: fake):
        yield


def kernels(dtype) -> dict:
    """{"module.kernel": (python function, signature spec)} of every kernel for ``dtype``."""
    out = {}
    for mod, ns in (("common", make_common(dtype)), ("per_sample", make_per_sample(dtype)),
                    ("fused", make_fused(dtype))):
        for name, entry in ns.py.items():
            out[f"{mod}.{name}"] = entry
    return out


def compile_ptx(pyfunc, sig, cc=(9, 0), device=False) -> str:
    """PTX text of one kernel (or device function) for compute capability ``cc``."""
    from numba import cuda
    with _compute_capability(cc):
        ptx, _ = cuda.compile_ptx(pyfunc, sig, device=device, cc=tuple(cc))
    return ptx


def kernel_ptx(dtype, cc=(9, 0)) -> dict:
    """{"module.kernel": PTX} of every kernel for ``dtype``."""
    return {name: compile_ptx(f, signature(dtype, spec), cc)
            for name, (f, spec) in kernels(dtype).items()}


def ptx_problems(ptx: str, float32: bool) -> list:
    """Contract violations: fma anywhere (``cuda_build.ptx_violations``) and, for a float32
    kernel, any f64 arithmetic or conversion in any of its functions."""
    return cuda_build.ptx_violations(ptx, float32_only_suffix="", all_float32=float32)


def check_all(cc=(9, 0)) -> dict:
    """{"float32 module.kernel": [problems]} for every kernel of both dtypes."""
    out = {}
    for dt in (np.float32, np.float64):
        for name, ptx in kernel_ptx(dt, cc).items():
            out[f"{np.dtype(dt).name} {name}"] = ptx_problems(ptx, dt == np.float32)
    return out
