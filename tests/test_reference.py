"""The NumPy reference against outside oracles: central finite differences and PyTorch."""

import numpy as np
import pytest
from conftest import assert_same_bits

from lockstep import interop, reference
from lockstep.config import ConfigError, ModelConfig, TrainConfig

try:
    import torch
except ImportError:  # the oracle is optional; CI installs it where pip can
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed (optional oracle)")

LOSS_SETUPS = [("mse", "all"), ("mse", "last"), ("ce", "all"), ("ce", "last")]


def make_problem(I, H, O, T, B, loss, loss_on, dtype=np.float64, seed=0, layers=1):
    rng = np.random.default_rng(seed)
    params = reference.init_params(ModelConfig(I, H, O, num_layers=layers), dtype, seed=seed)
    # Larger-than-init weights so that every gate saturates somewhere and gradients are O(1).
    params = {n: (p * 3).astype(dtype) for n, p in params.items()}
    x = rng.standard_normal((T, B, I)).astype(dtype)
    shape = (T, B) if loss_on == "all" else (B,)
    y = (rng.standard_normal(shape + (O,)).astype(dtype) if loss == "mse"
         else rng.integers(0, O, shape))
    return params, x, y, TrainConfig(loss=loss, loss_on=loss_on)


def fd_worst_error(params, x, y, cfg, grads, h=1e-4, masks=None):
    """Worst relative error of analytic vs fourth-order central-difference gradients
    (truncation ~h**4, rounding ~1e-16/h: ~1e-12 absolute) over every element, relative to
    max(|fd|, |analytic|, 1e-3 * largest gradient) so that near-zero entries count on the
    gradient's own scale."""
    worst = (0.0, None)
    scale = max(np.abs(g).max() for g in grads.values())

    def loss_at(name, idx, delta):
        moved = dict(params)
        moved[name] = params[name].copy()
        moved[name][idx] += delta
        return reference.loss_and_grads(moved, x, y, cfg, masks)[0]

    for name, p in params.items():
        for idx in np.ndindex(p.shape):
            fd = (8 * (loss_at(name, idx, h) - loss_at(name, idx, -h))
                  - (loss_at(name, idx, 2 * h) - loss_at(name, idx, -2 * h))) / (12 * h)
            an = grads[name][idx]
            err = abs(fd - an) / max(abs(fd), abs(an), 1e-3 * scale)
            if err > worst[0]:
                worst = (err, (name, idx, fd, an))
    return worst


FD_SHAPES = [(1, 3, 2, 4, 2), (3, 5, 2, 3, 4), (2, 4, 3, 1, 1)]
# I, H, O, T, B, layers: stacks, T = 1 included
FD_STACKS = [(2, 3, 2, 3, 2, 2), (1, 2, 2, 2, 3, 3), (2, 3, 2, 1, 1, 2)]
_ids = "I{}H{}O{}T{}B{}".format


@pytest.mark.parametrize("shape", FD_SHAPES + FD_STACKS,
                         ids=lambda s: _ids(*s) + (f"L{s[5]}" if len(s) > 5 else ""))
@pytest.mark.parametrize("loss,loss_on", LOSS_SETUPS)
def test_gradients_match_central_differences(shape, loss, loss_on):
    params, x, y, cfg = make_problem(*shape[:5], loss, loss_on, layers=shape[5] if len(shape) > 5 else 1)
    _, grads = reference.loss_and_grads(params, x, y, cfg)
    err, where = fd_worst_error(params, x, y, cfg, grads)
    assert err < 1e-6, f"relative error {err:.2e} at {where}"


def test_dropout_gradients_match_central_differences():
    """With fixed masks the stack is a smooth function: its gradients are checked like any."""
    params, x, y, cfg = make_problem(2, 3, 2, 3, 2, "mse", "all", layers=3)
    masks = reference.dropout_masks(np.random.default_rng(5), 0.4, 3, 3, 2, 3, np.float64)
    assert 0 < np.count_nonzero(masks) < masks.size
    _, grads = reference.loss_and_grads(params, x, y, cfg, masks)
    err, where = fd_worst_error(params, x, y, cfg, grads, masks=masks)
    assert err < 1e-6, f"relative error {err:.2e} at {where}"


