"""Checkpoints: one .npz file with parameters, optimizer state, RNG state, epoch, history,
configs, preprocessing state, a data fingerprint and the lockstep version.

Writes are atomic (temporary file in the same directory, fsync, rename, fsync of the
directory): a crash or a failed run never leaves a half-written or clobbered checkpoint.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from . import __version__
from .reference import PARAM_NAMES

FORMAT = "lockstep-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """The checkpoint is missing, corrupt or does not match this run."""


def _flatten(prefix, tree, arrays):
    """Nested dicts of arrays -> flat {"prefix/key/...": array}; the structure goes to meta."""
    if isinstance(tree, dict):
        return {k: _flatten(f"{prefix}/{k}", v, arrays) for k, v in tree.items()}
    if isinstance(tree, (np.ndarray, np.generic)):
        arrays[prefix] = np.asarray(tree)
        return {"__array__": prefix}
    return tree  # JSON scalar


def _unflatten(tree, arrays):
    if isinstance(tree, dict):
        if set(tree) == {"__array__"}:
            a = arrays[tree["__array__"]]
            return a[()] if a.ndim == 0 else a
        return {k: _unflatten(v, arrays) for k, v in tree.items()}
    return tree


def save(path, *, params, opt_state, rng_state, epoch, history, config, extra=None):
    """Atomically write a checkpoint. ``config`` and ``extra`` are JSON-able (arrays allowed
    inside ``extra``); ``history`` lists hold working-dtype scalars, kept bit-exact."""
    path = Path(path)
    arrays = {}
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "lockstep_version": __version__,
        "epoch": int(epoch), "config": config, "rng_state": rng_state,
        "params": _flatten("params", {n: params[n] for n in PARAM_NAMES}, arrays),
        "opt_state": _flatten("opt", opt_state, arrays),
        "history": _flatten("history", {k: np.asarray(v) for k, v in history.items()}, arrays),
        "extra": _flatten("extra", extra or {}, arrays),
    }
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load(path) -> dict:
    """Read and validate a checkpoint: {"epoch", "config", "rng_state", "params",
    "opt_state", "history", "extra", "lockstep_version"}."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; train first or pass the right --checkpoint")
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(str(arrays.pop("meta")))
    except Exception as e:  # noqa: BLE001 - any parse failure means a corrupt file
        raise CheckpointError(f"{path} is not a readable lockstep checkpoint ({type(e).__name__}); "
                              "delete it or train again") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a lockstep checkpoint")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format {meta.get('format_version')}; this "
                              f"lockstep ({__version__}) reads format {FORMAT_VERSION}")
    try:
        out = {k: _unflatten(meta[k], arrays) for k in ("params", "opt_state", "history", "extra")}
    except KeyError as e:
        raise CheckpointError(f"{path} is incomplete (missing {e}); delete it or train again") from None
    missing = [n for n in PARAM_NAMES if n not in out["params"]]
    if missing:
        raise CheckpointError(f"{path} lacks parameters {', '.join(missing)}")
    out.update(epoch=meta["epoch"], config=meta["config"], rng_state=meta["rng_state"],
               lockstep_version=meta["lockstep_version"])
    return out


def rng_state(rng: np.random.Generator) -> dict:
    """The PCG64 state as JSON (its integers exceed 64 bits; JSON keeps them exact)."""
    return rng.bit_generator.state


def rng_from_state(state: dict) -> np.random.Generator:
    bg = np.random.PCG64()
    bg.state = state
    return np.random.Generator(bg)
