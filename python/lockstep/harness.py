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


class Progress:
    """Progress of long steps on stderr, for ``check`` and ``bench``: a tqdm bar on a terminal
    (its clock ticking while a stage runs), otherwise a line per stage and, while one stage
    runs on, a line every ``every`` seconds; nothing with ``quiet``. Call it with each
    stage's name; ``epoch(k, n)`` reports a stage's epochs; ``close()`` at the end."""

    def __init__(self, total, quiet=False, unit="run", every=20.0, file=None, prefix=""):
        import threading

        self.file, self.quiet, self.every = file or sys.stderr, quiet, every
        self.prefix = prefix
        self.stage, self.t0, self.bar = None, 0.0, None
        self.lock, self.done = threading.Lock(), threading.Event()
        self.thread = None
        if quiet:
            return
        try:
            tty = self.file.isatty()
        except (AttributeError, ValueError):
            tty = False
        if tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total, file=self.file, unit=unit, leave=False)
        self.thread = threading.Thread(target=self._tick, daemon=True)
        self.thread.start()

    def _line(self, msg):
        print(msg, file=self.file, flush=True)

    def __call__(self, stage):
        import time

        if self.quiet:
            return
        stage = self.prefix + stage
        with self.lock:
            if self.bar is not None:
                if self.stage is not None:
                    self.bar.update(1)
                self.bar.set_description(stage)
                self.bar.set_postfix_str("")
            else:
                self._line(f"{stage} ...")
            self.stage, self.t0 = stage, time.monotonic()

    def set_total(self, n):
        if self.bar is not None:
            self.bar.total = n
            self.bar.refresh()

    def epoch(self, k, n):
        import time

        if self.quiet:
            return
        with self.lock:
            if self.bar is not None:
                self.bar.set_postfix_str(f"epoch {k}/{n}")
            elif time.monotonic() - self.t0 >= 2.0:  # quick stages need no more than their line
                self._line(f"  {self.stage}: epoch {k} of {n} done "
                           f"({time.monotonic() - self.t0:.0f} s)")

    def _tick(self):
        import time

        last = time.monotonic()
        while not self.done.wait(1.0):
            with self.lock:
                if self.bar is not None:
                    self.bar.refresh()
                elif self.stage is not None and \
                        time.monotonic() - max(last, self.t0) >= self.every:
                    last = time.monotonic()
                    self._line(f"  {self.stage}: still running "
                               f"({time.monotonic() - self.t0:.0f} s)")

    def close(self):
        self.done.set()
        if self.thread is not None:
            self.thread.join()
        if self.bar is not None:
            if self.stage is not None:
                self.bar.update(1)
            self.bar.close()


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


def train_with(spec, model_cfg, train_cfg, dtype, params, x, y, epochs=None, on_epoch=None):
    """Train a fresh backend instance from ``params``; (per-epoch losses array, final params).
    ``on_epoch(k, epochs)`` is called after each epoch (progress)."""
    name, strategy, device = parse_run(spec) if isinstance(spec, str) else spec
    be = backends.get(name)(model_cfg, train_cfg, dtype, strategy=strategy, device=device)
    be.load({n: np.asarray(params[n], dtype) for n in reference.param_names(model_cfg.num_layers)}, None)
    epochs = train_cfg.epochs if epochs is None else epochs
    losses = []
    for loss in run_epochs(be, x, y, train_cfg, new_rng(train_cfg.seed), epochs, data_key=id(x)):
        losses.append(loss)
        if on_epoch:
            on_epoch(len(losses), epochs)
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


def _run_local(spec, p, on_epoch=None):
    mc, tc, params, x, y = make_problem(p["I"], p["H"], p["O"], p["T"], p["B"], p["dtype"],
                                        loss=p["loss"], optimizer=p["optimizer"], clip=p["clip"],
                                        epochs=p["epochs"], seed=p["seed"],
                                        layers=p.get("layers", 1), dropout=p.get("dropout", 0.0))
    return train_with(spec, mc, tc, np.dtype(p["dtype"]), params, x, y, on_epoch=on_epoch)


_EPOCH = "lockstep-harness-epoch "  # the child's progress lines on its stderr


