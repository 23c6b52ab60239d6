"""How the Forecaster's time and memory grow with the number of series: synthetic monthly
tables of N series, each fitted, forecast, saved and loaded in a fresh process.

    python bench/scale.py [--sizes 1000,10000,50000] [--epochs 5] [--hidden 32] [--window 12]
                          [--dtype float32] [--backend cpu] [--ensemble 1] [--seed 0]
                          [--neuralforecast] [--json-file bench/results/DATE-scale/scale.json]

Each series has a seeded length in [60, 240] rows (numpy PCG64(seed)), a start month in
2000-01 .. 2009-12 and positive values level * (1 + trend * t + amplitude * sin(2 pi (t +
phase) / 12) + noise); the long DataFrame (unique_id, ds, y) is built vectorised. Every size
runs in its own subprocess, so its peak RSS (getrusage ru_maxrss of that process, MiB) is that
run's alone; it includes the DataFrame the process built. Measured there: read (DataFrame ->
Panel), fit (prepare + training + calibration; patience off, holdout 0, quiet), the time per
epoch (fit / epochs, and from the timestamps of the per-epoch log lines, training and
validation of that epoch), windows per second (windows * epochs / training time, where training
starts when ``prepare`` returns), predict(12) with the 80 and 95 % intervals, save and load of
the checkpoint and its size. "time per million rows" shows whether time grows linearly in the
number of rows.

--neuralforecast (needs neuralforecast; skipped with one line if absent) fits its LSTM
(input_size 12, h 12, max_steps = epochs passes over the windows at its batch of windows,
accelerator cpu, quiet trainer) on the 10 000-series table (built the same way), in its own
subprocess too.

Targets (the issue): 50 000 series trained for 5 epochs and forecast in under 10 minutes, with
under 4 GiB peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from forecast_common import quiet_lightning

HERE = Path(__file__).resolve()
MARK = "SCALE-RESULT "
TARGET_SERIES, TARGET_S, TARGET_MIB = 50_000, 600.0, 4096.0
NF_SERIES = 10_000


# ---- the synthetic table -------------------------------------------------------------------

def make_table(n, seed=0, min_len=60, max_len=240):
    """Long DataFrame (unique_id, ds, y) of ``n`` monthly series, built without a per-series
    loop: lengths, start months and shape parameters drawn per series, then spread to rows
    with np.repeat and the positions inside each series from cumulative offsets."""
    import pandas as pd

    rng = np.random.Generator(np.random.PCG64(seed))
    lengths = rng.integers(min_len, max_len + 1, n)
    start = rng.integers(0, 120, n)  # months after 2000-01
    level = np.exp(rng.uniform(np.log(10.0), np.log(10_000.0), n))
    trend = rng.uniform(-0.001, 0.006, n)  # per month, relative to the level
    amp = rng.uniform(0.05, 0.3, n)
    phase = rng.integers(0, 12, n)
    sigma = rng.uniform(0.01, 0.08, n)
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    rows = int(indptr[-1])
    g = np.repeat(np.arange(n), lengths)
    t = np.arange(rows) - indptr[:-1][g]  # position inside the series
    month = start[g] + t
    ds = (np.datetime64("2000-01", "M") + month).astype("datetime64[ns]")
    # y = level * (1 + trend t + amp sin(...) + sigma noise), in place (few row-sized arrays)
    y = rng.standard_normal(rows)
    y *= sigma[g]
    y += 1.0
    y += trend[g] * t
    del t
    month += phase[g]
    month %= 12
    y += amp[g] * np.sin((2 * np.pi / 12) * month)
    del month
    lv = level[g]
    y *= lv
    lv *= 0.01
    np.maximum(y, lv, out=y)  # strictly positive
    del lv
    width = len(str(n - 1))
    names = np.array([f"s{i:0{width}d}" for i in range(n)], dtype=object)
    return pd.DataFrame({"unique_id": names[g], "ds": ds, "y": y})


def peak_mib():
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kib / 1024.0 if sys.platform != "darwin" else kib / 2 ** 20


# ---- the child runs ------------------------------------------------------------------------

def cap_memory(gib):
    """Address-space limit of this (child) process, so a run that outgrows the machine fails
    with a MemoryError (reported in its row) instead of waking the OOM killer."""
    if gib and gib > 0:
        lim = int(gib * 2 ** 30)
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))


def worker_lockstep(a):
    cap_memory(a.max_mem_gib)
    from lockstep import Forecaster
    from lockstep.data.table import read

    out = {"series": a.n}
    t0 = time.perf_counter()
    df = make_table(a.n, a.seed)
    out["build_s"] = time.perf_counter() - t0
    out["rows"] = len(df)
    out["rss_after_build_mib"] = peak_mib()

    t0 = time.perf_counter()
    panel = read(df)
    out["read_s"] = time.perf_counter() - t0
    out["rss_after_read_mib"] = peak_mib()

    stamps = []
    fc = Forecaster(hidden_size=a.hidden, window=a.window, backend=a.backend, seed=a.seed,
                    epochs=a.epochs, patience=None, ensemble=a.ensemble, holdout=0,
                    dtype=a.dtype, quiet=False, progress=False,
                    logger=lambda msg: stamps.append((time.perf_counter(), msg)))
    prepared = []
    prepare = fc.prepare

    def timed_prepare(p):  # the instance attribute shadows the method: only timestamps added
        w = prepare(p)
        prepared.append(time.perf_counter())
        return w

    fc.prepare = timed_prepare
    t0 = time.perf_counter()
    fc.fit(panel)
    t1 = time.perf_counter()
    del fc.prepare
    epochs = [s[0] for s in stamps if re.search(r"epoch +\d+/\d+ ", s[1])]
    n_epochs = sum(len(s.train_loss) for s in fc.states)
    out.update(fit_s=t1 - t0, epochs=n_epochs, windows=int(fc.windows.shape[1]),
               log_lines=len(stamps), prepare_s=prepared[0] - t0 if prepared else None)
    out["s_per_epoch"] = out["fit_s"] / max(n_epochs, 1)
    if prepared and len(epochs) == n_epochs and n_epochs:
        per = np.diff([prepared[0], *epochs])
        out["epoch_s"] = [float(v) for v in per]
        out["train_s"] = epochs[-1] - prepared[0]
        out["after_training_s"] = t1 - epochs[-1]  # calibration of the intervals
        out["s_per_epoch_logged"] = float(np.mean(per))
    else:  # no per-epoch lines: the whole fit counts as training
        out["train_s"] = out["fit_s"]
    out["windows_per_s"] = out["windows"] * n_epochs / out["train_s"]
    out["train_loss"] = [float(v) for v in fc.states[0].train_loss]
    out["rss_after_fit_mib"] = peak_mib()

    t0 = time.perf_counter()
    frame = fc.predict(12)
    out["forecast_s"] = time.perf_counter() - t0
    out["forecast_rows"] = len(frame)
    out["forecast_finite"] = bool(np.isfinite(frame["yhat"].to_numpy(float)).all())
    out["rss_after_forecast_mib"] = peak_mib()

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "scale.ckpt"
        t0 = time.perf_counter()
        fc.save(path)
        out["save_s"] = time.perf_counter() - t0
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        out["ckpt_mib"] = sum(p.stat().st_size for p in files) / 2 ** 20
        t0 = time.perf_counter()
        loaded = type(fc).load(path, backend=a.backend)
        out["load_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = loaded.predict(12)
        out["loaded_forecast_s"] = time.perf_counter() - t0
        out["loaded_same_forecast"] = bool(np.array_equal(again["yhat"].to_numpy(),
                                                          frame["yhat"].to_numpy()))
    out["peak_rss_mib"] = peak_mib()
    print(MARK + json.dumps(out), flush=True)


def worker_neuralforecast(a):
    cap_memory(a.max_mem_gib)
    from neuralforecast import NeuralForecast
    from neuralforecast.models import LSTM

    quiet_lightning()
    df = make_table(a.n, a.seed)
    lengths = df.groupby("unique_id", sort=False).size().to_numpy()
    # windows of input 12 and horizon 12 per series; each step trains on windows_batch_size
    # windows drawn from batch_size series, so max_steps gives `epochs` passes over them
    windows = int(np.maximum(lengths - 12 - 12 + 1, 0).sum())
    batch = 1024  # windows per step (its default is 128: 8x the steps for the same passes)
    steps = max(1, int(np.ceil(a.epochs * windows / batch)))
    model = LSTM(h=12, input_size=12, max_steps=steps, random_seed=a.seed, accelerator="cpu",
                 windows_batch_size=batch, enable_progress_bar=False,
                 enable_model_summary=False, logger=False)
    nf = NeuralForecast(models=[model], freq="MS")
    t0 = time.perf_counter()
    nf.fit(df=df)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    fr = nf.predict()
    print(MARK + json.dumps({"series": a.n, "rows": len(df), "windows": windows,
                             "max_steps": steps, "fit_s": fit_s,
                             "forecast_s": time.perf_counter() - t0, "forecast_rows": len(fr),
                             "peak_rss_mib": peak_mib()}), flush=True)


def _default_cap():
    try:
        return round(0.7 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30, 1)
    except (ValueError, OSError, AttributeError):
        return 0.0


def child(a, which, n):
    cmd = [sys.executable, str(HERE), "--worker", which, "--n", str(n), "--max-mem-gib",
           str(a.max_mem_gib), "--epochs",
           str(a.epochs), "--hidden", str(a.hidden), "--window", str(a.window), "--dtype",
           a.dtype, "--backend", a.backend, "--ensemble", str(a.ensemble), "--seed", str(a.seed)]
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout)
    except subprocess.TimeoutExpired:
        return {"series": n, "error": f"timed out after {a.timeout} s"}
    wall = time.perf_counter() - t0
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith(MARK)]
    if p.returncode or not lines:
        tail = "\n".join((p.stderr or p.stdout).strip().splitlines()[-12:])
        return {"series": n, "error": f"exit {p.returncode}", "stderr_tail": tail}
    r = json.loads(lines[-1][len(MARK):])
    r["process_wall_s"] = wall
    return r


# ---- the table -----------------------------------------------------------------------------

COLS = [("series", "series", "{:>8d}"), ("rows", "rows", "{:>10d}"),
        ("windows", "windows", "{:>10d}"), ("read s", "read_s", "{:>8.2f}"),
        ("fit s", "fit_s", "{:>9.2f}"), ("s/epoch", "s_per_epoch", "{:>9.2f}"),
        ("windows/s", "windows_per_s", "{:>11.0f}"), ("forecast s", "forecast_s", "{:>11.2f}"),
        ("save s", "save_s", "{:>8.2f}"), ("ckpt MiB", "ckpt_mib", "{:>9.1f}"),
        ("peak RSS MiB", "peak_rss_mib", "{:>13.0f}")]


def print_table(rows):
    widths = [len(f.format(0 if "d" in f else 0.0)) for _, _, f in COLS]
    print(" | ".join(f"{h:>{w}}" for (h, _, _), w in zip(COLS, widths)))
    for r in rows:
        if "error" in r:
            print(f"{r['series']:>8d} | failed: {r['error']}")
            if r.get("stderr_tail"):
                print("\n".join("         " + ln for ln in r["stderr_tail"].splitlines()))
            continue
        print(" | ".join(f.format(r[k]) for _, k, f in COLS))
    ok = [r for r in rows if "error" not in r]
    if not ok:
        return
    print("\ntime per million rows (fit; fit + forecast; read), and the per-epoch log's mean:")
    for r in ok:
        m = r["rows"] / 1e6
        logged = r.get("s_per_epoch_logged")
        both = (r["fit_s"] + r["forecast_s"]) / m
        print(f"{r['series']:>8d} series  {r['rows'] / 1e6:6.2f} M rows  fit "
              f"{r['fit_s'] / m:8.2f} s/Mrow  fit+forecast {both:8.2f} s/Mrow  read "
              f"{r['read_s'] / m:6.2f} s/Mrow  s/epoch logged "
              f"{'-' if logged is None else f'{logged:.2f}'}  (fit = prepare "
              f"{r['prepare_s'] or 0:.1f} + training {r['train_s']:.1f} + after training "
              f"{r.get('after_training_s', 0):.1f} s)")
    for a, b in zip(ok, ok[1:]):
        rr = b["rows"] / a["rows"]
        print(f"{a['series']} -> {b['series']} series: rows x{rr:.2f}, fit time "
              f"x{b['fit_s'] / a['fit_s']:.2f}, forecast time "
              f"x{b['forecast_s'] / a['forecast_s']:.2f}, peak RSS "
              f"x{b['peak_rss_mib'] / a['peak_rss_mib']:.2f}")


def targets(rows, epochs):
    r = next((r for r in rows if r["series"] == TARGET_SERIES), None)
    if r is None:
        return {"note": f"{TARGET_SERIES} series not run"}
    if "error" in r:
        return {"met": False, "note": f"{TARGET_SERIES} series failed: {r['error']}"}
    total = r["fit_s"] + r["forecast_s"]
    t = {"epochs": epochs, "fit_plus_forecast_s": total, "time_met": total < TARGET_S,
         "peak_rss_mib": r["peak_rss_mib"], "rss_met": r["peak_rss_mib"] < TARGET_MIB}
    t["met"] = t["time_met"] and t["rss_met"] and epochs == 5
    return t


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000,50000")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--window", type=int, default=12)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--ensemble", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=7200, help="seconds per child run")
    ap.add_argument("--max-mem-gib", type=float, default=_default_cap(),
                    help="address-space limit of each child run (GiB; 0: none); default 70%% "
                    "of the machine's memory")
    ap.add_argument("--neuralforecast", action="store_true",
                    help=f"also neuralforecast's LSTM on the {NF_SERIES}-series table")
    ap.add_argument("--json-file", type=Path, help="write the results here")
    ap.add_argument("--worker", choices=["lockstep", "neuralforecast"], help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker == "lockstep":
        return worker_lockstep(a) or 0
    if a.worker == "neuralforecast":
        return worker_neuralforecast(a) or 0
    sizes = [int(s) for s in a.sizes.split(",") if s]
    print(f"# {a.backend} {a.dtype}, hidden {a.hidden}, window {a.window}, {a.epochs} epochs, "
          f"ensemble {a.ensemble}, seed {a.seed}; {os.cpu_count()} CPUs; one process per size",
          flush=True)
    rows = []
    res = {"machine": {"cpus": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
                       "platform": platform.platform()},
           "config": {k: v for k, v in vars(a).items()
                      if k not in ("json_file", "worker", "n", "neuralforecast")},
           "rows": rows}
    for n in sizes:
        rows.append(child(a, "lockstep", n))
        r = rows[-1]
        print(f"# {n} series: " + (f"failed ({r['error']})" if "error" in r else
                                   f"{r['process_wall_s']:.1f} s in all"), flush=True)
        if a.json_file:  # the sizes so far, in case a later one is stopped
            a.json_file.parent.mkdir(parents=True, exist_ok=True)
            a.json_file.write_text(json.dumps(res, indent=1))
    print_table(rows)
    t = targets(rows, a.epochs)
    if "time_met" in t:
        print(f"\ntarget: {TARGET_SERIES} series, {a.epochs} epochs + forecast under "
              f"{TARGET_S / 60:.0f} min: {t['fit_plus_forecast_s']:.1f} s: "
              f"{'met' if t['time_met'] else 'missed'}"
              f"{'' if a.epochs == 5 else ' (but the target is for 5 epochs)'}")
        print(f"target: {TARGET_SERIES} series under {TARGET_MIB / 1024:.0f} GiB peak RSS: "
              f"{t['peak_rss_mib']:.0f} MiB: {'met' if t['rss_met'] else 'missed'}")
    else:
        print(f"\ntargets ({TARGET_SERIES} series, 5 epochs + forecast < 10 min, < 4 GiB "
              f"peak RSS): {t['note']}")
    nf = None
    if a.neuralforecast:
        try:
            import neuralforecast  # noqa: F401
        except ImportError:
            nf = {"skipped": "neuralforecast is not installed: pip install neuralforecast"}
            print(nf["skipped"])
        else:
            nf = child(a, "neuralforecast", NF_SERIES)
            if "error" in nf:
                print(f"neuralforecast LSTM on {NF_SERIES} series failed: {nf['error']}\n"
                      f"{nf.get('stderr_tail', '')}")
            else:
                mine = next((r for r in rows if r["series"] == NF_SERIES and "error" not in r),
                            None)
                print(f"neuralforecast LSTM, {NF_SERIES} series, {nf['max_steps']} steps "
                      f"(~{a.epochs} passes over {nf['windows']} windows): fit {nf['fit_s']:.1f} s,"
                      f" forecast {nf['forecast_s']:.1f} s, peak RSS {nf['peak_rss_mib']:.0f} MiB"
                      + (f"; lockstep fit {mine['fit_s']:.1f} s, peak RSS "
                         f"{mine['peak_rss_mib']:.0f} MiB" if mine else ""))
    res.update(targets=t, neuralforecast=nf)
    if a.json_file:
        a.json_file.parent.mkdir(parents=True, exist_ok=True)
        a.json_file.write_text(json.dumps(res, indent=1))
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
