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


# ---- time axes and scales --------------------------------------------------------------

_YEAR = re.compile(r"\d{4}")


def _dates(labels):
    """The time labels as datetimes (ISO dates, ``2020-Q1`` quarters, four-digit years), or
    None when any label is something else: then the axis counts time steps."""
    import datetime as dt

    from .data import _ISO, _QUARTER

    if not labels:
        return None
    out = []
    for t in labels:
        t = str(t).strip()
        q, m = _QUARTER.fullmatch(t), _ISO.fullmatch(t)
        try:
            if q:
                out.append(dt.datetime(int(q.group(1)), 3 * int(q.group(2)) - 2, 1))
            elif m:
                y, mo, d, hh, mi, ss = (int(g) if g else None for g in m.groups())
                out.append(dt.datetime(y, mo, d or 1, hh or 0, mi or 0, ss or 0))
            elif _YEAR.fullmatch(t):
                out.append(dt.datetime(int(t), 1, 1))
            else:
                return None
        except ValueError:
            return None
    return out


def _extend(dates, n):
    """``dates`` followed by ``n`` more at the series' own step: whole calendar months
    (monthly, quarterly, yearly data on one day of the month) or one fixed time step; None
    when the step is not regular."""
    import datetime as dt

    if n <= 0:
        return list(dates)
    if len(dates) < 2:
        return None
    months = {(b.year * 12 + b.month) - (a.year * 12 + a.month) for a, b in zip(dates, dates[1:])}
    same_day = len({(d.day, d.hour, d.minute, d.second) for d in dates}) == 1
    out = list(dates)
    if same_day and len(months) == 1 and min(months) > 0:
        (step,) = months
        last = dates[-1]
        for i in range(1, n + 1):
            k = last.year * 12 + last.month - 1 + step * i
            out.append(last.replace(year=k // 12, month=k % 12 + 1))
        return out
    steps = {b - a for a, b in zip(dates, dates[1:])}
    if len(steps) == 1 and min(steps) > dt.timedelta(0):
        (step,) = steps
        out += [dates[-1] + step * i for i in range(1, n + 1)]
        return out
    return None


def _time_axis(labels, n):
    """x positions for ``n`` points (the series' rows, then what follows them): dates when
    the labels are dates at a regular step (beyond the labels too), else step numbers."""
    d = _dates(labels)
    if d is not None:
        d = _extend(d, n - len(d)) if n > len(d) else d[:n]
    if d is None:
        return np.arange(n), False
    return np.array(d, dtype="datetime64[s]"), True


def _date_axis(ax):
    import matplotlib.dates as mdates

    loc = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))


def _same_scale(values) -> bool:
    """Whether the columns of ``values`` (n, k) share one y axis well: their ranges overlap
    and none spans more than 3 times another (else each gets an axis of its own)."""
    v = np.asarray(values, np.float64)
    if v.ndim < 2 or v.shape[1] < 2:
        return True
    ok = np.isfinite(v).any(axis=0)
    if ok.sum() < 2:
        return True
    lo, hi = np.nanmin(v[:, ok], axis=0), np.nanmax(v[:, ok], axis=0)
    span = np.maximum(hi - lo, 1e-300)
    if lo.max() > hi.min():  # one column lies wholly above another
        return False
    return bool(span.max() <= 3 * span.min())


MAX_AXES = 8  # more series than that share one axis (the figure would be unreadable)


def _axes(plt, k, values, width, height):
    """One axis for all ``k`` series, or one per series (stacked, shared x) when their
    scales differ; returns (fig, list of axes, axis index of each series)."""
    if k > 1 and k <= MAX_AXES and not _same_scale(values):
        fig, axs = plt.subplots(k, 1, figsize=(width, 1.2 + 2.2 * k), sharex=True,
                                squeeze=False)
        return fig, [a for (a,) in axs], list(range(k))
    fig, ax = plt.subplots(figsize=(width, height))
    return fig, [ax], [0] * k


@_quiet
def forecast_figure(series, forecast_values, start, baseline=None, title="forecast",
                    baseline_label="seasonal naive"):
    """The figure of :func:`forecast` (not saved): each series in its units (the value
    column's name on the y axis), dates on the x axis when the time column has them (the
    forecast's dates continue the series' step), one axis per series when scales differ."""
    plt = _plt()
    note = set()
    v = _finite(series.values, note)
    n, k = v.shape
    fc = _finite(np.reshape(forecast_values, (len(forecast_values), -1)), note)
    b = None if baseline is None else _finite(np.reshape(baseline, (len(baseline), -1)), note)
    end = max(n, start + len(fc), start + (0 if b is None else len(b)))
    x, dated = _time_axis(series.time, end)
    fig, axs, where = _axes(plt, k, v, 9, 4.5)
    shown = set()

    def label(ax, what):  # each legend entry once per axis
        if (id(ax), what) in shown:
            return None
        shown.add((id(ax), what))
        return what

    for j, name in enumerate(series.names):
        ax = axs[where[j]]
        ax.plot(x[:n], v[:, j], color=f"C{0 if len(axs) > 1 else j % 10}", lw=1.2,
                label=name if len(axs) == 1 and k > 1 else label(ax, name))
        ax.plot(x[start:start + len(fc)], fc[:, j], color="C3", lw=1.6,
                label=label(ax, "lockstep forecast"))
        if b is not None:
            ax.plot(x[start:start + len(b)], b[:, j], color="grey", ls="--", lw=1,
                    label=label(ax, baseline_label))
    for ax in axs:
        if start < n:
            ax.axvspan(x[start], x[n - 1], color="C1", alpha=0.08, label=label(ax, "holdout"))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax, names in _axis_names(axs, where, series.names):
        ax.set_ylabel(names)
    _x_label(axs[-1], dated)
    axs[0].set_title(title)
    _annotate(axs[-1], note)
    return fig


def _axis_names(axs, where, names):
    """Each axis with the names (units) of the series drawn on it."""
    for i, ax in enumerate(axs):
        on = [nm for nm, w in zip(names, where) if w == i]
        yield ax, ", ".join(on[:3]) + (f", ... ({len(on)} series)" if len(on) > 3 else "")


def _x_label(ax, dated):
    if dated:
        _date_axis(ax)
        ax.set_xlabel("date")
    else:
        ax.set_xlabel("time step")


def forecast(series, path, forecast_values, start, baseline=None, title="forecast",
             baseline_label="seasonal naive"):
    """The series, the forecast from index ``start`` on, and optionally the baseline."""
    return _save(forecast_figure(series, forecast_values, start, baseline, title,
                                 baseline_label), path)


@_quiet
def series_figure(s):
    """The figure of :func:`series` (not saved): dates on the x axis when the time column
    has them, the column names as y labels, one axis per series when scales differ."""
    plt = _plt()
    note = set()
    values = _finite(s.values[:, :50], note)
    k = values.shape[1]
    x, dated = _time_axis(s.time, len(s))
    fig, axs, where = _axes(plt, k, values, 9, 4)
    for j, name in enumerate(s.names[:50]):
        axs[where[j]].plot(x, values[:, j], label=name)
    for ax, names in _axis_names(axs, where, s.names[:50]):
        ax.set_ylabel(names)
        ax.grid(alpha=0.3)
    _x_label(axs[-1], dated)
    axs[0].set_title(s.source or "series")
    if 1 < len(s.names) <= 10 and len(axs) == 1:
        axs[0].legend()
    if len(s.names) > 50:
        note.add(f"first 50 of {len(s.names)} columns")
    _annotate(axs[-1], note)
    return fig


def series(s, path):
    return _save(series_figure(s), path)


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
