"""The NumPy reference LSTM: the executable specification every backend reproduces bit for bit.

``num_layers`` stacked LSTM layers (gate order i, f, g, o as in PyTorch; layer l > 0 reads
the hidden states of layer l - 1) and a linear head on the top layer, time-major input
``x`` of shape (T, B, I). Every floating-point operation below is written in the order and
with the parentheses of docs/arithmetic.md, using ``arith`` for all transcendental functions
and sums: no ``np.exp``/``np.tanh``/``np.log``, no BLAS, no pairwise ``np.sum``.

Notation: H hidden units, O outputs; ``a`` are gate pre-activations (B, 4H); ``h``/``c`` are
the hidden and cell states; ``tc = tanh(c)``.
"""

from __future__ import annotations

import numpy as np

from . import arith
from .config import ConfigError, ModelConfig, TrainConfig

PARAM_NAMES = ("W_ih", "W_hh", "b", "W_out", "b_out")  # one layer; param_names(L) in general


def layer_names(layer: int) -> tuple:
    """(W_ih, W_hh, b) names of a layer: today's names for layer 0, PyTorch's ``_l{l}``
    suffix above it (``W_ih_l1`` is torch's ``weight_ih_l1``)."""
    s = "" if layer == 0 else f"_l{layer}"
    return (f"W_ih{s}", f"W_hh{s}", f"b{s}")


def param_names(num_layers: int = 1) -> tuple:
    """Every parameter's name in the canonical order (layers bottom up, then the head): the
    order of initialization, of the global norm and of flat gradient vectors."""
    return tuple(n for l in range(num_layers) for n in layer_names(l)) + ("W_out", "b_out")


def num_layers_of(params) -> int:
    """How many layers a parameter dict holds (W_ih, W_ih_l1, ... present in a row)."""
    L = 0
    while layer_names(L)[0] in params:
        L += 1
    return max(L, 1)


def names_of(params) -> tuple:
    """param_names for the number of layers ``params`` holds."""
    return param_names(num_layers_of(params))


# ---- parameters ----------------------------------------------------------------------------

def init_params(cfg: ModelConfig, dtype=np.float64, seed: int = 0) -> dict:
    """Host-side initialization from numpy.random.Generator(PCG64(seed)).

    "uniform" draws, in this order, W_ih, W_hh, b_ih, b_hh of layer 0, 1, ..., then W_out,
    b_out from U(-1/sqrt(H), 1/sqrt(H)) exactly as torch.nn.LSTM(num_layers=L) +
    torch.nn.Linear(H, O) do, and b = b_ih + b_hh. "orthogonal" then replaces each gate block
    of each layer's W_hh (layers bottom up) by an orthogonal matrix (QR of a Gaussian draw),
    which trains long windows more steadily.
    """
    dt = np.dtype(dtype)
    arith.constants(dt)  # rejects unsupported dtypes
    I, H, O, L = cfg.input_size, cfg.hidden_size, cfg.output_size, cfg.num_layers
    rng = np.random.Generator(np.random.PCG64(seed))
    k = 1.0 / np.sqrt(H)
    u = lambda *shape: rng.uniform(-k, k, shape)  # noqa: E731 - float64 draws, cast once
    params = {}
    for l in range(L):
        n_ih, n_hh, n_b = layer_names(l)
        params[n_ih], params[n_hh] = u(4 * H, I if l == 0 else H), u(4 * H, H)
        b_ih, b_hh = u(4 * H), u(4 * H)
        params[n_b] = b_ih + b_hh
    params["W_out"], params["b_out"] = u(O, H), u(O)
    if cfg.init == "orthogonal":
        for l in range(L):
            W_hh = params[layer_names(l)[1]]
            for g in range(4):
                q, r = np.linalg.qr(rng.standard_normal((H, H)))
                W_hh[g * H:(g + 1) * H] = q * np.sign(np.diag(r))
    return {n: np.ascontiguousarray(params[n], dtype=dt) for n in param_names(L)}


