"""Shared helpers for the backend agreement tests: every backend must reproduce the reference
and the golden files bit for bit (per-epoch losses and final parameters)."""

from pathlib import Path

import numpy as np
from conftest import assert_same_bits

from lockstep import golden, harness, reference

GOLDEN_FILES = sorted((Path(__file__).parent / "golden").glob("*.npz"))


def assert_matches_golden(spec, path):
    g = golden.load(path)
    losses, params = harness.train_with(spec, g["model"], g["train"], g["x"].dtype, g["init"],
                                        g["x"], g["y"])
    assert_same_bits(losses, g["losses"], f"{spec} on {Path(path).name}: per-epoch losses")
    for n in g["final"]:
        assert_same_bits(params[n], g["final"][n], f"{spec} on {Path(path).name}: final {n}")


make_case = harness.make_problem


def assert_matches_reference(spec, mc, tc, params, x, y):
    want, want_hist = reference.train(params, (x, y), tc)
    losses, got = harness.train_with(spec, mc, tc, x.dtype, params, x, y)
    assert_same_bits(losses, np.array(want_hist["train_loss"]), f"{spec}: per-epoch losses")
    assert list(got) == list(want), f"{spec}: parameter names {list(got)} != {list(want)}"
    for n in want:
        assert_same_bits(got[n], want[n], f"{spec}: final {n}")
