"""lockstep on the M3 competition, scored as the competition scored it, beside its 24 methods.

    python bench/m3.py [--data-dir ../shared/data/m3] [--frequencies monthly,quarterly,...]
                       [--split validation|test] [--recipe default] [--set KEY=VALUE]
                       [--backend cpu]
                       [--statsforecast] [--neuralforecast] [--json-file FILE]

One global model per frequency (monthly, quarterly, yearly, other; horizons 18, 8, 6, 8) is
fitted on the training part of every series and forecasts the horizon. ``--split test``
scores the forecasts on the M3 test part (sMAPE = mean over the horizon of
200 |y - f| / (|y| + |f|), then the mean over series, as the competition computed it) beside
the original forecasts of the 24 methods (THETA, ForecastPro, COMB S-H-D, ..., NAIVE2), with
MASE (scaled by each series' in-sample seasonal-naive error), the share of series where the
model beats NAIVE2, the 80 / 95 % interval coverage and the fit and forecast wall time.
``--split validation`` never looks at the test part: it cuts the last horizon off each series'
training part and scores that instead (the methods' table is then NAIVE2 and seasonal naive
computed here): every choice of recipe is made there (docs/results.md).

``--set KEY=VALUE`` adds a Forecaster setting to the recipe for a study on the validation
split (``refit=true``: fit again on every window, validation span included, for the epoch
count validation chose).

No series is dropped: the window of a frequency is the recipe's, shortened when the shortest
series could not give one training window and a validation span with it (yearly series have
14 rows); it is sized on the validation split's histories in both splits, so the test split
runs the window that validation scored. ``--statsforecast`` runs AutoETS, AutoARIMA and
AutoTheta on the same data; ``--neuralforecast`` its LSTM and NHITS (both opt-in, slow). JSON
under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from forecast_common import parse_set, quiet_lightning

HERE = Path(__file__).resolve().parent
DEFAULT_DIR = HERE.parents[1] / "shared" / "data" / "m3"
FREQS = {"monthly": (18, 12), "quarterly": (8, 4), "yearly": (6, 0), "other": (8, 0)}
SHOWN = ("THETA", "ForecastPro", "COMB S-H-D", "DAMPEN", "B-J auto", "Auto-ANN", "NAIVE2")

# Recipes: Forecaster settings (the same for every frequency; the window is shortened only
# where the shortest series needs it). "default" is lockstep's default for all users.
RECIPES = {
    "default": {},
    "short-window": {"window": 6},
    "no-season": {"season": 0},
    "ensemble3": {"ensemble": 3},
    "diff": {"diff": True},
    "diff-nonseasonal": {"diff_nonseasonal": True},
    "diff-nonseasonal-w6": {"diff_nonseasonal": True, "window": 6},
    # the direct (MQ-RNN style) head: each window predicts the whole horizon
    "direct": {"diff_nonseasonal": True, "head": "direct"},
    # seasonal indices removed after the log, then the lag-1 difference: a model output of 0
    # is the seasonally adjusted naive forecast (NAIVE2's idea); the LSTM learns the rest
    "indices": {"seasonality": "indices"},
    "indices-direct": {"seasonality": "indices", "head": "direct"},
    "indices-ensemble3": {"seasonality": "indices", "ensemble": 3},
    "difference": {"seasonality": "difference"},
}


def smape(y, f):
    """The competition's sMAPE of one series (percent)."""
    y, f = np.asarray(y, np.float64), np.asarray(f, np.float64)
    return float(np.mean(200 * np.abs(y - f) / (np.abs(y) + np.abs(f))))


def load(data_dir, freq):
    tr = pd.read_csv(data_dir / f"m3_{freq}_train.csv.gz", dtype={"unique_id": str})
    te = pd.read_csv(data_dir / f"m3_{freq}_test.csv.gz", dtype={"unique_id": str})
    return tr, te


def split(tr, te, h, which):
    """(history, future) tables: the training part and the test part, or (validation) the
    training part without its last h rows and those rows."""
    if which == "test":
        return tr, te
    g = tr.groupby("unique_id", sort=False).cumcount(ascending=False)
    return tr[g >= h].reset_index(drop=True), tr[g < h].reset_index(drop=True)


