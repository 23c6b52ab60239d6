"""The ``lockstep`` command line: info, data, train, forecast, check, bench.

Human-readable results (tables, forecast values, summaries) go to stdout; progress and logs go
to stderr. With ``--json`` stdout holds only the JSON document and the tables go to stderr.
Exit codes: 0 ok, 1 a check failed or training diverged, 2 bad input (nothing written).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from . import __version__
from .errors import LockstepError, OutputError, UsageError, err, one_line, os_error_line, say

DEFAULT_OUT = "lockstep-out"
RUN_FILES = ("checkpoint.npz", "losses.png", "forecast.png")

__all__ = ["build_parser", "main"]


def _emit_json(obj):
    print(json.dumps(obj, indent=2, sort_keys=False))


def _month_labels(last: str, n: int):
    m = re.fullmatch(r"(\d{4})-(\d{2})", last or "")
    if not m:
        return [f"t+{i + 1}" for i in range(n)]
    y, mo = int(m.group(1)), int(m.group(2))
    out = []
    for _ in range(n):
        mo += 1
        if mo > 12:
            y, mo = y + 1, 1
        out.append(f"{y:04d}-{mo:02d}")
    return out


def _load_series(args):
    from . import data

    return data.resolve(args.data, value_column=getattr(args, "value_column", None),
                        time_column=getattr(args, "time_column", None))


# ---- info ----------------------------------------------------------------------------------

def cmd_info(args):
    from . import backends

    rows = backends.runs()
    runs = [{"run": backends.run_name(n, s, d) if s else n, "available": ok, "reason": why}
            for n, s, d, ok, why in rows]
    info = {"version": __version__, "runs": runs, "auto": "%s@%s" % backends.resolve("auto")}
    try:
        from . import _cpu

        info["cpu_build"] = _cpu.build_info()
        info["cpu_isa"] = _cpu.isa()  # the kernel unit the cpu backend runs (LOCKSTEP_CPU_ISA)
    except ImportError as e:
        info["cpu_build"] = {"error": str(e)}
        info["cpu_isa"] = None
    info["cpus"] = os.cpu_count()
    if args.json:
        _emit_json(info)
        return 0
    isa = f"; cpu kernels {info['cpu_isa']}" if info["cpu_isa"] else ""
    say(args, f"lockstep {__version__}  ({info['cpus']} CPUs; auto backend = {info['auto']}{isa})")
    width = max(len(r["run"]) for r in runs)
    for r in runs:
        say(args, f"  {r['run']:<{width}}  {'yes' if r['available'] else 'no '}  "
            f"{'' if r['available'] else r['reason']}")
    return 0


# ---- data ----------------------------------------------------------------------------------

def cmd_data(args):
    if args.plot:
        from . import plots

        plots.check_path(args.plot)
    s = _load_series(args)
    d = s.describe()
    if args.plot:
        from . import plots

        plots.series(s, args.plot)
        d["plot"] = str(args.plot)
    if args.json:
        _emit_json(d)
        return 0
    say(args, f"{d['source']}: {d['rows']} rows, columns {', '.join(d['columns'])}"
        + (f", {d['start']} .. {d['end']}" if d["start"] else "")
        + (f", period {d['period']}" if d["period"] else ", no seasonal period found (pass "
                                                           "--season to train with one)"))
    for j, name in enumerate(d["columns"]):
        say(args, f"  {name}: min {d['min'][j]:.6g}  max {d['max'][j]:.6g}  mean {d['mean'][j]:.6g}  "
            f"std {d['std'][j]:.6g}")
    return 0


# ---- train ---------------------------------------------------------------------------------

def _settings_from_args(args, series):
    from .forecast import ForecastSettings

    kw = dict(task=args.task, hidden_size=args.hidden, window=args.window, epochs=args.epochs,
              lr=args.lr, optimizer=args.optimizer, batch_size=args.batch_size, clip=args.clip,
              dtype=args.dtype, seed=args.seed, log=not args.no_log, diff=args.diff,
              season=args.season, patience=args.patience or None,
              holdout=args.holdout, loss_on=args.loss_on, momentum=args.momentum,
              grad_shards=args.grad_shards, num_layers=args.layers, dropout=args.dropout)
    if args.task == "classify-change" and args.train_start is None:
        kw["train_start"] = 0.4  # the seed's choice
    elif args.train_start is not None:
        kw["train_start"] = args.train_start
    return ForecastSettings(**kw)


# train's options that are settings of the run (ForecastSettings fields): on --resume they
# come from the checkpoint, and one given again must say the same.
SETTING_FLAGS = {"task": "task", "hidden": "hidden_size", "window": "window", "lr": "lr",
                 "optimizer": "optimizer", "momentum": "momentum", "batch_size": "batch_size",
                 "clip": "clip", "loss_on": "loss_on", "dtype": "dtype", "seed": "seed",
                 "no_log": "log", "diff": "diff", "season": "season", "patience": "patience",
                 "holdout": "holdout", "train_start": "train_start",
                 "grad_shards": "grad_shards", "layers": "num_layers", "dropout": "dropout"}


def _flag_value(dest, v):
    """An option's value as the setting it makes."""
    if dest == "no_log":
        return not v
    if dest == "patience":
        return v or None
    return v


