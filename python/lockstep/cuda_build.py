"""The one kernel loader: reads CUDA sources shipped in the package, compiles them with NVRTC
under the arithmetic contract, caches the result on disk, and checks the PTX.

Options are fixed here and nowhere else: ``--fmad=false`` (no contraction into FMA),
``-std=c++17``, the include path of ``lockstep/canonical.h`` and an architecture. Never
``-ftz=true``, ``--use_fast_math`` or ``-prec-div=false`` (CuPy's ``RawModule(code=...)`` always adds
``-ftz=true``, which flushes subnormals, so lockstep compiles the sources itself and hands CuPy
the binary).
"""

from __future__ import annotations

import hashlib
import os
import re
from importlib import resources
from pathlib import Path

CONTRACT_OPTIONS = ("--fmad=false", "-std=c++17")
FORBIDDEN_OPTIONS = ("-ftz=true", "--ftz=true", "--use_fast_math", "-use_fast_math",
                     "-prec-div=false", "-prec-sqrt=false", "--fmad=true", "-fmad=true")


class KernelBuildError(RuntimeError):
    """NVRTC is missing or rejected a source; the message carries the compiler log."""


def include_dir() -> Path:
    """The directory holding lockstep/canonical.h inside the installed package."""
    return Path(str(resources.files("lockstep") / "include"))


def cuda_dir() -> Path:
    return Path(str(resources.files("lockstep") / "cuda"))


