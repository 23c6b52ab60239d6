"""matplotlib figures (Agg backend, files only): loss curves, forecasts, series, speed-ups."""

from __future__ import annotations

import functools
import re
import warnings
from pathlib import Path

import numpy as np

from .errors import LockstepError, UsageError

LIMIT = 1e100  # values beyond +-LIMIT are drawn at the limit (matplotlib overflows near 1e300)


class PlotUnavailable(LockstepError):
    """matplotlib is missing."""


def formats():
    """File extensions matplotlib can write (png, pdf, svg, ...)."""
    _plt()
    from matplotlib.backend_bases import FigureCanvasBase

    return sorted(FigureCanvasBase.get_supported_filetypes())


def check_path(path, flag="--plot"):
    """Refuse a plot path before any work: an unknown extension, a folder, something that
    is not a regular file, or a folder that cannot be written."""
    p = Path(path)
    ext = p.suffix[1:].lower()
    if p.is_dir():
        raise UsageError(f"{flag} {p} is a folder; name a file such as {p / 'plot.png'}")
    if ext not in formats():
        raise UsageError(f"{flag} {p}: unknown image format {p.suffix or '(no extension)'}; "
                         f"use one of .{', .'.join(formats())}")
    if p.exists() and not p.is_file():
        raise UsageError(f"{flag} {p} exists and is not a regular file; choose another path")
    from .outdir import check_parent

    check_parent(p, flag)


def _finite(a, note):
    """``a`` as float64 with non-finite values as gaps and huge ones at +-LIMIT; appends
    a note for the figure when anything was changed."""
    with np.errstate(all="ignore"):
        a = np.array(a, dtype=np.float64, copy=True)
    bad = ~np.isfinite(a)
    big = np.abs(np.where(bad, 0, a)) > LIMIT
    if bad.any():
        note.add("non-finite values not drawn")
    if big.any():
        note.add(f"values beyond +-{LIMIT:.0e} drawn at the limit")
    a[bad] = np.nan
    np.clip(a, -LIMIT, LIMIT, out=a)
    return a


def _quiet(fn):
    """Plot without numpy/matplotlib overflow warnings reaching the user's terminal."""
    @functools.wraps(fn)
    def wrapper(*a, **k):
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            return fn(*a, **k)
    return wrapper


def _annotate(ax, note):
    if note:
        ax.text(0.01, 0.01, "; ".join(sorted(note)), transform=ax.transAxes, fontsize=8,
                color="C3", va="bottom")


def _plt():
    try:
        import matplotlib
    except ImportError:
        raise PlotUnavailable("plots need matplotlib: pip install 'lockstep[plot]'") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path):
    """Write atomically (``outdir.write_atomically``): a failed run never leaves half an
    image behind."""
    from .outdir import write_atomically

    path = Path(path)
    try:
        return write_atomically(path, lambda f: fig.savefig(
            f, dpi=110, bbox_inches="tight", format=path.suffix[1:].lower() or "png"))
    finally:
        fig.clf()
        _plt().close(fig)




@_quiet
def losses(history: dict, path, title="training", best_epoch=None, loss_name="loss"):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    note = set()
    tr = _finite(history.get("train_loss", []), note)
    va = _finite(history.get("valid_loss", []), note)
    for a in (tr, va):  # a log axis: zero or negative losses (impossible, but) as gaps
        a[~(a > 0)] = np.nan
    ax.plot(np.arange(1, len(tr) + 1), tr, label="train")
    if len(va):
        ax.plot(np.arange(1, len(va) + 1), va, label="validation")
    if best_epoch:
        ax.axvline(best_epoch, color="grey", ls=":", label=f"best epoch {best_epoch}")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(loss_name)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    _annotate(ax, note)
    return _save(fig, path)


# ---- panels: one axis per series --------------------------------------------------------

_LEVEL = re.compile(r"yhat-lo-(.+)")


def _date_axis(ax):
    import matplotlib.dates as mdates

    loc = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))


def _x_label(ax, dated):
    if dated:
        _date_axis(ax)
        ax.set_xlabel("date")
    else:
        ax.set_xlabel("time step")


def _rows(panel, i):
    """Series ``i``'s rows of the panel as a slice."""
    ip = panel.indptr
    return slice(int(ip[i]), int(ip[i + 1]))


def _history_x(panel, sl):
    """x positions of a series' rows: its dates, or step numbers 0..len-1 when undated."""
    if panel.ds is None:
        return np.arange(sl.stop - sl.start)
    return np.asarray(panel.ds[sl]).astype("datetime64[ns]")