def test_finite_difference_check_catches_a_wrong_gradient():
    params, x, y, cfg = make_problem(2, 3, 2, 3, 2, "mse", "all")
    _, grads = reference.loss_and_grads(params, x, y, cfg)
    grads["W_hh"][5, 1] *= 1 + 1e-5
    assert fd_worst_error(params, x, y, cfg, grads)[0] > 1e-6


def test_whole_sequence_equals_step_by_step(dtype):
    params, x, _, _ = make_problem(3, 6, 2, 7, 4, "mse", "all", dtype)
    out, cache = reference.forward(params, x)
    state, steps = None, []
    for t in range(x.shape[0]):
        o, c = reference.forward(params, x[t:t + 1], state=state)
        state = reference.final_state(c)
        steps.append(o[0])
    assert_same_bits(np.stack(steps), out, "outputs")
    assert_same_bits(state[0], cache["layers"][0]["h"][-1], "h_T")
    assert_same_bits(state[1], cache["layers"][0]["c"][-1], "c_T")
    # Two halves with the state carried over give the same bits too.
    o1, c1 = reference.forward(params, x[:3])
    o2, _ = reference.forward(params, x[3:], state=reference.final_state(c1))
    assert_same_bits(np.concatenate([o1, o2]), out, "split sequence")


def test_stack_state_carries_over(dtype):
    params = reference.init_params(ModelConfig(2, 5, 1, num_layers=3), dtype, seed=2)
    x = np.random.default_rng(1).standard_normal((6, 3, 2)).astype(dtype)
    out, cache = reference.forward(params, x)
    o1, c1 = reference.forward(params, x[:2])
    h, c = reference.final_state(c1)
    assert h.shape == c.shape == (3, 3, 5)
    o2, _ = reference.forward(params, x[2:], state=(h, c))
    assert_same_bits(np.concatenate([o1, o2]), out, "split sequence")


def test_a_stack_is_layers_in_sequence(dtype):
    """Layer 1 of a stack is an LSTM reading layer 0's h: the 2-layer outputs equal a 1-layer
    model run on the hidden states of another, bit for bit."""
    p = reference.init_params(ModelConfig(2, 4, 3, num_layers=2), dtype, seed=3)
    x = np.random.default_rng(4).standard_normal((5, 2, 2)).astype(dtype)
    out, cache = reference.forward(p, x)
    top = {"W_ih": p["W_ih_l1"], "W_hh": p["W_hh_l1"], "b": p["b_l1"], "W_out": p["W_out"],
           "b_out": p["b_out"]}
    want, _ = reference.forward(top, np.ascontiguousarray(cache["layers"][0]["h"][1:]))
    assert_same_bits(out, want, "two layers")


def test_dropout_masks_follow_the_written_order():
    dt = np.float32
    masks = reference.dropout_masks(np.random.Generator(np.random.PCG64(9)), 0.25, 3, 4, 5, 6, dt)
    u = np.random.Generator(np.random.PCG64(9)).random((2, 4, 5, 6))
    scale = dt(1) / (dt(1) - dt(0.25))
    assert masks.dtype == dt and masks.shape == (2, 4, 5, 6)
    assert_same_bits(masks, np.where(u >= 0.25, scale, dt(0)).astype(dt), "masks")
    assert reference.dropout_masks(np.random.default_rng(0), 0.0, 3, 4, 5, 6, dt) is None
    assert reference.dropout_masks(np.random.default_rng(0), 0.5, 1, 4, 5, 6, dt) is None


def test_dropout_needs_a_stack_and_changes_training():
    cfg = TrainConfig(epochs=2, batch_size=3, dropout=0.5)
    x = np.random.default_rng(0).standard_normal((4, 7, 1))
    y = np.random.default_rng(1).standard_normal((4, 7, 1))
    with pytest.raises(ConfigError, match="stacked"):
        reference.train(reference.init_params(ModelConfig(1, 3, 1)), (x, y), cfg)
    p = reference.init_params(ModelConfig(1, 3, 1, num_layers=2))
    with_d, _ = reference.train(p, (x, y), cfg)
    without, _ = reference.train(p, (x, y), TrainConfig(epochs=2, batch_size=3))
    assert not np.array_equal(with_d["W_ih_l1"], without["W_ih_l1"])


