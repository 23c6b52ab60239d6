"""Forecast accuracy of lockstep's defaults beside statsforecast (AutoARIMA, AutoETS, seasonal
naive) and neuralforecast's LSTM (input 2h, 300 steps, its defaults otherwise), by
rolling-origin backtests on the bundled real series.

    python bench/accuracy.py [--datasets airpassengers,elec_equip,co2,nile,macro]
                             [--windows 3] [--split test|validation] [--set KEY=VALUE]
                             [--backend cpu] [--neuralforecast] [--json FILE]

Every model forecasts the same windows: K origins one horizon apart, the last window ending at
each series' end (statsforecast's cross_validation with n_windows=K, step_size=h). lockstep
runs `GlobalForecaster` with the default settings (the same as `lockstep backtest`), refit
before each window; one global model per data set (macro: eight series). Metrics are computed
here, the same way for every model, per window and series: MASE (scaled by the in-sample MAE
of the seasonal-naive forecast of the history before the window), sMAPE, RMSE. Wall time is
the whole backtest of each model on this machine, in one run.

``--split validation`` runs the same backtest on each series without the rows the test
windows score (its last K horizons), so choices (``--set`` a Forecaster setting) are made on
windows that precede the test part's.

Targets (issue 16 item 9): lockstep beats seasonal naive on MASE on every series (mean over
its windows), and its mean MASE over the series is at most that of the better of AutoARIMA
and AutoETS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # many tiny forecasts: one thread is fastest

import numpy as np  # noqa: E402

from lockstep import Forecaster, data  # noqa: E402
from lockstep.metrics import metrics, naive_scale  # noqa: E402

from forecast_common import parse_set, quiet_lightning  # noqa: E402

HORIZON = {"M": 12, "Q": 8, "Y": 10, "A": 10}  # by the first letter of the frequency


def _frame(p):
    return p.to_frame()


def _score(p, fc, horizon, windows, step, season):
    """{(window, uid): metrics} of forecasts fc[(window, uid)] (arrays of horizon values)."""
    out = {}
    for k in range(windows):
        held = horizon + (windows - 1 - k) * step
        for j, i in enumerate(p.ids):
            y = p.values(j)
            n = len(y) - held
            past, actual = y[:n], y[n:n + horizon]
            out[(k, i)] = metrics(actual, fc[(k, i)], naive_scale(past, season))
    return out


def run_lockstep(p, horizon, windows, step, backend, settings=None):
    g = Forecaster(backend=backend, quiet=True, **(settings or {}))
    t0 = time.perf_counter()
    res = g.backtest_result(p, horizon, windows, step)
    wall = time.perf_counter() - t0
    scores = {(r["window"], r["unique_id"]): r["model"] for r in res["windows"]}
    cover = res["overall"]["coverage"]
    return scores, wall, {"coverage": cover}


def run_statsforecast(p, horizon, windows, step, season):
    try:
        from statsforecast import StatsForecast
        from statsforecast.models import AutoARIMA, AutoETS, Naive, SeasonalNaive
    except ImportError as e:
        return None, f"statsforecast is not installed ({e}); pip install '.[compare]'"
    m = max(season, 1)
    models = {"AutoARIMA": AutoARIMA(season_length=m), "AutoETS": AutoETS(season_length=m),
              "SeasonalNaive": SeasonalNaive(season_length=m) if m > 1 else Naive()}
    out = {}
    df = _frame(p)
    for name, model in models.items():
        sf = StatsForecast(models=[model], freq=p.freq, n_jobs=1)
        t0 = time.perf_counter()
        cv = sf.cross_validation(df=df, h=horizon, n_windows=windows, step_size=step)
        wall = time.perf_counter() - t0
        col = [c for c in cv.columns if c not in ("unique_id", "ds", "cutoff", "y")][0]
        fc = {}
        cutoffs = sorted(cv["cutoff"].unique())
        for k, c in enumerate(cutoffs):
            part = cv[cv["cutoff"] == c]
            for i in p.ids:
                fc[(k, i)] = part[part["unique_id"] == i][col].to_numpy(np.float64)
        out[name] = (fc, wall)
    return out, None


def run_neuralforecast(p, horizon, windows, step):
    try:
        from neuralforecast import NeuralForecast
        from neuralforecast.models import LSTM
    except ImportError as e:
        return None, f"neuralforecast is not installed ({e})"
    quiet_lightning()
    # neuralforecast's own defaults but for the fixed seed and the quiet trainer
    nf = NeuralForecast(models=[LSTM(h=horizon, input_size=2 * horizon, max_steps=300,
                                     random_seed=0, enable_progress_bar=False,
                                     enable_model_summary=False, logger=False)], freq=p.freq)
    t0 = time.perf_counter()
    cv = nf.cross_validation(df=_frame(p), n_windows=windows, step_size=step)
    wall = time.perf_counter() - t0
    fc = {}
    for k, c in enumerate(sorted(cv["cutoff"].unique())):
        part = cv[cv["cutoff"] == c]
        for i in p.ids:
            fc[(k, i)] = part[part["unique_id"] == i]["LSTM"].to_numpy(np.float64)
    return (fc, wall), None


def per_series(scores, ids, key="mase"):
    """Mean of a metric over the windows, per series."""
    return {i: float(np.mean([m[key] for (k, j), m in scores.items() if j == i])) for i in ids}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="airpassengers,elec_equip,co2,nile,macro")
    ap.add_argument("--windows", type=int, default=3)
    ap.add_argument("--split", choices=["test", "validation"], default="test")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a Forecaster setting (a study on the validation split)")
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--neuralforecast", action="store_true",
                    help="also neuralforecast's LSTM (slow: minutes; needs neuralforecast)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    settings = parse_set(args.set)
    results = {"split": args.split, "settings": settings,
               "machine": {"cpu": platform.processor() or platform.machine(),
                           "cpus": os.cpu_count()}, "windows": args.windows, "datasets": []}
    print(f"# rolling-origin backtests, {args.windows} windows one horizon apart; MASE / sMAPE % "
          "are means over windows and series; wall = the whole backtest")
    print(f"{'data set':<14}{'model':<15}{'MASE':>8}{'sMAPE %':>9}{'wall s':>9}   per series MASE")
    for name in args.datasets.split(","):
        p = data.load(name)
        season, horizon = p.season, HORIZON[p.freq[0]]
        step = horizon
        if args.split == "validation":  # the windows before the test windows
            f = p.to_frame()
            cut = f.groupby("unique_id", sort=False).cumcount(ascending=False)
            p = data.read(f[cut >= horizon + (args.windows - 1) * step], freq=p.freq)
        rows = {}
        scores, wall, extra = run_lockstep(p, horizon, args.windows, step, args.backend,
                                           settings)
        rows["lockstep"] = (scores, wall, extra)
        sf, why_sf = run_statsforecast(p, horizon, args.windows, step, season)
        for model, (fc, w) in (sf or {}).items():
            rows[model] = (_score(p, fc, horizon, args.windows, step, season), w, {})
        nf, why_nf = run_neuralforecast(p, horizon, args.windows, step) if args.neuralforecast \
        else (None, "not asked for (--neuralforecast)")
        if nf:
            rows["neuralforecast LSTM"] = (_score(p, nf[0], horizon, args.windows, step, season),
                                           nf[1], {})
        entry = {"name": name, "freq": p.freq, "season": season, "horizon": horizon,
                 "series": [str(i) for i in p.ids], "models": {}, "not_run": {k: v for k, v in (
                     ("statsforecast", why_sf), ("neuralforecast", why_nf)) if v}}
        for model, (sc, w, extra) in rows.items():
            ps = per_series(sc, p.ids)
            mase = float(np.mean(list(ps.values())))
            smape = float(np.mean([m["smape"] for m in sc.values()]))
            entry["models"][model] = {"mase": mase, "smape": smape, "wall_s": w,
                                      "per_series_mase": ps, **extra}
            shown = ", ".join(f"{v:.2f}" for v in ps.values()) if len(ps) > 1 else ""
            print(f"{name:<14}{model:<15}{mase:8.3f}{smape:9.2f}{w:9.1f}   {shown}")
        m = entry["models"]
        if "SeasonalNaive" in m:
            ls, sn = m["lockstep"]["per_series_mase"], m["SeasonalNaive"]["per_series_mase"]
            entry["beats_naive_on"] = [i for i in p.ids if ls[i] < sn[i]]
            best = min(m[k]["mase"] for k in ("AutoARIMA", "AutoETS"))
            entry["target_naive"] = len(entry["beats_naive_on"]) == len(p.ids)
            entry["target_arima_ets"] = m["lockstep"]["mase"] <= best
            print(f"{'':<14}targets: beats seasonal naive on {len(entry['beats_naive_on'])} of "
                  f"{len(p.ids)} series; mean MASE {m['lockstep']['mase']:.3f} vs the better of "
                  f"AutoARIMA/AutoETS {best:.3f}: {'met' if entry['target_arima_ets'] else 'missed'}")
        for k, v in entry["not_run"].items():
            print(f"{'':<14}{k}: {v}")
        results["datasets"].append(entry)
        sys.stdout.flush()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
