"""matplotlib figures (Agg backend, files only): loss curves, forecasts, series, speed-ups."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np


from .checkpoint import _umask


class PlotUnavailable(RuntimeError):
    pass


def _plt():
    try:
        import matplotlib
    except ImportError:
        raise PlotUnavailable("plots need matplotlib: pip install 'lockstep[plot]'") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path):
    """Write atomically: a failed run never leaves half a PNG behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        fig.clf()
        _plt().close(fig)
    return path




def losses(history: dict, path, title="training", best_epoch=None):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    tr = np.asarray(history.get("train_loss", []), float)
    va = np.asarray(history.get("valid_loss", []), float)
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
    return _save(fig, path)


def forecast(series, path, forecast_values, start, baseline=None, title="forecast"):
    """The series, the forecast from index ``start`` on, and optionally the baseline."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    v = series.values
    n = len(v)
    fc = np.asarray(forecast_values, float).reshape(len(forecast_values), -1)
    labels = series.time or [str(i) for i in range(n)]
    for j, name in enumerate(series.names):
        ax.plot(np.arange(n), v[:, j], color="C0", lw=1.2, label=name if j == 0 else None)
        ax.plot(np.arange(start, start + len(fc)), fc[:, j], color="C3", lw=1.6,
                label="lockstep forecast" if j == 0 else None)
        if baseline is not None:
            b = np.asarray(baseline, float).reshape(len(baseline), -1)
            ax.plot(np.arange(start, start + len(b)), b[:, j], color="grey", ls="--", lw=1,
                    label="seasonal naive" if j == 0 else None)
    if start < n:
        ax.axvspan(start - 0.5, n - 0.5, color="C1", alpha=0.08, label="holdout")
    step = max(1, n // 12)
    ax.set_xticks(np.arange(0, n, step))
    ax.set_xticklabels([labels[i] for i in range(0, n, step)], rotation=45, ha="right")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def series(s, path):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 4))
    for j, name in enumerate(s.names):
        ax.plot(s.values[:, j], label=name)
    n = len(s)
    if s.time:
        step = max(1, n // 12)
        ax.set_xticks(np.arange(0, n, step))
        ax.set_xticklabels([s.time[i] for i in range(0, n, step)], rotation=45, ha="right")
    ax.set_title(s.source or "series")
    ax.grid(alpha=0.3)
    if len(s.names) <= 10:
        ax.legend()
    return _save(fig, path)


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