def _show(dest, setting_value):
    """A setting as the option that makes it (for messages)."""
    flag = "--" + dest.replace("_", "-")
    if dest == "no_log":
        return "--no-log" if not setting_value else "no --no-log (log transform on)"
    if dest == "diff":
        return "--diff" if setting_value else "no --diff"
    if dest == "patience":
        return f"--patience {setting_value or 0}" + ("" if setting_value else " (off)")
    if setting_value is None:
        return f"no {flag} (from the data)" if dest == "season" else f"no {flag}"
    return f"{flag} {setting_value}"


def _explicit_options(argv):
    """The dests of the options given on the command line (not left at their defaults)."""
    p = build_parser()
    for sp in p._subparsers._group_actions[0].choices.values():
        for a in sp._actions:
            if a.dest != "help":
                a.default = argparse.SUPPRESS
    return set(vars(p.parse_args(argv))) - {"command", "func"}


def _resume_settings(args, ck_path):
    """--resume: every setting from the checkpoint; an option given again must match it,
    --epochs (the new total) excepted. The data too, unless --data is given."""
    import numpy as np

    from . import checkpoint
    from .data import Series
    from .forecast import ForecastSettings

    ck = checkpoint.load(ck_path)
    have = dict(ck["config"]["settings"])
    given = _explicit_options(sys.argv[1:] if args.argv is None else args.argv)
    for dest, field in SETTING_FLAGS.items():
        if dest in given and _flag_value(dest, getattr(args, dest)) != have.get(field):
            raise UsageError(
                f"{_show(dest, _flag_value(dest, getattr(args, dest)))} differs from the "
                f"checkpoint in {ck_path.parent}, which was trained with "
                f"{_show(dest, have.get(field))}; --resume takes every setting from the "
                "checkpoint: drop the option, or train a new run (another --out or --force)")
    done = int(ck["epoch"])
    if "epochs" in given:
        if args.epochs <= done:
            raise UsageError(f"--epochs {args.epochs}: the checkpoint in {ck_path.parent} has "
                             f"{done} epochs already; --epochs is the total, pass more than "
                             f"{done} to train on")
        have["epochs"] = args.epochs
    stopped = ck["extra"].get("stopped")
    best = (ck["extra"].get("best") or {}).get("epoch")
    if stopped == "early-stop" and not args.continue_early_stopped:
        raise UsageError(f"the run in {ck_path.parent} stopped early at epoch {done} (best "
                         f"validation epoch {best}, patience {have.get('patience')}); pass "
                         "--continue-early-stopped to train on to --epochs without early "
                         "stopping")
    if stopped != "early-stop" and done >= have["epochs"]:
        raise UsageError(f"the run in {ck_path.parent} has completed its {done} epochs; pass "
                         f"--epochs N with N > {done} (the new total) to train on")
    s = ck["extra"]["series"]
    if given & {"data", "value_column", "time_column"}:
        series = _load_series(args)
        series.period = s["period"]  # the run's period, as it was when it started
    else:
        series = Series(np.asarray(s["values"]), list(s["names"]), s["time"],
                        source=s["source"], period=s["period"])
    return series, ForecastSettings(**have)


def _check_train_args(args):
    from .config import MAX_EPOCHS

    if not 1 <= args.epochs <= MAX_EPOCHS:
        raise UsageError(f"--epochs must be in [1, {MAX_EPOCHS}], got {args.epochs} (with "
                         "--resume it counts the checkpoint's epochs too)")
    if args.patience < 0:
        raise UsageError(f"--patience must be >= 0 epochs (0 = no early stopping), got "
                         f"{args.patience}")
    if args.holdout < 0:
        raise UsageError(f"--holdout must be >= 0 points, got {args.holdout}")
    if args.resume and args.force:
        raise UsageError("--resume continues the checkpoint and --force replaces it: pass one")


def _check_existing(args, ck_path):
    """The rules for a checkpoint already in --out (checked again once the folder is locked,
    in case another run wrote one meanwhile)."""
    if args.resume and not ck_path.is_file():
        raise UsageError(f"--resume: no checkpoint in {ck_path.parent}; train without --resume "
                         "first")
    if os.path.lexists(ck_path) and not (args.resume or args.force):
        raise UsageError(f"{ck_path} exists: pass --resume to continue it, --force to replace it, "
                         "or another --out")


def cmd_train(args):
    from . import checkpoint, outdir, plots
    from .forecast import Forecaster

    if _wants_panel(args):
        return _train_panel(args)
    if args.ranks:
        return _launch_ranks(args)
    comm = _mpi_world()
    _check_train_args(args)
    out = Path(args.out)
    ck_path = out / "checkpoint.npz"
    outdir.check_dir(out)
    for name in RUN_FILES:
        if (out / name).is_dir():
            raise UsageError(f"{out / name} is a folder; move it away or choose another --out")
    _check_existing(args, ck_path)
    if args.resume:
        series, settings = _resume_settings(args, ck_path)
    else:
        series = _load_series(args)
        settings = _settings_from_args(args, series)
    from .distributed import is_writer

    writer = is_writer(comm)
    fc = Forecaster(backend=args.backend, strategy=args.strategy, device=args.device,
                    quiet=args.quiet or not writer, comm=comm,
                    **{k: v for k, v in settings.to_dict().items()})
    fc.continue_early_stopped = args.continue_early_stopped
    # Everything that can be refused is refused before the folder is touched: the data and
    # the sizes (memory estimate) by prepare, a foreign or mismatched checkpoint by
    # _resume_state. Under MPI every rank does the same checks on the same inputs, so all
    # refuse together and none is left waiting.
    if comm is not None:
        from .distributed import check_ranks

        check_ranks(comm.size, settings.grad_shards)
    fc.prepare(series)
    if args.resume:
        fc._resume_state(ck_path, series)
    if comm is not None:
        return _train_ranks(comm, args, fc, series, settings, ck_path, checkpoint, plots, outdir)

    with outdir.RunFolder(out) as folder:
        _check_existing(args, ck_path)
        return _train_in(folder, args, fc, series, settings, ck_path, checkpoint, plots)