def _frame_x(values, dated):
    v = np.asarray(values)
    if dated:
        if v.dtype.kind != "M":
            import pandas as pd

            v = pd.to_datetime(v).to_numpy()
        return v.astype("datetime64[ns]")
    return v.astype(np.float64) if v.dtype.kind not in "iuf" else v


def _levels(frame):
    """The interval levels of a forecast frame (columns yhat-lo-L and yhat-hi-L), narrowest
    first."""
    cols = set(frame.columns)
    found = [m.group(1) for c in frame.columns if isinstance(c, str)
             for m in [_LEVEL.fullmatch(c)] if m and f"yhat-hi-{m.group(1)}" in cols]

    def key(lv):
        try:
            return (0, float(lv), lv)
        except ValueError:
            return (1, 0.0, lv)
    return sorted(dict.fromkeys(found), key=key)


def _of(frame, uid):
    """The rows of ``frame`` for series ``uid``, in time order."""
    if frame is None or not len(frame):
        return None
    rows = frame[frame["unique_id"].astype(str).to_numpy() == str(uid)]
    if not len(rows):
        return None
    return rows.sort_values("ds", kind="stable")


def _panel_axes(plt, panel, max_series, title):
    """One axis per series for the first ``max_series`` series of ``panel``, stacked, x
    shared only when the panel is dated; the title names how many series were left out.
    Returns (fig, axes, dated)."""
    n = len(panel)
    k = max(1, min(n, max(1, int(max_series))))
    dated = panel.ds is not None
    fig, axs = plt.subplots(k, 1, figsize=(9, 1.4 + 2.3 * k), sharex=dated and k > 1,
                            squeeze=False)
    axs = [a for (a,) in axs]
    if n > k:
        title = f"{title} (first {k} of {n} series shown)"
    elif n == 0:
        title = f"{title} (no series)"
    axs[0].set_title(title)
    return fig, axs, dated


def _shorten(text, width=28):
    text = str(text)
    return text if len(text) <= width else text[:width - 1] + "\u2026"


@_quiet
def forecast_figure(panel, frame, title="forecast", actual_from=None, baseline=None,
                    baseline_label="seasonal naive", max_series=6):
    """The figure of :func:`forecast` (not saved): for each of the first ``max_series``
    series of ``panel`` one axis with its history, the forecast ``yhat`` from the rows of
    ``frame`` with its ``unique_id`` and each interval level as a shaded band (lighter for
    the wider level). ``actual_from`` (n,) gives, per series, the row where the forecast
    starts inside the series: the rows from there on are the held-out actuals, shaded.
    ``baseline`` (a frame unique_id, ds, y) is drawn dashed in grey."""
    plt = _plt()
    fig, axs, dated = _panel_axes(plt, panel, max_series, title)
    levels = [] if frame is None else _levels(frame)
    n = len(panel)
    starts = None if actual_from is None else np.asarray(actual_from, np.int64).reshape(-1)
    if starts is not None and starts.size == 1:  # one position for every series
        starts = np.full(n, starts[0])
    for i, ax in enumerate(axs[:n]):
        note = set()
        uid = panel.ids[i]
        sl = _rows(panel, i)
        x, y = _history_x(panel, sl), _finite(panel.y[sl], note)
        ax.plot(x, y, color="C0", lw=1.2, label="actual")
        f = _of(frame, uid)
        if f is not None:
            fx = _frame_x(f["ds"].to_numpy(), dated)
            for r, lv in reversed(list(enumerate(levels))):  # the widest first, underneath
                lo = _finite(f[f"yhat-lo-{lv}"].to_numpy(), note)
                hi = _finite(f[f"yhat-hi-{lv}"].to_numpy(), note)
                alpha = 0.35 - 0.22 * r / max(len(levels) - 1, 1)
                ax.fill_between(fx, lo, hi, color="C3", alpha=alpha, lw=0,
                                label=f"{lv} % interval")
            ax.plot(fx, _finite(f["yhat"].to_numpy(), note), color="C3", lw=1.6,
                    label="lockstep forecast")
        b = _of(baseline, uid)
        if b is not None:
            ax.plot(_frame_x(b["ds"].to_numpy(), dated), _finite(b["y"].to_numpy(), note),
                    color="grey", ls="--", lw=1, label=baseline_label)
        if starts is not None and i < len(starts) and len(x):
            s0 = int(np.clip(starts[i], 0, len(x)))
            if s0 < len(x):
                ax.axvspan(x[s0], x[-1], color="C1", alpha=0.08, label="holdout")
        ax.set_ylabel(_shorten(uid))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
        _annotate(ax, note)
    for ax in axs[:-1]:
        ax.set_xlabel("")
    _x_label(axs[-1], dated)
    if dated:
        for ax in axs:
            _date_axis(ax)
    return fig