def cache_dir() -> Path:
    root = os.environ.get("LOCKSTEP_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "lockstep")
    return Path(root) / "kernels"


def _nvrtc():
    try:
        from cuda.bindings import nvrtc
    except ImportError as e:
        raise KernelBuildError("NVRTC bindings are missing: pip install cuda-bindings "
                               "nvidia-cuda-nvrtc (or lockstep[cuda13])") from e
    return nvrtc


def nvrtc_version() -> tuple:
    nvrtc = _nvrtc()
    err, major, minor = nvrtc.nvrtcVersion()
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        raise KernelBuildError(f"NVRTC is not usable: {err}; install nvidia-cuda-nvrtc")
    return major, minor


def nvrtc_available():
    """(True, version) or (False, the reason)."""
    try:
        return True, "NVRTC %d.%d" % nvrtc_version()
    except KernelBuildError as e:
        return False, str(e)


def read_source(name: str) -> tuple:
    """(file name, text) of cuda/<name>.cu from the installed package, prefixed with #line
    so that compiler messages point at the real file."""
    path = cuda_dir() / (name if name.endswith(".cu") else f"{name}.cu")
    if not path.is_file():
        raise KernelBuildError(f"no kernel source {path.name} in {path.parent}")
    return path.name, f'#line 1 "{path}"\n' + path.read_text()


def options(arch: str, extra=()) -> list:
    """The full NVRTC option list for an architecture such as "sm_90" or "compute_80"."""
    bad = [o for o in extra if o in FORBIDDEN_OPTIONS]
    if bad:
        raise KernelBuildError(f"options {bad} break the arithmetic contract (docs/arithmetic.md)")
    if not re.fullmatch(r"(sm|compute)_\d+a?", arch):
        raise KernelBuildError(f"architecture must look like sm_90 or compute_90, got {arch!r}")
    return [f"--gpu-architecture={arch}", *CONTRACT_OPTIONS, f"-I{include_dir()}",
            f"-I{cuda_dir()}", *extra]


def _headers_digest() -> str:
    h = hashlib.sha256()
    for p in [*sorted(include_dir().rglob("*.h")), *sorted(cuda_dir().glob("*.cuh"))]:
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


def compile(source: str, name: str, arch: str, target: str = "ptx", extra=(), cache=True) -> bytes:
    """Compile CUDA source text to PTX (``target="ptx"``) or a cubin (needs an sm_ arch).

    Cached on disk under a key of source, headers, options, NVRTC version, arch and target.
    """
    if target not in ("ptx", "cubin"):
        raise KernelBuildError(f"target must be ptx or cubin, got {target!r}")
    if target == "cubin" and not arch.startswith("sm_"):
        raise KernelBuildError(f"a cubin needs a real architecture (sm_XX), got {arch}")
    opts = options(arch, extra)
    path = _cache_path(source, name, arch, opts, target)
    if cache and path.is_file():
        return path.read_bytes()
    # A cubin compile produces the PTX too: cache both (the SASS check reads them in pairs).
    outs = _nvrtc_compile(source, name, opts, target, both=True) if target == "cubin" else \
        {target: _nvrtc_compile(source, name, opts, target)}
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        for tgt, data in outs.items():
            p = path if tgt == target else _cache_path(source, name, arch, opts, tgt)
            tmp = p.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(data)
            os.replace(tmp, p)  # atomic: concurrent builders never see half a file
    return outs[target]


def _cache_path(source: str, name: str, arch: str, opts, target: str) -> Path:
    """Where compile() caches: keyed by source, headers, options, NVRTC version, arch, target."""
    key = hashlib.sha256("\0".join([source, _headers_digest(), *opts, str(nvrtc_version()),
                                    target]).encode()).hexdigest()[:32]
    return cache_dir() / f"{Path(name).stem}-{arch}-{key}.{target}"


def _nvrtc_compile(source: str, name: str, opts, target: str, both: bool = False):
    """The PTX or cubin bytes of one NVRTC compile; with ``both`` a dict {"ptx", "cubin"}
    from that one compile, else with ``both`` false and called directly, the bytes."""
    nvrtc = _nvrtc()
    ok = nvrtc.nvrtcResult.NVRTC_SUCCESS
    err, prog = nvrtc.nvrtcCreateProgram(source.encode(), name.encode(), 0, [], [])
    if err != ok:
        raise KernelBuildError(f"nvrtcCreateProgram failed for {name}: {err}")
    try:
        (err,) = nvrtc.nvrtcCompileProgram(prog, len(opts), [o.encode() for o in opts])
        _, size = nvrtc.nvrtcGetProgramLogSize(prog)
        log = b" " * size
        nvrtc.nvrtcGetProgramLog(prog, log)
        if err != ok:
            raise KernelBuildError(f"NVRTC could not compile {name}:\n"
                                   f"{log.decode(errors='replace').strip()}")
        out = {}
        for tgt in (("ptx", "cubin") if both else (target,)):
            get_size, get = ((nvrtc.nvrtcGetPTXSize, nvrtc.nvrtcGetPTX) if tgt == "ptx"
                             else (nvrtc.nvrtcGetCUBINSize, nvrtc.nvrtcGetCUBIN))
            _, size = get_size(prog)
            buf = b" " * size
            get(prog, buf)
            out[tgt] = buf.rstrip(b"\0") if tgt == "ptx" else buf
        return out if both else out[target]
    finally:
        nvrtc.nvrtcDestroyProgram(prog)


def ptx_functions(ptx: str) -> dict:
    """{name: body} of every .entry and .func in a PTX module."""
    parts = re.split(r"^(?:\.visible\s+|\.weak\s+)?\.(?:entry|func)\s+(?:\([^)]*\)\s*)?(\w+)",
                     ptx, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


_FMA = re.compile(r"^\s*(?:@!?%\w+\s+)?fma\.", re.M)
_F64 = re.compile(r"^\s*(?:@!?%\w+\s+)?(?:add|sub|mul|div|sqrt|neg|abs|min|max|fma|rcp|setp|"
                  r"cvt[.\w]*)\S*\.f64\b", re.M)


def ptx_violations(ptx: str, float32_only_suffix: str = "_f32", all_float32: bool = False) -> list:
    """Contract violations in PTX: any fma instruction, and any f64 arithmetic or conversion
    in a float32 function: one whose name ends with ``float32_only_suffix`` (an empty suffix:
    none), or every function when ``all_float32`` (for modules compiled for one dtype)."""
    problems = []
    for fname, body in ptx_functions(ptx).items():
        n = len(_FMA.findall(body))
        if n:
            problems.append(f"{fname}: {n} fma instruction(s)")
        if all_float32 or (float32_only_suffix and fname.endswith(float32_only_suffix)):
            n = len(_F64.findall(body))
            if n:
                problems.append(f"{fname}: {n} f64 instruction(s) in a float32 kernel")
    return problems


# ---- loading into CuPy ---------------------------------------------------------------------

def kernel_path(name: str, arch: str, target: str = "cubin", extra=()) -> Path:
    """Compile cuda/<name>.cu (cached) and return the path of the cached cubin or PTX file."""
    fname, src = read_source(name)
    compile(src, fname, arch, target=target, extra=extra, cache=True)  # writes the cache file
    return _cache_path(src, fname, arch, options(arch, extra), target)


def device_arch(device=None) -> str:
    """The CuPy device's real architecture, e.g. "sm_90"."""
    import cupy

    dev = cupy.cuda.Device() if device is None else cupy.cuda.Device(device)
    return f"sm_{dev.compute_capability}"


def load_module(name: str, arch: str | None = None, extra=(), cooperative: bool = False):
    """cuda/<name>.cu as a ``cupy.RawModule`` loaded from the cubin this module compiled (never
    through ``RawModule(code=...)``, which adds ``-ftz=true``). With ``cooperative`` every kernel
    of the module is launched with cuLaunchCooperativeKernel (all blocks resident, or an error)."""
    try:
        import cupy
    except ImportError as e:
        raise KernelBuildError("CuPy is missing: pip install cupy-cuda13x (or lockstep[cuda13])") \
            from e
    arch = arch or device_arch()
    return cupy.RawModule(path=str(kernel_path(name, arch, "cubin", extra)),
                          enable_cooperative_groups=cooperative)