# MPI launchers set these in every process they start (MPICH/Hydra and SLURM's PMI, Open MPI,
# PMIx): `mpiexec -n R lockstep train ...` then trains data-parallel over the R processes.
_MPI_ENV = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK")


def _mpi_world():
    if not any(v in os.environ for v in _MPI_ENV):
        return None
    from .distributed import world

    return world()


def _launch_ranks(args):
    """lockstep train --ranks R: the same command under mpiexec -n R on this machine."""
    import shutil
    import subprocess

    from .distributed import check_ranks

    if args.ranks < 1:
        raise UsageError(f"--ranks must be >= 1, got {args.ranks}")
    check_ranks(args.ranks, args.grad_shards)
    if any(v in os.environ for v in _MPI_ENV):
        raise UsageError("--ranks starts mpiexec itself; under mpiexec leave it out")
    here = str(Path(sys.executable).parent)
    mpiexec = shutil.which("mpiexec", path=here) or shutil.which("mpiexec")
    if mpiexec is None:
        raise UsageError("--ranks needs mpiexec: pip install 'lockstep[mpi]' (MPICH from PyPI) "
                         "or a system MPI")
    argv, skip = [], False
    for a in sys.argv[1:] if args.argv is None else args.argv:
        if skip:
            skip = False
        elif a == "--ranks":
            skip = True
        elif not a.startswith("--ranks="):
            argv.append(a)
    cmd = [mpiexec, "-n", str(args.ranks), sys.executable, "-m", "lockstep.cli", *argv]
    return subprocess.run(cmd).returncode


def _train_ranks(comm, args, fc, series, settings, ck_path, checkpoint, plots, outdir):
    """Data-parallel training: rank 0 locks and writes --out (checkpoints, plots, JSON) as
    one process would; the other ranks train the same bits and write nothing. Any failure
    after the ranks agreed to start aborts the whole job (no rank waits for a dead one)."""
    import contextlib

    from .distributed import is_writer

    writer = is_writer(comm)
    with contextlib.ExitStack() as stack:
        msg, folder = None, None
        if writer:
            try:
                folder = stack.enter_context(outdir.RunFolder(Path(args.out)))
                _check_existing(args, ck_path)
            except LockstepError as e:
                msg = one_line(e)
        msg = comm.bcast(msg, root=0)
        if msg is not None:
            raise UsageError(msg if writer else f"rank 0 refused to start: {msg}")
        try:
            if writer:
                return _train_in(folder, args, fc, series, settings, ck_path, checkpoint,
                                 plots)
            fc.fit(series, checkpoint_path=ck_path, resume=args.resume,
                   on_epoch=lambda state: None)
            return 1 if fc.state.stopped == "diverged" else 0
        except BaseException as e:  # noqa: BLE001 - every failure ends every rank
            what = one_line(e) if isinstance(e, LockstepError) else (
                os_error_line(e) if isinstance(e, OSError) else f"{type(e).__name__}: {e}")
            err(f"lockstep: error: rank {comm.rank}: {what}; stopping all ranks")
            comm.Abort(2)
            raise


