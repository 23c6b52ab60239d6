"""The ``lockstep`` command line: info, data, train, forecast, check, bench.

Human-readable results (tables, forecast values, summaries) go to stdout; progress and logs go
to stderr. With ``--json`` stdout holds only the JSON document and the tables go to stderr.
Exit codes: 0 ok, 1 a check failed or training diverged, 2 bad input (nothing written).
"""

from __future__ import annotations

import os
import signal


def _interrupted_early(signum, frame):
    """^C while the heavy modules load (before main's try): one line and exit 130, not a
    traceback. main() puts Python's own handler back before it parses anything."""
    os.write(2, b"lockstep: interrupted\n")
    os._exit(130)


# first thing (the console script imports this module before anything of its own): from here
# on ^C is one line; before, only the interpreter's start-up and lockstep/__init__ ran
if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    signal.signal(signal.SIGINT, _interrupted_early)

import argparse  # noqa: E402 - the imports after the early handler: they take a while
import errno  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from . import __version__  # noqa: E402
from .errors import LockstepError, OutputError, UsageError, err, one_line, os_error_line, say

DEFAULT_OUT = "lockstep-out"
RUN_FILES = ("checkpoint.npz", "losses.png", "forecast.png")

__all__ = ["build_parser", "main"]


def _emit_json(obj):
    print(json.dumps(obj, indent=2, sort_keys=False))


def _read(args):
    """The one reader, with the command line's options: a Panel of one series or many."""
    from .data import read

    exog = [e.strip() for e in (getattr(args, "exog", None) or "").split(",") if e.strip()]
    values = getattr(args, "value_column", None)
    if values and len(values) == 1:
        values = values[0]
    return read(args.data, id_column=getattr(args, "id_column", None),
                time_column=getattr(args, "time_column", None), value_column=values,
                exog=exog, freq=getattr(args, "freq", None))


# ---- info ----------------------------------------------------------------------------------

def cmd_info(args):
    from . import backends

    rows = backends.runs()
    runs = [{"run": backends.run_name(n, s, d) if s else n, "available": ok, "reason": why}
            for n, s, d, ok, why in rows]
    try:
        auto = "%s@%s" % backends.resolve("auto")
    except LockstepError as e:  # a bad setting (LOCKSTEP_CPU_ISA): shown, not raised
        auto, info_auto_error = None, one_line(e)
    else:
        info_auto_error = None
    info = {"version": __version__, "runs": runs, "auto": auto}
    if info_auto_error:
        info["auto_error"] = info_auto_error
    try:
        from . import _cpu

        info["cpu_build"] = _cpu.build_info()
        info["cpu_isa"] = _cpu.isa()  # the kernel unit the cpu backend runs (LOCKSTEP_CPU_ISA)
    except ImportError as e:
        info["cpu_build"] = {"error": str(e)}
        info["cpu_isa"] = None
    except ValueError:  # LOCKSTEP_CPU_ISA names no unit this build runs: the row says why
        info["cpu_isa"] = None
    info["cpus"] = os.cpu_count()
    isa = f"; cpu kernels {info['cpu_isa']}" if info["cpu_isa"] else ""
    say(args, f"lockstep {__version__}  ({info['cpus']} CPUs; auto backend = "
        f"{info['auto'] or 'none: ' + info_auto_error}{isa})")
    width = max(len(r["run"]) for r in runs)
    for r in runs:
        say(args, f"  {r['run']:<{width}}  {'yes' if r['available'] else 'no '}  "
            f"{'' if r['available'] else r['reason']}")
    if args.json:
        _emit_json(info)
    return 0


# ---- data ----------------------------------------------------------------------------------

