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


# numpy and cpu, both dtypes, SGD and Adam, clipping on (Adam) and off (SGD)
CONFIGS = [("numpy", "float32", "sgd", 0.0), ("numpy", "float64", "adam", 0.1),
           ("cpu", "float32", "adam", 0.1), ("cpu", "float64", "sgd", 0.0)]


@needs_mpi
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(map(str, c)))
def test_same_bits_for_any_number_of_processes(config):
    want = _results(_run(1, *config, 12, no_mpi=True))
    assert len(want) == 1
    for R in (1, 2, 3, 4):
        got = _results(_run(R, *config, 12))
        assert [r["rank"] for r in got] == list(range(R))
        for r in got:  # every rank holds the same parameters (no broadcast needed)
            assert (r["losses"], r["params"]) == (want[0]["losses"], want[0]["params"]), \
                f"R={R} rank {r['rank']}"


def test_one_process_equals_the_sharded_reference():
    # the driver's single-process answer is reference.train with S = 12 (so the MPI test above
    # checks against the contract, not just against itself)
    p = _run(1, "numpy", "float64", "adam", 0.1, 12, no_mpi=True)
    got = _results(p)[0]
    mc, tc, params, x, y = harness.make_problem(2, 6, 2, 4, 13, np.float64, optimizer="adam",
                                                clip=0.1, grad_shards=12, epochs=3, n=30)
    _, hist = reference.train(params, (x, y), tc)
    assert got["losses"] == [float(v).hex() for v in hist["train_loss"]]


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
