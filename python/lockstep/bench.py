"""``lockstep bench``: the seed's timing table for every backend / strategy and the anchors.

Every run of ours is first validated bit for bit against the numpy reference on a small slice
of the preset (same shapes, few samples); anchors (PyTorch, a BLAS NumPy LSTM) are compared
with a tolerance. Each implementation is then timed in its own child process, so that CPU
times and peak memory belong to that run alone; one warm-up batch (compilation, caches) runs
before the clock starts.

FLOPs per training step and sample, per time step, counting the matrix products only
(multiply and add = 2): forward gates 2*4H*(I+H), head 2*O*H; backward twice that (input
gradient and weight gradient): total 6*(4H*(I+H) + O*H).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

from . import backends, data, harness, reference
from .config import ConfigError, ModelConfig, TrainConfig
from .train import new_rng, run_epochs


@dataclass(frozen=True)
class Preset:
    description: str
    dtype: str
    hidden: int
    window: int
    epochs: int
    batch: int
    loss: str
    optimizer: str
    lr: float
    clip: float
    series: int = 1  # synthetic series (inputs = outputs = series); 0 = the seed's task
    length: int = 0
    reference_samples: int | None = None  # time the reference on this many samples only
    layers: int = 1  # stacked LSTM layers


PRESETS = {
    "seed": Preset("the seed's workload: AirPassengers encoded change (3 classes), hidden 50, "
                   "window 12, 5 epochs, SGD lr 0.1, clip 0.25", "float64", 50, 12, 5, 8, "ce",
                   "sgd", 0.1, 0.25, series=0),
    "medium": Preset("synthetic, 8 series x 1200 steps, hidden 128, window 24, batch 64, 2 epochs",
                     "float32", 128, 24, 2, 64, "mse", "adam", 0.005, 1.0, 8, 1200, 256),
    "stacked": Preset("medium with 2 stacked layers: synthetic, 8 series x 1200 steps, hidden "
                      "128, window 24, batch 64, 2 epochs", "float32", 128, 24, 2, 64, "mse",
                      "adam", 0.005, 1.0, 8, 1200, 128, layers=2),
    "heavy": Preset("synthetic, 32 series x 8000 steps, hidden 512, window 64, batch 256, 1 epoch "
                    "(sized for a GPU)", "float32", 512, 64, 1, 256, "mse", "adam", 0.001, 1.0,
                    32, 8000, 32),
}


def problem(name: str):
    """(model_cfg, train_cfg, dtype, x, y) of a preset, deterministic."""
    p = PRESETS[name]
    dt = np.dtype(p.dtype)
    tc = TrainConfig(loss=p.loss, optimizer=p.optimizer, lr=p.lr, clip=p.clip, epochs=p.epochs,
                     batch_size=p.batch, seed=0)
    if p.series == 0:
        from .forecast import Forecaster

        fc = Forecaster(hidden_size=p.hidden, window=p.window, task="classify-change",
                        train_start=0.4, holdout=0, valid_size=0, dtype=p.dtype, backend="numpy",
                        ensemble=1)
        w = fc.prepare(data.load("airpassengers"))
        x, y = w.gather(np.arange(w.shape[1]))
        return fc.model_cfg, tc, dt, x, y
    # one multivariate model of the synthetic series (log, standardized per column)
    s = data.synthetic(p.series, p.length, seed=0)
    from . import arith

    v = arith.log(s.y.reshape(p.series, p.length).T)
    z = (v - v.mean(axis=0)) / v.std(axis=0)
    idx = np.arange(p.window)[:, None] + np.arange(p.length - p.window)[None, :]  # (T, N)
    mc = ModelConfig(p.series, p.hidden, p.series, num_layers=p.layers)
    return mc, tc, dt, z[idx].astype(dt), z[idx + 1].astype(dt)


def flops_per_epoch(mc: ModelConfig, T: int, N: int) -> float:
    H, I, O, L = mc.hidden_size, mc.input_size, mc.output_size, mc.num_layers
    return 6.0 * (4 * H * (I + H) + (L - 1) * 4 * H * (2 * H) + O * H) * T * N


def _subset(tc, x, y, n):
    """The first n samples and the same training config (a validation slice)."""
    return x[:, :n], (y[:, :n] if tc.loss_on == "all" else y[:n])


# ---- implementations ----------------------------------------------------------------------

def _train_ours(spec, mc, tc, dt, x, y, epochs, max_samples=None):
    name, strategy, device = harness.parse_run(spec)
    be = backends.get(name)(mc, tc, dt, strategy=strategy, device=device)
    be.load(reference.init_params(mc, dt, seed=tc.seed), None)
    if max_samples is not None:
        x, y = _subset(tc, x, y, min(x.shape[1], max_samples))
    losses = list(run_epochs(be, x, y, tc, new_rng(tc.seed), epochs, data_key=id(x)))
    params, _ = be.state()
    return np.array(losses, dt), params, x.shape[1]


def _torch_train(mc, tc, dt, x, y, epochs, device="cpu"):
    import torch

    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    tdt = torch.float64 if dt == np.float64 else torch.float32
    params = reference.init_params(mc, dt, seed=tc.seed)
    from .interop import to_torch

    lstm = torch.nn.LSTM(mc.input_size, mc.hidden_size, num_layers=mc.num_layers).to(
        device=device, dtype=tdt)
    lin = torch.nn.Linear(mc.hidden_size, mc.output_size).to(device=device, dtype=tdt)
    sd_lstm, sd_lin = to_torch(params)
    lstm.load_state_dict(sd_lstm)
    lin.load_state_dict(sd_lin)
    # The same model as ours: one bias. Updating torch's second bias too would double the
    # bias's effective learning rate; it stays at zero through a learning rate of 0 (freezing
    # it with requires_grad=False makes torch leave its fast fused LSTM path).
    ps = list(lstm.parameters()) + list(lin.parameters())
    fixed = [getattr(lstm, f"bias_hh_l{l}") for l in range(mc.num_layers)]
    groups = [{"params": [q for q in ps if all(q is not f for f in fixed)]},
              {"params": fixed, "lr": 0.0}]
    opt = (torch.optim.Adam(groups, lr=tc.lr, betas=(tc.beta1, tc.beta2), eps=tc.eps)
           if tc.optimizer == "adam" else torch.optim.SGD(groups, lr=tc.lr, momentum=tc.momentum))
    xt = torch.from_numpy(np.ascontiguousarray(x)).to(device)
    yt = torch.from_numpy(np.ascontiguousarray(y)).to(device)
    rng = new_rng(tc.seed)
    losses = []
    for _ in range(epochs):
        tot, cnt = 0.0, 0
        for idx in reference.batch_order(x.shape[1], tc, rng):
            i = torch.from_numpy(idx).to(device)
            out = lin(lstm(xt[:, i])[0])
            yb = yt[:, i] if tc.loss_on == "all" else yt[i]
            z = out if tc.loss_on == "all" else out[-1]
            loss = (torch.nn.functional.mse_loss(z, yb) if tc.loss == "mse" else
                    torch.nn.functional.cross_entropy(z.reshape(-1, z.shape[-1]), yb.reshape(-1)))
            opt.zero_grad()
            loss.backward()
            if tc.clip:
                for f in fixed:  # not parameters of our model: not in the norm
                    f.grad = None
                torch.nn.utils.clip_grad_norm_(ps, tc.clip)
            opt.step()
            tot += loss.item() * len(idx)
            cnt += len(idx)
        losses.append(tot / cnt)
    if device == "cuda":
        torch.cuda.synchronize()
    return np.array(losses)


def _blas_train(mc, tc, dt, x, y, epochs):
    """A plain NumPy LSTM as a user would write it: np.dot (BLAS), np.exp, np.tanh."""
    p = reference.init_params(mc, dt, seed=tc.seed)
    H = mc.hidden_size
    rng = new_rng(tc.seed)
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v2 = {k: np.zeros_like(v) for k, v in p.items()}
    step = 0
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    losses = []
    for _ in range(epochs):
        tot, cnt = 0.0, 0
        for idx in reference.batch_order(x.shape[1], tc, rng):
            xb = x[:, idx]
            yb = y[:, idx] if tc.loss_on == "all" else y[idx]
            T, B, _ = xb.shape
            h = np.zeros((T + 1, B, H), dt)
            c = np.zeros((T + 1, B, H), dt)
            gs = np.zeros((T, B, 4 * H), dt)
            for t in range(T):
                a = xb[t].dot(p["W_ih"].T) + h[t].dot(p["W_hh"].T) + p["b"]
                g = np.concatenate([sig(a[:, :2 * H]), np.tanh(a[:, 2 * H:3 * H]),
                                    sig(a[:, 3 * H:])], axis=1)
                gs[t] = g
                c[t + 1] = g[:, H:2 * H] * c[t] + g[:, :H] * g[:, 2 * H:3 * H]
                h[t + 1] = g[:, 3 * H:] * np.tanh(c[t + 1])
            out = h[1:].dot(p["W_out"].T) + p["b_out"]
            if tc.loss == "mse":
                d = out - yb
                loss = (d * d).mean()
                dy = 2 * d / d.size
            else:
                e = np.exp(out - out.max(-1, keepdims=True))
                pr = e / e.sum(-1, keepdims=True)
                onehot = np.eye(out.shape[-1], dtype=dt)[yb]
                loss = -np.log((pr * onehot).sum(-1)).mean()
                dy = (pr - onehot) / (T * B)
            grads = {k: np.zeros_like(v) for k, v in p.items()}
            grads["W_out"] = np.einsum("tbo,tbh->oh", dy, h[1:])
            grads["b_out"] = dy.sum((0, 1))
            dhn = np.zeros((B, H), dt)
            dcn = np.zeros((B, H), dt)
            for t in reversed(range(T)):
                g = gs[t]
                i, f, gg, o = g[:, :H], g[:, H:2 * H], g[:, 2 * H:3 * H], g[:, 3 * H:]
                tc_ = np.tanh(c[t + 1])
                dh = dy[t].dot(p["W_out"]) + dhn
                dc = dh * o * (1 - tc_ * tc_) + dcn
                da = np.concatenate([dc * gg * i * (1 - i), dc * c[t] * f * (1 - f),
                                     dc * i * (1 - gg * gg), dh * tc_ * o * (1 - o)], axis=1)
                grads["W_ih"] += da.T.dot(xb[t])
                grads["W_hh"] += da.T.dot(h[t])
                grads["b"] += da.sum(0)
                dhn = da.dot(p["W_hh"])
                dcn = dc * f
            if tc.clip:
                norm = np.sqrt(sum((g * g).sum() for g in grads.values()))
                if norm > tc.clip:
                    grads = {k: g * (tc.clip / norm) for k, g in grads.items()}
            step += 1
            for k in p:
                if tc.optimizer == "adam":
                    m[k] = tc.beta1 * m[k] + (1 - tc.beta1) * grads[k]
                    v2[k] = tc.beta2 * v2[k] + (1 - tc.beta2) * grads[k] ** 2
                    mh = m[k] / (1 - tc.beta1 ** step)
                    vh = v2[k] / (1 - tc.beta2 ** step)
                    p[k] = (p[k] - tc.lr * mh / (np.sqrt(vh) + tc.eps)).astype(dt)
                else:
                    p[k] = (p[k] - tc.lr * grads[k]).astype(dt)
            tot += float(loss) * len(idx)
            cnt += len(idx)
        losses.append(tot / cnt)
    return np.array(losses)


ANCHORS = ("torch@cpu", "torch-cudnn@gpu", "numpy-blas@cpu")


def anchor_available(name, preset=None):
    if name == "numpy-blas@cpu":
        if preset and PRESETS[preset].layers > 1:
            return False, "the BLAS NumPy LSTM anchor has one layer"
        return True, "available"
    try:
        import torch
    except ImportError:
        return False, "PyTorch is not installed (optional anchor)"
    if name == "torch-cudnn@gpu" and not torch.cuda.is_available():
        return False, "no CUDA device for PyTorch"
    return True, "available"


def _run_anchor(name, mc, tc, dt, x, y, epochs):
    if name == "numpy-blas@cpu":
        return _blas_train(mc, tc, dt, x, y, epochs)
    return _torch_train(mc, tc, dt, x, y, epochs, device="cuda" if "gpu" in name else "cpu")


# ---- one measured run (in a child process) ------------------------------------------------

def _peak_rss_mb():
    """This process's peak resident set. VmHWM belongs to the process's own address space;
    ru_maxrss would also carry the parent's peak across fork and exec."""
    try:
        with open("/proc/self/status") as f:
            for ln in f:
                if ln.startswith("VmHWM:"):
                    return int(ln.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _peak_gpu_bytes(spec):
    try:
        if spec.startswith("torch"):
            import torch

            return int(torch.cuda.max_memory_allocated()) if torch.cuda.is_available() else None
        if spec.endswith("@gpu"):
            import cupy

            return int(cupy.get_default_memory_pool().total_bytes())
    except Exception:  # noqa: BLE001 - memory figures are best effort
        return None
    return None


def measure(spec: str, preset: str) -> dict:
    """Validate, warm up, then time one implementation on a preset (call in a fresh process)."""
    mc, tc, dt, x, y = problem(preset)
    p = PRESETS[preset]
    nval = min(x.shape[1], 2 * min(p.batch, 4) + 1)
    tval = TrainConfig(**{**tc.to_dict(), "batch_size": min(p.batch, 4)})
    xv, yv = _subset(tc, x, y, nval)
    ref_losses, ref_params, _ = _train_ours("numpy", mc, tval, dt, xv, yv, 1)
    anchor = spec in ANCHORS
    if anchor:
        got = _run_anchor(spec, mc, tval, dt, xv, yv, 1)
        tol = 1e-4 if dt == np.float32 else 1e-9
        valid = bool(np.allclose(got, ref_losses.astype(float), rtol=tol, atol=0))
        validation = f"loss within {tol:g} relative" if valid else \
            f"loss {got[0]!r} vs reference {float(ref_losses[0])!r}"
        _run_anchor(spec, mc, tval, dt, xv[:, :min(p.batch, 4)], yv[:min(p.batch, 4)] if
                    tc.loss_on == "last" else yv[:, :min(p.batch, 4)], 1)  # warm-up
    else:
        got, params, _ = _train_ours(spec, mc, tval, dt, xv, yv, 1)
        valid = harness.bits_equal(got, ref_losses) and all(
            harness.bits_equal(params[n], ref_params[n]) for n in reference.names_of(ref_params))
        validation = "same bits" if valid else "DIFFERENT BITS"
    max_samples = p.reference_samples if spec.startswith("numpy:") else None
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    if anchor:
        losses = _run_anchor(spec, mc, tc, dt, x, y, tc.epochs)
        n_used = x.shape[1]
    else:
        losses, _, n_used = _train_ours(spec, mc, tc, dt, x, y, tc.epochs, max_samples)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    scale = x.shape[1] / n_used  # the reference may time a prefix; extrapolated per sample
    return {
        "run": spec, "validated": valid, "validation": validation,
        "wall_s": wall * scale, "user_s": (r1.ru_utime - r0.ru_utime) * scale,
        "sys_s": (r1.ru_stime - r0.ru_stime) * scale, "extrapolated": scale != 1,
        "peak_rss_mb": _peak_rss_mb(), "peak_gpu_mb": (lambda b: None if b is None else b / 2**20)(
            _peak_gpu_bytes(spec)),
        "samples": int(x.shape[1]) * tc.epochs, "final_loss": float(np.asarray(losses)[-1]),
        "gflops": flops_per_epoch(mc, x.shape[0], x.shape[1]) * tc.epochs / (wall * scale) / 1e9,
    }


def _measure_child(spec, preset, timeout=3600):
    r = subprocess.run([sys.executable, "-m", "lockstep.bench", spec, preset], capture_output=True,
                       text=True, timeout=timeout)
    if r.returncode != 0:
        tail = (r.stderr.strip().splitlines() or ["no output"])[-1]
        return {"run": spec, "error": tail}
    return json.loads(r.stdout.strip().splitlines()[-1])


def bench(preset="seed", names=None, progress=True, anchors=None) -> dict:
    """Measure every available run of ``names`` (default: all) and the ``anchors`` (default:
    all of ANCHORS)."""
    names = list(names or backends.REGISTRY)
    if "numpy" not in names:
        names.insert(0, "numpy")
    todo, unavailable = [], []
    for name, strategy, device, ok, why in backends.runs(names):
        spec = backends.run_name(name, strategy, device) if strategy else name
        if ok:
            todo.append(spec)
        else:  # simulators stay out too: timing them says nothing about the strategy
            unavailable.append({"run": spec, "reason": why})
    for a in ANCHORS if anchors is None else anchors:
        if a not in ANCHORS:
            raise ConfigError(f"unknown anchor {a!r}; choose from {', '.join(ANCHORS)}")
        ok, why = anchor_available(a, preset)
        (todo.append(a) if ok else unavailable.append({"run": a, "reason": why}))
    # each run takes seconds to a minute: a bar on a terminal, a line per run otherwise
    bar = harness.Progress(len(todo), quiet=not progress, prefix="timing ")
    results = []
    try:
        for spec in todo:
            bar(spec)
            results.append(_measure_child(spec, preset))
    finally:
        bar.close()
    ref = next((r for r in results if r["run"].startswith("numpy:") and "wall_s" in r), None)
    for r in results:
        if ref and "wall_s" in r:
            r["speedup"] = ref["wall_s"] / r["wall_s"]
            r["efficiency_pct"] = 100 * r["speedup"]
    mc, tc, dt, x, y = problem(preset)
    return {"preset": preset, "description": PRESETS[preset].description,
            "config": asdict(PRESETS[preset]), "shape": {"I": mc.input_size, "H": mc.hidden_size,
                                                         "O": mc.output_size, "T": int(x.shape[0]),
                                                         "N": int(x.shape[1])},
            "machine": machine(gpu=any(r["run"].endswith("@gpu") for r in results)),
            "results": results, "unavailable": unavailable}


def _gpu_name():
    """The first CUDA device's name, best effort (CuPy, else PyTorch), or None."""
    try:
        import cupy

        name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception:  # noqa: BLE001 - a name for a title, nothing depends on it
        pass
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001
        return None


def machine(gpu=False) -> dict:
    """The machine a benchmark ran on; with ``gpu``, the GPU's name too (key ``gpu``)."""
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    out = {"cpu": cpu, "cpus": os.cpu_count(), "python": platform.python_version(),
           "numpy": np.__version__, "date": time.strftime("%Y-%m-%d")}
    if gpu:
        out["gpu"] = _gpu_name()
    return out


def _fmt_s(v):
    return "-" if v is None else (f"{v:.3g} s" if v < 100 else f"{v / 60:.1f} min")


def table(res) -> str:
    head = ["implementation", "user", "sys", "total CPU", "wall", "efficiency", "GFLOP/s",
            "samples/s", "peak RSS", "check"]
    rows = []
    for r in res["results"]:
        if "error" in r:
            rows.append([r["run"], "ERROR: " + r["error"]] + [""] * 8)
            continue
        rows.append([r["run"] + (" (extrapolated)" if r["extrapolated"] else ""),
                     _fmt_s(r["user_s"]), _fmt_s(r["sys_s"]), _fmt_s(r["user_s"] + r["sys_s"]),
                     _fmt_s(r["wall_s"]), f"{r.get('efficiency_pct', 0):.0f}%",
                     f"{r['gflops']:.3g}", f"{r['samples'] / r['wall_s']:.4g}",
                     f"{r['peak_rss_mb']:.0f} MB" + (f" + {r['peak_gpu_mb']:.0f} MB GPU"
                                                       if r.get("peak_gpu_mb") else ""),
                     r["validation"]])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    out = [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out)


# ---- predicted GPU time from the emulator's counters (lockstep bench --device emu) --------

# The step every strategy is counted on: one batch of B samples, O = 1, MSE on every time step,
# SGD with the seed's learning rate and clipping (rowsq + clip_norm are part of the step).
MODEL_RECIPE = {"loss": "mse", "optimizer": "sgd", "lr": 0.1, "clip": 0.25}
SEED_SHAPE = (1, 50, 12, 32)  # I, H, T, B
DIRECT_LIMIT = 5e7  # T*B*H*(H+I) up to this: count all T steps (~a minute of emulation at most)


def model_problem(I, H, T, B, dtype, recipe=None):
    """(model_cfg, train_cfg, params, x, y) of one training step at (I, H, T, B), O = 1."""
    mc = ModelConfig(I, H, 1)
    tc = TrainConfig(**(recipe or MODEL_RECIPE), epochs=1, batch_size=B, seed=0)
    dt = np.dtype(dtype)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, I)).astype(dt)
    y = rng.standard_normal((T, B, 1)).astype(dt)
    return mc, tc, reference.init_params(mc, dt, seed=0), x, y