def cmd_data(args):
    from .data import calendar

    if args.plot:
        from . import plots

        plots.check_path(args.plot)
    p = _read(args)
    rows = p.describe()
    season = p.season
    d = {"source": p.source, "series": len(p), "rows": int(len(p.y)), "freq": p.freq,
         "frequency": calendar.freq_name(p.freq) if p.freq else None, "season": season,
         "exog": list(p.exog_names), "per_series": rows}
    if args.plot:
        from . import plots

        plots.series(p, args.plot)
        d["plot"] = str(args.plot)
    say(args, f"{p.source}: {len(p)} series, {len(p.y)} rows"
        + (f", {d['frequency']} ({p.freq})" if p.freq else ", no dates")
        + (f", season {season}" if season else ", no seasonal period found (pass --season to "
           "train with one)")
        + (f", covariates {', '.join(p.exog_names)}" if p.exog_names else ""))
    show = rows[:20]
    w = max(8, *(len(str(r["unique_id"])) for r in show))
    say(args, f"  {'series':<{w}} {'rows':>6}  {'start':<19} {'end':<19} {'min':>10} "
        f"{'max':>10} {'mean':>10}")
    for r in show:
        say(args, f"  {str(r['unique_id']):<{w}} {r['rows']:>6}  {str(r['start']):<19} "
            f"{str(r['end']):<19} {r['min']:>10.4g} {r['max']:>10.4g} {r['mean']:>10.4g}")
    if len(rows) > len(show):
        say(args, f"  ... and {len(rows) - len(show)} more series (all of them in --json)")
    if args.json:
        _emit_json(d)
    return 0


# ---- train ---------------------------------------------------------------------------------

def _settings_from_args(args):
    from .forecast import ForecastSettings

    kw = dict(task=args.task, hidden_size=args.hidden, window=args.window, epochs=args.epochs,
              lr=args.lr, optimizer=args.optimizer, batch_size=args.batch_size, clip=args.clip,
              dtype=args.dtype, seed=args.seed, transform="none" if args.no_log else
              args.transform, diff=args.diff, diff_nonseasonal=args.diff_nonseasonal,
              season=args.season, seasonality=args.seasonality, scale=args.scale,
              running_mean=args.running_mean, patience=args.patience or None,
              holdout=args.holdout, loss_on=args.loss_on, momentum=args.momentum,
              grad_shards=args.grad_shards, num_layers=args.layers,
              dropout=args.dropout, calendar=args.calendar, levels=_levels(args.level),
              ensemble=args.ensemble, head=args.head, head_steps=args.head_steps, pad=args.pad,
              theta_weight=args.theta_weight)
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
                 "no_log": "transform", "transform": "transform", "diff": "diff",
                 "diff_nonseasonal": "diff_nonseasonal", "seasonality": "seasonality",
                 "scale": "scale", "running_mean": "running_mean", "season": "season",
                 "patience": "patience", "holdout": "holdout",
                 "train_start": "train_start", "grad_shards": "grad_shards",
                 "layers": "num_layers", "dropout": "dropout", "calendar": "calendar",
                 "level": "levels", "ensemble": "ensemble", "head": "head",
                 "head_steps": "head_steps", "pad": "pad", "theta_weight": "theta_weight"}


def _flag_value(dest, v):
    """An option's value as the setting it makes."""
    if dest == "no_log":
        return "none" if v else "auto"
    if dest == "patience":
        return v or None
    if dest == "level":
        return list(_levels(v))
    return v


def _show(dest, setting_value):
    """A setting as the option that makes it (for messages)."""
    flag = "--" + dest.replace("_", "-")
    if dest in ("no_log", "transform"):
        return f"--transform {setting_value}"
    if dest in ("diff_nonseasonal", "running_mean"):
        neg = "--no-" + dest.replace("_", "-")
        return f"no {neg}" if setting_value else neg
    if dest in ("diff", "calendar", "pad"):
        return flag if setting_value else f"no {flag}"
    if dest == "patience":
        return f"--patience {setting_value or 0}" + ("" if setting_value else " (off)")
    if dest == "level":
        return f"--level {','.join(str(_lv(v)) for v in setting_value)}"
    if setting_value is None:
        return f"no {flag} (from the data)" if dest == "season" else f"no {flag}"
    return f"{flag} {setting_value}"


