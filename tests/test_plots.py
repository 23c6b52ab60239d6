"""Plots a reader can read (issue 12, item 8): a panel's first series one axis each, with
dates on the time axis (the forecast's too), interval bands, the holdout shaded and a note
when series are left out; anchors that are not bit-exact drawn distinctly in the bench plot
with the machine and the shape in its title. Checked on the matplotlib figure objects, not
on pixels."""

import datetime as dt

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import matplotlib.dates as mdates  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402

from lockstep import cli, plots  # noqa: E402
from lockstep.data.table import Panel  # noqa: E402
from lockstep.errors import UsageError  # noqa: E402



def _is_date_axis(ax):
    return isinstance(ax.xaxis.get_major_formatter(), mdates.ConciseDateFormatter)


def _x_dates(line):
    return [np.datetime64(v, "D").astype(object) for v in line.get_xdata()]


def _line(ax, label):
    (ln,) = [ln for ln in ax.get_lines() if ln.get_label() == label]
    return ln


LEVELS = (80, 95)


def _panel(values, dated=True, start="1949-01", source="test"):
    """A monthly panel (``dated``) or an undated one of the series in ``values``."""
    values = [np.asarray(v, np.float64) for v in values]
    lens = [len(v) for v in values]
    ds = None
    if dated:
        ds = np.concatenate([np.arange(np.datetime64(start, "M"), np.datetime64(start, "M") + n)
                             .astype("datetime64[ns]") for n in lens] or
                            [np.zeros(0, "datetime64[ns]")])
    y = np.concatenate(values) if values else np.zeros(0)
    return Panel(ids=np.array([f"s{i}" for i in range(len(values))], dtype=str),
                 indptr=np.r_[0, np.cumsum(lens)].astype(np.int64), y=y, ds=ds,
                 exog=np.zeros((len(y), 0)), exog_names=(), freq="MS" if dated else None,
                 source=source, period=12 if dated else None)


def _air():
    t = np.arange(144)
    return 120 * np.exp(0.01 * t) * (1 + 0.15 * np.sin(2 * np.pi * t / 12))


def _frame(panel, h=12, levels=LEVELS, start=None, value=None):
    """A forecast frame: ``h`` steps after each series' end (or from row ``start``)."""
    parts = []
    for i, uid in enumerate(panel.ids):
        sl = slice(int(panel.indptr[i]), int(panel.indptr[i + 1]))
        n = sl.stop - sl.start
        s0 = n if start is None else int(start[i])
        if panel.ds is None:
            ds = np.arange(s0, s0 + h)
        else:
            first = panel.ds[sl][0].astype("datetime64[M]")
            ds = np.arange(first + s0, first + s0 + h).astype("datetime64[ns]")
        yhat = np.full(h, panel.y[sl][-1] if value is None else value)
        d = {"unique_id": uid, "ds": ds, "yhat": yhat}
        for j, lv in enumerate(levels):
            d[f"yhat-lo-{lv}"] = yhat - 10 * (j + 1)
            d[f"yhat-hi-{lv}"] = yhat + 10 * (j + 1)
        parts.append(pd.DataFrame(d))
    return pd.concat(parts, ignore_index=True)


def _texts(fig):
    return [t.get_text() for t in fig.texts] + [t.get_text() for a in fig.axes
                                                for t in [a.title, *a.texts]]


def _bands(ax):
    return [c for c in ax.collections if isinstance(c, PolyCollection)]


def test_forecast_of_one_series_draws_history_forecast_and_two_bands(tmp_path):
    p = _panel([_air()])
    f = _frame(p)
    out = plots.forecast(p, tmp_path / "f.png", f, title="air")
    assert out == tmp_path / "f.png" and out.stat().st_size > 0
    fig = plots.forecast_figure(p, f, title="air")
    (ax,) = fig.axes
    bands = _bands(ax)
    assert len(bands) == 2
    # the wider band lighter, both labelled
    assert {b.get_label() for b in bands} == {"80 % interval", "95 % interval"}
    alpha = {b.get_label(): b.get_alpha() for b in bands}
    assert alpha["95 % interval"] < alpha["80 % interval"]
    assert ax.get_xlabel() == "date" and _is_date_axis(ax)
    assert _x_dates(_line(ax, "actual"))[0] == dt.date(1949, 1, 1)
    assert _x_dates(_line(ax, "lockstep forecast")) == [dt.date(1961, m, 1) for m in range(1, 13)]
    assert ax.get_title() == "air" and ax.get_ylabel() == "s0"
    assert not any("series shown" in t for t in _texts(fig))


