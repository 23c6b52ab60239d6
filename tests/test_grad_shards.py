"""Sharded gradients (docs/arithmetic.md, "Sharded gradients"): a batch summed in S contiguous
groups whose partials are added in group order. The reference defines it; every backend that
supports it reproduces it bit for bit; S = 1 is the unsharded definition."""

import numpy as np
import pytest
from agreement import assert_matches_reference, make_case
from conftest import assert_same_bits

from lockstep import arith, harness, reference
from lockstep.config import ConfigError, TrainConfig


def test_shard_bounds_follow_array_split():
    for B in (1, 2, 5, 12, 13):
        for S in (1, 2, 3, 5, 12, 20):
            got = reference.shard_bounds(B, S)
            want = np.array_split(np.arange(B), S)
            assert [hi - lo for lo, hi in got] == [len(w) for w in want]
            assert [lo for lo, _ in got] == [int(w[0]) if len(w) else lo for w, (lo, _) in
                                              zip(want, got)]
            assert got[0][0] == 0 and got[-1][1] == B


def test_grad_shards_is_validated():
    for bad in (0, -1, 1.5, True, 10 ** 6):
        with pytest.raises(ConfigError, match="grad_shards"):
            TrainConfig(grad_shards=bad)


@pytest.mark.parametrize("loss,loss_on", [("mse", "all"), ("ce", "last")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reference_combines_group_partials_in_group_order(dtype, loss, loss_on):
    # The definition written out by hand: each group's sums from +0 over its own n = t*B_g + b,
    # dy over the whole batch's N, partials added (P0 + P1) + P2.
    mc, tc, params, x, y = make_case(2, 5, 3, 4, 7, dtype, loss=loss, loss_on=loss_on,
                                     grad_shards=3)
    xb, yb = reference.take_batch(x, y, np.arange(7), tc)
    loss_got, g_got = reference.loss_and_grads(params, xb, yb, tc)
    n = reference.loss_terms_count(4, 7, 3, tc)
    parts = []
    for lo, hi in ((0, 3), (3, 5), (5, 7)):
        out, cache = reference.forward(params, xb[:, lo:hi])
        ys = yb[:, lo:hi] if loss_on == "all" else yb[lo:hi]
        ls, dy, _ = reference.loss_sum_grad(out, ys, tc, n)
        parts.append((ls, reference.backward(params, cache, dy)))
    want_loss = ((parts[0][0] + parts[1][0]) + parts[2][0]) / np.dtype(dtype).type(n)
    assert_same_bits(np.array(loss_got), np.array(want_loss), "loss")
    for k in reference.PARAM_NAMES:
        want = (parts[0][1][k] + parts[1][1][k]) + parts[2][1][k]
        assert_same_bits(g_got[k], want, k)


def test_sharding_changes_the_bits_and_one_shard_does_not():
    # Different orders give different roundings: S = 3 must not equal S = 1 (else the
    # R-invariance tests could not tell rank order from shard order), and S = 1 is the plain
    # definition (golden files unchanged).
    mc, tc1, params, x, y = make_case(3, 9, 2, 6, 16, np.float32, grad_shards=1)
    tc3 = TrainConfig(**{**tc1.to_dict(), "grad_shards": 3})
    xb, yb = reference.take_batch(x, y, np.arange(16), tc1)
    _, g1 = reference.loss_and_grads(params, xb, yb, tc1)
    _, g3 = reference.loss_and_grads(params, xb, yb, tc3)
    assert any(not np.array_equal(g1[k], g3[k]) for k in reference.PARAM_NAMES)
    out, cache = reference.forward(params, xb)
    l_plain, dy = reference.loss_grad(out, yb, tc1)
    g_plain = reference.backward(params, cache, dy)
    for k in reference.PARAM_NAMES:
        assert_same_bits(g1[k], g_plain[k], k)
    np.testing.assert_allclose(g3["W_hh"], g1["W_hh"], rtol=1e-4, atol=1e-6)  # same maths


def test_empty_groups_add_plus_zero():
    # S > B: the short last batch (1 sample) has 4 empty groups; their +0 partials are added too.
    mc, tc, params, x, y = make_case(1, 3, 1, 2, 4, np.float64, grad_shards=5, n=5, epochs=1)
    got, hist = reference.train(params, (x, y), tc)
    assert all(np.isfinite(v) for v in hist["train_loss"])


CASES = [
    dict(I=2, H=5, O=3, T=4, B=7, dtype=np.float32, loss="mse", optimizer="sgd", clip=0.0, S=2),
    dict(I=1, H=13, O=1, T=5, B=6, dtype=np.float64, loss="mse", optimizer="adam", clip=0.1, S=3),
    dict(I=3, H=7, O=4, T=2, B=5, dtype=np.float32, loss="ce", optimizer="adam", clip=0.05, S=12),
    dict(I=2, H=33, O=2, T=3, B=9, dtype=np.float64, loss="ce", optimizer="sgd", clip=0.0, S=4),
]


def _case(c, **kw):
    return make_case(c["I"], c["H"], c["O"], c["T"], c["B"], c["dtype"], loss=c["loss"],
                     optimizer=c["optimizer"], clip=c["clip"], grad_shards=c["S"], **kw)


@pytest.mark.parametrize("c", CASES, ids=lambda c: f"S{c['S']}-{np.dtype(c['dtype']).name}-"
                                                    f"{c['loss']}-{c['optimizer']}")
def test_cpu_backend_matches_the_sharded_reference(c):
    pytest.importorskip("lockstep._cpu")
    assert_matches_reference("cpu", *_case(c))


@pytest.mark.parametrize("strategy", ["naive", "fused", "persistent"])
@pytest.mark.parametrize("c", CASES[:3], ids=lambda c: f"S{c['S']}-{np.dtype(c['dtype']).name}")
def test_cuda_raw_emu_matches_the_sharded_reference(strategy, c):
    from lockstep.backends import cuda_raw
    ok, why = cuda_raw.CudaRawBackend.available("emu")
    if not ok:
        pytest.skip(f"SIMT emulator unavailable: {why}")
    assert_matches_reference(f"cuda-raw:{strategy}@emu", *_case(c))