def _step(strategy, shape, dtype, T, recipe=None, emulate="h200"):
    """A fresh cuda-raw@emu backend with the GPU's launch geometry and the function that runs
    one training step of T time steps on it."""
    from .backends.cuda_raw import CudaRawBackend

    I, H, _, B = shape
    mc, tc, params, x, y = model_problem(I, H, T, B, dtype, recipe)
    be = CudaRawBackend(mc, tc, np.dtype(dtype), strategy=strategy, device="emu",
                        emulate=emulate)
    be.load(params, None)

    def fn():
        return list(run_epochs(be, x, y, tc, new_rng(tc.seed), 1))
    return be, fn, (mc, tc, params, x, y)


def count_step(strategy, shape, dtype, T, recipe=None):
    """Count one training step of T time steps (shape = (I, H, any, B)) on the emulator with
    the H200's launch geometry and check its loss and parameters against the reference bit for
    bit: (records, validated, seconds of emulation)."""
    from . import gpu_model

    be, fn, (mc, tc, params, x, y) = _step(strategy, shape, dtype, T, recipe)
    t0 = time.perf_counter()
    losses, recs = gpu_model.count(be.dev, fn)
    secs = time.perf_counter() - t0
    ref_params, hist = reference.train(params, (x, y), tc, rng=new_rng(tc.seed))
    got, _ = be.state()
    ok = harness.bits_equal(np.asarray(losses), np.asarray(hist["train_loss"], be.dtype)) and \
        all(harness.bits_equal(got[n], ref_params[n]) for n in reference.PARAM_NAMES)
    return recs, ok, secs