def check_params(params: dict) -> tuple:
    """Validate names, shapes and one common float dtype; return (I, H, O, dtype).
    The number of layers is ``num_layers_of(params)``."""
    names = names_of(params)
    missing = [n for n in names if n not in params]
    if missing:
        raise ConfigError(f"parameters lack {', '.join(missing)}; expected {', '.join(names)}")
    dt = np.asarray(params["W_ih"]).dtype
    if dt not in arith.DTYPES:
        raise ConfigError(f"parameters must be float32 or float64, got {dt}")
    four_h, I = np.shape(params["W_ih"])
    H = four_h // 4
    O = np.shape(params["W_out"])[0]
    want = {"W_ih": (4 * H, I), "W_hh": (4 * H, H), "b": (4 * H,), "W_out": (O, H), "b_out": (O,)}
    for l in range(1, num_layers_of(params)):
        n_ih, n_hh, n_b = layer_names(l)
        want |= {n_ih: (4 * H, H), n_hh: (4 * H, H), n_b: (4 * H,)}
    for n, shape in want.items():
        p = np.asarray(params[n])
        if p.shape != shape or p.dtype != dt or four_h != 4 * H:
            raise ConfigError(f"parameter {n} has shape {p.shape} and dtype {p.dtype}; "
                              f"expected {shape} and {dt}")
    return I, H, O, dt


# ---- forward -------------------------------------------------------------------------------

def forward(params: dict, x, cfg: ModelConfig | None = None, state=None, masks=None):
    """Run the sequence. Returns (outputs (T, B, O), cache).

    Layer l (x^0 = x):
      a_t = b + x_t W_ih^T + h_{t-1} W_hh^T   (one accumulator: bias, input terms k ascending,
                                                then recurrent terms k ascending)
      i, f, o = sigmoid(a_i), sigmoid(a_f), sigmoid(a_o);  g = tanh(a_g)
      c_t = (f * c_{t-1}) + (i * g);  h_t = o * tanh(c_t)
      x^{l+1}_t = h_t * m_l[t]  (dropout masks, training only)  or  h_t
    y_t = b_out + h_t W_out^T  on the top layer's h.
    ``state`` is an optional (h0, c0) pair of (B, H) arrays (one layer) or (L, B, H) arrays,
    zeros by default; ``masks`` an optional (L - 1, T, B, H) array (``dropout_masks``).
    """
    I, H, O, dt = check_params(params)
    L = num_layers_of(params)
    if cfg is not None and (cfg.input_size, cfg.hidden_size, cfg.output_size, cfg.num_layers) \
            != (I, H, O, L):
        raise ConfigError(f"parameters are for (I, H, O, layers) = {(I, H, O, L)}, config says "
                          f"{(cfg.input_size, cfg.hidden_size, cfg.output_size, cfg.num_layers)}")
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[2] != I or x.dtype != dt:
        raise ConfigError(f"x must be a (T, B, {I}) {dt} array (time-major), got {x.shape} {x.dtype}")
    T, B, _ = x.shape
    if T == 0 or B == 0:
        raise ConfigError(f"x must have at least one time step and one sample, got {x.shape}")
    if masks is not None and np.shape(masks) != (L - 1, T, B, H):
        raise ConfigError(f"dropout masks must have shape {(L - 1, T, B, H)}, got {np.shape(masks)}")
    h0 = c0 = np.zeros((L, B, H), dt)
    if state is not None:
        h0, c0 = (np.asarray(s, dt).reshape(L, B, H) for s in state)
    layers, inp = [], x
    for l in range(L):
        n_ih, n_hh, n_b = layer_names(l)
        lc = _layer_forward(params[n_ih], params[n_hh], params[n_b], inp, h0[l], c0[l])
        layers.append(lc)
        inp = lc["h"][1:] if masks is None or l == L - 1 else lc["h"][1:] * masks[l]
    top = layers[-1]["h"][1:]
    out = arith.matmul(params["b_out"][None, :], top.reshape(T * B, H),
                       np.ascontiguousarray(params["W_out"].T)).reshape(T, B, O)
    return out, {"layers": layers, "masks": masks}