def _run_child(spec, p, env, on_epoch=None):
    """Run ``spec`` in a fresh interpreter with ``env`` added (flags such as
    NUMBA_ENABLE_CUDASIM must be set before the first import); bits come back as base64.
    The child reports each epoch on its stderr, passed on to ``on_epoch(k, epochs)``."""
    import threading

    req = json.dumps({"spec": spec, "problem": _problem_args(p)})
    out, tail = [], []
    with subprocess.Popen([sys.executable, "-m", "lockstep.harness"], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, **env}) as proc:
        reader = threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True)
        reader.start()
        try:
            proc.stdin.write(req)
            proc.stdin.close()
            for line in proc.stderr:
                if line.startswith(_EPOCH):
                    if on_epoch:
                        k, n = line[len(_EPOCH):].split()
                        on_epoch(int(k), int(n))
                elif line.strip():
                    tail = (tail + [line.rstrip()])[-20:]
            code = proc.wait(timeout=3600)
            reader.join()
        except BaseException:
            proc.kill()
            raise
    if code != 0:
        raise RuntimeError(f"{spec} failed in its child process: {(tail or ['no output'])[-1]}")
    out = json.loads(out[0])
    dt = np.dtype(p["dtype"])
    losses = np.frombuffer(base64.b64decode(out["losses"]), dt)
    params = {n: np.frombuffer(base64.b64decode(out["params"][n][0]), dt).reshape(out["params"][n][1])
              for n in reference.param_names(p.get("layers", 1))}
    return losses, params


def _child_main():
    req = json.loads(sys.stdin.read())

    def on_epoch(k, n):
        print(f"{_EPOCH}{k} {n}", file=sys.stderr, flush=True)

    losses, params = _run_local(req["spec"], req["problem"], on_epoch)
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
    if hasattr(progress, "set_total"):
        progress.set_total(len(todo))
    for spec, env in todo:
        if progress:
            progress(spec)
        epoch = getattr(progress, "epoch", None)
        try:
            losses, params = _run_child(spec, problem, env, epoch) if env else \
                _run_local(spec, problem, epoch)
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
    from .errors import UsageError, say

    try:
        I, H, O, T, B = (int(v) for v in args.shape.split(","))
        if min(I, H, O, T, B) <= 0 or args.epochs <= 0:
            raise ValueError
    except ValueError:
        raise UsageError(f"--shape must be five positive integers I,H,O,T,B and --epochs > 0, "
                         f"got {args.shape!r} and {args.epochs}") from None
    if args.loss == "ce" and O == 1 and args.shape == DEFAULT_SHAPE:
        O = 3  # the default shape is a regression's; cross-entropy gets 3 classes
    shape = f"{I},{H},{O},{T},{B}"  # the shape that runs (said so in every line)
    if args.loss == "ce" and O < 2:
        raise UsageError(f"--loss ce needs O >= 2 classes in --shape, got {args.shape}; e.g. "
                         f"--shape {I},{H},3,{T},{B}")
    from . import limits
    from .config import MAX_EPOCHS

    if args.epochs > MAX_EPOCHS:
        raise UsageError(f"--epochs must be at most {MAX_EPOCHS}, got {args.epochs}")
    # Every setting is checked here, by the configurations the runs are made of, before any
    # run starts: a bad --seed or --clip is bad input (exit 2), not a failed check (exit 1).
    try:
        ModelConfig(I, H, O, num_layers=args.layers)
        TrainConfig(loss=args.loss, optimizer=args.optimizer, clip=args.clip,
                    epochs=args.epochs, batch_size=B, seed=args.seed, dropout=args.dropout)
    except ConfigError as e:
        raise UsageError(f"{e}; see 'lockstep check --help'") from None
    if args.dropout and args.layers < 2:
        raise UsageError(f"--dropout {args.dropout} acts between stacked layers; give --layers 2 "
                         "or more, or drop --dropout")
    limits.check_memory(limits.training_bytes(I, H, O, T, B, B, np.dtype(args.dtype).itemsize,
                                              layers=args.layers),
                        f"--shape {args.shape}", "choose a smaller --shape")
    names = args.backends.split(",") if args.backends else None
    for n in names or []:
        backends.get(n)  # unknown names fail with exit 2
    problem = {"I": I, "H": H, "O": O, "T": T, "B": B, "dtype": args.dtype, "loss": args.loss,
               "optimizer": args.optimizer, "clip": args.clip, "epochs": args.epochs,
               "seed": args.seed, "layers": args.layers, "dropout": args.dropout}
    quiet = getattr(args, "quiet", False)
    if args.loss == "ce" and shape != args.shape and not quiet:
        from .errors import err

        err(f"--loss ce: O = 3 classes (--shape {shape})")
    progress = Progress(len(names or backends.REGISTRY) + 1, quiet=quiet, prefix="training ")
    try:
        res = check(problem, names, progress=progress)
    finally:
        progress.close()
    if args.json:
        print(json.dumps(res, indent=2))
    width = max([len(r["run"]) for r in res["runs"]] + [len(u["backend"]) for u in res["unavailable"]])
    say(args, f"problem: I,H,O,T,B = {shape}, {args.dtype}, {args.loss}, {args.optimizer}, "
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