def dry_step(strategy, shape, dtype, T, recipe=None):
    """The launch signatures of one training step of T time steps, no kernel run."""
    from . import gpu_model

    be, fn, _ = _step(strategy, shape, dtype, T, recipe)
    return gpu_model.dry_run(be.dev, fn)


def count_strategy(strategy, shape, dtype="float32", model="h200", count_steps=None,
                   recipe=None):
    """Counter records of one training step at ``shape`` = (I, H, T, B) on the emulator with
    the H200's launch geometry, each counted run validated against the reference, and the
    model's prediction. ``count_steps`` = n < T counts n and 2n time steps and extrapolates to
    T (gpu_model.extrapolate); None counts all T steps when T*B*H*(H+I) <= DIRECT_LIMIT, else
    n = 2 (at n = 1 the step kernels have no interior step yet, and the footprint of a buffer
    reused across steps is not linear from T = 1 to 2)."""
    from . import gpu_model

    I, H, T, B = shape
    gpu = gpu_model.get(model)
    if count_steps is None:
        count_steps = T if T * B * H * (H + I) <= DIRECT_LIMIT else 2
    if count_steps < 1:
        raise ConfigError(f"--count-steps must be at least 1, got {count_steps}")
    res = {"run": f"cuda-raw:{strategy}@emu", "strategy": strategy}
    try:
        if 2 * count_steps > T:  # cheap enough or short: count all T steps
            recs, ok, secs = count_step(strategy, shape, dtype, T, recipe)
            res["counted"] = {"T": T, "extrapolated": False}
        else:
            n1, n2 = count_steps, 2 * count_steps
            r1, ok1, s1 = count_step(strategy, shape, dtype, n1, recipe)
            r2, ok2, s2 = count_step(strategy, shape, dtype, n2, recipe)
            dry = dry_step(strategy, shape, dtype, T, recipe)
            recs, info = gpu_model.extrapolate((n1, r1), (n2, r2), dry, T)
            ok, secs = ok1 and ok2, s1 + s2
            res["counted"] = {**info, "extrapolated": True}
    except ConfigError as e:  # the persistent strategy's limits
        return {**res, "skipped": str(e).split(";")[0]}
    res.update(validated=ok, validation="same bits" if ok else "DIFFERENT BITS",
               emu_seconds=secs, prediction=gpu_model.predict(recs, gpu))
    return res