def _train_in(folder, args, fc, series, settings, ck_path, checkpoint, plots):
    out = folder.path
    saved = []

    def save(state):
        fc.save(ck_path)
        if not saved:
            # The folder never mixes two runs: the plots of an older run go with the
            # first checkpoint of this one, and this run's plots come at its end.
            for name in RUN_FILES[1:]:
                if os.path.lexists(out / name):
                    os.unlink(out / name)
        saved.append(state.epoch)

    try:
        # Checkpoints are replaced atomically after each good epoch: an old one (--force)
        # survives until the new run has a good epoch of its own.
        fc.fit(series, checkpoint_path=ck_path, resume=args.resume, on_epoch=save)
    except OSError as e:
        raise OutputError(os_error_line(e, "training stopped")
                          + ("; the checkpoint of epoch %d is intact" % saved[-1] if saved
                             else "; nothing was written")) from None
    state = fc.state
    result = {"backend": fc.trainer.run_name, "epochs": state.epoch, "stopped": state.stopped,
              "best_epoch": state.best_epoch,
              "checkpoint": str(ck_path) if saved or args.resume else None,
              "history": fc.history}
    if state.stopped == "diverged":
        # Said first, so that nothing after it (plots of huge losses) can hide it.
        err("lockstep: training diverged" + ("; the checkpoint holds the last good epoch"
                                             if saved or args.resume else
                                             " in the first epoch; nothing was written"))
        if not saved and not args.resume:
            if args.json:
                _emit_json(result)
            return 1
    if settings.holdout > 0:
        ev = fc.evaluate_holdout()
        result["metrics"] = ev["metrics"]
        result["baseline"] = ev["baseline"]
        if "classes" in ev:
            result["classes"] = ev["classes"]
        result["forecast"] = ev["forecast"].tolist()
        start = len(series) - settings.holdout
        fc_values, base = ev["forecast"], ev["baseline_forecast"]
    else:
        fc_values = fc.predict(settings.window, series.values)
        start, base = len(series), None
        result["forecast"] = fc_values.tolist()
    try:
        plots.losses(fc.history, out / "losses.png", title=f"{series.source}: {fc.trainer.run_name}",
                     best_epoch=state.best_epoch,
                     loss_name="MSE (transformed, scaled series)" if settings.task ==
                     "regress" else "cross-entropy of the next class (nats)")
        plots.forecast(series, out / "forecast.png", fc_values, start, base,
                       title=f"{series.source}: forecast of the last {settings.holdout} points"
                       if settings.holdout else f"{series.source}: forecast",
                       baseline_label=fc.baseline_name)
        result["plots"] = [str(out / "losses.png"), str(out / "forecast.png")]
    except plots.PlotUnavailable as e:
        err(f"lockstep: no plots: {e}")
    except OSError as e:
        raise OutputError(os_error_line(e, "plots") + "; the checkpoint is intact") from None
    if settings.holdout > 0:
        rows = [(f"lockstep ({fc.trainer.run_name})", result["metrics"]),
                (fc.baseline_name, result["baseline"]["seasonal_naive"])]
        w = max(len(r[0]) for r in rows) + 2
        say(args, f"forecast of the last {settings.holdout} points:")
        say(args, f"  {'':<{w}}{'RMSE':>10}{'MAE':>10}{'MAPE %':>10}")
        for name, m in rows:
            say(args, f"  {name:<{w}}{m['rmse']:10.3f}{m['mae']:10.3f}{m['mape']:10.3f}")
    if "classes" in result:
        c = result["classes"]
        say(args, f"class of the next change (0 falls, 1 middle, 2 rises; centroids "
            f"{', '.join(f'{v:.3g}' for v in c['centroids'])}), one step ahead over the last "
            f"{settings.holdout} points: accuracy {c['accuracy']:.3f} (always class "
            f"{c['majority_class']}: {c['majority_accuracy']:.3f})")
        say(args, "  confusion (rows: true class, columns: predicted):")
        for j, row in enumerate(c["confusion"]):
            say(args, f"  {j}  " + " ".join(f"{v:4d}" for v in row))
    say(args, f"checkpoint: {ck_path}  ({state.epoch} epochs, {state.stopped})")
    if args.json:
        _emit_json(result)
    return 1 if state.stopped == "diverged" else 0


# ---- forecast ------------------------------------------------------------------------------

def cmd_forecast(args):
    from . import outdir
    from .config import MAX_HORIZON
    from .forecast import Forecaster

    if not 1 <= args.horizon <= MAX_HORIZON:
        raise UsageError(f"--horizon must be in [1, {MAX_HORIZON}] steps, got {args.horizon}")
    if args.plot:
        from . import plots

        plots.check_path(args.plot)
    if args.out:
        outdir.check_parent(args.out, "--out")
    from . import checkpoint

    ck = checkpoint.load(args.checkpoint)
    if ck.get("kind") == "panel":
        return _forecast_panel(args, ck)
    if args.future:
        raise UsageError("--future gives covariates to a many-series model; this checkpoint "
                         "has none")
    fc = Forecaster.from_checkpoint(args.checkpoint, backend=args.backend)
    s = fc.series
    values = fc.predict(args.horizon, s.values)
    labels = _month_labels(s.time[-1] if s.time else "", args.horizon)
    if args.out:
        rows = ["unique_id,ds,yhat"] + [f"{_csv(n)},{lab},{v!r}" for j, n in enumerate(s.names)
                                        for lab, v in zip(labels, values[:, j].tolist())]
        outdir.write_text(args.out, "\n".join(rows) + "\n")
    if args.plot:
        from . import plots

        plots.forecast(s, args.plot, values, len(s), None,
                       title=f"{s.source}: {args.horizon}-step forecast")
    if args.json:
        _emit_json({"checkpoint": str(args.checkpoint), "columns": s.names, "time": labels,
                    "forecast": values.tolist()})
    else:
        for lab, row in zip(labels, values):
            say(args, f"{lab}  " + "  ".join(f"{v:.6g}" for v in row))
    return 0


# ---- many series: one global model (lockstep.panel) ----------------------------------------

def _csv(text):
    t = str(text)
    return '"' + t.replace('"', '""') + '"' if any(c in t for c in ',"\n') else t


def _long_table(args) -> bool:
    """--id-column, or a CSV whose header names a unique_id column."""
    from . import data

    if args.id_column:
        return True
    if args.data in data.BUNDLED or not Path(args.data).is_file():
        return False
    with open(args.data, encoding="utf-8", errors="replace") as f:
        header = f.readline(1 << 20)
    return "unique_id" in [c.strip().strip('"') for c in header.split(",")]


def _wants_panel(args) -> bool:
    """A long table, covariates or calendar features: the global many-series model."""
    return bool(args.exog or args.calendar) or _long_table(args)


def _levels(text):
    try:
        levels = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        levels = ()
    if not levels or not all(0 < v < 100 for v in levels):
        raise UsageError(f"--level must be percentages in (0, 100) separated by commas, got "
                         f"{text!r}; e.g. --level 80,95")
    return tuple(int(v) if v.is_integer() else v for v in levels)