def _layer_forward(W_ih, W_hh, b, x, h0, c0):
    """One layer over the sequence x (T, B, K): its cache {x, h, c, gates, tc}."""
    T, B, K = x.shape
    H = W_hh.shape[1]
    dt = x.dtype
    h = np.empty((T + 1, B, H), dt)
    c = np.empty((T + 1, B, H), dt)
    h[0], c[0] = h0, c0
    W_hh_T = np.ascontiguousarray(W_hh.T)
    # The input projection for all steps at once: rows are independent, bits are the same.
    xproj = arith.matmul(b[None, :], x.reshape(T * B, K),
                         np.ascontiguousarray(W_ih.T)).reshape(T, B, 4 * H)
    gates = np.empty((T, B, 4 * H), dt)  # activated i, f, g, o
    tc = np.empty((T, B, H), dt)
    for t in range(T):
        a = arith.matmul(xproj[t], h[t], W_hh_T)
        gates[t, :, 0:2 * H] = arith.sigmoid(a[:, 0:2 * H])
        gates[t, :, 2 * H:3 * H] = arith.tanh(a[:, 2 * H:3 * H])
        gates[t, :, 3 * H:] = arith.sigmoid(a[:, 3 * H:])
        i, f, g, o = (gates[t, :, k * H:(k + 1) * H] for k in range(4))
        c[t + 1] = (f * c[t]) + (i * g)
        tc[t] = arith.tanh(c[t + 1])
        h[t + 1] = o * tc[t]
    return {"x": x, "h": h, "c": c, "gates": gates, "tc": tc}


def final_state(cache):
    """(h_T, c_T) of a forward pass, to continue the sequence with ``forward(state=...)``:
    (B, H) arrays for one layer, (L, B, H) for a stack."""
    layers = cache["layers"]
    h = np.stack([lc["h"][-1] for lc in layers])
    c = np.stack([lc["c"][-1] for lc in layers])
    return (h[0], c[0]) if len(layers) == 1 else (h, c)


def dropout_masks(rng: np.random.Generator, p, num_layers: int, T: int, B: int, H: int, dtype):
    """The dropout masks of one training step (arithmetic.md section 8): u = rng.random((L - 1,
    T, B, H)) in float64 (C order), m = 1 / (1 - p) (working dtype) where u >= p, else 0.
    None when there is nothing to drop (p = 0 or one layer): then no number is drawn."""
    if not p or num_layers < 2:
        return None
    dt = np.dtype(dtype)
    u = rng.random((num_layers - 1, T, B, H))
    scale = dt.type(1) / (dt.type(1) - dt.type(p))
    return np.where(u >= p, scale, dt.type(0)).astype(dt)


# ---- losses --------------------------------------------------------------------------------

def loss_grad(out, y, cfg: TrainConfig):
    """Loss and its gradient with respect to the outputs (zeros where the loss does not look):
    (loss_sum(...) / N, dy) of `loss_sum_grad` with the batch's own N."""
    lsum, dy, n = loss_sum_grad(out, y, cfg)
    return lsum / n, dy


def loss_terms_count(T, B, O, cfg: TrainConfig) -> int:
    """N, the number of loss terms of a (T, B, O) batch."""
    rows = (T if cfg.loss_on == "all" else 1) * B
    return rows * O if cfg.loss == "mse" else rows


