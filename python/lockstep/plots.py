"""matplotlib figures (Agg backend, files only): loss curves, forecasts, series, speed-ups."""

from __future__ import annotations

import functools
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .checkpoint import _umask
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
    """Write atomically: a failed run never leaves half a PNG behind (the temporary file is
    named like the checkpoint's, ``.<name>.XXXXXXXX.tmp``, so the next run sweeps it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format=path.suffix[1:].lower() or "png")
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        fig.clf()
        _plt().close(fig)
    return path




@_quiet
def losses(history: dict, path, title="training", best_epoch=None):
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
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    _annotate(ax, note)
    return _save(fig, path)


@_quiet
def forecast(series, path, forecast_values, start, baseline=None, title="forecast",
             baseline_label="seasonal naive"):
    """The series, the forecast from index ``start`` on, and optionally the baseline."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    note = set()
    v = _finite(series.values, note)
    n = len(v)
    fc = _finite(np.reshape(forecast_values, (len(forecast_values), -1)), note)
    labels = series.time or [str(i) for i in range(n)]
    for j, name in enumerate(series.names):
        ax.plot(np.arange(n), v[:, j], color="C0", lw=1.2, label=name if j == 0 else None)
        ax.plot(np.arange(start, start + len(fc)), fc[:, j], color="C3", lw=1.6,
                label="lockstep forecast" if j == 0 else None)
        if baseline is not None:
            b = _finite(np.reshape(baseline, (len(baseline), -1)), note)
            ax.plot(np.arange(start, start + len(b)), b[:, j], color="grey", ls="--", lw=1,
                    label=baseline_label if j == 0 else None)
    if start < n:
        ax.axvspan(start - 0.5, n - 0.5, color="C1", alpha=0.08, label="holdout")
    step = max(1, n // 12)
    ax.set_xticks(np.arange(0, n, step))
    ax.set_xticklabels([labels[i] for i in range(0, n, step)], rotation=45, ha="right")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    _annotate(ax, note)
    return _save(fig, path)


@_quiet
def series(s, path):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 4))
    note = set()
    values = _finite(s.values, note)
    for j, name in enumerate(s.names[:50]):
        ax.plot(values[:, j], label=name)
    n = len(s)
    if s.time:
        step = max(1, n // 12)
        ax.set_xticks(np.arange(0, n, step))
        ax.set_xticklabels([s.time[i] for i in range(0, n, step)], rotation=45, ha="right")
    ax.set_title(s.source or "series")
    ax.grid(alpha=0.3)
    if len(s.names) <= 10:
        ax.legend()
    if len(s.names) > 50:
        note.add(f"first 50 of {len(s.names)} columns")
    _annotate(ax, note)
    return _save(fig, path)


@_quiet
def speedups(names, ratios, path, title="speed-up over the numpy reference"):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(names) + 1.5))
    y = np.arange(len(names))
    ax.barh(y, ratios, color="C2")
    ax.set_yticks(y)
    ax.set_yticklabels(names)
    ax.axvline(1, color="grey", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("x faster than numpy reference (log scale)")
    for yi, r in zip(y, ratios):
        ax.text(r, yi, f" {r:.3g}x", va="center")
    ax.set_title(title)
    return _save(fig, path)