def _panel_data(args):
    from . import panel

    exog = [e.strip() for e in (args.exog or "").split(",") if e.strip()]
    if _long_table(args):
        values = args.value_column or ["y"]
        if len(values) > 1:
            raise UsageError("a long table has one value column: give --value-column once")
        return panel.read_panel(args.data, id_column=args.id_column or "unique_id",
                                time_column=args.time_column or "ds", value_column=values[0],
                                exog=exog, freq=args.freq)
    if exog:
        raise UsageError("--exog needs a long table (unique_id, ds, y, covariates): give "
                         "--id-column")
    return panel.from_series(_load_series(args))


def _panel_model(args, held):
    """(GlobalForecaster, panel) for train and backtest; short series refused or skipped."""
    from . import panel

    p = _panel_data(args)
    st = panel.PanelSettings(base=_settings_from_args(args, None), calendar=args.calendar,
                             levels=_levels(args.level), ensemble=args.ensemble)
    g = panel.GlobalForecaster(st, args.backend, args.strategy, args.device, quiet=args.quiet)
    if args.skip_short:
        p, short = g.skip_short(p, held)
        if short:
            err(f"lockstep: skipping {len(short)} series too short for --window "
                f"{st.base.window} and {held} held-out rows: {', '.join(short[:10])}"
                f"{' ...' if len(short) > 10 else ''}")
    return g, p


def _score_table(args, res, title):
    say(args, title)
    ids = {r["unique_id"] for r in res["windows"]}
    if len(ids) <= 20 or len(res["windows"]) <= 40:
        say(args, f"  {'series':<18}{'cutoff':<12}{'MASE':>8}{'sMAPE %':>9}{'RMSE':>11}"
            f"{'baseline MASE':>15}")
        for r in res["windows"]:
            m, b = r["model"], r["baseline"]
            say(args, f"  {r['unique_id'][:17]:<18}{r['cutoff'][:11]:<12}{m['mase']:8.3f}"
                f"{m['smape']:9.2f}{m['rmse']:11.4g}{b['mase']:15.3f}")
    o = res["overall"]
    say(args, f"  mean over {len(res['windows'])} forecasts: MASE {o['model']['mase']:.3f}, "
        f"sMAPE {o['model']['smape']:.2f} %, RMSE {o['model']['rmse']:.4g}; "
        f"{res['baseline']}: MASE {o['baseline']['mase']:.3f}, sMAPE "
        f"{o['baseline']['smape']:.2f} %")
    say(args, "  interval coverage: " + ", ".join(f"{lv} %: {c * 100:.1f} %"
                                                   for lv, c in o["coverage"].items()))


def _train_panel(args):
    from . import outdir, panel, plots

    _check_train_args(args)
    if args.resume or args.ranks or args.task != "regress":
        raise UsageError("a many-series model trains in one go on one process (no --resume, "
                         "--ranks or --task classify-change yet); drop those options")
    out = Path(args.out)
    ck_path = out / "checkpoint.npz"
    outdir.check_dir(out)
    _check_existing(args, ck_path)
    g, p = _panel_model(args, args.holdout)
    with outdir.RunFolder(out):
        _check_existing(args, ck_path)
        g.fit(p, holdout=args.holdout)
        panel.save(g, ck_path)
        for name in RUN_FILES[1:]:  # a folder never mixes two runs
            if os.path.lexists(out / name):
                os.unlink(out / name)
        st = g.state
        result = {"backend": g.trainer.run_name, "series": len(p), "freq": p.freq,
                  "epochs": st.epoch, "stopped": st.stopped, "best_epoch": st.best_epoch,
                  "checkpoint": str(ck_path),
                  "history": {"train_loss": [float(v) for v in st.train_loss],
                              "valid_loss": [float(v) for v in st.valid_loss]}}
        try:
            plots.losses(result["history"], out / "losses.png",
                         title=f"{p.source}: {len(p)} series, {g.trainer.run_name}",
                         best_epoch=st.best_epoch, loss_name="MSE (transformed, scaled series)")
            result["plots"] = [str(out / "losses.png")]
        except plots.PlotUnavailable as e:
            err(f"lockstep: no plots: {e}")
    if args.holdout > 0:
        res = g.evaluate_holdout()
        result["holdout"] = res
        _score_table(args, res, f"forecast of the last {args.holdout} points of {len(p)} series "
                     f"({g.trainer.run_name}):")
    say(args, f"checkpoint: {ck_path}  ({st.epoch} epochs, {st.stopped})")
    if args.json:
        _emit_json(result)
    return 1 if st.stopped == "diverged" else 0


def _forecast_panel(args, ck):
    from . import outdir, panel

    g = panel.from_loaded(ck, backend=args.backend)
    frame = g.predict(args.horizon, future=args.future, level=_levels(args.level), at_end=True)
    frame["ds"] = [panel.stamp(t) for t in frame["ds"]]
    if args.out:
        outdir.write_text(args.out, frame.to_csv(index=False, float_format="%.17g"))
    if args.plot:
        err("lockstep: --plot draws one-series forecasts; many-series forecasts are in --out")
    if args.json:
        _emit_json({"checkpoint": str(args.checkpoint), "columns": list(frame.columns),
                    "rows": frame.to_dict("records")})
    else:
        say(args, frame.to_string(index=False))
    return 0