def loss_sum_grad(out, y, cfg: TrainConfig, n=None):
    """(sum of the loss terms, dy, n): the sum not yet divided, dy divided by n (default: this
    batch's own N; a shard of a batch passes the whole batch's N, arithmetic.md section 5).

    MSE:  d = y_hat - y;  loss = (sum of d*d) / N;  dy = (d + d) / N
    CE:   m = max_o z;  e = exp(z - m);  s = sum_o e;  l = log(s) - (z_y - m);
          loss = (sum of l) / N;  dz = ((e / s) - onehot) / N
    N counts the terms (T*B*O or B*O for MSE; T*B or B for CE); sums run over t, then b,
    then o, ascending, from +0.
    """
    out = np.asarray(out)
    T, B, O = out.shape
    dt = out.dtype
    z = out if cfg.loss_on == "all" else out[-1:]
    y = np.asarray(y)
    dy = np.zeros_like(out)
    dz = dy if cfg.loss_on == "all" else dy[-1:]
    if cfg.loss == "mse":
        want = (T, B, O) if cfg.loss_on == "all" else (B, O)
        if y.shape != want or y.dtype != dt:
            raise ConfigError(f"MSE targets must be a {want} {dt} array, got {y.shape} {y.dtype}")
        d = z - y.reshape(z.shape)
        n = dt.type(d.size if n is None else n)
        lsum = arith.sum_sq(d)
        dz[...] = (d + d) / n
    else:
        want = (T, B) if cfg.loss_on == "all" else (B,)
        if y.shape != want or not np.issubdtype(y.dtype, np.integer):
            raise ConfigError(f"cross-entropy targets must be a {want} integer array of class "
                              f"indices, got {y.shape} {y.dtype}")
        if y.size and (y.min() < 0 or y.max() >= O):
            raise ConfigError(f"cross-entropy targets must lie in [0, {O}), got {y.min()}..{y.max()}")
        yi = y.reshape(z.shape[:2])
        m = z.max(axis=2, keepdims=True)  # exact
        e = arith.exp(z - m)
        s = arith.ordered_sum(e, axis=2)
        z_y = np.take_along_axis(z - m, yi[..., None], axis=2)[..., 0]
        lt = arith.log(s) - z_y
        n = dt.type(lt.size if n is None else n)
        lsum = arith.ordered_sum(lt.reshape(-1))
        p = e / s[..., None]
        onehot = np.zeros_like(p)
        np.put_along_axis(onehot, yi[..., None], dt.type(1), axis=2)
        dz[...] = (p - onehot) / n
    return dt.type(lsum), dy, n


# ---- backward ------------------------------------------------------------------------------

def backward(params: dict, cache: dict, dy):
    """Backpropagation through time. Returns gradients keyed like ``params``.

    Layers from the top down. Each layer gets dh_above (T, B, H), the gradient arriving from
    above: the head's  dy_t W_out  (sum over o ascending from +0) for the top layer, and
    (da^{l+1}_t W_ih^{l+1}) * m_l[t]  (sum over the 4H gate rows ascending from +0, then the
    dropout mask if any) for layer l below it. Then for t = T-1 .. 0:
      dh = dh_above[t]  then  + sum_j da_{t+1}[j] W_hh[j, :]  (j ascending, same accumulator)
      dc = ((dh * o) * (1 - (tc * tc))) + (dc_{t+1} * f_{t+1})
      da_i = (dc * g) * (i * (1 - i));   da_f = (dc * c_{t-1}) * (f * (1 - f))
      da_g = (dc * i) * (1 - (g * g));   da_o = (dh * tc) * (o * (1 - o))
    Weight gradients afterwards, summing over (t ascending, then b ascending), x^l being the
    layer's (masked) input:
      dW_ih = da^T x^l,  dW_hh = da^T h_{t-1},  db = sum da,  dW_out = dy^T h_t,  db_out = sum dy
    """
    I, H, O, dt = check_params(params)
    layers, masks = cache["layers"], cache["masks"]
    L = len(layers)
    T, B, _ = layers[0]["x"].shape
    dy = np.asarray(dy, dt)
    dy2 = dy.reshape(T * B, O)
    top = layers[-1]["h"]
    grads = {"W_out": arith.matmul(None, np.ascontiguousarray(dy2.T), top[1:].reshape(T * B, H)),
             "b_out": arith.ordered_sum(dy2, axis=0)}
    dh_above = arith.matmul(None, dy2, params["W_out"]).reshape(T, B, H)
    for l in reversed(range(L)):
        n_ih, n_hh, n_b = layer_names(l)
        lc = layers[l]
        da = _layer_backward(params[n_hh], lc, dh_above)
        da2 = da.reshape(T * B, 4 * H)
        da2_T = np.ascontiguousarray(da2.T)
        K = lc["x"].shape[2]
        grads[n_ih] = arith.matmul(None, da2_T, lc["x"].reshape(T * B, K))
        grads[n_hh] = arith.matmul(None, da2_T, lc["h"][:-1].reshape(T * B, H))
        grads[n_b] = arith.ordered_sum(da2, axis=0)
        if l > 0:
            dh_above = arith.matmul(None, da2, params[n_ih]).reshape(T, B, H)
            if masks is not None:
                dh_above = dh_above * masks[l - 1]
    return {n: grads[n] for n in param_names(L)}


