"""The committed golden files are what the reference computes today, bit for bit."""

from pathlib import Path

import numpy as np
import pytest
from conftest import assert_same_bits

from lockstep import golden, reference

GOLDEN = Path(__file__).parent / "golden"
FILES = sorted(GOLDEN.glob("*.npz"))


def test_every_case_has_a_golden_file_per_dtype():
    want = {c.file_name(dt) for c in golden.CASES for dt in golden.DTYPES}
    assert want == {f.name for f in FILES}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_reference_reproduces_golden_file(path):
    g = golden.load(path)
    params, hist = reference.train(g["init"], (g["x"], g["y"]), g["train"])
    assert_same_bits(np.array(hist["train_loss"]), g["losses"], f"{path.name} per-epoch losses")
    for n in reference.PARAM_NAMES:
        assert_same_bits(params[n], g["final"][n], f"{path.name} final {n}")


@pytest.mark.parametrize("case", [c for c in golden.CASES if c.train.clip], ids=lambda c: c.name)
def test_clipping_cases_really_clip(case):
    """A clipping case whose gradients never exceed the threshold would test nothing."""
    x, y, params = golden.make_inputs(case, np.float64)
    idx = reference.batch_order(case.N, case.train, np.random.Generator(np.random.PCG64(0)))[0]
    xb, yb = reference.take_batch(x, y, idx, case.train)
    _, grads = reference.loss_and_grads(params, xb, yb, case.train)
    assert reference.global_norm(grads) > case.train.clip


def test_inputs_are_regenerated_identically():
    g = golden.load(FILES[0])
    case = next(c for c in golden.CASES if FILES[0].name == c.file_name(g["x"].dtype))
    x, y, params = golden.make_inputs(case, g["x"].dtype)
    assert_same_bits(x, g["x"], "x")
    for n in reference.PARAM_NAMES:
        assert_same_bits(params[n], g["init"][n], n)


def test_format_version_is_checked(tmp_path):
    bad = tmp_path / "bad.npz"
    with np.load(FILES[0]) as z:
        arrays = dict(z)
    arrays["meta"] = np.array(str(arrays["meta"]).replace('"format_version": 1', '"format_version": 99'))
    np.savez(bad, **arrays)
    with pytest.raises(ValueError, match="golden format 99"):
        golden.load(bad)
