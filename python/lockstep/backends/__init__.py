"""The backend registry: name -> backend class, and why an unavailable one is unavailable.

A backend trains one model configuration with the arithmetic of docs/arithmetic.md, so every
backend, strategy and device gives the bits of the NumPy reference. Interface (API):

    class SomeBackend(Backend):
        name = "cpu"; strategies = ("default",); devices = ("cpu",)
        @classmethod
        def available(cls, device=None) -> (bool, str)
        def __init__(self, model_cfg, train_cfg, dtype, strategy=None, device=None)
        def load(self, params, opt_state)          # host NumPy in, kept wherever it computes
        def train_epoch(self, batches) -> list    # per-batch losses (working-dtype scalars)
        def evaluate(self, x, y) -> loss
        def predict(self, x) -> outputs (T, B, O)
        def state(self) -> (params, opt_state)    # host NumPy out

``batches`` is an ``EpochBatches``: the full (x, y) of the epoch, the sample indices of each
minibatch in order and, with dropout, each minibatch's masks (``batches.mask(k)``: an
(L - 1, T, B_k, H) array of the working dtype, or None). A device backend may upload x and y
once and gather batches on the device (``EpochBatches.data_key`` tells it whether the data
changed since the last epoch). Every backend trains any ``num_layers``.
A run is named ``backend:strategy@device``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import numpy as np

from ..config import ConfigError

# name -> "module:Class"; modules are imported lazily so a missing optional dependency makes
# one backend unavailable (with the reason) instead of breaking the package.
REGISTRY = {
    "numpy": "lockstep.backends.numpy_ref:NumpyBackend",
    "cpu": "lockstep.backends.cpu:CpuBackend",
    "cuda-raw": "lockstep.backends.cuda_raw:CudaRawBackend",
    "numba-cuda": "lockstep.backends.numba_cuda:NumbaCudaBackend",
}
# "auto" picks the first available in this order: fastest bit-exact backend first.
AUTO_ORDER = ("cuda-raw@gpu", "numba-cuda@gpu", "cpu", "numpy")


@dataclass
class EpochBatches:
    """One epoch's minibatches: x (T, N, I), targets y, and the index array of each batch."""

    x: np.ndarray
    y: np.ndarray
    indices: list
    loss_on: str = "all"
    data_key: object = field(default=None)  # same key => same x and y as the previous epoch
    masks: list | None = None  # per minibatch: its dropout masks (reference.dropout_masks) or None

    def mask(self, k):
        """The dropout masks of minibatch k, or None."""
        return None if self.masks is None else self.masks[k]

    def __iter__(self):
        for idx in self.indices:
            ys = self.y[:, idx] if self.loss_on == "all" else self.y[idx]
            yield np.ascontiguousarray(self.x[:, idx]), np.ascontiguousarray(ys)

    def __len__(self):
        return len(self.indices)


class Backend:
    """Base class: the shared validation and naming; subclasses implement the arithmetic."""

    name = "?"
    strategies: tuple = ("default",)
    devices: tuple = ("cpu",)
    # device -> environment a fresh process needs for it (e.g. a simulator flag that must be
    # set before an import); the harness runs such devices in a child process.
    device_env: dict = {}

    @classmethod
    def available(cls, device=None):
        return True, "available"

    @classmethod
    def setting_error(cls):
        """A user's setting that makes this backend unusable (an environment variable with
        a bad value), as one line naming the fix; "auto" refuses it rather than silently
        falling back to a slower backend. None when there is none."""
        return None

    def __init__(self, model_cfg, train_cfg, dtype, strategy=None, device=None):
        self.model_cfg, self.train_cfg = model_cfg, train_cfg
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ConfigError(f"dtype must be float32 or float64, got {self.dtype}")
        self.strategy = strategy or self.strategies[0]
        if self.strategy not in self.strategies:
            raise ConfigError(f"backend {self.name} has strategies {', '.join(self.strategies)}; "
                              f"got {self.strategy!r}")
        self.device = device or self.devices[0]
        if self.device not in self.devices:
            raise ConfigError(f"backend {self.name} runs on {', '.join(self.devices)}; "
                              f"got {self.device!r}")

    @property
    def run_name(self):
        return run_name(self.name, self.strategy, self.device)


def run_name(backend, strategy, device):
    return f"{backend}:{strategy}@{device}"


def get(name: str):
    """The backend class registered under ``name`` (imports it)."""
    if name not in REGISTRY:
        raise ConfigError(f"unknown backend {name!r}; choose one of auto, {', '.join(REGISTRY)}")
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


def availability(name: str, device=None):
    """(available, reason) without raising: a backend whose module cannot be imported is
    unavailable, and the import error is the reason."""
    try:
        cls = get(name)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - any import failure is a reason to report
        return False, f"cannot import {REGISTRY[name].split(':')[0]}: {type(e).__name__}: {e}"
    try:
        return cls.available(device)
    except Exception as e:  # noqa: BLE001
        return False, f"{type(e).__name__}: {e}"


def runs(names=None):
    """Every (backend, strategy, device, available, reason) for the given backend names."""
    out = []
    for name in names or REGISTRY:
        try:
            cls = get(name)
        except ConfigError:
            raise
        except Exception:  # noqa: BLE001
            ok, why = availability(name)
            out.append((name, None, None, ok, why))
            continue
        for device in cls.devices:
            ok, why = availability(name, device)
            for strategy in cls.strategies:
                out.append((name, strategy, device, ok, why))
    return out


# what each device is, for the hints of a refusal
DEVICE_NAMES = {"emu": "the SIMT emulator", "sim": "the Numba simulator, slow",
                "gpu": "a CUDA GPU", "cpu": "the CPU"}


def _setting_error(name):
    try:
        return get(name).setting_error()
    except ConfigError:
        raise
    except Exception:  # noqa: BLE001 - an import failure is availability's to report
        return None


def _unavailable(name, device, why):
    """The refusal of an unavailable backend@device, naming the devices of the same backend
    that are available here (``lockstep info`` lists them too) and the fix."""
    try:
        cls = get(name)
        device = device or cls.devices[0]
        others = [d for d in cls.devices if d != device and availability(name, d)[0]]
    except Exception:  # noqa: BLE001 - the backend's module cannot even be imported
        others = []
    run = f"{name}@{device}" if device else name
    fix = " or install CuPy" if "CuPy" in why else ""
    if others:
        alts = " or ".join(f"--device {d} ({DEVICE_NAMES.get(d, d)})" for d in others)
        return f"backend {run} is unavailable: {why}; use {alts}{fix}"
    return f"backend {run} is unavailable: {why}; choose another --backend{fix} ('lockstep " \
           "info' lists what runs here)"


def resolve(name: str, device=None):
    """(backend name, device) for a user's choice; "auto" = the fastest available."""
    if name != "auto":
        ok, why = availability(name, device)
        if not ok:
            raise ConfigError(_unavailable(name, device, why))
        return name, device or get(name).devices[0]
    for choice in AUTO_ORDER:
        n, _, d = choice.partition("@")
        if availability(n, d or None)[0]:
            return n, d or get(n).devices[0]
        problem = _setting_error(n)
        if problem:  # a bad setting is said, not silently passed over for a slower backend
            raise ConfigError(f"backend auto would pick {n}: {problem}")
    return "numpy", "cpu"


def create(name, model_cfg, train_cfg, dtype, strategy=None, device=None):
    """Instantiate a backend by name ("auto" allowed)."""
    name, device = resolve(name, device)
    return get(name)(model_cfg, train_cfg, dtype, strategy=strategy, device=device)