def bench_model(shape=SEED_SHAPE, dtype="float32", model="h200", strategies=None,
                count_steps=None, progress=True):
    """Every cuda-raw strategy counted on the emulator and priced on ``model``."""
    from . import gpu_model
    from .backends.cuda_raw import CudaRawBackend

    # everything is checked before the first progress line
    ok, why = CudaRawBackend.available("emu")
    if not ok:
        raise ConfigError(f"--device emu: {why}")
    strategies = list(strategies or CudaRawBackend.strategies)
    for s in strategies:
        if s not in CudaRawBackend.strategies:
            raise ConfigError(f"unknown cuda-raw strategy {s!r}; choose from "
                              f"{', '.join(CudaRawBackend.strategies)}")
    gpu = gpu_model.get(model)
    if count_steps is not None and count_steps < 1:
        raise ConfigError(f"--count-steps must be at least 1, got {count_steps}")
    I, H, T, B = shape
    ModelConfig(I, H, 1)
    from . import limits

    limits.check_memory(limits.training_bytes(I, H, 1, T, B, B, np.dtype(dtype).itemsize),
                        f"--shape {','.join(map(str, shape))}", "choose a smaller --shape")
    from . import _simt

    results = []
    old = _simt.workers()
    _simt.set_workers(os.cpu_count() or 1)  # the counts do not depend on it (test_gpu_model)
    bar = harness.Progress(len(strategies), quiet=not progress, prefix="counting ")
    try:
        for s in strategies:
            bar(f"cuda-raw:{s}@emu at I,H,T,B = {shape}")
            t0 = time.perf_counter()
            results.append(count_strategy(s, shape, dtype, model, count_steps))
            results[-1]["wall_s"] = time.perf_counter() - t0
    finally:
        bar.close()
        _simt.set_workers(old)
    I, H, T, B = shape
    return {"mode": "model", "model": model, "gpu": asdict(gpu), "dtype": np.dtype(dtype).name,
            "shape": {"I": I, "H": H, "T": T, "B": B, "O": 1}, "recipe": MODEL_RECIPE,
            "machine": machine(), "kernels": kernel_provenance(), "results": results}