def test_only_the_first_six_of_many_series_are_drawn_and_the_figure_says_so():
    rng = np.random.default_rng(0)
    p = _panel([rng.normal(size=30) + i for i in range(10)])
    fig = plots.forecast_figure(p, _frame(p, h=4))
    assert len(fig.axes) == 6
    assert any("first 6 of 10 series shown" in t for t in _texts(fig))
    assert [a.get_ylabel() for a in fig.axes] == [f"s{i}" for i in range(6)]
    fig = plots.forecast_figure(p, _frame(p, h=4), max_series=3)
    assert len(fig.axes) == 3 and any("first 3 of 10" in t for t in _texts(fig))
    fig = plots.series_figure(p)
    assert len(fig.axes) == 6
    assert any("first 6 of 10 series shown" in t for t in _texts(fig))
    assert fig.axes[0].get_title().startswith("test")


def test_each_axis_draws_its_own_series_forecast():
    p = _panel([np.arange(24.0), 100 + np.arange(36.0)])
    fig = plots.forecast_figure(p, _frame(p, h=3, levels=()))
    a0, a1 = fig.axes
    assert list(_line(a0, "lockstep forecast").get_ydata()) == [23.0] * 3
    assert list(_line(a1, "lockstep forecast").get_ydata()) == [135.0] * 3
    assert not _bands(a0)
    # dated panels share the x axis
    assert a0.get_shared_x_axes().joined(a0, a1)


def test_undated_panel_counts_time_steps(tmp_path):
    p = _panel([np.arange(10.0), np.arange(7.0)], dated=False)
    f = _frame(p, h=3)
    fig = plots.forecast_figure(p, f)
    a0, a1 = fig.axes
    assert fig.axes[-1].get_xlabel() == "time step" and not _is_date_axis(fig.axes[-1])
    assert list(_line(a0, "actual").get_xdata()) == list(range(10))
    assert list(_line(a0, "lockstep forecast").get_xdata()) == [10, 11, 12]
    assert list(_line(a1, "lockstep forecast").get_xdata()) == [7, 8, 9]
    assert not a0.get_shared_x_axes().joined(a0, a1)
    plots.forecast(p, tmp_path / "f.png", f)
    plots.series(p, tmp_path / "s.svg")
    assert sorted(q.name for q in tmp_path.iterdir()) == ["f.png", "s.svg"]


def test_holdout_is_shaded_when_the_forecast_starts_inside_the_series():
    p = _panel([_air(), _air()[:60]])
    start = np.array([132, 48])
    f = _frame(p, h=12, start=start)
    base = f[["unique_id", "ds"]].assign(y=1.0)
    fig = plots.forecast_figure(p, f, actual_from=start, baseline=base)
    for ax, last in zip(fig.axes, (dt.date(1960, 12, 1), dt.date(1953, 12, 1))):
        (span,) = [q for q in ax.patches if q.get_label() == "holdout"]
        assert "holdout" in [t.get_text() for t in ax.get_legend().get_texts()]
        # from the forecast's first row to the series' last
        x0, x1 = sorted((span.get_x(), span.get_x() + span.get_width()))
        assert mdates.num2date(x0).date() == dt.date(last.year, 1, 1)
        assert mdates.num2date(x1).date() == last
        b = _line(ax, "seasonal naive")
        assert b.get_linestyle() == "--" and b.get_color() == "grey"
        # the held-out actuals are still drawn
        assert len(_line(ax, "actual").get_xdata()) in (144, 60)
    # without actual_from: no holdout; a forecast after the end: nothing to shade
    fig = plots.forecast_figure(p, f)
    assert not any(q.get_label() == "holdout" for a in fig.axes for q in a.patches)
    fig = plots.forecast_figure(p, _frame(p), actual_from=[144, 60])
    assert not any(q.get_label() == "holdout" for a in fig.axes for q in a.patches)


@pytest.mark.parametrize("bad", [[1.0, 1.4e308, -1.4e308, 2.0, np.inf, np.nan, 3.0, 4.0],
                                 [np.nan] * 8, [1e308] * 8])
