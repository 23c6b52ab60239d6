"""Memory estimates checked before work starts: a size that cannot fit is refused with the
estimate and the limit, instead of a MemoryError (or the OOM killer) later."""

from __future__ import annotations

import os
import resource

from .config import ConfigError


def available_memory() -> int:
    """Bytes this process may still allocate: the kernel's MemAvailable (or physical
    memory), capped by an address-space limit (ulimit -v) when one is set."""
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError):
            avail = 1 << 62
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        avail = min(avail, soft)
    return avail


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError


def training_bytes(I, H, O, T, N, B, itemsize, n_valid=0, layers=1) -> int:
    """A generous estimate of a training run's peak memory.

    Parameters P = 4H(I+H+1) + (L-1)4H(2H+1) + O(H+1) exist about 12 times over (params,
    gradients, two Adam moments, the best epoch's copy, the last good state, backend copies);
    BPTT keeps about 20 values per hidden unit, layer, sample and time step of a batch (gates,
    cell, hidden, their tanh, the backward buffers, dropout masks); the windows hold (I + O)
    values per step and sample."""
    P = 4 * H * (I + H + 1) + (layers - 1) * 4 * H * (2 * H + 1) + O * (H + 1)
    B = max(1, min(B or N, N))
    acts = 20 * T * B * (layers * H + I + O)
    windows = 2 * T * (N + n_valid) * (I + O)
    return int((12 * P + acts + windows) * itemsize)


def check_memory(need: int, what: str, fix: str):
    limit = available_memory()
    if need > limit:
        raise ConfigError(f"{what} needs about {fmt_bytes(need)} of memory, more than the "
                          f"{fmt_bytes(limit)} available; {fix}")