def forecast(panel, path, frame, title="forecast", actual_from=None, baseline=None,
             baseline_label="seasonal naive", max_series=6):
    """:func:`forecast_figure` written to ``path`` (atomically); returns the path."""
    return _save(forecast_figure(panel, frame, title, actual_from, baseline, baseline_label,
                                 max_series), path)


@_quiet
def series_figure(panel, max_series=6):
    """The figure of :func:`series` (not saved): the first ``max_series`` series of
    ``panel``, one axis each (dates on the x axis when the panel has them), titled with the
    panel's source; the title says how many series were left out."""
    plt = _plt()
    fig, axs, dated = _panel_axes(plt, panel, max_series,
                                  getattr(panel, "source", "") or "series")
    for i, ax in enumerate(axs[:len(panel)]):
        note = set()
        sl = _rows(panel, i)
        ax.plot(_history_x(panel, sl), _finite(panel.y[sl], note), color="C0", lw=1.2)
        ax.set_ylabel(_shorten(panel.ids[i]))
        ax.grid(alpha=0.3)
        _annotate(ax, note)
    _x_label(axs[-1], dated)
    if dated:
        for ax in axs:
            _date_axis(ax)
    return fig


def series(panel, path, max_series=6):
    """:func:`series_figure` written to ``path`` (atomically); returns the path."""
    return _save(series_figure(panel, max_series), path)


@_quiet
def speedups_figure(names, ratios, title="speed-up over the numpy reference", exact=None,
                    machine=None, shape=None):
    """The figure of :func:`speedups` (not saved). ``exact[i]`` False marks a run that does
    not give the reference's bits (the anchors: PyTorch, NumPy with BLAS): hatched, in
    another colour, and named so in the legend. ``machine`` and ``shape`` join the title."""
    plt = _plt()
    from matplotlib.patches import Patch

    exact = [True] * len(names) if exact is None else [bool(e) for e in exact]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(names) + 1.9))
    y = np.arange(len(names))
    bars = ax.barh(y, ratios, color=["C2" if e else "C1" for e in exact])
    for bar, e in zip(bars, exact):
        if not e:
            bar.set_hatch("//")
            bar.set_edgecolor("black")
    ax.set_yticks(y)
    ax.set_yticklabels(names)
    ax.axvline(1, color="grey", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("speed-up: x faster than numpy reference (log scale)")
    ax.set_ylabel("implementation (backend:strategy@device)")
    for yi, r in zip(y, ratios):
        ax.text(r, yi, f" {r:.3g}x", va="center")
    handles = [Patch(facecolor="C2", label="bit-exact (the reference's bits)")]
    if not all(exact):
        handles.append(Patch(facecolor="C1", hatch="//", edgecolor="black",
                             label="not bit-exact"))
    ax.legend(handles=handles, fontsize=8, loc="lower right")
    sub = "; ".join(s for s in (machine and f"machine: {machine}", shape and f"shape {shape}")
                    if s)
    ax.set_title(title + (f"\n{sub}" if sub else ""), fontsize=10)
    return fig


def speedups(names, ratios, path, title="speed-up over the numpy reference", exact=None,
             machine=None, shape=None):
    return _save(speedups_figure(names, ratios, title, exact, machine, shape), path)


@_quiet
def backtest(res: dict, path, title="backtest"):
    """A rolling-origin backtest: mean MASE per window, model beside the baseline (top), and
    each interval level's coverage per window against its nominal line (bottom)."""
    plt = _plt()
    rows = res["windows"]
    ks = sorted({r["window"] for r in rows})
    mean = lambda who, k: float(np.nanmean([r[who]["mase"] for r in rows  # noqa: E731
                                            if r["window"] == k]))
    fig, (top, bot) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    top.plot(ks, [mean("model", k) for k in ks], "o-", label="lockstep")
    top.plot(ks, [mean("baseline", k) for k in ks], "s--", label=res["baseline"])
    top.set_ylabel("MASE (mean over series)")
    top.set_title(title + f": {res['horizon']}-step windows, origins {res['step']} apart")
    top.grid(alpha=0.3)
    top.legend()
    for lv in next(iter(rows))["coverage"]:
        line = bot.plot(ks, [100 * np.mean([r["coverage"][lv] for r in rows if r["window"] == k])
                             for k in ks], "o-", label=f"{lv} % interval")[0]
        bot.axhline(float(lv), color=line.get_color(), ls=":")
    bot.set_ylabel("coverage %")
    bot.set_xlabel("window (origin)")
    bot.set_xticks(ks, [next(r["cutoff"] for r in rows if r["window"] == k) for k in ks])
    bot.grid(alpha=0.3)
    bot.legend()
    return _save(fig, path)