def test_huge_or_non_finite_values_do_not_raise_and_are_noted(tmp_path, bad):
    for dated in (True, False):
        p = _panel([np.array(bad)], dated=dated)
        f = _frame(p, h=2, value=1e308)
        f.loc[1, "yhat-hi-95"] = np.inf
        fig = plots.forecast_figure(p, f, actual_from=[6])
        notes = " ".join(_texts(fig))
        assert "drawn at the limit" in notes or "non-finite" in notes
        plots.forecast(p, tmp_path / "f.png", f, actual_from=[6])
        plots.series(p, tmp_path / "s.png")
        assert "drawn at the limit" in " ".join(_texts(plots.series_figure(p))) \
            or "non-finite" in " ".join(_texts(plots.series_figure(p)))
    assert sorted(q.name for q in tmp_path.iterdir()) == ["f.png", "s.png"]


def test_series_without_forecast_rows_and_empty_panels_still_draw(tmp_path):
    p = _panel([np.arange(12.0), np.arange(5.0)])
    f = _frame(p, h=2).iloc[:2]  # rows of the first series only
    fig = plots.forecast_figure(p, f)
    assert len(fig.axes) == 2 and not [ln for ln in fig.axes[1].get_lines()
                                       if ln.get_label() == "lockstep forecast"]
    e = _panel([])
    plots.forecast(e, tmp_path / "e.png", f.iloc[:0])
    plots.series(e, tmp_path / "s.png")
    assert any("no series" in t for t in _texts(plots.series_figure(e)))


def test_check_path_refuses_unknown_formats_and_folders(tmp_path):
    with pytest.raises(UsageError, match="unknown image format"):
        plots.check_path(tmp_path / "plot.xyz")
    with pytest.raises(UsageError, match="is a folder"):
        plots.check_path(tmp_path)
    plots.check_path(tmp_path / "plot.png")


def test_losses_plot_is_written(tmp_path):
    h = {"train_loss": [1.0, 0.5, 0.0, np.inf], "valid_loss": [1.2, 0.7, np.nan, 1e308]}
    assert plots.losses(h, tmp_path / "l.png", best_epoch=2).stat().st_size > 0


def test_speedup_plot_marks_runs_that_are_not_bit_exact():
    fig = plots.speedups_figure(["numpy:reference@cpu", "cpu:blocked@cpu", "torch@cpu"],
                                [1.0, 30.0, 20.0], exact=[True, True, False],
                                machine="Some CPU (2 CPUs)", shape="I=1, H=50, O=1, T=12, N=64")
    (ax,) = fig.axes
    bars = ax.patches
    assert [b.get_hatch() for b in bars] == [None, None, "//"]
    assert bars[0].get_facecolor() == bars[1].get_facecolor() != bars[2].get_facecolor()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("not bit-exact" in t for t in legend)
    assert "Some CPU (2 CPUs)" in ax.get_title() and "H=50" in ax.get_title()
    assert "speed-up" in ax.get_xlabel() and ax.get_ylabel()


# ---- what the CLI draws -------------------------------------------------------------------

@pytest.fixture
def drawn(monkeypatch):
    """Every figure the CLI saves, summarised before it is written and closed."""
    seen = {}
    save = plots._save

    def record(fig, path):
        seen[str(path).rsplit("/", 1)[-1]] = {
            "axes": len(fig.axes), "ylabels": [a.get_ylabel() for a in fig.axes],
            "xlabel": fig.axes[-1].get_xlabel(), "dates": _is_date_axis(fig.axes[-1]),
            "title": fig.axes[0].get_title(),
            "hatches": {t.get_text(): b.get_hatch() for t, b in
                        zip(fig.axes[0].get_yticklabels(), fig.axes[0].patches)},
            "legend": [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
            if fig.axes[0].get_legend() else []}
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", record)
    return seen


@pytest.mark.slow
def test_bench_plot_hatches_the_anchor_and_names_machine_and_shape(tmp_path, capsys, drawn):
    code = cli.main(["bench", "--preset", "seed", "--backends", "numpy", "--anchors",
                     "numpy-blas@cpu", "--plot", str(tmp_path / "b.png")])
    assert code == 0
    b = drawn["b.png"]
    assert b["hatches"]["numpy-blas@cpu"] == "//"
    assert b["hatches"]["numpy:reference@cpu"] is None
    assert any("not bit-exact" in t for t in b["legend"])
    assert "machine:" in b["title"] and "CPUs" in b["title"] and "H=" in b["title"]