def kernel_provenance() -> dict:
    """Which kernels were counted: a digest of the installed .cu/.cuh/.h sources, when the
    emulator module was built, and (from a git checkout) the commit and the kernel files that
    differ from it."""
    import hashlib
    import subprocess
    from pathlib import Path

    from . import _simt, cuda_build

    def digest(cuda, include):
        h = hashlib.sha256()
        for p in [*sorted(cuda.glob("*.cu*")), *sorted(include.rglob("*.h"))]:
            h.update(p.name.encode() + p.read_bytes())
        return h.hexdigest()[:16]

    out = {"sources_sha256": digest(cuda_build.cuda_dir(), cuda_build.include_dir()),
           "simt_built": time.strftime("%Y-%m-%d %H:%M:%S UTC",
                                       time.gmtime(os.path.getmtime(_simt.__file__)))}
    root = Path(__file__).resolve().parents[2]
    if (root / "cuda").is_dir() and (root / "csrc" / "include").is_dir():
        out["checkout_matches_build"] = \
            digest(root / "cuda", root / "csrc" / "include") == out["sources_sha256"]
    try:
        def git(*a):
            return subprocess.run(["git", "-C", str(root), *a], capture_output=True, text=True,
                                  timeout=10, check=True).stdout.strip()
        out["commit"] = git("rev-parse", "--short", "HEAD")
        out["uncommitted"] = [ln[3:] for ln in git("status", "--porcelain", "--", "cuda",
                                                   "csrc").splitlines()]
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def _ms(v):
    return f"{v * 1e3:.4g}"


