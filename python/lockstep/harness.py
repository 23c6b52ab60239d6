"""One harness that trains any backend / strategy / device from the same start and compares
the bits with the NumPy reference (``lockstep check`` and the agreement tests use it)."""

from __future__ import annotations

import hashlib

import numpy as np

from . import backends, reference
from .train import new_rng, run_epochs


def parse_run(spec: str):
    """"backend[:strategy][@device]" -> (backend, strategy or None, device or None)."""
    rest, _, device = spec.partition("@")
    name, _, strategy = rest.partition(":")
    return name, strategy or None, device or None


def train_with(spec, model_cfg, train_cfg, dtype, params, x, y, epochs=None):
    """Train a fresh backend instance from ``params``; (per-epoch losses array, final params)."""
    name, strategy, device = parse_run(spec) if isinstance(spec, str) else spec
    be = backends.get(name)(model_cfg, train_cfg, dtype, strategy=strategy, device=device)
    be.load({n: np.asarray(params[n], dtype) for n in reference.PARAM_NAMES}, None)
    epochs = train_cfg.epochs if epochs is None else epochs
    losses = list(run_epochs(be, x, y, train_cfg, new_rng(train_cfg.seed), epochs, data_key=id(x)))
    final, _ = be.state()
    return np.array(losses, dtype=dtype), {n: np.asarray(final[n]) for n in reference.PARAM_NAMES}


def params_sha256(params) -> str:
    """SHA-256 over the raw bytes of the parameters in PARAM_NAMES order (C order)."""
    h = hashlib.sha256()
    for n in reference.PARAM_NAMES:
        h.update(np.ascontiguousarray(params[n]).tobytes())
    return h.hexdigest()


def bits_equal(a, b) -> bool:
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