def _lv(v):
    return int(v) if float(v).is_integer() else v


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
    --epochs (the new total) and --grad-shards under a new process count excepted. The data
    too, unless --data is given. Returns (panel, settings)."""
    from dataclasses import replace

    from .forecast import _Loaded

    ck = _Loaded(ck_path)
    have = ck.settings.to_dict()
    given = _explicit_options(sys.argv[1:] if args.argv is None else args.argv)
    for dest, field in SETTING_FLAGS.items():
        if dest in given and _flag_value(dest, getattr(args, dest)) != have.get(field):
            raise UsageError(
                f"{_show(dest, _flag_value(dest, getattr(args, dest)))} differs from the "
                f"checkpoint in {ck_path.parent}, which was trained with "
                f"{_show(dest, have.get(field))}; --resume takes every setting from the "
                "checkpoint: drop the option, or train a new run (another --out or --force)")
    states = ck.states(ck.model_cfg)
    done = min(s.epoch for s in states)
    settings = ck.settings
    if "epochs" in given:
        if args.epochs <= max(s.epoch for s in states) and ck.complete:
            raise UsageError(f"--epochs {args.epochs}: the checkpoint in {ck_path.parent} has "
                             f"{max(s.epoch for s in states)} epochs already; --epochs is the "
                             "total, pass more to train on")
        settings = replace(settings, epochs=args.epochs)
    early = [s for s in states if s.stopped == "early-stop"]
    if ck.complete and early and not args.continue_early_stopped:
        s = early[0]
        raise UsageError(f"the run in {ck_path.parent} stopped early at epoch {s.epoch} (best "
                         f"validation epoch {s.best_epoch}, patience {settings.patience}); pass "
                         "--continue-early-stopped to train on to --epochs without early "
                         "stopping")
    if ck.complete and not early and all(s.epoch >= settings.epochs for s in states):
        raise UsageError(f"the run in {ck_path.parent} has completed its {done} epochs; pass "
                         f"--epochs N with N > {done} (the new total) to train on")
    panel = _read(args) if given & {"data", "value_column", "time_column", "id_column",
                                    "exog", "freq"} else ck.panel
    return panel, settings


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


def _forecaster(args, settings, comm=None, quiet=None):
    from .forecast import Forecaster

    fc = Forecaster(backend=args.backend, strategy=args.strategy, device=args.device,
                    quiet=args.quiet if quiet is None else quiet, comm=comm,
                    **settings.to_dict())
    fc.continue_early_stopped = getattr(args, "continue_early_stopped", False)
    return fc


def _skip_short(args, fc, panel):
    if not getattr(args, "skip_short", False):
        return panel
    panel, short = fc.skip_short(panel)
    if short:
        err(f"lockstep: skipping {len(short)} series too short for --window "
            f"{fc.settings.window} and {fc.settings.holdout} held-out rows: "
            f"{', '.join(short[:10])}{' ...' if len(short) > 10 else ''}")
    return panel


def cmd_train(args):
    from . import outdir
    from .distributed import is_writer

    if args.ranks is not None:
        return _launch_ranks(args)
    comm = _mpi_world()
    _check_train_args(args)
    if not str(args.out).strip():
        raise UsageError("--out is empty; name the output folder (default: lockstep-out)")
    out = Path(args.out)
    ck_path = out / "checkpoint.npz"
    outdir.check_dir(out)
    for name in RUN_FILES:
        if (out / name).is_dir():
            raise UsageError(f"{out / name} is a folder; move it away or choose another --out")
    _check_existing(args, ck_path)
    if args.resume:
        panel, settings = _resume_settings(args, ck_path)
    else:
        panel, settings = _read(args), _settings_from_args(args)
    writer = is_writer(comm)
    fc = _forecaster(args, settings, comm, quiet=args.quiet or not writer)
    panel = _skip_short(args, fc, panel)
    # Everything that can be refused is refused before the folder is touched: the data and
    # the sizes (memory estimate) by prepare, a foreign or mismatched checkpoint by
    # _resume_states. Under MPI every rank does the same checks on the same inputs, so all
    # refuse together and none is left waiting.
    if comm is not None:
        from .distributed import check_ranks

        check_ranks(comm.size, settings.grad_shards)
    fc.prepare(panel)
    if args.resume:
        fc._resume_states(ck_path)
    if comm is not None:
        return _train_ranks(comm, args, fc, panel, ck_path)
    with outdir.RunFolder(out) as folder:
        _check_existing(args, ck_path)
        return _train_in(folder, args, fc, panel, ck_path)


# MPI launchers set these in every process they start (MPICH/Hydra and SLURM's PMI, Open MPI,
# PMIx): `mpiexec -n R lockstep train ...` then trains data-parallel over the R processes.
_MPI_ENV = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK")


def _mpi_world():
    if not any(v in os.environ for v in _MPI_ENV):
        return None
    from .distributed import world

    return world()


def _launch_ranks(args):
    """lockstep train --ranks R: the same command under mpiexec -n R on this machine. With
    --resume the shards come from the checkpoint."""
    import shutil
    import subprocess

    from .distributed import check_ranks

    if args.ranks < 1:
        raise UsageError(f"--ranks must be >= 1, got {args.ranks}")
    shards = args.grad_shards
    if args.resume:
        from .forecast import _Loaded

        ck_path = Path(args.out) / "checkpoint.npz"
        if ck_path.is_file():
            shards = _Loaded(ck_path).settings.grad_shards
    check_ranks(args.ranks, shards)
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


def _train_ranks(comm, args, fc, panel, ck_path):
    """Data-parallel training: rank 0 locks and writes --out (checkpoints, plots, JSON) as
    one process would; the other ranks train the same bits and write nothing. Any failure
    after the ranks agreed to start aborts the whole job (no rank waits for a dead one)."""
    import contextlib

    from . import outdir
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
            if writer:
                raise UsageError(msg)
            return 2  # rank 0 says it, once
        try:
            if writer:
                return _train_in(folder, args, fc, panel, ck_path)
            fc.fit(panel, checkpoint_path=ck_path, resume=args.resume,
                   on_epoch=lambda fc: None)
            return 1 if any(s.stopped == "diverged" for s in fc.states) else 0
        except BaseException as e:  # noqa: BLE001 - every failure ends every rank
            what = one_line(e) if isinstance(e, LockstepError) else (
                os_error_line(e) if isinstance(e, OSError) else f"{type(e).__name__}: {e}")
            err(f"lockstep: error: rank {comm.rank}: {what}; stopping all ranks")
            comm.Abort(2)
            raise


def _summary(fc) -> str:
    """Which epoch each model kept, and why; a model whose first epoch was its best barely
    trained, and the line says what to change."""
    st = fc.states
    if all(s.best_epoch is None for s in st):
        return "no validation span: each model's last epoch is kept"
    kept = ", ".join(str(s.best_epoch) for s in st)
    ran = ", ".join(f"{s.epoch} ({s.stopped})" for s in st)
    what = "the best recursive forecast of the validation span" if \
        fc.settings.task == "regress" else "the best validation loss"
    line = (f"epoch {kept} kept ({what}) of "
            f"{ran} epochs" + (", one per model" if len(st) > 1 else ""))
    first = sum(s.best_epoch == 1 for s in st)
    if first:
        who = "" if len(st) == 1 else f" for {first} of {len(st)} models"
        line += (f"; epoch 1 was the best{who}: the model barely trained - try a smaller "
                 "--lr, another --window or more --patience")
    return line


def _train_in(folder, args, fc, panel, ck_path):
    from . import plots

    out = folder.path
    saved = []

    def save(fc_):
        fc_.save(ck_path)
        if not saved:
            # The folder never mixes two runs: the plots of an older run go with the
            # first checkpoint of this one, and this run's plots come at its end.
            for name in RUN_FILES[1:]:
                if os.path.lexists(out / name):
                    os.unlink(out / name)
        saved.append(1)

    try:
        # Checkpoints are replaced atomically after each good epoch: an old one (--force)
        # survives until the new run has a good epoch of its own.
        fc.fit(panel, checkpoint_path=ck_path, resume=args.resume, on_epoch=save)
        if saved or args.resume:
            fc.save(ck_path)  # with the calibration
    except OSError as e:
        raise OutputError(os_error_line(e, "training stopped")
                          + ("; the checkpoint of the last good epoch is intact" if saved
                             else "; nothing was written")) from None
    st = fc.settings
    diverged = any(s.stopped == "diverged" for s in fc.states)
    result = {"backend": fc.trainer.run_name, "series": len(panel), "freq": panel.freq,
              "season": fc.season, "epochs": fc.state.epoch, "stopped": fc.state.stopped,
              "best_epoch": fc.state.best_epoch,
              "members": [{"epochs": s.epoch, "stopped": s.stopped, "best_epoch": s.best_epoch}
                          for s in fc.states],
              "transforms": dict(zip(*np.unique(fc.tf.names(), return_counts=True)))
              if st.task == "regress" else None,
              "checkpoint": str(ck_path) if saved or args.resume else None,
              "history": fc.history}
    if result["transforms"]:
        result["transforms"] = {str(k): int(v) for k, v in result["transforms"].items()}
    if diverged:
        # Said first, so that nothing after it (plots of huge losses) can hide it.
        err("lockstep: training diverged" + ("; the checkpoint holds the last good epoch"
                                             if saved or args.resume else
                                             " in the first epoch; nothing was written"))
        if not saved and not args.resume:
            if args.json:
                _emit_json(result)
            return 1
    frame, res = None, None
    if st.holdout > 0:
        res = fc.evaluate_holdout()
        result["holdout"] = _json_safe(res)
        frame = fc.predict(st.holdout, at_end=False)
    else:
        frame = fc.predict(st.window, at_end=True)
    if not diverged and not np.isfinite(frame["yhat"].to_numpy()).all():
        # every loss was finite, yet the parameters send the recursion to inf (Adam at a huge
        # --lr): a diverged run all the same, said before anything else
        diverged = True
        err("lockstep: training diverged: the forecasts are not finite although every loss "
            "was; try a smaller --lr or --clip (the checkpoint holds the last epoch)")
    result["forecast"] = [float(v) if np.isfinite(v) else None for v in frame["yhat"]]
    try:
        plots.losses(fc.history, out / "losses.png",
                     title=f"{panel.source}: {fc.trainer.run_name}",
                     best_epoch=fc.state.best_epoch,
                     loss_name="MSE (transformed, scaled series)" if st.task == "regress"
                     else "cross-entropy of the next class (nats)")
        plots.forecast(panel, out / "forecast.png", frame,
                       title=f"{panel.source}: forecast of the last {st.holdout} points"
                       if st.holdout else f"{panel.source}: forecast",
                       actual_from=np.diff(panel.indptr) - st.holdout if st.holdout else None,
                       baseline=fc.baseline_frame(st.holdout, 6) if st.holdout else None,
                       baseline_label=fc.baseline_name)
        result["plots"] = [str(out / "losses.png"), str(out / "forecast.png")]
    except plots.PlotUnavailable as e:
        err(f"lockstep: no plots: {e}")
    except OSError as e:
        raise OutputError(os_error_line(e, "plots") + "; the checkpoint is intact") from None
    if res is not None:
        _score_table(args, res, f"forecast of the last {st.holdout} points"
                     + (f" of {len(panel)} series" if len(panel) > 1 else "")
                     + f" ({fc.trainer.run_name}):", fc)
    if res is not None and "classes" in res:
        c = res["classes"]
        say(args, f"class of the next change (0 falls, 1 middle, 2 rises), one step ahead over "
            f"the last {st.holdout} points: accuracy {c['accuracy']:.3f} (always class "
            f"{c['majority_class']}: {c['majority_accuracy']:.3f})")
        say(args, "  confusion (rows: true class, columns: predicted):")
        for j, row in enumerate(c["confusion"]):
            say(args, f"  {j}  " + " ".join(f"{v:4d}" for v in row))
    if st.task == "regress":
        say(args, "transforms: " + ", ".join(f"{k} {v} series" if len(panel) > 1 else k
                                             for k, v in result["transforms"].items()))
        if st.theta_weight:
            say(args, f"mix: {1 - st.theta_weight:g} model + {st.theta_weight:g} Theta method "
                "after the log (--theta-weight; 0: the model alone)")
    say(args, "selection: " + _summary(fc))
    say(args, f"checkpoint: {ck_path}  ({fc.state.epoch} epochs, {fc.state.stopped})")
    if args.json:
        _emit_json(result)
    return 1 if diverged else 0


def _json_safe(res):
    """A result with NaN metrics as null (JSON has no NaN)."""
    import math

    if isinstance(res, dict):
        return {str(k): _json_safe(v) for k, v in res.items()}
    if isinstance(res, list):
        return [_json_safe(v) for v in res]
    if isinstance(res, float) and not math.isfinite(res):
        return None
    if isinstance(res, np.generic):
        return _json_safe(res.item())
    return res


def _score_table(args, res, title, fc=None):
    """One series: the model beside the baseline (RMSE, MAE, MAPE, sMAPE, MASE). Many: one
    line per series (the first 20) and the means."""
    say(args, title)
    o = res["overall"]
    rows = res["windows"]
    if len({r["unique_id"] for r in rows}) == 1 and len(rows) == 1:
        m, b = rows[0]["model"], rows[0]["baseline"]
        name = f"lockstep ({fc.trainer.run_name})" if fc else "lockstep"
        w = max(len(name), len(res["baseline"])) + 2
        say(args, f"  {'':<{w}}{'RMSE':>10}{'MAE':>10}{'MAPE %':>10}{'sMAPE %':>10}"
            f"{'MASE':>8}")
        for label, v in ((name, m), (res["baseline"], b)):
            say(args, f"  {label:<{w}}{v['rmse']:10.3f}{v['mae']:10.3f}{v['mape']:10.3f}"
                f"{v['smape']:10.3f}{v['mase']:8.3f}")
    else:
        say(args, f"  {'series':<18}{'cutoff':<12}{'MASE':>8}{'sMAPE %':>9}{'RMSE':>11}"
            f"{'baseline MASE':>15}")
        for r in rows[:20]:
            m, b = r["model"], r["baseline"]
            say(args, f"  {r['unique_id'][:17]:<18}{r['cutoff'][:11]:<12}{m['mase']:8.3f}"
                f"{m['smape']:9.2f}{m['rmse']:11.4g}{b['mase']:15.3f}")
        if len(rows) > 20:
            say(args, f"  ... {len(rows) - 20} more (all of them in --json)")
        say(args, f"  mean over {len(rows)} forecasts: MASE {o['model']['mase']:.3f}, "
            f"sMAPE {o['model']['smape']:.2f} %, RMSE {o['model']['rmse']:.4g}; "
            f"{res['baseline']}: MASE {o['baseline']['mase']:.3f}, sMAPE "
            f"{o['baseline']['smape']:.2f} %")
    say(args, "  interval coverage: " + ", ".join(f"{lv} %: {c * 100:.1f} %"
                                                   for lv, c in o["coverage"].items()))


# ---- forecast ------------------------------------------------------------------------------

def cmd_forecast(args):
    from . import outdir
    from .config import MAX_HORIZON
    from .forecast import Forecaster

    if not 1 <= args.horizon <= MAX_HORIZON:
        raise UsageError(f"--horizon must be in [1, {MAX_HORIZON}] steps, got {args.horizon}")
    levels = _levels(args.level)
    if args.plot:
        from . import plots

        plots.check_path(args.plot)
    if args.out:
        outdir.check_parent(args.out, "--out")
    fc = Forecaster.load(args.checkpoint, backend=args.backend)
    frame = fc.predict(args.horizon, future=args.future, level=levels, at_end=True)
    if fc.panel.ds is not None:
        from .data import calendar

        frame["ds"] = calendar.stamps(frame["ds"].to_numpy())
    if args.out:
        outdir.write_text(args.out, frame.to_csv(index=False, float_format="%.17g"))
    if args.plot:
        from . import plots

        plots.forecast(fc.panel, args.plot, frame,
                       title=f"{fc.panel.source}: {args.horizon}-step forecast")
    say(args, frame.to_string(index=False))
    if args.json:
        _emit_json({"checkpoint": str(args.checkpoint), "series": len(fc.panel),
                    "columns": list(frame.columns), "rows": frame.to_dict("records"),
                    "forecast": frame["yhat"].tolist()})
    return 0


def _levels(text):
    try:
        levels = tuple(float(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        levels = ()
    if not levels or not all(0 < v < 100 for v in levels):
        raise UsageError(f"--level must be percentages in (0, 100) separated by commas, got "
                         f"{text!r}; e.g. --level 80,95")
    return tuple(int(v) if v.is_integer() else v for v in levels)


def cmd_backtest(args):
    from dataclasses import replace

    from . import plots

    for name in ("horizon", "windows", "epochs"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.step is not None and args.step < 1:
        raise UsageError(f"--step must be >= 1, got {args.step}")
    if args.plot:
        plots.check_path(args.plot)
    step = args.step or args.horizon
    held = args.horizon + (args.windows - 1) * step
    settings = replace(_settings_from_args(args), holdout=held)
    fc = _forecaster(args, settings)
    panel = _skip_short(args, fc, _read(args))
    fc.prepare(panel)  # refuse what cannot train before the first window
    fc = fc.clone(holdout=0)
    res = fc.backtest_result(panel, args.horizon, args.windows, step, refit=not args.no_refit)
    res["backend"] = fc.backend_name
    _score_table(args, res, f"rolling-origin backtest of {len(panel)} series: {args.windows} "
                 f"windows of {args.horizon} steps, origins {step} apart, "
                 f"{'refit before each' if not args.no_refit else 'trained once'}:")
    if args.plot:
        plots.backtest(res, args.plot, title=f"{panel.source}: backtest")
    if args.json:
        _emit_json(_json_safe(res))
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
    args.json_fd = None
    if args.json_file:
        if args.json_file.is_dir():
            raise UsageError(f"--json-file {args.json_file} is a folder; name a file")
        outdir.check_parent(args.json_file, "--json-file")
        t = outdir.target(args.json_file, "--json-file")
        if t.direct:  # a FIFO without a reader is refused now, not after the work
            args.json_fd = outdir.open_direct(t, "--json-file")
    try:
        return bench.cli_bench(args)
    finally:
        if args.json_fd is not None:
            os.close(args.json_fd)


# ---- parser --------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    _MISSING = object()  # the default of a required option while it is parsed
    """argparse with the project's one-line errors: ``lockstep: error: <what>; see
    'lockstep train --help'`` and exit code 2, instead of the whole usage text."""

    def error(self, message):
        err(f"lockstep: error: {one_line(message)}; see '{self.prog} --help'")
        raise SystemExit(2)

    def parse_known_args(self, args=None, namespace=None):
        """A subcommand's parser reports an unrecognized option itself (so that the hint
        names 'lockstep train --help', not 'lockstep --help'), and before a missing required
        option: `backtest --horizn 12` is a typo of --horizon, not a missing --horizon."""
        if " " not in self.prog:  # the top level: its subcommand's parser reports
            return super().parse_known_args(args, namespace)
        required = [a for a in self._actions if a.required and a.option_strings]
        saved = [(a, a.default) for a in required]
        for a in required:
            a.required, a.default = False, self._MISSING
        try:
            ns, extras = super().parse_known_args(args, namespace)
        finally:
            for a, default in saved:
                a.required, a.default = True, default
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        missing = [a for a in required if getattr(ns, a.dest, None) is self._MISSING]
        if missing:
            self.error("the following arguments are required: "
                       + ", ".join("/".join(a.option_strings) for a in missing))
        return ns, extras


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
                            help="a bundled real data set: airpassengers (monthly 1949-1960), "
                            "elec_equip (monthly 1995-2016), co2 (monthly 1965-2001), nile "
                            "(yearly 1871-1970), macro (8 quarterly US series, 1959-2009); or "
                            "a CSV or Parquet path: a long table (unique_id, ds, y, covariates) "
                            "or a wide one (a time column and one column per series)")
        parser.add_argument("--value-column", action="append", metavar="NAME",
                            help="value column (long table: the one target, default y; wide "
                            "table: repeat to pick series, default every numeric column)")
        parser.add_argument("--time-column", metavar="NAME",
                            help="time column (default: ds, else the first column that parses "
                            "as dates)")
        parser.add_argument("--id-column", metavar="NAME",
                            help="series id column of a long table (default: unique_id when "
                            "the table has one)")
        parser.add_argument("--freq", help="the time column's frequency as a pandas alias (MS, "
                            "QS, W, D, h); default: inferred")

    d = add("data", "describe a data set: per series its rows, span, frequency and season")
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
        t.add_argument("--no-log", action="store_true", help="no log transform (--transform none)")
        t.add_argument("--diff", action="store_true",
                       help="also difference every series at lag 1 (default: no)")
        t.add_argument("--no-diff-nonseasonal", dest="diff_nonseasonal", action="store_false",
                       help="leave the trend of the series without a seasonal difference (no "
                       "season, or too short for one); by default they are differenced at "
                       "lag 1")
        t.add_argument("--season", type=int, default=None,
                       help="the seasonal period: lag of the seasonal difference and of the "
                       "seasonal-naive baseline (default: inferred from the dates, e.g. 12 for "
                       "monthly data; 0 = none)")
        t.add_argument("--seasonality", choices=["difference", "indices"],
                       default=dflt.seasonality,
                       help="how the season leaves each series: a seasonal difference, or "
                       "seasonal indices removed after the log (where the series' season is "
                       "significant) followed by the lag-1 difference")
        t.add_argument("--scale", choices=["rms", "standard", "minmax", "none"],
                       default=dflt.scale,
                       help="how each series' model-space values are scaled: by their root "
                       "mean square (no mean subtracted, so no window sees its future's "
                       "drift), or centred and scaled by the training part's mean and "
                       "standard deviation (standard) or range (minmax)")
        t.add_argument("--no-running-mean", dest="running_mean", action="store_false",
                       help="do not centre each value on the mean of the values before it, "
                       "nor give that running mean as an input (on by default)")
        t.add_argument("--pad", action="store_true",
                       help="train series shorter than the window too: their first windows "
                       "start before their first value, padded with zeros (default: such "
                       "series are refused, or dropped by --skip-short)")
        t.add_argument("--theta-weight", type=float, default=None, metavar="W",
                       help="the Theta method's share of each forecast: (1 - W) model + W "
                       "Theta, mixed after the log (default: 0.25 for task regress without "
                       "covariates, 0 with them, which Theta cannot see; 0 = the model alone)")
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
                            help="prediction interval levels in percent (split conformal, per "
                            "horizon step)")

    def panel_args(t):
        """Options of the data and the model that every table takes, one series or many."""
        t.add_argument("--transform", choices=["auto", "log", "log1p", "none"],
                       default=dflt.transform,
                       help="first transform of each series: auto takes the log of a series "
                       "whose training values are all positive and leaves the others (zeros, "
                       "negatives) as they are")
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
        t.add_argument("--ensemble", type=int, default=dflt.ensemble, metavar="N",
                       help="models from seeds --seed, --seed+1, ...; their forecasts averaged")
        t.add_argument("--head", choices=["recursive", "direct"], default=dflt.head,
                       help="recursive: forecast one step, feed it back in; direct: each window "
                       "predicts the next --head-steps values at once (longer horizons in "
                       "blocks)")
        t.add_argument("--head-steps", type=int, default=dflt.head_steps, metavar="N",
                       help="values the direct head predicts per window (with --head direct)")

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
    bt.set_defaults(func=cmd_backtest, grad_shards=1, resume=False)

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
    c.add_argument("--quiet", action="store_true",
                   help="no progress on stderr (the results stay on stdout)")
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
    b.add_argument("--quiet", action="store_true",
                   help="no progress on stderr (the results stay on stdout)")
    b.set_defaults(func=cmd_bench)
    return p


def _other_rank() -> bool:
    """A process of an MPI job other than rank 0: it stays silent about errors, which every
    rank finds alike (rank 0 says them once)."""
    for v in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK"):
        if v in os.environ:
            return os.environ[v] != "0"
    return False


def _probe_stdout():
    """Write nothing to stdout: a full device (`> /dev/full`) or an I/O error refuses the
    command now, before any work, instead of after a run whose folder it would leave behind.
    (Nothing written to a pipe, a terminal or a file is nothing; no stdout is no probe.)"""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return
    try:
        os.write(fd, b"")
    except OSError as e:
        if e.errno not in (errno.EBADF, errno.EPIPE, errno.EAGAIN):
            raise OutputError(f"cannot write to standard output ({e.strerror}); send it to a "
                              "file, a pipe or the terminal") from None


def main(argv=None):
    console = signal.getsignal(signal.SIGINT) is _interrupted_early
    if console:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # from here: _run's try
    try:
        return _run(argv)
    finally:
        if console and argv is None:  # the command's process: its work is done and said;
            # a ^C while the interpreter shuts down is ignored, not a traceback from atexit
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run(argv):
    report = (lambda msg: None) if _other_rank() else err
    args = None
    try:
        # parsed inside the try, so that an interrupt here is one line too
        args = build_parser().parse_args(argv)
        args.argv = None if argv is None else list(argv)  # for train --ranks, which re-runs it
        _probe_stdout()
        return args.func(args)
    except LockstepError as e:
        report(f"lockstep: error: {one_line(e)}")
        return 2
    except BrokenPipeError:  # `lockstep forecast ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:  # disk full, permissions, I/O errors outside the checked paths
        report(f"lockstep: error: {os_error_line(e)}")
        return 2
    except MemoryError:
        report("lockstep: error: out of memory; choose smaller sizes (--hidden, --window, "
               "--batch-size) or a smaller data file")
        return 2
    except KeyboardInterrupt:
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second ^C cannot cut this line
        except ValueError:  # not the main thread
            pass
        training = getattr(args, "command", None) == "train"
        err("lockstep: interrupted" + ("; the last checkpoint is intact" if training else ""))
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