def _layer_backward(W_hh, lc, dh_above):
    """BPTT through one layer: da (T, B, 4H) from its cache and the gradient from above."""
    h, c, gates, tc = (lc[k] for k in ("h", "c", "gates", "tc"))
    T, B, H = dh_above.shape
    dt = dh_above.dtype
    one = dt.type(1)
    da = np.empty((T, B, 4 * H), dt)
    dc_next = np.zeros((B, H), dt)  # dc_{t+1} * f_{t+1}
    for t in reversed(range(T)):
        dh = dh_above[t]
        if t + 1 < T:
            dh = arith.matmul(dh, da[t + 1], W_hh)
        i, f, g, o = (gates[t, :, k * H:(k + 1) * H] for k in range(4))
        dc = ((dh * o) * (one - (tc[t] * tc[t]))) + dc_next
        da[t, :, 0:H] = (dc * g) * (i * (one - i))
        da[t, :, H:2 * H] = (dc * c[t]) * (f * (one - f))
        da[t, :, 2 * H:3 * H] = (dc * i) * (one - (g * g))
        da[t, :, 3 * H:] = (dh * tc[t]) * (o * (one - o))
        dc_next = dc * f
    return da


def shard_bounds(B: int, S: int):
    """The S contiguous groups [lo, hi) of a batch of B samples: the first B % S groups one
    sample larger (numpy.array_split's rule; empty groups when S > B)."""
    q, r = divmod(B, S)
    return [(g * q + min(g, r), (g + 1) * q + min(g + 1, r)) for g in range(S)]


def shard_partial(params: dict, x, y, cfg: TrainConfig, n, masks=None):
    """One group's partials (arithmetic.md, "Sharded gradients"): (loss sum, grads) of the
    samples x (T, B_g, I), y (and their dropout masks), with dy divided by the whole batch's
    n; +0 for an empty group."""
    x = np.asarray(x)
    if x.shape[1] == 0:
        dt = np.asarray(params["W_hh"]).dtype
        return dt.type(0), {k: np.zeros_like(params[k]) for k in names_of(params)}
    out, cache = forward(params, x, masks=masks)
    lsum, dy, _ = loss_sum_grad(out, y, cfg, n)
    return lsum, backward(params, cache, dy)


def combine_partials(partials):
    """Loss sums and gradients of the groups, added in group order: (L, G)."""
    lsum, grads = partials[0]
    grads = dict(grads)
    for ls, g in partials[1:]:
        lsum = lsum + ls
        grads = {k: grads[k] + g[k] for k in grads}
    return lsum, grads


def shard_batch(x, y, cfg: TrainConfig, lo, hi):
    """Samples [lo, hi) of a time-major batch and their targets."""
    ys = y[:, lo:hi] if cfg.loss_on == "all" else y[lo:hi]
    return np.ascontiguousarray(x[:, lo:hi]), np.ascontiguousarray(ys)


def shard_masks(masks, lo, hi):
    """Samples [lo, hi) of a step's dropout masks (None stays None)."""
    return None if masks is None else np.ascontiguousarray(masks[:, :, lo:hi])


