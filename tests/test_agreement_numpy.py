"""The "numpy" backend through the harness equals reference.train and the golden files."""

import numpy as np
import pytest
from agreement import GOLDEN_FILES, assert_matches_golden, assert_matches_reference, make_case

from lockstep import backends
from lockstep.config import ConfigError


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda p: p.stem)
def test_numpy_backend_matches_golden(path):
    assert_matches_golden("numpy", path)


@pytest.mark.parametrize("loss,optimizer,clip", [("mse", "adam", 0.5), ("ce", "sgd", 0.0)])
def test_numpy_backend_matches_reference(loss, optimizer, clip, dtype):
    assert_matches_reference("numpy:reference@cpu", *make_case(2, 5, 3, 4, 3, dtype, loss=loss,
                                                               optimizer=optimizer, clip=clip))


def test_registry_reports_unavailable_backends_with_a_reason():
    rows = backends.runs()
    names = {r[0] for r in rows}
    assert set(backends.REGISTRY) <= names
    for name, strategy, device, ok, why in rows:
        assert isinstance(why, str) and why, f"{name}: empty reason"
    assert ("numpy", "reference", "cpu", True, "available") in rows


def test_unknown_backend_and_strategy_are_clear_errors():
    with pytest.raises(ConfigError, match="unknown backend 'gpu9'"):
        backends.get("gpu9")
    mc, tc, *_ = make_case(1, 2, 1, 2, 2, np.float64)
    with pytest.raises(ConfigError, match="strategies reference"):
        backends.get("numpy")(mc, tc, np.float64, strategy="fused")