# ---- PyTorch oracle ------------------------------------------------------------------------

TORCH_SHAPES = [(1, 1, 1, 1, 1), (1, 50, 1, 12, 32), (3, 13, 4, 5, 1), (2, 7, 3, 1, 6),
                (4, 33, 2, 9, 5), (1, 64, 3, 24, 7)]
TORCH_STACKS = [(1, 6, 1, 5, 3, 2), (3, 13, 2, 4, 1, 3), (2, 33, 3, 1, 4, 2), (1, 20, 1, 7, 5, 3)]


def torch_run(params, x, y, cfg):
    lstm_sd, lin_sd = interop.to_torch(params)
    I, H, O = x.shape[2], params["W_hh"].shape[1], params["W_out"].shape[0]
    L = reference.num_layers_of(params)
    tdt = torch.float64 if x.dtype == np.float64 else torch.float32
    lstm = torch.nn.LSTM(I, H, num_layers=L).to(tdt)
    lin = torch.nn.Linear(H, O).to(tdt)
    lstm.load_state_dict(lstm_sd, strict=True)
    lin.load_state_dict(lin_sd, strict=True)
    hs, _ = lstm(torch.from_numpy(x))
    out = lin(hs)
    z = out if cfg.loss_on == "all" else out[-1:]
    if cfg.loss == "mse":
        loss = torch.nn.functional.mse_loss(z, torch.from_numpy(y).reshape(z.shape))
    else:
        loss = torch.nn.functional.cross_entropy(z.reshape(-1, O), torch.from_numpy(y).reshape(-1))
    loss.backward()
    grads = interop.from_torch({k: v.grad for k, v in lstm.named_parameters()},
                               {k: v.grad for k, v in lin.named_parameters()})
    # from_torch adds bias_ih + bias_hh; each of torch's two bias gradients is dL/db alone.
    for l in range(L):
        grads[reference.layer_names(l)[2]] = getattr(lstm, f"bias_ih_l{l}").grad.numpy()
    return out.detach().numpy(), loss.item(), grads


def rel_err(ours, theirs):
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    return float(np.abs(ours - theirs).max() / max(np.abs(theirs).max(), 1e-30))


@needs_torch
@pytest.mark.parametrize("shape", TORCH_SHAPES + TORCH_STACKS,
                         ids=lambda s: _ids(*s) + (f"L{s[5]}" if len(s) > 5 else ""))
@pytest.mark.parametrize("loss,loss_on", LOSS_SETUPS)
def test_matches_torch(shape, loss, loss_on, dtype):
    tol = 1e-10 if dtype == np.float64 else 1e-5
    layers = shape[5] if len(shape) > 5 else 1
    params, x, y, cfg = make_problem(*shape[:5], loss, loss_on, dtype, seed=sum(shape),
                                     layers=layers)
    t_out, t_loss, t_grads = torch_run(params, x, y, cfg)
    out, _ = reference.forward(params, x)
    loss_v, grads = reference.loss_and_grads(params, x, y, cfg)
    assert rel_err(out, t_out) < tol, f"outputs: ours={out.ravel()[:3]} | torch={t_out.ravel()[:3]}"
    assert rel_err(loss_v, t_loss) < tol, f"loss: ours={loss_v!r} | torch={t_loss!r}"
    assert list(grads) == list(t_grads) == list(reference.param_names(layers))
    for n in grads:
        e = rel_err(grads[n], t_grads[n])
        assert e < tol, f"grad {n}: relative error {e:.2e} (tolerance {tol})"


@needs_torch
def test_torch_comparison_catches_a_wrong_gradient(monkeypatch):
    params, x, y, cfg = make_problem(2, 5, 2, 4, 3, "mse", "all")
    _, _, t_grads = torch_run(params, x, y, cfg)
    _, grads = reference.loss_and_grads(params, x, y, cfg)
    grads["W_ih"] = grads["W_ih"] * (1 + 1e-9)
    assert rel_err(grads["W_ih"], t_grads["W_ih"]) > 1e-10