def fit_window(hist, want, season, diff, steps=1, indices=False):
    """The recipe's window, shortened where the shortest series could not give a training
    window with it (rows >= lags + window + 1 + steps; its validation span shrinks to fit).
    A series too short for its seasonal difference and that window drops the seasonal
    difference (the library's rule), so only a window of 2 with a lag-1 difference is a
    floor."""
    shortest = int(hist.groupby("unique_id").size().min())
    room = shortest - 1 - steps
    if season and shortest > 2 * season + 2 and room - season - int(diff) >= 2 \
            and not indices:
        return min(want, room - season - int(diff))
    return max(2, min(want, room - 1))


def run_lockstep(hist, h, season, settings, backend, sizing=None):
    """Fit and forecast; the window comes from the series ``sizing`` (default ``hist``): the
    test split sizes it on the validation split's histories, so it runs the window that
    validation chose."""
    from lockstep import Forecaster

    settings = dict(settings)
    season = settings.pop("season", season)
    if settings.get("head") == "direct":
        settings["head_steps"] = h
    want = settings.pop("window", 12)
    window = want if settings.get("pad") else fit_window(  # padded: every series gives one
        hist if sizing is None else sizing, want, season,
        settings.get("diff", False) or settings.get("diff_nonseasonal", False),
        settings.get("head_steps", 1), settings.get("seasonality") == "indices")
    refit = settings.pop("refit", False)
    fc = Forecaster(window=window, backend=backend, quiet=True, season=season,
                    valid_size=h, **settings)
    t0 = time.perf_counter()
    fc.fit(hist)
    kept, ran = [s.best_epoch for s in fc.states], [s.epoch for s in fc.states]
    if refit:  # the same model again on every window, for the epochs validation chose
        best = max(s.best_epoch or 1 for s in fc.states)
        fc = Forecaster(window=window, backend=backend, quiet=True, season=season,
                        valid_size=0, **{**settings, "epochs": best, "patience": None})
        fc.fit(hist)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    frame = fc.predict(h)
    pred_s = time.perf_counter() - t0
    return frame, {"fit_s": fit_s, "forecast_s": pred_s, "window": window, "season": season,
                   "best_epochs": kept, "epochs": ran}


def naive2(hist_y, h, m):
    """NAIVE2 recomputed (validation split): the last value of the seasonally adjusted series
    (classical multiplicative decomposition when the lag-m autocorrelation is significant),
    reseasonalised; plain naive without a season."""
    y = np.asarray(hist_y, np.float64)
    if m <= 1 or len(y) < 3 * m:
        return np.repeat(y[-1], h)
    n = len(y)
    r = np.corrcoef(y[m:], y[:-m])[0, 1] if n > m + 2 else 0.0
    acf = [1.0] + [np.corrcoef(y[k:], y[:-k])[0, 1] for k in range(1, m)]
    limit = 1.645 * np.sqrt((1 + 2 * np.sum(np.square(acf[1:]))) / n)
    if not abs(r) > limit:
        return np.repeat(y[-1], h)
    trend = pd.Series(y).rolling(m, center=True).mean()
    if m % 2 == 0:
        trend = trend.rolling(2).mean().shift(-1)
    ratio = y / trend.to_numpy()
    idx = np.arange(n) % m
    si = np.array([np.nanmean(ratio[idx == k]) for k in range(m)])
    si = si * m / si.sum()
    adj = y / si[idx]
    return adj[-1] * si[(np.arange(n, n + h)) % m]


def score(hist, fut, frame, h, m, level_cols=True):
    """Per series: sMAPE, MASE, coverage of the 80 / 95 % intervals."""
    out = {}
    fh = {k: g for k, g in frame.groupby("unique_id", sort=False)}
    for sid, g in fut.groupby("unique_id", sort=False):
        y = g["y"].to_numpy(np.float64)[:h]
        f = fh[sid]
        yhat = f["yhat"].to_numpy()[:len(y)]
        past = hist.loc[hist["unique_id"] == sid, "y"].to_numpy(np.float64)
        k = m if m and len(past) > m else 1
        scale = np.mean(np.abs(past[k:] - past[:-k])) if len(past) > k else np.nan
        row = {"smape": smape(y, yhat), "mase": float(np.mean(np.abs(y - yhat)) / scale)
               if scale > 0 else float("nan")}
        if level_cols:
            for lv in (80, 95):
                lo = f[f"yhat-lo-{lv}"].to_numpy()[:len(y)]
                hi = f[f"yhat-hi-{lv}"].to_numpy()[:len(y)]
                row[f"coverage_{lv}"] = float(np.mean((y >= lo) & (y <= hi)))
        out[sid] = row
    return out


