"""The "cpu" backend (C++ engine of lockstep._cpu) equals reference.train and the golden files
bit for bit, over a covering design of the shape grid and a set of stacked (2- and 3-layer,
dropout) cases, with 1 and 2 threads and with both instruction sets it was compiled for."""

import itertools

import numpy as np
import pytest
from agreement import GOLDEN_FILES, assert_matches_golden, assert_matches_reference, make_case
from conftest import assert_same_bits

from lockstep import backends, harness, reference
from lockstep.train import run_epochs

_cpu = pytest.importorskip("lockstep._cpu")

# The kernel units this build has and this CPU runs (base always; x86-64: avx2, avx512).
ISAS = ["base"] + [isa for isa in ("avx2", "avx512")
                   if _cpu.build_info()[f"{isa}_kernels"] and _cpu.build_info()[f"cpu_has_{isa}"]]


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


# ---- stacked layers -------------------------------------------------------------------------

F32, F64 = np.float32, np.float64
# (layers, B, T, H, I, O, settings): odd sizes, B = 1, T = 1, H = 1, H not a multiple of 32 and
# H = 33 (a second, mostly padding column tile), both dtypes, losses, loss_on, optimizers,
# momentum, clipping on and off, dropout on and off; 2 epochs of a full and a short batch.
STACKED = [
    (2, 3, 5, 7, 2, 3, dict(dtype=F32, loss="mse", optimizer="adam")),
    (2, 1, 4, 13, 1, 2, dict(dtype=F64, loss="ce", loss_on="last", clip=0.1, dropout=0.3)),
    (3, 5, 1, 5, 3, 2, dict(dtype=F32, loss="ce", momentum=0.9, clip=0.1)),
    (3, 2, 6, 33, 2, 1, dict(dtype=F64, loss="mse", loss_on="last", optimizer="adam", clip=0.1,
                             dropout=0.5)),
    (2, 7, 3, 50, 4, 4, dict(dtype=F64, loss="ce", optimizer="adam", dropout=0.2)),
    (2, 4, 7, 1, 1, 1, dict(dtype=F32, loss="mse", clip=0.1, dropout=0.5)),
    (3, 13, 2, 9, 5, 3, dict(dtype=F32, loss="mse", momentum=0.9, dropout=0.25)),
    (2, 1, 1, 3, 1, 2, dict(dtype=F64, loss="ce", loss_on="last", optimizer="adam", clip=0.1,
                            dropout=0.4)),
    (2, 5, 3, 6, 2, 2, dict(dtype=F32, loss="ce", optimizer="adam", dropout=0.3, grad_shards=7)),
    (3, 6, 4, 11, 3, 2, dict(dtype=F64, loss="mse", momentum=0.9, clip=0.1, grad_shards=3)),
]


def _stacked_id(case):
    L, B, T, H, I, O, s = case
    return (f"L{L}-B{B}-T{T}-H{H}-I{I}-O{O}-{np.dtype(s['dtype']).name}-{s['loss']}-"
            f"{s.get('loss_on', 'all')}-{s.get('optimizer', 'sgd')}"
            f"{'-mom' if s.get('momentum') else ''}{'-clip' if s.get('clip') else ''}"
            f"{'-drop' if s.get('dropout') else ''}"
            f"{'-S%d' % s['grad_shards'] if 'grad_shards' in s else ''}")


def _stacked_case(case, **kw):
    L, B, T, H, I, O, s = case
    return make_case(I, H, O, T, B, layers=L, seed=L + B + T + H, **(s | kw))


@pytest.mark.parametrize("case", STACKED, ids=[_stacked_id(c) for c in STACKED])
def test_cpu_backend_matches_reference_stacked(case):
    assert_matches_reference("cpu:blocked@cpu", *_stacked_case(case))