@needs_torch
@pytest.mark.parametrize("layers", [1, 2, 3])
def test_interop_round_trip_is_exact(dtype, layers):
    params = reference.init_params(ModelConfig(3, 5, 2, num_layers=layers), dtype, seed=1)
    params["b"][0] = -0.0
    back = interop.from_torch(*interop.to_torch(params))
    assert list(back) == list(params)
    for n in params:
        assert_same_bits(back[n], params[n], n)
    # And from a real torch module: to_torch(from_torch(module)) reproduces its output.
    lstm = torch.nn.LSTM(3, 5, num_layers=layers).double()
    lin = torch.nn.Linear(5, 2).double()
    p = interop.from_torch(lstm.state_dict(), lin.state_dict())
    x = np.random.default_rng(0).standard_normal((4, 2, 3))
    want = lin(lstm(torch.from_numpy(x))[0]).detach().numpy()
    assert rel_err(reference.forward(p, x)[0], want) < 1e-12


@needs_torch
def test_interop_refuses_what_it_cannot_map():
    lin = torch.nn.Linear(5, 2).state_dict()
    with pytest.raises(KeyError, match="unexpected"):
        interop.from_torch(torch.nn.LSTM(3, 5, bidirectional=True).state_dict(), lin)
    with pytest.raises(KeyError, match="lack"):
        interop.from_torch(torch.nn.LSTM(3, 5, bias=False).state_dict(), lin)


@needs_torch
@pytest.mark.parametrize("opt", ["sgd", "momentum", "adam"])
def test_optimizers_and_clipping_match_torch(opt):
    cfg = TrainConfig(optimizer="adam" if opt == "adam" else "sgd", lr=0.05,
                      momentum=0.9 if opt == "momentum" else 0.0, clip=0.3)
    params, x, y, _ = make_problem(2, 4, 1, 3, 2, "mse", "all")
    names = reference.PARAM_NAMES
    tparams = [torch.nn.Parameter(torch.from_numpy(params[n].copy())) for n in names]
    topt = (torch.optim.Adam(tparams, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)
            if opt == "adam" else torch.optim.SGD(tparams, lr=cfg.lr, momentum=cfg.momentum))
    state = reference.init_opt_state(params, cfg)
    for step in range(4):
        _, grads = reference.loss_and_grads(params, x, y, cfg)
        for tp, n in zip(tparams, names):
            tp.grad = torch.from_numpy(grads[n].copy())
        total = torch.nn.utils.clip_grad_norm_(tparams, cfg.clip)
        assert abs(float(total) - float(reference.global_norm(grads))) < 1e-12
        topt.step()
        params, state = reference.apply_update(params, reference.clip_grads(grads, cfg.clip), state, cfg)
        for tp, n in zip(tparams, names):
            # torch clips by clip/(norm + 1e-6); lockstep by clip/norm (docs/arithmetic.md).
            assert rel_err(params[n], tp.detach().numpy()) < 1e-5, f"step {step} {n}"


# ---- training behaviour --------------------------------------------------------------------

def sine_problem(dtype, T=8, N=40):
    t = np.arange(N + T + 1)
    s = np.sin(t * 0.4).astype(dtype)
    x = np.stack([s[i:i + T] for i in range(N)], axis=1)[..., None]
    y = np.stack([s[i + 1:i + T + 1] for i in range(N)], axis=1)[..., None]
    return x, y


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_training_learns_and_is_deterministic(optimizer, dtype):
    x, y = sine_problem(dtype)
    cfg = TrainConfig(optimizer=optimizer, lr=0.3 if optimizer == "sgd" else 0.02,
                      momentum=0.5 if optimizer == "sgd" else 0.0, epochs=15, batch_size=8,
                      clip=1.0)
    p0 = reference.init_params(ModelConfig(1, 8, 1), dtype, seed=0)
    p1, h1 = reference.train(p0, (x, y), cfg, valid=(x[:, :8], y[:, :8]))
    p2, h2 = reference.train(p0, (x, y), cfg, valid=(x[:, :8], y[:, :8]))
    losses = np.array(h1["train_loss"])
    assert losses[-1] < 0.5 * losses[0], f"did not learn a sine wave: {losses}"
    assert len(h1["valid_loss"]) == cfg.epochs
    assert_same_bits(losses, np.array(h2["train_loss"]), "losses of two identical runs")
    for n in reference.PARAM_NAMES:
        assert_same_bits(p1[n], p2[n], n)


