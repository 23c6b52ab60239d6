"""The numba-cuda backend in the registry, its availability reasons and its layout, in the main
(non-simulator) test process. Its arithmetic is tested in test_numba_sim.py (simulator),
test_numba_ptx.py (compiled PTX) and test_agreement_numba.py (a real GPU)."""

import numpy as np
import pytest

from lockstep import backends, reference
from lockstep.backends.numba_cuda import NumbaCudaBackend
from lockstep.config import ConfigError, ModelConfig, TrainConfig

cuda = pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")
SIM = bool(cuda.config.ENABLE_CUDASIM)


def test_registered_with_both_strategies_and_devices():
    assert backends.get("numba-cuda") is NumbaCudaBackend
    rows = [r for r in backends.runs(["numba-cuda"])]
    assert {(r[1], r[2]) for r in rows} == {(s, d) for s in ("per-sample", "fused")
                                             for d in ("gpu", "sim")}
    for _, _, _, ok, why in rows:
        assert isinstance(why, str) and why


@pytest.mark.skipif(SIM, reason="this process runs the simulator")
def test_sim_device_needs_the_simulator_flag():
    ok, why = backends.availability("numba-cuda", "sim")
    assert not ok and "NUMBA_ENABLE_CUDASIM=1" in why
    mc, tc = ModelConfig(1, 2, 1), TrainConfig()
    with pytest.raises(ConfigError, match="numba-cuda:fused@sim is unavailable"):
        NumbaCudaBackend(mc, tc, np.float32, strategy="fused", device="sim")


@pytest.mark.skipif(SIM, reason="this process runs the simulator")
def test_gpu_device_says_why_it_is_missing():
    ok, why = backends.availability("numba-cuda", "gpu")
    assert ok == cuda.is_available()
    if not ok:
        assert "no CUDA GPU" in why
        with pytest.raises(ConfigError, match="unavailable: no CUDA GPU"):
            NumbaCudaBackend(ModelConfig(1, 2, 1), TrainConfig(), np.float64)
        assert backends.resolve("auto")[0] != "numba-cuda"


def test_unknown_strategy_or_device_is_a_clear_error():
    mc, tc = ModelConfig(1, 2, 1), TrainConfig()
    with pytest.raises(ConfigError, match="strategies per-sample, fused"):
        NumbaCudaBackend(mc, tc, np.float32, strategy="tiled", device="sim")
    with pytest.raises(ConfigError, match="runs on gpu, sim"):
        NumbaCudaBackend(mc, tc, np.float32, strategy="fused", device="cpu")
    assert NumbaCudaBackend.available("tpu")[0] is False


@pytest.mark.parametrize("L", [1, 3])
def test_flat_layout_matches_the_parameter_shapes(L):
    from lockstep.numba_kernels.common import layer_base, layout

    I, H, O = 3, 7, 2
    params = reference.init_params(ModelConfig(I, H, O, num_layers=L), np.float64, seed=1)
    lay = layout(I, H, O, L)
    names = reference.param_names(L)
    flat = np.concatenate([params[n].reshape(-1) for n in names])
    assert lay["size"] == flat.size == 4 * H * (I + H + 1) + (L - 1) * 4 * H * (2 * H + 1) \
        + O * (H + 1)
    for n in names:
        o = lay[n]
        assert lay["shapes"][n] == params[n].shape, n
        assert np.array_equal(flat[o:o + params[n].size], params[n].reshape(-1)), n
    for l in range(L):
        assert layer_base(I, H, l) == lay[reference.layer_names(l)[0]]
    assert layer_base(I, H, L) == lay["W_out"]


@pytest.mark.skipif(SIM, reason="this process runs the simulator")
def test_stacked_models_are_accepted():
    """num_layers > 1 with dropout reaches the device check (no "one layer only" refusal)."""
    mc, tc = ModelConfig(1, 2, 1, num_layers=3), TrainConfig(dropout=0.2)
    with pytest.raises(ConfigError, match="numba-cuda:per-sample@sim is unavailable"):
        NumbaCudaBackend(mc, tc, np.float32, device="sim")