def originals(data_dir, ids, fut, h):
    """sMAPE per series of each original method (test split)."""
    of = pd.read_csv(data_dir / "m3_original_forecasts.csv.gz", dtype={"unique_id": str})
    of = of[of["unique_id"].isin(set(ids))]
    truth = {sid: g["y"].to_numpy(np.float64)[:h] for sid, g in fut.groupby("unique_id")}
    res = {}
    for method, g in of.groupby("method"):
        per = {}
        for sid, s in g.groupby("unique_id"):
            f = s.sort_values("step")["yhat"].to_numpy(np.float64)[:h]
            per[sid] = smape(truth[sid][:len(f)], f)
        if len(per) == len(ids):
            res[method] = per
    return res


def run_statsforecast(hist, h, m, freq):
    try:
        from statsforecast import StatsForecast
        from statsforecast.models import AutoARIMA, AutoETS, AutoTheta
    except ImportError as e:
        return None, f"statsforecast is not installed ({e}); pip install statsforecast"
    out = {}
    for name, model in (("AutoETS", AutoETS(season_length=max(m, 1))),
                        ("AutoTheta", AutoTheta(season_length=max(m, 1))),
                        ("AutoARIMA", AutoARIMA(season_length=max(m, 1)))):
        t0 = time.perf_counter()
        sf = StatsForecast(models=[model], freq=freq, n_jobs=1)
        fr = sf.forecast(df=hist, h=h).reset_index()
        fr = fr.rename(columns={name: "yhat"})[["unique_id", "ds", "yhat"]]
        out[name] = (fr, time.perf_counter() - t0)
    return out, None


