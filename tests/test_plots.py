"""Plots a reader can read (issue 12, item 8): axis labels with units, dates on the time axis
(the forecast's too), one axis per series when scales differ, anchors that are not bit-exact
drawn distinctly in the bench plot with the machine and the shape in its title. Checked on
the matplotlib figure objects, not on pixels."""

import datetime as dt

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import matplotlib.dates as mdates  # noqa: E402

from lockstep import cli, data, plots  # noqa: E402

FAST = ["--epochs", "2", "--hidden", "4", "--backend", "numpy", "--quiet"]


def _months(n, y=2001):
    return [f"{y + i // 12:04d}-{i % 12 + 1:02d}" for i in range(n)]


def _is_date_axis(ax):
    return isinstance(ax.xaxis.get_major_formatter(), mdates.ConciseDateFormatter)


def _x_dates(line):
    return [np.datetime64(v, "D").astype(object) for v in line.get_xdata()]


def _line(ax, label):
    (ln,) = [ln for ln in ax.get_lines() if ln.get_label() == label]
    return ln


def test_forecast_axes_have_units_and_dates_that_continue_the_series():
    s = data.load("airpassengers")
    fig = plots.forecast_figure(s, np.full((3, 1), 400.0), len(s), None, title="t")
    (ax,) = fig.axes
    assert ax.get_ylabel() == "Passengers" and ax.get_xlabel() == "date"
    assert _is_date_axis(ax)
    assert _x_dates(_line(ax, "Passengers"))[0] == dt.date(1949, 1, 1)
    # the forecast after the series' end is placed at the months that follow it
    assert _x_dates(_line(ax, "lockstep forecast")) == [dt.date(1961, m, 1) for m in (1, 2, 3)]


@pytest.mark.parametrize("labels, first, nxt", [
    ([f"{2000 + i // 4}-Q{i % 4 + 1}" for i in range(8)], dt.date(2000, 1, 1), dt.date(2002, 1, 1)),
    ([str(1871 + i) for i in range(8)], dt.date(1871, 1, 1), dt.date(1879, 1, 1)),
    ([f"2020-01-{d:02d}" for d in range(1, 9)], dt.date(2020, 1, 1), dt.date(2020, 1, 9)),
])
def test_quarters_years_and_days_are_dates_too(labels, first, nxt):
    s = data.Series(np.arange(1.0, 9.0), ["v"], labels)
    fig = plots.forecast_figure(s, np.ones(2), len(s))
    (ax,) = fig.axes
    assert _is_date_axis(ax)
    assert _x_dates(_line(ax, "v"))[0] == first
    assert _x_dates(_line(ax, "lockstep forecast"))[0] == nxt


def test_undated_series_count_time_steps():
    s = data.Series(np.arange(10.0), ["load_mw"])
    fig = plots.forecast_figure(s, np.ones(3), 8, np.zeros(3))
    (ax,) = fig.axes
    assert ax.get_xlabel() == "time step" and ax.get_ylabel() == "load_mw"
    assert not _is_date_axis(ax)
    assert list(_line(ax, "lockstep forecast").get_xdata()) == [8, 9, 10]


def test_series_of_different_scales_get_one_axis_each():
    n = 36
    t = np.arange(n)
    big = 1000 + 50 * np.sin(t)
    small = 2 + np.sin(t)
    s = data.Series(np.c_[big, small], ["revenue_eur", "rate_pct"], _months(n))
    for fig in (plots.forecast_figure(s, np.ones((4, 2)), n - 4, np.ones((4, 2))),
                plots.series_figure(s)):
        assert len(fig.axes) == 2
        assert [a.get_ylabel() for a in fig.axes] == ["revenue_eur", "rate_pct"]
        assert fig.axes[-1].get_xlabel() == "date" and _is_date_axis(fig.axes[-1])
    # the same scale: one axis, both names on it
    s2 = data.Series(np.c_[small, small + 0.5], ["a", "b"], _months(n))
    fig = plots.series_figure(s2)
    assert len(fig.axes) == 1 and fig.axes[0].get_ylabel() == "a, b"


def test_same_scale_rule():
    assert plots._same_scale(np.c_[np.arange(10.0), np.arange(10.0) + 2])
    assert not plots._same_scale(np.c_[np.arange(10.0), 100 + np.arange(10.0)])  # apart
    assert not plots._same_scale(np.c_[np.arange(10.0), np.arange(10.0) * 10])  # 10x the span
    assert plots._same_scale(np.c_[np.arange(10.0), np.full(10, np.nan)])  # nothing to compare


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


def test_train_and_forecast_plots_have_units_and_dates(tmp_path, capsys, drawn):
    out = tmp_path / "run"
    assert cli.main(["train", *FAST, "--out", str(out)]) == 0
    f = drawn["forecast.png"]
    assert f["ylabels"] == ["Passengers"] and f["xlabel"] == "date" and f["dates"]
    assert drawn["losses.png"]["ylabels"][0].startswith("MSE")
    assert cli.main(["forecast", "--checkpoint", str(out / "checkpoint.npz"), "--horizon", "6",
                     "--plot", str(tmp_path / "f.png")]) == 0
    assert drawn["f.png"]["dates"] and drawn["f.png"]["ylabels"] == ["Passengers"]


def test_data_plot_of_two_scales_has_two_axes(tmp_path, capsys, drawn):
    p = tmp_path / "two.csv"
    p.write_text("month,visits,revenue\n" + "".join(
        f"{m},{10 + i % 3},{5000 + 40 * i}\n" for i, m in enumerate(_months(30))))
    assert cli.main(["data", "--data", str(p), "--plot", str(tmp_path / "s.png")]) == 0
    s = drawn["s.png"]
    assert s["axes"] == 2 and s["ylabels"] == ["visits", "revenue"] and s["dates"]


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