def test_resuming_gives_the_same_bits(dtype):
    x, y = sine_problem(dtype)
    cfg = TrainConfig(optimizer="adam", lr=0.01, epochs=4, batch_size=7)
    p0 = reference.init_params(ModelConfig(1, 5, 1), dtype, seed=3)
    full, hist = reference.train(p0, (x, y), cfg)
    rng = np.random.Generator(np.random.PCG64(cfg.seed))
    half, h1 = reference.train(p0, (x, y), TrainConfig(**{**cfg.to_dict(), "epochs": 2}), rng=rng)
    rest, h2 = reference.train(half, (x, y), TrainConfig(**{**cfg.to_dict(), "epochs": 2}),
                               opt_state=h1["opt_state"], rng=rng)
    assert_same_bits(np.array(h1["train_loss"] + h2["train_loss"]), np.array(hist["train_loss"]), "losses")
    for n in reference.PARAM_NAMES:
        assert_same_bits(rest[n], full[n], n)


def test_clipping_scales_to_the_threshold(dtype):
    params, x, y, cfg = make_problem(2, 4, 2, 3, 2, "mse", "all", dtype)
    _, grads = reference.loss_and_grads(params, x, y, cfg)
    norm = float(reference.global_norm(grads))
    clipped = reference.clip_grads(grads, norm / 4)
    assert abs(float(reference.global_norm(clipped)) - norm / 4) < 1e-5 * norm
    assert reference.clip_grads(grads, norm * 2) is grads


def test_init_matches_torch_ranges():
    p = reference.init_params(ModelConfig(3, 16, 2), np.float64, seed=0)
    k = 1 / 4
    for n in ("W_ih", "W_hh", "W_out", "b_out"):
        assert np.abs(p[n]).max() <= k
    assert np.abs(p["b"]).max() <= 2 * k  # b = b_ih + b_hh
    assert_same_bits(reference.init_params(ModelConfig(3, 16, 2), np.float64, seed=0)["W_hh"],
                     p["W_hh"], "same seed, same bits")
    q = reference.init_params(ModelConfig(3, 16, 2, init="orthogonal"), np.float64, seed=0)
    blk = q["W_hh"][:16]
    assert np.allclose(blk.T.dot(blk), np.eye(16), atol=1e-12)


@pytest.mark.parametrize("bad,match", [
    (lambda: ModelConfig(0, 4, 1), "input_size must be a positive integer"),
    (lambda: ModelConfig(1, -3, 1), "hidden_size"),
    (lambda: TrainConfig(lr=-0.1), "lr must be > 0"),
    (lambda: TrainConfig(loss="hinge"), "loss must be one of mse, ce"),
    (lambda: TrainConfig(clip=float("nan")), "clip must be a finite number"),
    (lambda: TrainConfig(beta2=1.0), "beta2 must be < 1"),
    (lambda: TrainConfig(batch_size=-1), "batch_size"),
])
def test_config_errors_are_one_clear_line(bad, match):
    with pytest.raises(ConfigError, match=match) as e:
        bad()
    assert "\n" not in str(e.value)


def test_bad_shapes_and_targets_are_rejected():
    params, x, y, cfg = make_problem(2, 3, 2, 4, 3, "ce", "all")
    with pytest.raises(ConfigError, match="time-major"):
        reference.forward(params, x[..., :1])
    with pytest.raises(ConfigError, match=r"targets must lie in \[0, 2\)"):
        reference.loss_and_grads(params, x, y + 5, cfg)
    with pytest.raises(ConfigError, match="float64"):
        reference.forward(params, x.astype(np.float32))