def model_table(res) -> str:
    """One row per strategy: counts, each term (summed over launches), predicted ms per
    training step and the fraction of the step's roofline."""
    head = ["strategy", "launches", "grid barriers", "DRAM MB", "L2 MB", "GFLOP", "coalescing",
            "bank conflicts", "DRAM ms", "L2 ms", "FP ms", "shared ms", "serial ms", "launch ms",
            "barrier ms", "predicted ms", "roofline ms", "% of roofline", "check"]
    rows = []
    for r in res["results"]:
        if "skipped" in r:
            rows.append([r["strategy"], "skipped: " + r["skipped"]] + [""] * (len(head) - 2))
            continue
        p = r["prediction"]
        t = p["terms_s"]
        rows.append([r["strategy"], p["launches"], p["grid_syncs"], f"{p['dram_bytes'] / 1e6:.4g}",
                     f"{p['l2_bytes'] / 1e6:.4g}", f"{p['ops'] / 1e9:.4g}",
                     "-" if p["coalescing"] is None else f"{p['coalescing']:.3f}",
                     "-" if p["bank_conflicts"] is None else f"{p['bank_conflicts']:.3f}",
                     *(_ms(t[k]) for k in ("dram", "l2", "fp", "shared", "serial", "launch",
                                            "barrier")),
                     _ms(p["predicted_s"]), _ms(p["roofline_s"]),
                     f"{100 * p['roofline_fraction']:.1f}%", r["validation"]])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]

    def line(cells):
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
    out = [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    return "\n".join(out + [line(r) for r in rows])


def _parse_shape(text):
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 4 or min(shape) < 1:
        raise ConfigError(f"--shape must be four positive integers I,H,T,B, got {text!r}")
    return shape


def _write_json(args, res):
    """--json: the document on stdout; --json-file FILE: the same document in FILE."""
    if getattr(args, "json_file", None):
        from . import outdir

        # atomically (a full disk leaves no partial file), or in place on a FIFO or a device,
        # through the descriptor cmd_bench opened before the work
        fd, args.json_fd = getattr(args, "json_fd", None), None  # write_text closes it
        outdir.write_text(args.json_file, json.dumps(res, indent=2) + "\n", fd=fd,
                          flag="--json-file")
    if args.json is True:
        print(json.dumps(res, indent=2), flush=True)


def cli_bench_model(args):
    from . import gpu_model
    from .errors import say as _say

    def err(msg):
        _say(args, msg)

    if args.device not in (None, "emu"):
        raise ConfigError(f"--model prices the emulator's counters: use --device emu (got "
                          f"{args.device!r}); on a GPU, bench/lstm_forward.py and "
                          "bench/lstm_backward.py print predicted beside measured")
    shape = _parse_shape(args.shape) if args.shape else SEED_SHAPE
    model = args.model or "h200"
    gpu = gpu_model.get(model)
    strategies = args.strategies.split(",") if args.strategies else None
    res = bench_model(shape, args.dtype or "float32", model, strategies, args.count_steps,
                      progress=not getattr(args, "quiet", False))
    I, H, T, B = shape
    err(f"cuda-raw strategies on {gpu.name}, predicted from the SIMT emulator's counters: one "
        f"training step (forward, loss, backward, weight gradients, clipping, SGD) of "
        f"I,H,T,B,O = {I},{H},{T},{B},1 in {res['dtype']}")
    err("model (python/lockstep/gpu_model.py): per launch launch + barriers + max(DRAM, L2, FP, "
        "shared, serial), summed; the term columns are each term summed over the launches")
    err(f"assumptions: {gpu.notes}")
    k = res["kernels"]
    err(f"kernels: sources {k['sources_sha256']}, emulator built {k['simt_built']}"
        + (f", commit {k['commit']}" if k.get("commit") else "")
        + (f" + uncommitted {', '.join(k['uncommitted'])}" if k.get("uncommitted") else "")
        + ("" if k.get("checkout_matches_build", True) else
           " (the checkout's kernel sources differ from the built ones: rebuild to count them)"))
    err(model_table(res))
    for r in res["results"]:
        c = r.get("counted")
        if not c:
            continue
        if c["extrapolated"]:
            err(f"  {r['strategy']}: counted T' = {c['T1']} and {c['T2']} time steps "
                f"({r['emu_seconds']:.1f} s of emulation, {r['wall_s']:.0f} s with the "
                f"reference check), extrapolated to T = {c['T']}: "
                f"{c['launches_as_counted']} launches as counted (per-step kernels and those "
                f"that do not depend on T), {c['launches_extrapolated']} whole-sequence "
                "launches with every counter extrapolated linearly in T")
        else:
            err(f"  {r['strategy']}: counted all T = {c['T']} time steps "
                f"({r['emu_seconds']:.1f} s of emulation, {r['wall_s']:.0f} s with the "
                "reference check)")
    _write_json(args, res)
    return 1 if any(r.get("validated") is False for r in res["results"]) else 0


def cli_bench(args):
    from .errors import say as _say

    def err(msg):
        _say(args, msg)

    if getattr(args, "model", None) or getattr(args, "device", None):
        return cli_bench_model(args)
    extra = [f"--{k.replace('_', '-')}" for k in ("shape", "dtype", "count_steps", "strategies")
             if getattr(args, k, None) is not None]
    if extra:
        raise ConfigError(f"{', '.join(extra)} belong to the counting mode: add --device emu "
                          "(and --model h200)")
    names = args.backends.split(",") if args.backends else None
    for n in names or []:
        backends.get(n)
    anchors = None if args.anchors is None else [a for a in args.anchors.split(",") if a]
    res = bench(args.preset, names, anchors=anchors, progress=not getattr(args, "quiet", False))
    err(f"preset {res['preset']}: {res['description']}")
    err(f"shape I,H,O,T,N = {res['shape']}; machine: {res['machine']['cpu']} "
        f"({res['machine']['cpus']} CPUs)")
    err(table(res))
    for u in res["unavailable"]:
        err(f"  not run: {u['run']}: {u['reason']}")
    _write_json(args, res)
    if args.plot:
        from . import plots

        ok = [r for r in res["results"] if "speedup" in r]
        m, sh = res["machine"], res["shape"]
        plots.speedups([r["run"] for r in ok], [r["speedup"] for r in ok], args.plot,
                       title=f"lockstep bench --preset {args.preset}: speed-up over numpy",
                       exact=[r["run"] not in ANCHORS and bool(r.get("validated")) for r in ok],
                       machine=f"{m['cpu']} ({m['cpus']} CPUs)"
                       + (f", {m['gpu']}" if m.get("gpu") else ""),
                       shape=", ".join(f"{k}={v}" for k, v in sh.items()))
    bad = [r["run"] for r in res["results"] if not r.get("validated", False)
           and not r["run"].startswith(ANCHORS)]
    return 1 if bad else 0


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], sys.argv[2])))
