"""The "cpu" backend (C++ engine of lockstep._cpu) equals reference.train and the golden files
bit for bit, over a covering design of the shape grid, with 1 and 2 threads and with both
instruction sets it was compiled for."""

import itertools

import numpy as np
import pytest
from agreement import GOLDEN_FILES, assert_matches_golden, assert_matches_reference, make_case
from conftest import assert_same_bits

from lockstep import backends, harness, reference

_cpu = pytest.importorskip("lockstep._cpu")

ISAS = ["base"] + (["avx2"] if _cpu.build_info()["avx2_kernels"] and _cpu.build_info()["cpu_has_avx2"]
                   else [])


@pytest.fixture
def threads():
    """Run with a given engine thread count and restore the previous one afterwards."""
    before = _cpu.get_num_threads(), _cpu.get_adaptive_threads()
    yield lambda n: _cpu.set_num_threads(n, adaptive=False)  # really n threads, even when small
    _cpu.set_num_threads(*before)


# ---- golden files ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda p: p.stem)
def test_cpu_backend_matches_golden(path):
    assert_matches_golden("cpu", path)


# ---- the shape grid -------------------------------------------------------------------------

SHAPES = list(itertools.product([1, 7, 32], [1, 5, 24], [1, 13, 50, 64], [1, 3], [1, 4]))  # B,T,H,I,O
# A two-level orthogonal array of strength 2 (OA(8, 2^7)): rotating through its rows, every
# pair of levels of any two settings appears, 18 times each over the 144 shapes.
OA8 = ["0000000", "0001111", "0110011", "0111100", "1010101", "1011010", "1100110", "1101001"]


def _settings(i):
    row = [int(c) for c in OA8[i % 8]]
    return dict(dtype=(np.float32, np.float64)[row[0]], loss=("mse", "ce")[row[1]],
                optimizer=("sgd", "adam")[row[2]], clip=(0.0, 0.1)[row[3]],
                loss_on=("all", "last")[row[4]], momentum=(0.0, 0.9)[row[5]] if not row[2] else 0.0)


GRID = [(shape, _settings(i)) for i, shape in enumerate(SHAPES)]


def _grid_id(case):
    (B, T, H, I, O), s = case
    return (f"B{B}-T{T}-H{H}-I{I}-O{O}-{np.dtype(s['dtype']).name}-{s['loss']}-{s['loss_on']}-"
            f"{s['optimizer']}{'-mom' if s['momentum'] else ''}{'-clip' if s['clip'] else ''}")


@pytest.mark.parametrize("case", GRID, ids=[_grid_id(c) for c in GRID])
def test_cpu_backend_matches_reference_on_grid(case):
    (B, T, H, I, O), s = case
    # The reference's cost grows with T*B (its weight gradients loop over the samples in
    # Python), so large cases run one epoch of two batches: B samples, then a short one.
    epochs, n = (2, 2 * B + 1) if T * B <= 40 else (1, B + 2)
    assert_matches_reference("cpu:blocked@cpu", *make_case(I, H, O, T, B, s["dtype"], loss=s["loss"],
                                                           loss_on=s["loss_on"],
                                                           optimizer=s["optimizer"], clip=s["clip"],
                                                           momentum=s["momentum"], epochs=epochs,
                                                           n=n, seed=B + T + H))


def test_grid_design_covers_every_pair_of_settings():
    keys = ["dtype", "loss", "optimizer", "clip", "loss_on"]
    seen = {(a, b): set() for a, b in itertools.combinations(keys, 2)}
    for _, s in GRID:
        for a, b in seen:
            seen[(a, b)].add((str(s[a]), str(s[b])))
    assert all(len(v) == 4 for v in seen.values()), seen
    assert len({shape for shape, _ in GRID}) == 3 * 3 * 4 * 2 * 2


def test_clipping_is_active_in_the_grid_cases():
    """clip = 0.1 must actually rescale (else "clipping on" would test nothing)."""
    mc, tc, params, x, y = make_case(3, 13, 4, 5, 7, np.float64, clip=0.1)
    loss, grads = reference.loss_and_grads(params, *reference.take_batch(x, y, np.arange(7), tc), tc)
    assert reference.global_norm(grads) > 0.1


# ---- threads and instruction sets -----------------------------------------------------------

THREAD_CASES = [(3, 13, 4, 5, 7, "ce", "adam", 0.1), (1, 64, 1, 12, 32, "mse", "sgd", 0.0),
                (3, 50, 4, 3, 32, "mse", "adam", 0.0), (1, 1, 1, 1, 1, "ce", "sgd", 0.1)]


@pytest.mark.parametrize("I,H,O,T,B,loss,opt,clip", THREAD_CASES)
def test_one_and_two_threads_and_both_isas_give_the_same_bits(threads, dtype, I, H, O, T, B, loss,
                                                               opt, clip):
    mc, tc, params, x, y = make_case(I, H, O, T, B, dtype, loss=loss, optimizer=opt, clip=clip,
                                     n=B + 3, epochs=1)
    want, hist = reference.train(params, (x, y), tc)
    for isa in ISAS:
        for n in (1, 2):
            threads(n)
            be = backends.get("cpu")(mc, tc, dtype, isa=isa)
            be.load(params, None)
            rng = np.random.Generator(np.random.PCG64(tc.seed))
            losses = [reference.mean_loss(be.train_epoch(_batches(x, y, tc, rng)),
                                          _counts(x, tc), dtype) for _ in range(tc.epochs)]
            got, _ = be.state()
            what = f"isa={isa} threads={n}"
            assert_same_bits(np.array(losses), np.array(hist["train_loss"]), what + " losses")
            for name in reference.PARAM_NAMES:
                assert_same_bits(got[name], want[name], f"{what} {name}")


def _batches(x, y, tc, rng):
    return backends.EpochBatches(x, y, reference.batch_order(x.shape[1], tc, rng), tc.loss_on)


def _counts(x, tc):
    return [len(i) for i in reference.batch_order(x.shape[1], tc, np.random.default_rng(0))]


def test_engine_threads_are_settable():
    before = _cpu.get_num_threads(), _cpu.get_adaptive_threads()
    try:
        _cpu.set_num_threads(2)
        assert _cpu.get_num_threads() == 2 and not _cpu.get_adaptive_threads()
        _cpu.set_num_threads(1, adaptive=True)
        assert _cpu.get_num_threads() == 1 and _cpu.get_adaptive_threads()
        with pytest.raises(ValueError, match="n >= 1"):
            _cpu.set_num_threads(0)
    finally:
        _cpu.set_num_threads(*before)
