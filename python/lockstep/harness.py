"""One harness that trains any backend / strategy / device from the same start and compares
the bits with the NumPy reference (``lockstep check`` and the agreement tests use it)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys

import numpy as np

from . import backends, reference
from .config import ConfigError, ModelConfig, TrainConfig
from .train import new_rng, run_epochs

REFERENCE = "numpy"


def parse_run(spec: str):
    """"backend[:strategy][@device]" -> (backend, strategy or None, device or None)."""
    rest, _, device = spec.partition("@")
    name, _, strategy = rest.partition(":")
    return name, strategy or None, device or None


def make_problem(I, H, O, T, B, dtype, loss="mse", loss_on="all", optimizer="sgd", clip=0.0,
                 momentum=0.0, epochs=2, n=None, seed=0, lr=None, grad_shards=1, layers=1,
                 dropout=0.0):
    """A seeded training problem: (model_cfg, train_cfg, params, x, y) with N = n or 2*B + 1
    samples, so that the last minibatch is short."""
    n = 2 * B + 1 if n is None else n
    rng = np.random.default_rng(seed)
    mc = ModelConfig(I, H, O, num_layers=layers)
    tc = TrainConfig(loss=loss, loss_on=loss_on, optimizer=optimizer, clip=clip,
                     momentum=momentum, epochs=epochs, batch_size=B, seed=seed,
                     grad_shards=grad_shards, dropout=dropout,
                     lr=lr if lr is not None else (0.05 if optimizer == "sgd" else 0.01))
    x = rng.standard_normal((T, n, I)).astype(dtype)
    shape = (T, n) if loss_on == "all" else (n,)
    y = (rng.standard_normal(shape + (O,)).astype(dtype) if loss == "mse"
         else rng.integers(0, O, shape))
    return mc, tc, reference.init_params(mc, dtype, seed=seed), x, y


def train_with(spec, model_cfg, train_cfg, dtype, params, x, y, epochs=None):
    """Train a fresh backend instance from ``params``; (per-epoch losses array, final params)."""
    name, strategy, device = parse_run(spec) if isinstance(spec, str) else spec
    be = backends.get(name)(model_cfg, train_cfg, dtype, strategy=strategy, device=device)
    be.load({n: np.asarray(params[n], dtype) for n in reference.param_names(model_cfg.num_layers)}, None)
    epochs = train_cfg.epochs if epochs is None else epochs
    losses = list(run_epochs(be, x, y, train_cfg, new_rng(train_cfg.seed), epochs, data_key=id(x)))
    final, _ = be.state()
    return np.array(losses, dtype=dtype), {n: np.asarray(final[n]) for n in reference.names_of(final)}


def params_sha256(params) -> str:
    """SHA-256 over the raw bytes of the parameters in param_names order (C order)."""
    h = hashlib.sha256()
    for n in reference.names_of(params):
        h.update(np.ascontiguousarray(params[n]).tobytes())
    return h.hexdigest()


def bits_equal(a, b) -> bool:
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def hex_bits(v) -> str:
    v = np.asarray(v)
    return "0x" + v.tobytes()[::-1].hex()  # little-endian bytes -> the usual big-endian hex


# ---- running a run in a child process (e.g. the Numba simulator) --------------------------

def _problem_args(p):
    return {k: p[k] for k in ("I", "H", "O", "T", "B", "loss", "optimizer", "clip", "epochs",
                              "seed")} | {"dtype": np.dtype(p["dtype"]).name,
                                          "layers": p.get("layers", 1),
                                          "dropout": p.get("dropout", 0.0)}


def _run_local(spec, p):
    mc, tc, params, x, y = make_problem(p["I"], p["H"], p["O"], p["T"], p["B"], p["dtype"],
                                        loss=p["loss"], optimizer=p["optimizer"], clip=p["clip"],
                                        epochs=p["epochs"], seed=p["seed"],
                                        layers=p.get("layers", 1), dropout=p.get("dropout", 0.0))
    return train_with(spec, mc, tc, np.dtype(p["dtype"]), params, x, y)


def _run_child(spec, p, env):
    """Run ``spec`` in a fresh interpreter with ``env`` added (flags such as
    NUMBA_ENABLE_CUDASIM must be set before the first import); bits come back as base64."""
    req = json.dumps({"spec": spec, "problem": _problem_args(p)})
    r = subprocess.run([sys.executable, "-m", "lockstep.harness"], input=req, text=True,
                       capture_output=True, env={**os.environ, **env}, timeout=3600)
    if r.returncode != 0:
        tail = (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{spec} failed in its child process: {tail}")
    out = json.loads(r.stdout)
    dt = np.dtype(p["dtype"])
    losses = np.frombuffer(base64.b64decode(out["losses"]), dt)
    params = {n: np.frombuffer(base64.b64decode(out["params"][n][0]), dt).reshape(out["params"][n][1])
              for n in reference.param_names(p.get("layers", 1))}
    return losses, params


def _child_main():
    req = json.loads(sys.stdin.read())
    losses, params = _run_local(req["spec"], req["problem"])
    print(json.dumps({
        "losses": base64.b64encode(np.ascontiguousarray(losses).tobytes()).decode(),
        "params": {n: [base64.b64encode(np.ascontiguousarray(v).tobytes()).decode(), list(v.shape)]
                   for n, v in params.items()}}))


# ---- lockstep check ------------------------------------------------------------------------

def check(problem: dict, names=None, progress=None):
    """Train every available run of ``names`` (default: all backends) on one problem and
    compare each with the numpy reference. Returns the JSON-able result of ``lockstep check``.
    Devices that need a fresh process (simulators: slow) run only when named explicitly."""
    explicit = set(names or ())
    names = list(names or backends.REGISTRY)
    if REFERENCE not in names:
        names.insert(0, REFERENCE)
    todo, unavailable = [], []
    for name, strategy, device, ok, why in backends.runs(names):
        if strategy is None:
            unavailable.append({"backend": name, "reason": why})
            continue
        spec = backends.run_name(name, strategy, device)
        env = getattr(backends.get(name), "device_env", {}).get(device)
        if ok:
            todo.append((spec, None))
        elif env and name in explicit:
            todo.append((spec, env))  # available in a child process started with env
        elif env:
            unavailable.append({"backend": spec, "reason": f"{why}; name {name} in --backends "
                                "to run it in a child process (slow)"})
        else:
            unavailable.append({"backend": spec, "reason": why})
    runs, ref = [], None
    for spec, env in todo:
        if progress:
            progress(spec)
        try:
            losses, params = _run_child(spec, problem, env) if env else _run_local(spec, problem)
        except Exception as e:  # noqa: BLE001 - a crashing backend is a failed run, reported
            runs.append({"run": spec, "error": f"{type(e).__name__}: {e}", "agree": False,
                         "losses": [], "losses_hex": [], "params_sha256": None})
            continue
        entry = {"run": spec, "losses": [float(v) for v in losses],
                 "losses_hex": [hex_bits(v) for v in losses], "params_sha256": params_sha256(params)}
        if ref is None:
            ref = (losses, params)
        entry["agree"] = bits_equal(losses, ref[0]) and all(
            bits_equal(params[n], ref[1][n]) for n in reference.names_of(ref[1]))
        runs.append(entry)
    return {"agree": all(r["agree"] for r in runs), "reference": REFERENCE, "problem": problem,
            "runs": runs, "unavailable": unavailable}


DEFAULT_SHAPE = "1,13,1,12,8"  # I,H,O,T,B of `lockstep check` (O = 3 with --loss ce)


def cli_check(args):
    from .errors import UsageError, err, say

    try:
        I, H, O, T, B = (int(v) for v in args.shape.split(","))
        if args.loss == "ce" and O == 1 and args.shape == DEFAULT_SHAPE:
            O = 3  # the default shape is a regression's; cross-entropy gets 3 classes
            err(f"--loss ce: O = 3 classes (--shape {I},{H},{O},{T},{B})")
        problem = {"I": I, "H": H, "O": O, "T": T, "B": B, "dtype": args.dtype, "loss": args.loss,
                   "optimizer": args.optimizer, "clip": args.clip, "epochs": args.epochs,
                   "seed": args.seed, "layers": args.layers, "dropout": args.dropout}
        if min(I, H, O, T, B) <= 0 or args.epochs <= 0:
            raise ValueError
    except ValueError:
        raise UsageError(f"--shape must be five positive integers I,H,O,T,B and --epochs > 0, "
                         f"got {args.shape!r} and {args.epochs}") from None
    if args.loss == "ce" and O < 2:
        raise UsageError(f"--loss ce needs O >= 2 classes in --shape, got {args.shape}; e.g. "
                         f"--shape {I},{H},3,{T},{B}")
    ModelConfig(I, H, O, num_layers=args.layers)
    TrainConfig(dropout=args.dropout)
    if args.dropout and args.layers < 2:
        raise UsageError(f"--dropout {args.dropout} acts between stacked layers; give --layers 2 "
                         "or more, or drop --dropout")
    from . import limits
    from .config import MAX_EPOCHS

    if args.epochs > MAX_EPOCHS:
        raise UsageError(f"--epochs must be at most {MAX_EPOCHS}, got {args.epochs}")
    limits.check_memory(limits.training_bytes(I, H, O, T, B, B, np.dtype(args.dtype).itemsize,
                                              layers=args.layers),
                        f"--shape {args.shape}", "choose a smaller --shape")
    names = args.backends.split(",") if args.backends else None
    for n in names or []:
        backends.get(n)  # unknown names fail with exit 2
    res = check(problem, names, progress=lambda s: err(f"training {s} ..."))
    if args.json:
        print(json.dumps(res, indent=2))
    width = max([len(r["run"]) for r in res["runs"]] + [len(u["backend"]) for u in res["unavailable"]])
    say(args, f"problem: I,H,O,T,B = {args.shape}, {args.dtype}, {args.loss}, {args.optimizer}, "
        f"clip {args.clip}, {args.epochs} epochs, seed {args.seed}, {args.layers} layer"
        f"{'s' if args.layers > 1 else ''}{f', dropout {args.dropout}' if args.dropout else ''}")
    for r in res["runs"]:
        verdict = ("reference" if r["run"].startswith(REFERENCE + ":") else
                   "same bits" if r["agree"] else "DIFFERENT")
        if "error" in r:
            say(args, f"{r['run']:<{width}}  ERROR {r['error']}")
            continue
        losses = "  ".join(f"{v:.9g} {h}" for v, h in zip(r["losses"], r["losses_hex"]))
        say(args, f"{r['run']:<{width}}  {losses}  sha256 {r['params_sha256'][:16]}  {verdict}")
    for u in res["unavailable"]:
        say(args, f"{u['backend']:<{width}}  unavailable: {u['reason']}")
    say(args, "all runs agree bit for bit" if res["agree"] else "runs DISAGREE with the reference")
    return 0 if res["agree"] else 1


if __name__ == "__main__":
    _child_main()
