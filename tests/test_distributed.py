"""Data-parallel training on MPI (lockstep.distributed): real mpiexec jobs on this machine
(oversubscribed) give the same per-epoch losses and final parameters for R = 1, 2, 3, 4
processes, equal to one process without MPI, for the same grad_shards S = 12."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lockstep import harness, reference
from lockstep.distributed import check_ranks, my_shards, valid_ranks
from lockstep.config import ConfigError

DRIVER = Path(__file__).resolve().parent / "mpi_driver.py"


def _mpiexec():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None, "mpi4py is not installed (pip install 'lockstep[mpi]')"
    exe = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
    return (exe, None) if exe else (None, "no mpiexec on PATH (pip install 'lockstep[mpi]')")


MPIEXEC, WHY = _mpiexec()
needs_mpi = pytest.mark.skipif(MPIEXEC is None, reason=f"MPI unavailable: {WHY}")


def _run(R, *args, no_mpi=False):
    cmd = [sys.executable, str(DRIVER), *map(str, args)]
    if no_mpi:
        cmd.append("--no-mpi")
    else:
        cmd = [MPIEXEC, "-n", str(R), *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def _results(p):
    assert p.returncode == 0, p.stderr
    (line,) = [ln for ln in p.stdout.splitlines() if ln.startswith("[")]
    return json.loads(line)


# numpy and cpu, both dtypes, SGD and Adam, clipping on (Adam) and off (SGD); cuda-raw on emu
CONFIGS = [("numpy", "float32", "sgd", 0.0), ("numpy", "float64", "adam", 0.1),
           ("cpu", "float32", "adam", 0.1), ("cpu", "float64", "sgd", 0.0),
           # the GPU backend's path (partials through host buffers), on the SIMT emulator
           ("cuda-raw:fused@emu", "float32", "adam", 0.1),
           # stacked layers with dropout: each group gets its columns of the batch's masks
           ("cpu", "float64", "adam", 0.1, "--layers", 3, "--dropout", 0.3)]


@needs_mpi
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(map(str, c)))
def test_same_bits_for_any_number_of_processes(config):
    head, opts = config[:4], config[4:]
    want = _results(_run(1, *head, 12, *opts, no_mpi=True))
    assert len(want) == 1
    for R in (1, 2, 3, 4):
        got = _results(_run(R, *head, 12, *opts))
        assert [r["rank"] for r in got] == list(range(R))
        for r in got:  # every rank holds the same parameters (no broadcast needed)
            assert (r["losses"], r["params"]) == (want[0]["losses"], want[0]["params"]), \
                f"R={R} rank {r['rank']}"


@pytest.mark.parametrize("layers,dropout", [(1, 0.0), (3, 0.3)])
def test_one_process_equals_the_sharded_reference(layers, dropout):
    # the driver's single-process answer is reference.train with S = 12 (so the MPI test above
    # checks against the contract, not just against itself)
    p = _run(1, "numpy", "float64", "adam", 0.1, 12, "--layers", layers, "--dropout", dropout,
             no_mpi=True)
    got = _results(p)[0]
    mc, tc, params, x, y = harness.make_problem(2, 6, 2, 4, 13, np.float64, optimizer="adam",
                                                clip=0.1, grad_shards=12, epochs=3, n=30,
                                                layers=layers, dropout=dropout)
    final, hist = reference.train(params, (x, y), tc)
    assert got["losses"] == [float(v).hex() for v in hist["train_loss"]]
    assert got["params"] == harness.params_sha256(final)


@needs_mpi
def test_a_process_count_that_does_not_divide_the_shards_is_refused_on_every_rank():
    p = _run(5, "numpy", "float32", "sgd", 0.0, 12)
    assert p.returncode == 2
    # every rank says it (mpiexec interleaves their stderr, so count the sentence)
    assert p.stderr.count("lockstep: 5 processes cannot own equal blocks") == 5
    assert "use 1, 2, 3, 4, 6, 12 processes" in p.stderr and "Traceback" not in p.stderr


def test_rank_order_would_change_the_bits():
    # What the R-invariance test guards against: each rank summing its own groups first, then
    # the ranks' sums combined in rank order. For R = 2 and 3 that is another order of the
    # same additions, and the bits differ from the group order of the contract.
    mc, tc, params, x, y = harness.make_problem(3, 9, 2, 5, 13, np.float32, grad_shards=12)
    xb, yb = reference.take_batch(x, y, np.arange(13), tc)
    n = reference.loss_terms_count(5, 13, 2, tc)
    parts = [reference.shard_partial(params, *reference.shard_batch(xb, yb, tc, lo, hi), tc, n)
             for lo, hi in reference.shard_bounds(13, 12)]
    _, want = reference.combine_partials(parts)
    for R in (2, 3):
        per_rank = [reference.combine_partials([parts[g] for g in my_shards(r, R, 12)])
                    for r in range(R)]
        _, rank_order = reference.combine_partials(per_rank)
        assert any(not np.array_equal(rank_order[k], want[k]) for k in reference.PARAM_NAMES)


def test_rank_rules():
    assert valid_ranks(12) == [1, 2, 3, 4, 6, 12]
    assert [list(my_shards(r, 3, 12)) for r in range(3)] == [[0, 1, 2, 3], [4, 5, 6, 7],
                                                            [8, 9, 10, 11]]
    check_ranks(4, 12)
    with pytest.raises(ConfigError, match="use 1, 2, 3, 4, 6, 12 processes"):
        check_ranks(5, 12)


# ---- the command line ---------------------------------------------------------------------

def _cli(*args, mpi=0, timeout=300):
    cmd = [sys.executable, "-m", "lockstep.cli", "train", *map(str, args)]
    if mpi:
        cmd = [MPIEXEC, "-n", str(mpi), *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def _model(folder):
    """The model section's arrays (every member's parameters, optimizer state, histories,
    transforms and calibration) of a run's checkpoint."""
    from lockstep import checkpoint
    return checkpoint.read(Path(folder) / "checkpoint.npz")["sections"]["model"]["arrays"]


