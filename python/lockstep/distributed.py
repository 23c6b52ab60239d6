"""Data-parallel training on MPI (mpi4py) whose bits do not depend on the number of processes.

The order of every sum is fixed by the training setting ``grad_shards`` S (docs/arithmetic.md,
"Sharded gradients"), never by the number of processes R: each batch is cut into S contiguous
groups, rank r computes the partials (loss sum, gradients) of the groups
[r*S/R, (r+1)*S/R) (contiguous blocks, so R must divide S), one ``Allgather`` of a fixed-size
buffer brings every group's partials to every rank in group order, and every rank adds them in
that order and runs clipping and the optimizer itself. The parameters therefore stay identical
on all ranks without a broadcast, and equal those of one process with the same S.

Only rank 0 writes (checkpoints, plots, JSON): see ``is_writer``. docs/distributed.md says how
to launch it (mpiexec, a hostfile, SLURM's srun).
"""

from __future__ import annotations

import numpy as np

from . import reference
from .config import ConfigError


def world():
    """mpi4py's COMM_WORLD, or a ConfigError saying how to install MPI."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ConfigError(f"data-parallel training needs mpi4py and an MPI library ({e}); "
                          "pip install 'lockstep[mpi]'") from None
    return MPI.COMM_WORLD


def valid_ranks(S: int) -> list:
    """The process counts that own whole, equal blocks of S groups: the divisors of S."""
    return [r for r in range(1, S + 1) if S % r == 0]


def check_ranks(R: int, S: int):
    """A ConfigError naming the valid process counts unless R divides S."""
    if S % R:
        raise ConfigError(f"{R} processes cannot own equal blocks of grad_shards = {S} groups; "
                          f"use {', '.join(map(str, valid_ranks(S)))} processes or a "
                          f"grad_shards that {R} divides (e.g. --grad-shards {R * max(1, S // R)})")


def my_shards(rank: int, R: int, S: int) -> range:
    """The groups rank owns: a contiguous block of S / R."""
    k = S // R
    return range(rank * k, (rank + 1) * k)


class DataParallel:
    """A backend that trains data-parallel over ``comm``: it wraps a local backend that can
    compute one group's partials (``shard_partial``) and apply given gradients
    (``apply_grads``); everything else (evaluate, predict, state) is the local backend's, run
    replicated on every rank."""

    def __init__(self, local, comm):
        if not hasattr(local, "shard_partial"):
            raise ConfigError(f"backend {local.run_name} cannot train data-parallel yet; "
                              "use backend numpy, cpu, cuda-raw or numba-cuda")
        self.local, self.comm = local, comm
        self.S = local.train_cfg.grad_shards
        check_ranks(comm.size, self.S)
        self.mine = my_shards(comm.rank, comm.size, self.S)

    def __getattr__(self, name):  # dtype, train_cfg, load, state, evaluate, predict, ...
        return getattr(self.local, name)

    @property
    def run_name(self):
        return f"{self.local.run_name} x{self.comm.size} ranks"

    def train_epoch(self, batches):
        be, S, dt = self.local, self.S, self.local.dtype
        I, H, O = be.model_cfg.input_size, be.model_cfg.hidden_size, be.model_cfg.output_size
        L = be.model_cfg.num_layers
        P = 4 * H * (I + H + 1) + (L - 1) * 4 * H * (2 * H + 1) + O * (H + 1)
        T = np.shape(batches.x)[0]
        mine = np.empty((len(self.mine), 1 + P), dt)  # per group: loss sum, then gradients
        every = np.empty((S, 1 + P), dt)
        losses = []
        for b, idx in enumerate(batches.indices):
            idx = np.asarray(idx)
            nt = reference.loss_terms_count(T, len(idx), O, be.train_cfg)
            bounds = reference.shard_bounds(len(idx), S)
            for k, g in enumerate(self.mine):
                lo, hi = bounds[g]
                lsum, grads = be.shard_partial(
                    batches.x, batches.y, idx[lo:hi], nt, data_key=batches.data_key,
                    masks=reference.shard_masks(batches.mask(b), lo, hi))
                mine[k, 0] = lsum
                mine[k, 1:] = grads
            self.comm.Allgather(mine, every)  # rank blocks in rank order = group order
            lsum, grads = every[0, 0], every[0, 1:].copy()
            for g in range(1, S):
                lsum = lsum + every[g, 0]
                grads = grads + every[g, 1:]
            be.apply_grads(grads)
            losses.append(lsum / dt.type(nt))
        return losses


def is_writer(comm=None) -> bool:
    """Whether this process writes outputs: rank 0, or the only process."""
    return comm is None or comm.rank == 0
