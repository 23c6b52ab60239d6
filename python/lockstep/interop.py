"""PyTorch state dicts <-> lockstep parameters (gate order i, f, g, o in both)."""

from __future__ import annotations

import numpy as np

from .reference import PARAM_NAMES, check_params


def _torch():
    try:
        import torch
    except ImportError as e:  # pragma: no cover - exercised only without torch
        raise ImportError("lockstep.interop needs PyTorch: pip install torch") from e
    return torch


def to_torch(params: dict):
    """(lstm_state, linear_state) for torch.nn.LSTM(I, H) and torch.nn.Linear(H, O).

    lockstep keeps one bias b; torch has two. bias_ih_l0 = b and bias_hh_l0 = -0.0: since
    x + (-0.0) == x for every x (+0.0 included), from_torch(*to_torch(p)) gives p bit for bit
    and torch adds exactly nothing. To *train* the same model in torch, keep bias_hh_l0 at
    zero (learning rate 0): with both biases updated, the bias learns at twice the rate.
    """
    torch = _torch()
    check_params(params)
    t = lambda a: torch.from_numpy(np.array(a, copy=True))  # noqa: E731
    lstm = {
        "weight_ih_l0": t(params["W_ih"]),
        "weight_hh_l0": t(params["W_hh"]),
        "bias_ih_l0": t(params["b"]),
        "bias_hh_l0": t(np.full_like(params["b"], -0.0)),
    }
    linear = {"weight": t(params["W_out"]), "bias": t(params["b_out"])}
    return lstm, linear


def from_torch(lstm_state, linear_state) -> dict:
    """lockstep parameters from the state dicts of a one-layer LSTM and its Linear head;
    b = bias_ih_l0 + bias_hh_l0."""
    a = lambda v: np.array(v.detach().cpu().numpy() if hasattr(v, "detach") else v)  # noqa: E731
    keys = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
    missing = [k for k in keys if k not in lstm_state] + \
        [k for k in ("weight", "bias") if k not in linear_state]
    if missing:
        raise KeyError(f"state dicts lack {', '.join(missing)}: expected a one-layer, "
                       "unidirectional torch.nn.LSTM and a torch.nn.Linear")
    params = {
        "W_ih": a(lstm_state["weight_ih_l0"]),
        "W_hh": a(lstm_state["weight_hh_l0"]),
        "b": a(lstm_state["bias_ih_l0"]) + a(lstm_state["bias_hh_l0"]),
        "W_out": a(linear_state["weight"]),
        "b_out": a(linear_state["bias"]),
    }
    params = {n: np.ascontiguousarray(params[n]) for n in PARAM_NAMES}
    check_params(params)
    return params