def loss_and_grads(params: dict, x, y, cfg: TrainConfig, masks=None):
    """Forward, loss and backpropagation through time: (loss, grads), the batch summed in
    cfg.grad_shards groups combined in group order (one group: the plain definition)."""
    x, y = np.asarray(x), np.asarray(y)
    T, B, _ = x.shape
    n = loss_terms_count(T, B, np.shape(params["W_out"])[0], cfg)
    parts = [shard_partial(params, *shard_batch(x, y, cfg, lo, hi), cfg, n,
                           shard_masks(masks, lo, hi))
             for lo, hi in shard_bounds(B, cfg.grad_shards)]
    lsum, grads = combine_partials(parts)
    return lsum / lsum.dtype.type(n), grads


# ---- clipping and optimizers ---------------------------------------------------------------

def global_norm(grads: dict):
    """sqrt of the sum of squares: per row (columns ascending), then rows ascending over
    the tensors in param_names order (W_ih, W_hh, b, W_ih_l1, ..., W_out, b_out; a 1-D tensor
    has one element per row)."""
    rows = [arith.ordered_sum((g * g).reshape(g.shape[0], -1), axis=1)
            for g in (np.asarray(grads[n]) for n in names_of(grads))]
    return np.sqrt(arith.ordered_sum(np.concatenate(rows)))


def clip_grads(grads: dict, max_norm):
    """If the global norm exceeds max_norm (> 0), scale every gradient by max_norm / norm."""
    if not max_norm:
        return grads
    norm = global_norm(grads)
    dt = norm.dtype
    clip = dt.type(max_norm)
    if not norm > clip:
        return grads
    scale = clip / norm
    return {n: g * scale for n, g in grads.items()}


def init_opt_state(params: dict, cfg: TrainConfig) -> dict:
    """Optimizer state: step count, and moments (Adam) or velocities (SGD with momentum)."""
    _, _, _, dt = check_params(params)
    zeros = lambda: {n: np.zeros_like(params[n]) for n in names_of(params)}  # noqa: E731
    if cfg.optimizer == "adam":
        return {"step": 0, "b1_pow": dt.type(1), "b2_pow": dt.type(1), "m": zeros(), "v": zeros()}
    if cfg.momentum:
        return {"step": 0, "velocity": zeros()}
    return {"step": 0}


def apply_update(params: dict, grads: dict, opt: dict, cfg: TrainConfig):
    """One optimizer step on clipped gradients. Returns (params, opt_state), both new.

    SGD:  p = p - (lr * g);  with momentum: v = (mu * v) + g;  p = p - (lr * v)
    Adam: m = (b1 * m) + ((1 - b1) * g);  v = (b2 * v) + ((1 - b2) * (g * g));
          b1_pow = b1_pow * b1;  b2_pow = b2_pow * b2  (running products from 1);
          step = lr / (1 - b1_pow);  bc = sqrt(1 - b2_pow);
          p = p - (step * (m / ((sqrt(v) / bc) + eps)))
    All scalars are working-dtype values (cfg floats rounded once).
    """
    _, _, _, dt = check_params(params)
    names = names_of(params)
    one = dt.type(1)
    lr = dt.type(cfg.lr)
    new = dict(opt)
    new["step"] = opt["step"] + 1
    if cfg.optimizer == "sgd":
        if cfg.momentum:
            mu = dt.type(cfg.momentum)
            vel = {n: (mu * opt["velocity"][n]) + grads[n] for n in names}
            new["velocity"] = vel
            return {n: params[n] - (lr * vel[n]) for n in names}, new
        return {n: params[n] - (lr * grads[n]) for n in names}, new
    b1, b2, eps = dt.type(cfg.beta1), dt.type(cfg.beta2), dt.type(cfg.eps)
    new["b1_pow"] = opt["b1_pow"] * b1
    new["b2_pow"] = opt["b2_pow"] * b2
    step = lr / (one - new["b1_pow"])
    bc = np.sqrt(one - new["b2_pow"])
    m = {n: (b1 * opt["m"][n]) + ((one - b1) * grads[n]) for n in names}
    v = {n: (b2 * opt["v"][n]) + ((one - b2) * (grads[n] * grads[n])) for n in names}
    new["m"], new["v"] = m, v
    return {n: params[n] - (step * (m[n] / ((np.sqrt(v[n]) / bc) + eps)))
            for n in names}, new


