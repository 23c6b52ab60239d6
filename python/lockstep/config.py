"""Validated configuration: the model's shape and the training recipe.

Errors are ``ConfigError`` (a ``ValueError``) with one line naming the field and the fix.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from .errors import LockstepError

LOSSES = ("mse", "ce")
LOSS_ON = ("all", "last")
OPTIMIZERS = ("sgd", "adam")
MAX_GRAD_SHARDS = 4096  # more groups than that is a mistake, not a plan
MAX_LAYERS = 64  # deeper stacks of LSTMs do not train; a bigger number is a typo
INITS = ("uniform", "orthogonal")


class ConfigError(LockstepError):
    """A configuration value is invalid; the message says which and how to fix it."""


# Upper bounds that no sensible run reaches; beyond them a typo is far likelier than intent.
MAX_EPOCHS = 10_000_000
MAX_HORIZON = 10_000

_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,),
          "tuple": (tuple, list)}


def check_types(obj, prefix=""):
    """Check every field of a config dataclass against its annotation ("int", "float",
    "str", "bool", optionally "| None"), so a wrong type fails with the field's name rather
    than as a TypeError deep inside; bools are not numbers here."""
    for f in fields(obj):
        v = getattr(obj, f.name)
        parts = [t.strip() for t in str(f.type).split("|")]
        if "None" in parts and v is None:
            continue
        ok = [t for p in parts if p != "None" for t in _TYPES[p]]
        if (isinstance(v, bool) and bool not in ok) or not isinstance(v, tuple(ok)):
            want = " or ".join("null" if p == "None" else {"int": "an integer", "float": "a number",
                               "str": "a string", "bool": "true/false", "tuple": "a list"}[p]
                            for p in parts)
            raise ConfigError(f"{prefix}{f.name} must be {want}, got {v!r}")


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def _choice(name, value, choices):
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _finite(name, value, lo=None, hi=None, lo_open=False, hi_open=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if lo is not None and (value < lo or (lo_open and value == lo)):
        raise ConfigError(f"{name} must be {'>' if lo_open else '>='} {lo}, got {value!r}")
    if hi is not None and (value > hi or (hi_open and value == hi)):
        raise ConfigError(f"{name} must be {'<' if hi_open else '<='} {hi}, got {value!r}")


@dataclass(frozen=True)
class ModelConfig:
    """num_layers stacked LSTM layers (gates i, f, g, o) and a linear head."""

    input_size: int
    hidden_size: int
    output_size: int
    init: str = "uniform"  # PyTorch's U(-1/sqrt(H), 1/sqrt(H)); or "orthogonal" recurrent weights
    num_layers: int = 1  # layer l > 0 reads the hidden states of layer l - 1

    def __post_init__(self):
        check_types(self)
        _positive_int("input_size", self.input_size)
        _positive_int("hidden_size", self.hidden_size)
        _positive_int("output_size", self.output_size)
        _choice("init", self.init, INITS)
        _positive_int("num_layers", self.num_layers)
        if self.num_layers > MAX_LAYERS:
            raise ConfigError(f"num_layers must be at most {MAX_LAYERS}, got {self.num_layers}")

    def to_dict(self):
        return asdict(self)


@dataclass(frozen=True)
class TrainConfig:
    """The training recipe: objective, optimizer, clipping, epochs and batching."""

    loss: str = "mse"  # "mse" or "ce" (softmax cross-entropy over output_size classes)
    loss_on: str = "all"  # every time step, or the "last" one only
    optimizer: str = "sgd"  # "sgd" (optional momentum) or "adam"
    lr: float = 0.01
    momentum: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    clip: float = 0.0  # global-norm clipping threshold; 0 turns clipping off
    epochs: int = 10
    batch_size: int = 32  # 0 means full batch
    shuffle: bool = True
    seed: int = 0
    grad_shards: int = 1  # S: a batch's loss and gradients are summed in S groups (arithmetic.md)
    dropout: float = 0.0  # probability of zeroing a layer's output on its way to the next layer

    def __post_init__(self):
        check_types(self)
        _choice("loss", self.loss, LOSSES)
        _choice("loss_on", self.loss_on, LOSS_ON)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _finite("lr", self.lr, lo=0, lo_open=True)
        _finite("momentum", self.momentum, lo=0, hi=1, hi_open=True)
        _finite("beta1", self.beta1, lo=0, hi=1, hi_open=True)
        _finite("beta2", self.beta2, lo=0, hi=1, hi_open=True)
        _finite("eps", self.eps, lo=0, lo_open=True)
        _finite("clip", self.clip, lo=0)
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 0:
            raise ConfigError(f"epochs must be a non-negative integer, got {self.epochs!r}")
        if self.epochs > MAX_EPOCHS:
            raise ConfigError(f"epochs must be at most {MAX_EPOCHS}, got {self.epochs}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) \
                or self.batch_size < 0:
            raise ConfigError(
                f"batch_size must be a positive integer (or 0 for full batch), got {self.batch_size!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}")
        _finite("dropout", self.dropout, lo=0, hi=1, hi_open=True)
        if isinstance(self.grad_shards, bool) or not isinstance(self.grad_shards, int) \
                or not 1 <= self.grad_shards <= MAX_GRAD_SHARDS:
            raise ConfigError(f"grad_shards must be an integer in [1, {MAX_GRAD_SHARDS}], "
                              f"got {self.grad_shards!r}")

    def to_dict(self):
        return asdict(self)