def _params(folder):
    return {k.split(".")[-1]: v for k, v in _model(folder).items()
            if k.startswith("m0.params.")}


def _epoch(folder):
    from lockstep import checkpoint
    meta = checkpoint.read(Path(folder) / "checkpoint.npz")["sections"]["model"]["meta"]
    return meta["members"][-1]["epoch"]


def _same_model(a, b, what):
    got, want = _model(a), _model(b)
    assert sorted(got) == sorted(want), what
    for k in want:
        assert np.array_equal(got[k], want[k]), (what, k)


TRAIN = ("--epochs", 6, "--hidden", 8, "--grad-shards", 4, "--quiet", "--backend", "cpu",
         "--ensemble", 1)


@needs_mpi
def test_cli_under_mpiexec_and_with_ranks_equals_one_process(tmp_path):
    one = _cli("--out", tmp_path / "one", *TRAIN)
    assert one.returncode == 0, one.stderr
    two = _cli("--out", tmp_path / "two", *TRAIN, mpi=2)
    assert two.returncode == 0, two.stderr
    four = _cli("--out", tmp_path / "four", *TRAIN, "--ranks", 4)
    assert four.returncode == 0, four.stderr
    for run in ("two", "four"):
        _same_model(tmp_path / run, tmp_path / "one", run)
        # rank 0 alone wrote: the same files as one process, no debris of other ranks
        assert sorted(p.name for p in (tmp_path / run).iterdir()) == \
            sorted(p.name for p in (tmp_path / "one").iterdir())
    # only rank 0 reports
    assert (two.stdout + two.stderr).count("checkpoint:") == 1