def train_step(params: dict, opt: dict, x, y, cfg: TrainConfig, masks=None):
    """loss_and_grads, clip_grads, apply_update: (loss, params, opt_state)."""
    loss, grads = loss_and_grads(params, x, y, cfg, masks)
    params, opt = apply_update(params, clip_grads(grads, cfg.clip), opt, cfg)
    return loss, params, opt


# ---- epochs --------------------------------------------------------------------------------

def batch_order(n: int, cfg: TrainConfig, rng: np.random.Generator):
    """Minibatches of sample indices for one epoch: rng.permutation(n) when shuffling (one
    draw per epoch), consecutive slices of batch_size (0 = all), the last one possibly short."""
    idx = rng.permutation(n) if cfg.shuffle else np.arange(n)
    bs = n if cfg.batch_size == 0 else min(cfg.batch_size, n)
    return [idx[s:s + bs] for s in range(0, n, bs)]


def check_dropout(cfg: TrainConfig, num_layers: int):
    """Dropout acts between layers: refuse it on a one-layer model rather than ignore it."""
    if cfg.dropout and num_layers < 2:
        raise ConfigError(f"dropout {cfg.dropout} acts between stacked layers and this model has "
                          "one; use num_layers >= 2 or dropout 0")


def epoch_masks(rng, cfg: TrainConfig, num_layers, T, H, order, dtype):
    """Each minibatch's dropout masks (or None), drawn after the epoch's permutation, batch
    after batch (arithmetic.md section 8)."""
    return [dropout_masks(rng, cfg.dropout, num_layers, T, len(idx), H, dtype) for idx in order]


def take_batch(x, y, idx, cfg: TrainConfig):
    """The samples ``idx`` of time-major inputs and their targets."""
    x = np.asarray(x)
    y = np.asarray(y)
    ys = y[:, idx] if cfg.loss_on == "all" else y[idx]
    return np.ascontiguousarray(x[:, idx]), np.ascontiguousarray(ys)


def mean_loss(losses, counts, dtype):
    """Sample-weighted mean of batch losses: (sum of loss_i * n_i) / (sum n_i), in order."""
    dt = np.dtype(dtype)
    acc = dt.type(0)
    for loss, n in zip(losses, counts):
        acc = acc + (dt.type(loss) * dt.type(n))
    return acc / dt.type(sum(counts))


def evaluate(params: dict, x, y, cfg: TrainConfig):
    """The loss on (x, y) without updating anything."""
    out, _ = forward(params, x)
    return loss_grad(out, y, cfg)[0]


def train(params: dict, data, cfg: TrainConfig, opt_state=None, rng=None, valid=None):
    """Train for cfg.epochs. Returns (params, history).

    ``data`` is (x, y) with x (T, N, I); ``rng`` (default Generator(PCG64(cfg.seed)))
    shuffles, then draws each minibatch's dropout masks in order (``epoch_masks``). history = {"train_loss": [...], "valid_loss": [...] if valid is given,
    "opt_state": the optimizer state to resume from}.
    """
    _, H, _, dt = check_params(params)
    L = num_layers_of(params)
    check_dropout(cfg, L)
    x, y = data
    T, n = np.shape(x)[:2]
    rng = np.random.Generator(np.random.PCG64(cfg.seed)) if rng is None else rng
    opt = init_opt_state(params, cfg) if opt_state is None else opt_state
    history = {"train_loss": [], "valid_loss": []}
    for _ in range(cfg.epochs):
        losses, counts = [], []
        order = batch_order(n, cfg, rng)
        for idx, masks in zip(order, epoch_masks(rng, cfg, L, T, H, order, dt)):
            xb, yb = take_batch(x, y, idx, cfg)
            loss, params, opt = train_step(params, opt, xb, yb, cfg, masks)
            losses.append(loss)
            counts.append(len(idx))
        history["train_loss"].append(mean_loss(losses, counts, dt))
        if valid is not None:
            history["valid_loss"].append(evaluate(params, *valid, cfg))
    history["opt_state"] = opt
    return params, history