def run_neuralforecast(hist, h, m, freq):
    try:
        from neuralforecast import NeuralForecast
        from neuralforecast.models import LSTM, NHITS
    except ImportError as e:
        return None, f"neuralforecast is not installed ({e}); pip install neuralforecast"
    quiet_lightning()
    shortest = int(hist.groupby("unique_id").size().min())
    size = max(2, min(2 * h, shortest - h))  # an input window every series can give
    out = {}
    quiet = dict(enable_progress_bar=False, enable_model_summary=False, logger=False,
                 accelerator="cpu", random_seed=0)
    for model in (LSTM(h=h, input_size=size, **quiet), NHITS(h=h, input_size=size, **quiet)):
        name = type(model).__name__
        t0 = time.perf_counter()
        nf = NeuralForecast(models=[model], freq=freq)
        nf.fit(df=hist.assign(ds=pd.to_datetime(hist["ds"])))
        fr = nf.predict().reset_index()
        fr = fr.rename(columns={name: "yhat"})[["unique_id", "ds", "yhat"]]
        out[f"neuralforecast {name}"] = (fr, time.perf_counter() - t0)
    return out, None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--frequencies", default="monthly,quarterly,yearly,other")
    ap.add_argument("--split", choices=["validation", "test"], default="validation")
    ap.add_argument("--recipe", choices=sorted(RECIPES), default="default")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a Forecaster setting on top of the recipe (a study on the validation "
                    "split; the JSON records it)")
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--series", type=int, help="only the first N series of each frequency "
                    "(a quick look; the figures in docs are for all)")
    ap.add_argument("--statsforecast", action="store_true")
    ap.add_argument("--neuralforecast", action="store_true")
    ap.add_argument("--json-file", type=Path)
    a = ap.parse_args(argv)
    if not a.data_dir.is_dir():
        print(f"m3: no data at {a.data_dir}; pass --data-dir", file=sys.stderr)
        return 2
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    settings = {**RECIPES[a.recipe], **parse_set(a.set)}
    res = {"split": a.split, "recipe": a.recipe, "settings": settings, "frequencies": {}}
    print(f"# M3, {a.split} split, recipe {a.recipe!r} ({settings or 'defaults'}), "
          f"backend {a.backend}; sMAPE % as the competition computed it")
    for freq in a.frequencies.split(","):
        h, m = FREQS[freq]
        tr, te = load(a.data_dir, freq)
        if a.series:
            keep = tr["unique_id"].drop_duplicates().iloc[:a.series]
            tr, te = tr[tr["unique_id"].isin(keep)], te[te["unique_id"].isin(keep)]
        hist, fut = split(tr, te, h, a.split)
        ids = list(hist["unique_id"].drop_duplicates())
        frame, info = run_lockstep(hist, h, m, settings, a.backend,
                                   sizing=split(tr, te, h, "validation")[0])
        ours = score(hist, fut, frame, h, m)
        methods = {"lockstep": {k: v["smape"] for k, v in ours.items()}}
        if a.split == "test":
            methods.update(originals(a.data_dir, ids, fut, h))
        else:
            nv = {}
            for sid, g in hist.groupby("unique_id", sort=False):
                y = g["y"].to_numpy(np.float64)
                truth = fut.loc[fut["unique_id"] == sid, "y"].to_numpy(np.float64)
                nv[sid] = smape(truth, naive2(y, h, m))
            methods["NAIVE2"] = nv
        extra = {}
        freq_alias = None
        if a.statsforecast or a.neuralforecast:  # their frequency alias, from the dates
            from lockstep.data import read

            freq_alias = read(hist.loc[hist["unique_id"] == ids[0]]).freq
        for flag, who, run in (("statsforecast", "statsforecast", run_statsforecast),
                               ("neuralforecast", "neuralforecast", run_neuralforecast)):
            if not getattr(a, flag):
                continue
            got, why = run(hist, h, m, freq_alias)
            if got is None:
                extra[who] = why
            for name, (fr, wall) in (got or {}).items():  # scored as lockstep is
                sc = score(hist, fut, fr, h, m, level_cols=False)
                methods[name] = {k: v["smape"] for k, v in sc.items()}
                extra[f"{name}_wall_s"] = wall
        table = {k: float(np.mean([v[i] for i in ids])) for k, v in methods.items()}
        n2 = methods.get("NAIVE2")
        better = (float(np.mean([methods["lockstep"][i] < n2[i] for i in ids])) if n2 else None)
        theta_better = (float(np.mean([methods["THETA"][i] < n2[i] for i in ids]))
                        if n2 and "THETA" in methods else None)
        rank = sorted(table, key=table.get).index("lockstep") + 1
        entry = {"series": len(ids), "horizon": h, "season": m, **info,
                 "smape": table, "rank": rank, "of": len(table),
                 "mase": float(np.nanmean([v["mase"] for v in ours.values()])),
                 "coverage_80": float(np.mean([v["coverage_80"] for v in ours.values()])),
                 "coverage_95": float(np.mean([v["coverage_95"] for v in ours.values()])),
                 "beats_naive2_share": better, "theta_beats_naive2_share": theta_better,
                 **extra}
        res["frequencies"][freq] = entry
        shown = [k for k in ("lockstep", *SHOWN, "AutoETS", "AutoTheta", "AutoARIMA",
                             "neuralforecast LSTM", "neuralforecast NHITS") if k in table]
        print(f"\n{freq}: {len(ids)} series, h {h}, window {info['window']}, season "
              f"{info['season']}; fit {info['fit_s']:.1f} s, forecast {info['forecast_s']:.1f} s;"
              f" best epochs {info['best_epochs']} of {info['epochs']}")
        for k in shown:
            print(f"  {k:<14}{table[k]:8.2f}")
        print(f"  lockstep rank {rank} of {len(table)}; MASE {entry['mase']:.3f}; coverage 80 % "
              f"{entry['coverage_80'] * 100:.1f} %, 95 % {entry['coverage_95'] * 100:.1f} %"
              + (f"; beats NAIVE2 on {better * 100:.1f} % of series" if better is not None
                 else "")
              + (f" (THETA: {theta_better * 100:.1f} %)" if theta_better is not None else ""))
        sys.stdout.flush()
        if a.json_file:
            a.json_file.parent.mkdir(parents=True, exist_ok=True)
            a.json_file.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
