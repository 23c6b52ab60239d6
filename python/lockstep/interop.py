"""PyTorch state dicts <-> lockstep parameters (gate order i, f, g, o in both)."""

from __future__ import annotations

import numpy as np

from .reference import check_params, layer_names, num_layers_of, param_names


def _torch():
    try:
        import torch
    except ImportError as e:  # pragma: no cover - exercised only without torch
        raise ImportError("lockstep.interop needs PyTorch: pip install torch") from e
    return torch


def to_torch(params: dict):
    """(lstm_state, linear_state) for torch.nn.LSTM(I, H, num_layers=L) and
    torch.nn.Linear(H, O); layer l's W_ih / W_hh / b are torch's weight_ih_l{l} / weight_hh_l{l}
    / bias_ih_l{l}.

    lockstep keeps one bias b per layer; torch has two. bias_ih = b and bias_hh = -0.0: since
    x + (-0.0) == x for every x (+0.0 included), from_torch(*to_torch(p)) gives p bit for bit
    and torch adds exactly nothing. To *train* the same model in torch, keep bias_hh at zero
    (learning rate 0): with both biases updated, the bias learns at twice the rate.
    """
    torch = _torch()
    check_params(params)
    t = lambda a: torch.from_numpy(np.array(a, copy=True))  # noqa: E731
    lstm = {}
    for l in range(num_layers_of(params)):
        n_ih, n_hh, n_b = layer_names(l)
        lstm |= {f"weight_ih_l{l}": t(params[n_ih]), f"weight_hh_l{l}": t(params[n_hh]),
                 f"bias_ih_l{l}": t(params[n_b]),
                 f"bias_hh_l{l}": t(np.full_like(params[n_b], -0.0))}
    linear = {"weight": t(params["W_out"]), "bias": t(params["b_out"])}
    return lstm, linear


def from_torch(lstm_state, linear_state) -> dict:
    """lockstep parameters from the state dicts of a unidirectional LSTM (any num_layers) and
    its Linear head; b = bias_ih + bias_hh of each layer."""
    a = lambda v: np.array(v.detach().cpu().numpy() if hasattr(v, "detach") else v)  # noqa: E731
    L = 0
    while f"weight_ih_l{L}" in lstm_state:
        L += 1
    keys = [f"{k}_l{l}" for l in range(max(L, 1))
            for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    missing = [k for k in keys if k not in lstm_state] + \
        [k for k in ("weight", "bias") if k not in linear_state]
    extra = [k for k in lstm_state if k not in keys]
    if missing or extra:
        raise KeyError(f"state dicts {'lack ' + ', '.join(missing) if missing else ''}"
                       f"{'; ' if missing and extra else ''}"
                       f"{'have unexpected ' + ', '.join(extra) if extra else ''}: expected a "
                       "unidirectional torch.nn.LSTM with biases (no proj_size) and a "
                       "torch.nn.Linear")
    params = {}
    for l in range(L):
        n_ih, n_hh, n_b = layer_names(l)
        params[n_ih] = a(lstm_state[f"weight_ih_l{l}"])
        params[n_hh] = a(lstm_state[f"weight_hh_l{l}"])
        params[n_b] = a(lstm_state[f"bias_ih_l{l}"]) + a(lstm_state[f"bias_hh_l{l}"])
    params["W_out"], params["b_out"] = a(linear_state["weight"]), a(linear_state["bias"])
    params = {n: np.ascontiguousarray(params[n]) for n in param_names(L)}
    check_params(params)
    return params