def test_stacked_cases_cover_the_settings():
    seen = {k: {str(s.get(k)) for *_, s in STACKED}
            for k in ("dtype", "loss", "loss_on", "optimizer", "momentum", "clip", "dropout")}
    assert all(len(v) >= 2 for v in seen.values()), seen
    assert {c[0] for c in STACKED} == {2, 3}
    assert 1 in {c[1] for c in STACKED} and 1 in {c[2] for c in STACKED}  # B = 1, T = 1


def test_shard_partial_with_masks_equals_the_sharded_reference(dtype):
    """Data-parallel path (lockstep.distributed): each group's partials from its own columns of
    the batch's masks, added in group order, then apply_grads, equal reference.train_step."""
    S = 3
    mc, tc, params, x, y = make_case(2, 7, 2, 4, 8, dtype, loss="ce", optimizer="adam", clip=0.1,
                                     layers=3, dropout=0.3, grad_shards=S, n=8)
    rng = np.random.default_rng(5)
    masks = reference.dropout_masks(rng, tc.dropout, 3, 4, 8, 7, dtype)
    idx = rng.permutation(8)
    be = backends.get("cpu")(mc, tc, dtype)
    be.load(params, None)
    nt = reference.loss_terms_count(4, 8, 2, tc)
    parts = [be.shard_partial(x, y, idx[lo:hi], nt, masks=reference.shard_masks(masks, lo, hi))
             for lo, hi in reference.shard_bounds(8, S)]
    lsum, grads = parts[0][0], parts[0][1].copy()
    for ls, g in parts[1:]:
        lsum, grads = lsum + ls, grads + g
    be.apply_grads(grads)
    loss, want, _ = reference.train_step(params, reference.init_opt_state(params, tc),
                                         *reference.take_batch(x, y, idx, tc), tc, masks)
    assert_same_bits(lsum / dtype.type(nt), loss, "loss")
    got, _ = be.state()
    for n in reference.param_names(3):
        assert_same_bits(got[n], want[n], f"after apply_grads: {n}")


# ---- threads and instruction sets -----------------------------------------------------------

# Both partition modes (B = 24: whole rows per thread; B <= 7: items split, a barrier a step),
# one layer and stacked with dropout.
THREAD_CASES = [(3, 13, 4, 5, 7, "ce", "adam", 0.1, 1, 0.0),
                (1, 64, 1, 12, 32, "mse", "sgd", 0.0, 1, 0.0),
                (3, 50, 4, 3, 32, "mse", "adam", 0.0, 1, 0.0),
                (1, 1, 1, 1, 1, "ce", "sgd", 0.1, 1, 0.0),
                (2, 13, 3, 3, 24, "mse", "adam", 0.1, 3, 0.3),
                (3, 40, 2, 4, 7, "ce", "sgd", 0.0, 2, 0.5),
                (1, 1, 1, 2, 1, "mse", "adam", 0.1, 2, 0.5)]


@pytest.mark.parametrize("I,H,O,T,B,loss,opt,clip,layers,dropout", THREAD_CASES)
def test_one_and_two_threads_and_both_isas_give_the_same_bits(threads, dtype, I, H, O, T, B, loss,
                                                               opt, clip, layers, dropout):
    mc, tc, params, x, y = make_case(I, H, O, T, B, dtype, loss=loss, optimizer=opt, clip=clip,
                                     n=B + 3, epochs=1, layers=layers, dropout=dropout)
    want, hist = reference.train(params, (x, y), tc)
    for isa in ISAS:
        for n in (1, 2):
            threads(n)
            be = backends.get("cpu")(mc, tc, dtype, isa=isa)
            be.load(params, None)
            rng = np.random.Generator(np.random.PCG64(tc.seed))
            losses = list(run_epochs(be, x, y, tc, rng, tc.epochs))
            got, _ = be.state()
            what = f"isa={isa} threads={n}"
            assert_same_bits(np.array(losses), np.array(hist["train_loss"]), what + " losses")
            for name in reference.param_names(layers):
                assert_same_bits(got[name], want[name], f"{what} {name}")


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