def cmd_backtest(args):
    from . import plots

    for name in ("horizon", "windows"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.step is not None and args.step < 1:
        raise UsageError(f"--step must be >= 1, got {args.step}")
    if args.plot:
        plots.check_path(args.plot)
    step = args.step or args.horizon
    g, p = _panel_model(args, args.horizon + (args.windows - 1) * step)
    res = g.backtest(p, args.horizon, args.windows, step, refit=not args.no_refit)
    res["backend"] = g.backend
    _score_table(args, res, f"rolling-origin backtest of {len(p)} series: {args.windows} "
                 f"windows of {args.horizon} steps, origins {step} apart, "
                 f"{'refit before each' if not args.no_refit else 'trained once'}:")
    if args.plot:
        plots.backtest(res, args.plot, title=f"{p.source}: backtest")
    if args.json:
        _emit_json(res)
    return 0


# ---- check / bench (registered by their modules) -------------------------------------------

def cmd_check(args):
    from . import harness

    return harness.cli_check(args)


def cmd_bench(args):
    from . import bench, outdir

    if args.plot:
        from . import plots

        plots.check_path(args.plot)
    if args.json == "-":
        args.json = True
    if args.json not in (None, True, False):
        # the old spelling `bench --json FILE`: kept, as --json-file FILE
        if args.json_file is not None:
            raise UsageError("--json FILE is the old spelling of --json-file FILE: pass one")
        args.json_file, args.json = Path(args.json), False
    args.json = bool(args.json)
    if args.json_file:
        if args.json_file.is_dir():
            raise UsageError(f"--json-file {args.json_file} is a folder; name a file")
        outdir.check_parent(args.json_file, "--json-file")

    return bench.cli_bench(args)


# ---- parser --------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    """argparse with the project's one-line errors: ``lockstep: error: <what>; see
    'lockstep train --help'`` and exit code 2, instead of the whole usage text."""

    def error(self, message):
        err(f"lockstep: error: {one_line(message)}; see '{self.prog} --help'")
        raise SystemExit(2)


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default; None and off switches say nothing more
    (their help says what happens when the option is left out)."""

    def _split_lines(self, text, width):  # never break names such as cuda-raw at a hyphen
        import textwrap

        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)

    def _fill_text(self, text, width, indent):
        import textwrap

        return textwrap.fill(" ".join(text.split()), width, initial_indent=indent,
                             subsequent_indent=indent, break_on_hyphens=False)

    def _get_help_string(self, action):
        h = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "%(default)" in h \
                or not action.option_strings:
            return h
        return h + " (default: %(default)s)"


# The backends and their strategies (the registry's names; tests/test_newcomer.py checks that
# this text matches lockstep.backends, which is imported lazily and so not at parse time).
BACKENDS_HELP = ("auto (the fastest available), numpy, cpu, cuda-raw, numba-cuda; "
                 "see 'lockstep info' for what is available here")
STRATEGIES = {"numpy": ("reference",), "cpu": ("blocked",),
              "cuda-raw": ("naive", "fused", "persistent"),
              "numba-cuda": ("per-sample", "fused")}
STRATEGIES_HELP = "kernel strategy of --backend: " + "; ".join(
    f"{b}: {', '.join(v)}" for b, v in STRATEGIES.items()) + " (default: the backend's first)"
DEVICES_HELP = "device of --backend: cuda-raw: gpu or emu (SIMT emulator); numba-cuda: gpu " \
               "or sim (Numba simulator); numpy, cpu: cpu (default: the backend's best available)"