@needs_mpi
def test_cli_refuses_ranks_that_do_not_divide_the_shards(tmp_path):
    p = _cli("--out", tmp_path / "x", *TRAIN, "--ranks", 3)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "use 1, 2, 4 processes" in p.stderr
    p = _cli("--out", tmp_path / "y", *TRAIN, mpi=3)
    assert p.returncode == 2 and p.stderr.count("use 1, 2, 4 processes") == 1  # rank 0 alone
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def _rank_pids(out):
    """PIDs of the ranks training into ``out``, by their PMI rank."""
    ranks = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().split(b"\0")
            env = (d / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"lockstep.cli" in cmd and str(out).encode() in cmd:
            for e in env:
                if e.startswith(b"PMI_RANK="):
                    ranks[int(e.split(b"=")[1])] = int(d.name)
    return ranks


@needs_mpi
def test_a_killed_rank_ends_the_job_and_resume_continues_bit_exactly(tmp_path):
    import os
    import signal
    import time

    from lockstep import checkpoint

    out = tmp_path / "killed"
    long = ("--hidden", 8, "--grad-shards", 2, "--patience", 0, "--quiet", "--backend", "cpu",
            "--ensemble", 1)
    job = subprocess.Popen([MPIEXEC, "-n", "2", sys.executable, "-m", "lockstep.cli", "train",
                            "--out", str(out), "--epochs", "100000", *map(str, long)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            ck = out / "checkpoint.npz"
            try:
                if ck.is_file() and _epoch(out) >= 2:
                    break
            except checkpoint.CheckpointError:  # replaced while read
                pass
            time.sleep(0.1)
        pids = _rank_pids(out)
        assert set(pids) == {0, 1}, pids
        os.kill(pids[1], signal.SIGKILL)
        job.communicate(timeout=60)  # every rank ends: no hang
    finally:
        if job.poll() is None:
            job.kill()
            job.communicate()
    assert job.returncode != 0
    k = _epoch(out)  # intact, loadable
    assert k >= 2
    # resume (on 2 ranks) to k + 3 epochs == an uninterrupted run of k + 3 epochs
    res = _cli("--out", out, "--resume", "--epochs", k + 3, *long, mpi=2)
    assert res.returncode == 0, res.stderr
    ref = _cli("--out", tmp_path / "straight", "--epochs", k + 3, *long)
    assert ref.returncode == 0, ref.stderr
    _same_model(out, tmp_path / "straight", "resumed")


STORES = Path(__file__).resolve().parents[1] / "examples" / "stores.csv"
PANEL = ("--data", STORES, "--exog", "promo", "--calendar", "--ensemble", 2, "--holdout", 6,
         "--epochs", 3, "--hidden", 5, "--window", 6, "--grad-shards", 12, "--quiet",
         "--backend", "cpu")


@needs_mpi
def test_many_series_with_covariates_and_an_ensemble_same_bits_for_any_process_count(tmp_path):
    """One global model of four series (covariates, calendar, two ensemble members): the
    checkpoint's every array is the same for one process without MPI and R = 1, 3 (mpiexec),
    2 and 4 (--ranks) processes; only rank 0 reports."""
    one = _cli("--out", tmp_path / "one", *PANEL)
    assert one.returncode == 0, one.stderr
    for R, how in ((1, "mpi"), (2, "ranks"), (3, "mpi"), (4, "ranks")):
        out = tmp_path / f"r{R}"
        p = _cli("--out", out, *PANEL, "--ranks", R) if how == "ranks" else \
            _cli("--out", out, *PANEL, mpi=R)
        assert p.returncode == 0, p.stderr
        assert (p.stdout + p.stderr).count("checkpoint:") == 1
        _same_model(out, tmp_path / "one", f"R={R}")


@needs_mpi
def test_many_series_resume_on_ranks_takes_the_shards_from_the_checkpoint(tmp_path):
    """--resume --ranks 2 of a many-series run made with --grad-shards 12 (the command line's
    default is 1) continues on two processes, equal to an uninterrupted run; an error under
    MPI is printed once."""
    part = _cli("--out", tmp_path / "a", *PANEL)
    assert part.returncode == 0, part.stderr
    more = _cli("--out", tmp_path / "a", "--resume", "--epochs", 5, "--ranks", 2)
    assert more.returncode == 0, more.stderr
    whole = _cli("--out", tmp_path / "b", *[a if a != 3 else 5 for a in PANEL])
    assert whole.returncode == 0, whole.stderr
    _same_model(tmp_path / "a", tmp_path / "b", "resumed on 2 ranks")
    bad = _cli("--out", tmp_path / "a", *PANEL, mpi=2)  # exists: refused, said once
    assert bad.returncode == 2 and bad.stderr.count("lockstep: error:") == 1, bad.stderr


@needs_mpi
def test_numba_cuda_under_the_simulator_trains_data_parallel():
    # Numba's simulator is slow: one strategy, R = 2 only (R = 1..4 run above for the others)
    import os

    want = _results(_run(1, "numpy", "float32", "adam", 0.1, 12, no_mpi=True))[0]
    cmd = [MPIEXEC, "-n", "2", sys.executable, str(DRIVER), "numba-cuda:per-sample@sim",
           "float32", "adam", "0.1", "12"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "NUMBA_ENABLE_CUDASIM": "1"})
    for r in _results(p):
        assert (r["losses"], r["params"]) == (want["losses"], want["params"]), r["rank"]
