"""Checkpoints: one .npz file with parameters, optimizer state, RNG state, epoch, history,
configs, preprocessing state, a data fingerprint and the lockstep version.

Writes are atomic (temporary file in the same directory, fsync, rename, fsync of the
directory): a crash or a failed run never leaves a half-written or clobbered checkpoint.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from . import __version__, limits
from .config import MAX_EPOCHS
from .errors import LockstepError
from .reference import layer_names, names_of

FORMAT = "lockstep-checkpoint"
FORMAT_VERSION = 1
PANEL_FORMAT = "lockstep-panel-checkpoint"  # a global model of many series (lockstep.panel)


class CheckpointError(LockstepError):
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
        "params": _flatten("params", {n: params[n] for n in names_of(params)}, arrays),
        "opt_state": _flatten("opt", opt_state, arrays),
        "history": _flatten("history", {k: np.asarray(v) for k, v in history.items()}, arrays),
        "extra": _flatten("extra", extra or {}, arrays),
    }
    return write(path, meta, arrays)


def write(path, meta: dict, arrays: dict):
    """Atomically write ``arrays`` and the JSON ``meta`` as one .npz file."""
    from .outdir import write_atomically

    arrays = dict(arrays, meta=np.array(json.dumps(meta, sort_keys=True)))
    return write_atomically(path, lambda f: np.savez(f, **arrays))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


MAX_META_CHARS = 64 << 20  # the metadata JSON; a checkpoint's own is a few KiB (+ labels)
MAX_META_DEPTH = 12  # format 1 nests 5 deep (extra.best.params.W_ih.__array__)
MAX_ARRAYS = 1024


def load(path) -> dict:
    """Read and validate a checkpoint: {"epoch", "config", "rng_state", "params",
    "opt_state", "history", "extra", "lockstep_version"}.

    Every field of the metadata is checked against format 1's schema (``_Schema``) before
    anything uses it: a damaged, foreign or hand-edited file raises one ``CheckpointError``
    naming the field, never a KeyError or TypeError later."""
    path = Path(path)
    if not path.is_file():
        what = "is not a regular file" if path.exists() else "does not exist"
        raise CheckpointError(f"no checkpoint at {path} ({what}); train first or pass the right "
                              "--checkpoint")
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as z:
            infos = z.zip.infolist()
            total = sum(i.file_size for i in infos)
            if len(infos) > MAX_ARRAYS or total > limits.available_memory() // 2:
                raise CheckpointError(
                    f"{path} holds {len(infos)} arrays of {limits.fmt_bytes(total)} in all, more "
                    "than a lockstep checkpoint can; it is not one of lockstep's")
            arrays = {k: z[k] for k in z.files}
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - any parse failure means a corrupt file
        raise CheckpointError(f"{path} is not a readable lockstep checkpoint ({type(e).__name__}); "
                              "delete it or train again") from None
    m = arrays.pop("meta", None)
    if m is None or m.dtype.kind != "U" or m.ndim != 0:
        raise CheckpointError(f"{path} has no lockstep metadata; it is not a lockstep checkpoint")
    text = str(m[()])
    if len(text) > MAX_META_CHARS:
        raise CheckpointError(f"{path}: metadata of {len(text)} characters is over the limit of "
                              f"{MAX_META_CHARS}; it is not a lockstep checkpoint")
    try:
        meta = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as e:
        raise CheckpointError(f"{path}: metadata is not valid JSON ({type(e).__name__}); delete "
                              "it or train again") from None
    if _depth(meta) > MAX_META_DEPTH:
        raise CheckpointError(f"{path}: metadata nests deeper than {MAX_META_DEPTH} levels; it is "
                              "not a lockstep checkpoint")
    if isinstance(meta, dict) and meta.get("format") == PANEL_FORMAT:
        from .panel import PanelSchema

        return PanelSchema(path, arrays).checkpoint(meta)
    return _Schema(path, arrays).checkpoint(meta)


def _refuse_constant(name):
    raise ValueError(f"{name} is not JSON")


def _depth(tree) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    best, stack = 0, [(tree, 1)]
    while stack:
        t, d = stack.pop()
        best = max(best, d)
        if isinstance(t, dict):
            stack.extend((v, d + 1) for v in t.values())
        elif isinstance(t, list):
            stack.extend((v, d + 1) for v in t)
    return best


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


class _Schema:
    """Format 1 of the checkpoint metadata, as ``Forecaster.save`` writes it; each check
    names the field (``config.settings.hidden_size``, ``extra.series.values``, ...)."""

    def __init__(self, path, arrays):
        self.path, self.arrays = path, arrays

    def fail(self, field, msg):
        raise CheckpointError(f"{self.path}: field {field} {msg}; the file is damaged or not "
                              "lockstep's: delete it or train again")

    def dict(self, v, field, keys, optional=()):
        if not isinstance(v, dict):
            self.fail(field, f"must be an object, got {type(v).__name__}")
        for k in keys:
            if k not in v:
                self.fail(f"{field}.{k}" if field else k, "is missing")
        for k in v:
            if k not in keys and k not in optional:
                self.fail(f"{field}.{k}" if field else str(k)[:40], "is not a field of format "
                          f"{FORMAT_VERSION}")
        return v

    def int(self, v, field, lo=None, hi=None):
        if not _is_int(v):
            self.fail(field, f"must be an integer, got {type(v).__name__}")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            self.fail(field, f"must be in [{lo}, {hi}], got {v}")
        return v

    def str(self, v, field, max_len=4096):
        if not isinstance(v, str) or len(v) > max_len:
            self.fail(field, f"must be a string of at most {max_len} characters")
        return v

    def array(self, ref, field, dtype=None, shape=None, kind="f", finite=True):
        if not (isinstance(ref, dict) and set(ref) == {"__array__"}
                and isinstance(ref["__array__"], str) and ref["__array__"] in self.arrays):
            self.fail(field, "must name an array stored in the file")
        a = self.arrays[ref["__array__"]]
        if a.dtype.kind != kind or (dtype is not None and a.dtype != dtype):
            self.fail(field, f"must be a {dtype or kind} array, got {a.dtype}")
        if shape is not None and a.shape != tuple(shape):
            self.fail(field, f"must have shape {tuple(shape)}, got {a.shape}")
        if finite and kind == "f" and not np.isfinite(a).all():
            self.fail(field, "holds non-finite values (NaN or inf)")
        return a[()] if a.ndim == 0 else a

    def params(self, v, field, shapes, dtype):
        self.dict(v, field, list(shapes))
        return {n: self.array(v[n], f"{field}.{n}", dtype, shapes[n]) for n in shapes}

    def dataclass(self, cls, v, field, optional=()):
        from dataclasses import fields

        self.dict(v, field, [f.name for f in fields(cls) if f.name not in optional], optional)
        try:
            return cls(**v)
        except LockstepError as e:
            self.fail(field, f"is invalid: {e}")

    def checkpoint(self, meta) -> dict:
        from .config import ModelConfig
        from .forecast import ForecastSettings

        top = ("format", "format_version", "lockstep_version", "epoch", "config", "rng_state",
               "params", "opt_state", "history", "extra")
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise CheckpointError(f"{self.path} is not a lockstep checkpoint (no format "
                                  f"{FORMAT!r} in its metadata)")
        if meta.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(f"{self.path} has checkpoint format "
                                  f"{str(meta.get('format_version'))[:20]}; this lockstep "
                                  f"({__version__}) reads format {FORMAT_VERSION}")
        self.dict(meta, "", top)
        self.str(meta["lockstep_version"], "lockstep_version", 100)
        epoch = self.int(meta["epoch"], "epoch", 0, MAX_EPOCHS)

        cfg = self.dict(meta["config"], "config", ("settings", "model", "train"))
        # settings added after format 1 was first written: absent means their default
        st = self.dataclass(ForecastSettings, cfg["settings"], "config.settings",
                            optional=("grad_shards", "num_layers", "dropout"))
        mc = self.dataclass(ModelConfig, cfg["model"], "config.model", optional=("num_layers",))
        if (mc.hidden_size, mc.init, mc.num_layers) != (st.hidden_size, st.init, st.num_layers):
            self.fail("config.model", "does not match config.settings (hidden_size, init, "
                      "num_layers)")
        if mc.input_size != mc.output_size or (st.task != "regress" and mc.input_size != 3):
            self.fail("config.model", "has input_size/output_size that this task cannot have")
        train, derived = cfg["train"], st.train_config().to_dict()
        self.dict(train, "config.train", (), optional=[f for f in derived])
        for k, want in derived.items():
            if k in train and train[k] != want:
                self.fail(f"config.train.{k}", f"is {str(train[k])[:40]}, config.settings "
                          f"implies {want!r}")

        dt = np.dtype(st.dtype)
        I, H, O = mc.input_size, mc.hidden_size, mc.output_size
        shapes = {}
        for l in range(mc.num_layers):  # canonical order: layers bottom up, then the head
            n_ih, n_hh, n_b = layer_names(l)
            shapes |= {n_ih: (4 * H, I if l == 0 else H), n_hh: (4 * H, H), n_b: (4 * H,)}
        shapes |= {"W_out": (O, H), "b_out": (O,)}
        params = self.params(meta["params"], "params", shapes, dt)
        rng = self.rng(meta["rng_state"])
        opt = self.opt_state(meta["opt_state"], st, shapes, dt)

        hist = self.dict(meta["history"], "history", ("train_loss", "valid_loss"))
        history = {"train_loss": self.array(hist["train_loss"], "history.train_loss", dt,
                                            (epoch,))}
        va = self.array(hist["valid_loss"], "history.valid_loss", dt)
        if va.ndim != 1 or len(va) not in (0, epoch):
            self.fail("history.valid_loss", f"must hold 0 or {epoch} (epoch) values")
        history["valid_loss"] = va
        extra = self.extra(meta["extra"], st, mc, shapes, dt, epoch)
        # fields added after format 1 was first written take their defaults when absent
        cfg = {"settings": st.to_dict(), "model": mc.to_dict(), "train": derived}
        return {"epoch": epoch, "config": cfg, "rng_state": rng, "params": params,
                "opt_state": opt, "history": history, "extra": extra,
                "lockstep_version": meta["lockstep_version"]}

    def rng(self, v):
        self.dict(v, "rng_state", ("bit_generator", "state", "has_uint32", "uinteger"))
        if v["bit_generator"] != "PCG64":
            self.fail("rng_state.bit_generator", "must be PCG64")
        s = self.dict(v["state"], "rng_state.state", ("state", "inc"))
        for k in ("state", "inc"):
            self.int(s[k], f"rng_state.state.{k}", 0, (1 << 128) - 1)
        self.int(v["has_uint32"], "rng_state.has_uint32", 0, 1)
        self.int(v["uinteger"], "rng_state.uinteger", 0, (1 << 32) - 1)
        try:
            rng_from_state(v)
        except (ValueError, TypeError) as e:
            self.fail("rng_state", f"is not a PCG64 state ({e})")
        return v

    def opt_state(self, v, st, shapes, dt):
        if v is None:
            return None
        if st.optimizer == "adam":
            keys = ("step", "b1_pow", "b2_pow", "m", "v")
        elif st.momentum:
            keys = ("step", "velocity")
        else:
            keys = ("step",)
        self.dict(v, "opt_state", keys)
        out = {"step": self.int(v["step"], "opt_state.step", 0, 1 << 62)}
        for k in ("b1_pow", "b2_pow"):
            if k in keys:
                out[k] = self.array(v[k], f"opt_state.{k}", dt, ())
                if not 0 <= out[k] <= 1:
                    self.fail(f"opt_state.{k}", "must be in [0, 1]")
        for k in ("m", "v", "velocity"):
            if k in keys:
                out[k] = self.params(v[k], f"opt_state.{k}", shapes, dt)
        return out

    def extra(self, v, st, mc, shapes, dt, epoch):
        self.dict(v, "extra", ("series", "pipeline", "centroids", "best", "stopped", "backend"))
        s = self.dict(v["series"], "extra.series",
                      ("values", "names", "time", "source", "period", "fingerprint"))
        values = self.array(s["values"], "extra.series.values", np.float64)
        k = mc.input_size if st.task == "regress" else 1
        if values.ndim != 2 or values.shape[0] < 1 or (st.task == "regress"
                                                       and values.shape[1] != k):
            self.fail("extra.series.values", f"must be a (rows, {k}) array, got {values.shape}")
        n, k = values.shape
        names = s["names"]
        if not (isinstance(names, list) and len(names) == k
                and all(isinstance(x, str) and len(x) <= 4096 for x in names)):
            self.fail("extra.series.names", f"must be a list of {k} strings")
        time = s["time"]
        if isinstance(time, dict):
            time = self.array(time, "extra.series.time", shape=(n,), kind="U").tolist()
        if time is not None and not (isinstance(time, list) and len(time) == n
                                     and all(isinstance(x, str) for x in time)):
            self.fail("extra.series.time", f"must be null or {n} strings (one per row)")
        self.str(s["source"], "extra.series.source")
        if s["period"] is not None:
            self.int(s["period"], "extra.series.period", 1, n)
        fp = self.str(s["fingerprint"], "extra.series.fingerprint", 64)
        if len(fp) != 64 or any(c not in "0123456789abcdef" for c in fp):
            self.fail("extra.series.fingerprint", "must be 64 hex digits (SHA-256)")
        series = {"values": values, "names": names, "time": time, "source": s["source"],
                  "period": s["period"], "fingerprint": fp}

        pipeline = v["pipeline"]
        if st.task == "regress":
            pipeline = self.pipeline(pipeline, st, k)
        elif pipeline is not None:
            self.fail("extra.pipeline", "must be null for the classify-change task")
        centroids = v["centroids"]
        if st.task != "regress":
            centroids = self.array(centroids, "extra.centroids", np.float64, (3,))
            if not (np.diff(centroids) > 0).all():
                self.fail("extra.centroids", "must be three increasing values")
        elif centroids is not None:
            self.fail("extra.centroids", "must be null for the regress task")

        best = v["best"]
        if best is not None:
            self.dict(best, "extra.best", ("epoch", "valid", "params"))
            b_ep = self.int(best["epoch"], "extra.best.epoch", 1, max(1, epoch))
            b_va = self.array(best["valid"], "extra.best.valid", dt, ())
            best = {"epoch": b_ep, "valid": b_va,
                    "params": self.params(best["params"], "extra.best.params", shapes, dt)}
        if v["stopped"] not in (None, "completed", "early-stop", "diverged"):
            self.fail("extra.stopped", "must be null, completed, early-stop or diverged")
        self.str(v["backend"], "extra.backend", 200)
        return {"series": series, "pipeline": pipeline, "centroids": centroids, "best": best,
                "stopped": v["stopped"], "backend": v["backend"]}

    def pipeline(self, v, st, k):
        from .data import prep

        self.dict(v, "extra.pipeline", ("log", "diff", "season", "scale", "center", "spread"))
        for b in ("log", "diff"):
            if not isinstance(v[b], bool):
                self.fail(f"extra.pipeline.{b}", "must be true or false")
        if v["log"] != st.log or v["diff"] != st.diff:
            self.fail("extra.pipeline", "does not match config.settings (log, diff)")
        self.int(v["season"], "extra.pipeline.season", 0, 1 << 31)
        if v["season"] == 1:
            self.fail("extra.pipeline.season", "must be 0 or >= 2")
        if v["scale"] not in prep.SCALES or v["scale"] != st.scale:
            self.fail("extra.pipeline.scale", f"must be config.settings.scale ({st.scale})")
        for c in ("center", "spread"):
            x = v[c]
            if not (isinstance(x, list) and len(x) == k and all(
                    isinstance(e, (int, float)) and not isinstance(e, bool) and math.isfinite(e)
                    for e in x)):
                self.fail(f"extra.pipeline.{c}", f"must be {k} finite numbers")
        if not all(e > 0 for e in v["spread"]):
            self.fail("extra.pipeline.spread", "must be positive")
        return v


def rng_state(rng: np.random.Generator) -> dict:
    """The PCG64 state as JSON (its integers exceed 64 bits; JSON keeps them exact)."""
    return rng.bit_generator.state


def rng_from_state(state: dict) -> np.random.Generator:
    bg = np.random.PCG64()
    bg.state = state
    return np.random.Generator(bg)
