"""Backend-agnostic training loop: host-side seeded shuffling, minibatches, epoch losses."""

from __future__ import annotations

import numpy as np

from . import reference
from .backends import EpochBatches


def new_rng(seed: int) -> np.random.Generator:
    """The host generator for shuffling (docs/arithmetic.md section 7)."""
    return np.random.Generator(np.random.PCG64(seed))


def run_epochs(backend, x, y, cfg, rng, epochs, data_key=None):
    """Train ``backend`` for ``epochs`` epochs on (x, y); yield each epoch's training loss,
    the sample-weighted mean of its batch losses in the working dtype (bit-identical to
    reference.train)."""
    n = np.shape(x)[1]
    for _ in range(epochs):
        order = reference.batch_order(n, cfg, rng)
        losses = backend.train_epoch(EpochBatches(x, y, order, cfg.loss_on, data_key))
        yield reference.mean_loss(losses, [len(i) for i in order], backend.dtype)
