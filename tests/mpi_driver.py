"""One data-parallel training run, started by tests/test_distributed.py under mpiexec (or
alone, with --no-mpi, for the single-process answer). Rank 0 prints one JSON line: per rank,
its rank, the number of ranks, the per-epoch losses as hex and a hash of the final parameters.

    mpiexec -n R python tests/mpi_driver.py BACKEND DTYPE OPTIMIZER CLIP S [--no-mpi]
        [--layers L --dropout P]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lockstep import harness  # noqa: E402
from lockstep.config import ConfigError  # noqa: E402
from lockstep.train import Trainer  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("backend")
    ap.add_argument("dtype")
    ap.add_argument("optimizer")
    ap.add_argument("clip", type=float)
    ap.add_argument("shards", type=int)
    ap.add_argument("--no-mpi", action="store_true")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--dropout", type=float, default=0.0)
    a = ap.parse_args()
    dt = np.dtype(a.dtype)
    # B = 13 (groups of 2 and 1 for S = 12), N = 30 (a short last batch of 4: empty groups)
    mc, tc, params, x, y = harness.make_problem(2, 6, 2, 4, 13, dt, optimizer=a.optimizer,
                                                clip=a.clip, grad_shards=a.shards,
                                                epochs=a.epochs, n=30, layers=a.layers,
                                                dropout=a.dropout)
    comm = None
    if not a.no_mpi:
        from lockstep.distributed import world
        comm = world()
    rank = 0 if comm is None else comm.rank
    try:
        name, _, rest = a.backend.partition(":")  # e.g. cuda-raw:fused@emu
        strategy, _, device = rest.partition("@")
        trainer = Trainer(mc, tc, backend=name, dtype=dt, quiet=True, comm=comm,
                          strategy=strategy or None, device=device or None)
    except ConfigError as e:  # the same condition on every rank: all exit, none waits
        print(f"lockstep: {e}", file=sys.stderr)
        sys.exit(2)
    state = trainer.fit(trainer.new_state(params), (x, y))
    row = {"rank": rank, "ranks": 1 if comm is None else comm.size,
           "losses": [float(v).hex() for v in state.train_loss],
           "params": harness.params_sha256(state.params)}
    rows = [row] if comm is None else comm.gather(row)  # one line, from rank 0
    if rank == 0:
        print(json.dumps(rows), flush=True)


if __name__ == "__main__":
    main()