def build_parser():
    from .forecast import ForecastSettings

    dflt = ForecastSettings()  # one source of truth for the training defaults
    p = _Parser(prog="lockstep", formatter_class=_Help,
                description="Bit-identical LSTM training for time-series forecasting. Results "
                "go to stdout, progress and logs to stderr; --json prints only JSON on stdout. "
                f"Backends: {BACKENDS_HELP}. Strategies: " + "; ".join(
                    f"{b}: {', '.join(v)}" for b, v in STRATEGIES.items()) + ".")
    p.add_argument("--version", action="version", version=f"lockstep {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name, help):
        return sub.add_parser(name, help=help, description=help, formatter_class=_Help)

    def json_arg(parser):
        parser.add_argument("--json", action="store_true",
                            help="print the result as one JSON document on stdout (and nothing "
                            "else there); tables move to stderr")

    i = add("info", "backends, strategies, devices and why an unavailable one is unavailable")
    json_arg(i)
    i.set_defaults(func=cmd_info)

    def data_args(parser):
        parser.add_argument("--data", default="airpassengers",
                            help="a bundled real series: airpassengers (monthly 1949-1960), "
                            "elec_equip (monthly 1995-2016), co2 (monthly 1965-2001), nile "
                            "(yearly 1871-1970), macro (8 quarterly US series, 1959-2009); or "
                            "a CSV or Parquet path")
        parser.add_argument("--value-column", action="append", metavar="NAME",
                            help="value column, by name or index (repeat for several; default: "
                            "every numeric column)")
        parser.add_argument("--time-column", metavar="NAME",
                            help="time column (default: the first column that parses as dates)")

    d = add("data", "describe a series: rows, columns, dates, period, statistics")
    data_args(d)
    d.add_argument("--plot", type=Path, metavar="FILE", help="draw the series to this image file")
    json_arg(d)
    d.set_defaults(func=cmd_data)

    def model_args(t):
        """The settings of a run (ForecastSettings), shared by train and backtest."""
        t.add_argument("--task", choices=["regress", "classify-change"], default="regress",
                       help="regress: forecast the values; classify-change: predict the class of "
                       "the next step's relative change (falls, about the same, rises: three "
                       "clusters of the training part's changes)")
        t.add_argument("--holdout", type=int, default=24,
                       help="points held out at the end for the final evaluation (0 = none)")
        t.add_argument("--epochs", type=int, default=dflt.epochs,
                       help="training epochs (with --resume: the total, checkpoint's included)")
        t.add_argument("--patience", type=int, default=dflt.patience,
                       help="early stopping after this many epochs without improvement (0 = off)")
        t.add_argument("--hidden", type=int, default=dflt.hidden_size, help="LSTM hidden units")
        t.add_argument("--layers", type=int, default=dflt.num_layers,
                       help="stacked LSTM layers (each reads the hidden states of the one below)")
        t.add_argument("--dropout", type=float, default=dflt.dropout,
                       help="dropout between stacked layers while training (needs --layers >= 2)")
        t.add_argument("--window", type=int, default=dflt.window,
                       help="time steps per training window")
        t.add_argument("--lr", type=float, default=dflt.lr, help="learning rate")
        t.add_argument("--optimizer", choices=["sgd", "adam"], default=dflt.optimizer,
                       help="optimizer")
        t.add_argument("--momentum", type=float, default=dflt.momentum,
                       help="SGD momentum (0 = plain SGD)")
        t.add_argument("--batch-size", type=int, default=dflt.batch_size, help="windows per batch")
        t.add_argument("--clip", type=float, default=dflt.clip, help="global-norm clipping (0 = off)")
        t.add_argument("--loss-on", choices=["all", "last"], default=dflt.loss_on,
                       help="loss on every time step of a window or only on the last")
        t.add_argument("--dtype", choices=["float32", "float64"], default=dflt.dtype,
                       help="working precision")
        t.add_argument("--no-log", action="store_true", help="no log transform (default: log)")
        t.add_argument("--diff", action="store_true",
                       help="also difference at lag 1 (default: no)")
        t.add_argument("--season", type=int, default=None,
                       help="the seasonal period: lag of the seasonal difference and of the "
                       "seasonal-naive baseline (default: inferred from the dates, e.g. 12 for "
                       "monthly data; 0 = none)")
        t.add_argument("--train-start", type=float, default=None,
                       help="fraction of the series to skip at the start (default: 0; 0.4 for "
                       "classify-change)")
        t.add_argument("--backend", default="auto", help=BACKENDS_HELP)
        t.add_argument("--strategy", help=STRATEGIES_HELP)
        t.add_argument("--device", help=DEVICES_HELP)
        t.add_argument("--seed", type=int, default=dflt.seed,
                       help="seed of the initial weights and the shuffling")

    def level_arg(parser):
        parser.add_argument("--level", default="80,95", metavar="L,L",
                            help="prediction interval levels in percent (many-series models: "
                            "conformal, per horizon step)")

    def panel_args(t):
        """Many series (lockstep.panel): long tables, covariates, intervals."""
        t.add_argument("--id-column", metavar="NAME",
                       help="series id column of a long table (unique_id, ds, y): one global "
                       "model for every series (default: used when the table has a unique_id "
                       "column)")
        t.add_argument("--exog", metavar="A,B",
                       help="covariate columns known in advance (long tables): extra inputs; "
                       "forecasts then need their future values (forecast --future FILE)")
        t.add_argument("--calendar", action="store_true",
                       help="add the position in the season (month, quarter, weekday, hour: "
                       "sin and cos) as inputs")
        level_arg(t)
        t.add_argument("--skip-short", action="store_true",
                       help="skip series too short for --window and the held-out rows (with a "
                       "warning) instead of refusing them")
        t.add_argument("--freq", help="the time column's frequency as a pandas alias (MS, W, D, "
                       "h); default: inferred")
        t.add_argument("--ensemble", type=int, default=3, metavar="N",
                       help="models from seeds --seed, --seed+1, ...; their forecasts averaged")

    t = add("train", "train, forecast the holdout, compare with the seasonal-naive baseline")
    data_args(t)
    model_args(t)
    panel_args(t)
    t.add_argument("--out", default=DEFAULT_OUT,
                   help="output folder: checkpoint.npz, losses.png, forecast.png")
    t.add_argument("--resume", action="store_true",
                   help="continue the checkpoint in --out with its settings and data (an "
                   "option given again must match; --epochs is the new total)")
    t.add_argument("--continue-early-stopped", action="store_true",
                   help="with --resume: train a run that stopped early on to --epochs, without "
                   "early stopping (default: refuse, saying it stopped early)")
    t.add_argument("--force", action="store_true", help="replace a checkpoint in --out")
    t.add_argument("--quiet", action="store_true", help="no progress bar, no per-epoch lines")
    json_arg(t)
    t.add_argument("--grad-shards", type=int, default=1, metavar="S",
                   help="sum each batch in S groups, combined in a fixed order, so that "
                        "data-parallel runs on any number of processes dividing S give the "
                        "same bits (docs/distributed.md)")
    t.add_argument("--ranks", type=int, metavar="R",
                   help="train data-parallel on R processes of this machine (runs mpiexec; "
                        "R must divide --grad-shards; default: one process, no MPI)")
    t.set_defaults(func=cmd_train)

    f = add("forecast", "forecast after the end of a checkpoint's series")
    f.add_argument("--checkpoint", type=Path, default=Path(DEFAULT_OUT) / "checkpoint.npz",
                   help="checkpoint written by 'lockstep train'")
    f.add_argument("--horizon", type=int, required=True, help="steps to forecast (required)")
    f.add_argument("--backend", default="auto", help=BACKENDS_HELP)
    f.add_argument("--plot", type=Path, metavar="FILE", help="draw the forecast to this image")
    f.add_argument("--out", type=Path, metavar="FILE",
                   help="write the forecast as CSV: unique_id, ds, yhat (and yhat-lo-L, "
                   "yhat-hi-L for a many-series model)")
    f.add_argument("--future", metavar="FILE",
                   help="covariates of the next --horizon steps (unique_id, ds and the --exog "
                   "columns), for a model trained with --exog")
    level_arg(f)
    json_arg(f)
    f.set_defaults(func=cmd_forecast)

    bt = add("backtest", "rolling-origin evaluation: refit and forecast several windows, "
             "metrics per window and overall beside seasonal naive")
    data_args(bt)
    model_args(bt)
    panel_args(bt)
    bt.add_argument("--horizon", type=int, required=True, help="steps per window (required)")
    bt.add_argument("--windows", type=int, default=3, help="forecast origins (windows)")
    bt.add_argument("--step", type=int, help="steps between origins (default: --horizon)")
    bt.add_argument("--no-refit", action="store_true",
                    help="train once before the first window (default: again before each)")
    bt.add_argument("--plot", type=Path, metavar="FILE",
                    help="MASE per window, model and baseline, and interval coverage")
    bt.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    json_arg(bt)
    bt.set_defaults(func=cmd_backtest, grad_shards=1)

    c = add("check", "train every backend from one seed and compare the bits")
    c.add_argument("--backends", help="comma-separated backend names: numpy, cpu, cuda-raw, "
                   "numba-cuda (default: all)")
    c.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                   help="working precision")
    c.add_argument("--epochs", type=int, default=2, help="epochs per run")
    c.add_argument("--shape", default="1,13,1,12,8",
                   help="I,H,O,T,B: inputs, hidden units, outputs, time steps, batch (with "
                   "--loss ce the default shape has O = 3 classes)")
    c.add_argument("--loss", choices=["mse", "ce"], default="mse",
                   help="mse, or ce (softmax cross-entropy over O classes)")
    c.add_argument("--optimizer", choices=["sgd", "adam"], default="adam", help="optimizer")
    c.add_argument("--clip", type=float, default=1.0, help="global-norm clipping (0 = off)")
    c.add_argument("--seed", type=int, default=0, help="seed of the problem and the weights")
    c.add_argument("--layers", type=int, default=1, help="stacked LSTM layers")
    c.add_argument("--dropout", type=float, default=0.0,
                   help="dropout between stacked layers (masks drawn on the host, the same on "
                   "every backend)")
    json_arg(c)
    c.set_defaults(func=cmd_check)

    b = add("bench", "time every backend and strategy against the anchors")
    b.add_argument("--preset", choices=["seed", "medium", "stacked", "heavy"], default="seed",
                   help="workload size")
    b.add_argument("--backends", help="comma-separated backend names (default: all)")
    b.add_argument("--anchors", help="comma-separated anchors (default: torch@cpu, "
                   "torch-cudnn@gpu, numpy-blas@cpu; empty = none)")
    b.add_argument("--json", nargs="?", const=True, default=False, metavar="FILE",
                   help="print the results as JSON on stdout, as every command does (a FILE "
                   "here is the old spelling of --json-file FILE)")
    b.add_argument("--json-file", type=Path, metavar="FILE",
                   help="also write the results as JSON to this file")
    b.add_argument("--plot", type=Path, metavar="FILE", help="bar chart of speed-ups")
    b.add_argument("--device", choices=["emu", "gpu"],
                   help="emu: count every cuda-raw strategy on the SIMT emulator and predict "
                   "its time on --model (no timing; gpu is measured by the presets)")
    b.add_argument("--model", help="GPU to predict for with --device emu: h200 (default), h100")
    b.add_argument("--shape", help="I,H,T,B of the counted training step (default 1,50,12,32)")
    b.add_argument("--dtype", choices=["float32", "float64"], help="with --device emu "
                   "(default float32)")
    b.add_argument("--count-steps", type=int, help="with --device emu: count n and 2n time "
                   "steps and extrapolate to T (default: all T when small, else n = 2)")
    b.add_argument("--strategies", help="with --device emu: comma-separated cuda-raw strategies "
                   "(default: all)")
    b.set_defaults(func=cmd_bench)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.argv = None if argv is None else list(argv)  # for train --ranks, which re-runs it
    try:
        return args.func(args)
    except LockstepError as e:
        err(f"lockstep: error: {one_line(e)}")
        return 2
    except BrokenPipeError:  # `lockstep forecast ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:  # disk full, permissions, I/O errors outside the checked paths
        err(f"lockstep: error: {os_error_line(e)}")
        return 2
    except MemoryError:
        err("lockstep: error: out of memory; choose smaller sizes (--hidden, --window, "
            "--batch-size) or a smaller data file")
        return 2
    except KeyboardInterrupt:
        err("lockstep: interrupted; the last checkpoint is intact")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
