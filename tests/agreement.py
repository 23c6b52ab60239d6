"""Shared helpers for the backend agreement tests: every backend must reproduce the reference
and the golden files bit for bit (per-epoch losses and final parameters)."""

from pathlib import Path

import numpy as np
from conftest import assert_same_bits

from lockstep import golden, harness, reference
from lockstep.config import ModelConfig, TrainConfig

GOLDEN_FILES = sorted((Path(__file__).parent / "golden").glob("*.npz"))


def assert_matches_golden(spec, path):
    g = golden.load(path)
    losses, params = harness.train_with(spec, g["model"], g["train"], g["x"].dtype, g["init"],
                                        g["x"], g["y"])
    assert_same_bits(losses, g["losses"], f"{spec} on {Path(path).name}: per-epoch losses")
    for n in reference.PARAM_NAMES:
        assert_same_bits(params[n], g["final"][n], f"{spec} on {Path(path).name}: final {n}")


def make_case(I, H, O, T, B, dtype, loss="mse", loss_on="all", optimizer="sgd", clip=0.0,
              momentum=0.0, epochs=2, n=None, seed=0):
    """A training problem: (model_cfg, train_cfg, params, x, y) with N = n or 2*B+1 samples,
    so the last minibatch is short."""
    n = 2 * B + 1 if n is None else n
    rng = np.random.default_rng(seed)
    mc = ModelConfig(I, H, O)
    tc = TrainConfig(loss=loss, loss_on=loss_on, optimizer=optimizer, clip=clip,
                     momentum=momentum, lr=0.05 if optimizer == "sgd" else 0.01,
                     epochs=epochs, batch_size=B, seed=seed)
    x = rng.standard_normal((T, n, I)).astype(dtype)
    shape = (T, n) if loss_on == "all" else (n,)
    y = (rng.standard_normal(shape + (O,)).astype(dtype) if loss == "mse"
         else rng.integers(0, O, shape))
    return mc, tc, reference.init_params(mc, dtype, seed=seed), x, y


def assert_matches_reference(spec, mc, tc, params, x, y):
    want, want_hist = reference.train(params, (x, y), tc)
    losses, got = harness.train_with(spec, mc, tc, x.dtype, params, x, y)
    assert_same_bits(losses, np.array(want_hist["train_loss"]), f"{spec}: per-epoch losses")
    for n in reference.PARAM_NAMES:
        assert_same_bits(got[n], want[n], f"{spec}: final {n}")
