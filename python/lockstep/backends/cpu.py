"""Backend "cpu": the C++ engine of ``lockstep._cpu`` (OpenMP, bit-identical to the reference).

The parameters and the optimizer state live in C++-owned buffers for the whole run; one C++
call trains a whole epoch (it gathers each minibatch from the full x and y itself, with the
GIL released), and with dropout each minibatch's masks come along in the same call. See
docs/cpu.md for the kernels and how they keep the contract's bits.
"""

from __future__ import annotations

import os

import numpy as np

from .. import reference
from ..config import ConfigError
from . import Backend

ISAS = ("auto", "base", "avx2", "avx512")  # the values of LOCKSTEP_CPU_ISA


def _module():
    from .. import _cpu  # noqa: PLC0415 - the compiled module is optional until it is used
    return _cpu


def isa_problem():
    """Why LOCKSTEP_CPU_ISA cannot be honoured (one line naming the fix), or None when it is
    unset, valid and supported by this build and CPU."""
    want = os.environ.get("LOCKSTEP_CPU_ISA", "")
    if want in ("", "auto"):
        return None
    if want not in ISAS:
        return (f"LOCKSTEP_CPU_ISA={want!r} is not a kernel unit; set it to one of "
                f"{', '.join(ISAS)}, or unset it")
    try:
        _module().isa()
    except ImportError:
        return None  # the module's absence is reported by itself
    except ValueError:
        return (f"LOCKSTEP_CPU_ISA={want}: this build or CPU has no {want} kernels; set it to "
                "base or auto, or unset it")
    return None


class CpuBackend(Backend):
    name = "cpu"
    strategies = ("blocked",)
    devices = ("cpu",)

    @classmethod
    def available(cls, device=None):
        try:
            m = _module()
        except ImportError as e:
            return False, f"lockstep._cpu is not built: {e}"
        if not hasattr(m, "EngineF32"):
            return False, "lockstep._cpu has no training engine (rebuild the package)"
        why = isa_problem()
        return (False, why) if why else (True, "available")

    @classmethod
    def setting_error(cls):
        return isa_problem()

    def __init__(self, model_cfg, train_cfg, dtype, strategy=None, device=None, isa="auto"):
        super().__init__(model_cfg, train_cfg, dtype, strategy=strategy, device=device)
        if isa == "auto" and isa_problem():
            raise ConfigError(isa_problem())
        if isa not in ISAS:
            raise ConfigError(f"isa must be one of {', '.join(ISAS)}, got {isa!r}")
        m, tc = _module(), train_cfg
        cls = m.EngineF32 if self.dtype == np.float32 else m.EngineF64
        self.names = reference.param_names(model_cfg.num_layers)
        self.engine = cls(model_cfg.input_size, model_cfg.hidden_size, model_cfg.output_size,
                          num_layers=model_cfg.num_layers, loss=tc.loss, loss_on=tc.loss_on,
                          optimizer=tc.optimizer, lr=tc.lr,
                          momentum=tc.momentum, beta1=tc.beta1, beta2=tc.beta2, eps=tc.eps,
                          clip=tc.clip, grad_shards=tc.grad_shards, isa=isa)

    def _slots(self):
        if self.train_cfg.optimizer == "adam":
            return {"m": "m", "v": "v"}
        if self.train_cfg.momentum:
            return {"velocity": "velocity"}
        return {}

    def load(self, params, opt_state=None):
        missing = [n for n in self.names if n not in params]
        if missing:
            raise ConfigError(f"parameters lack {', '.join(missing)}; expected "
                              f"{', '.join(self.names)}")
        params = {n: np.asarray(params[n]) for n in self.names}
        I, H, O, dt = reference.check_params(params)
        mc = self.model_cfg
        if (I, H, O) != (mc.input_size, mc.hidden_size, mc.output_size) or dt != self.dtype:
            raise ConfigError(f"parameters are for (I, H, O) = {(I, H, O)} {dt}; the backend was "
                              f"made for {(mc.input_size, mc.hidden_size, mc.output_size)} "
                              f"{self.dtype}")
        if opt_state is None:
            opt_state = reference.init_opt_state(params, self.train_cfg)
        for n in self.names:
            self.engine.set("params", n, params[n])
        for key, slot in self._slots().items():
            if key not in opt_state:
                raise ConfigError(f"optimizer state lacks {key!r} (has {', '.join(opt_state)})")
            for n in self.names:
                self.engine.set(slot, n, np.asarray(opt_state[key][n]))
        self.engine.step = int(opt_state.get("step", 0))
        if self.train_cfg.optimizer == "adam":
            self.engine.b1_pow = float(opt_state["b1_pow"])
            self.engine.b2_pow = float(opt_state["b2_pow"])

    # Training and evaluation pass x and y as they are (the reference does not cast either): the
    # engine raises a ValueError naming the expected shape and dtype when they do not fit. A
    # C-contiguous array of the working dtype is read in place, without a copy.
    def train_epoch(self, batches):
        losses = self.engine.train_epoch(np.asarray(batches.x), np.asarray(batches.y),
                                         [np.asarray(i, np.int64) for i in batches.indices],
                                         batches.masks)
        return list(losses)

    # Data-parallel training (lockstep.distributed): one group's partials (masks: the group's
    # own columns of its batch's dropout masks), and an update from gradients combined
    # elsewhere (flat, in param_names(L) order).
    def shard_partial(self, x, y, idx, nterms, data_key=None, masks=None):
        lsum, grads = self.engine.shard_partial(np.asarray(x), np.asarray(y),
                                                np.asarray(idx, np.int64), int(nterms), masks)
        return lsum[()], grads

    def apply_grads(self, flat):
        self.engine.apply_grads(np.ascontiguousarray(flat, self.dtype))

    def evaluate(self, x, y):
        return self.engine.forward(np.asarray(x), np.asarray(y))[1][()]

    def predict(self, x):
        return self.engine.forward(np.asarray(x, self.dtype))[0]  # as NumpyBackend.predict

    def state(self):
        params = {n: self.engine.get("params", n) for n in self.names}
        opt = {"step": self.engine.step}
        if self.train_cfg.optimizer == "adam":
            opt["b1_pow"] = self.dtype.type(self.engine.b1_pow)
            opt["b2_pow"] = self.dtype.type(self.engine.b2_pow)
        for key, slot in self._slots().items():
            opt[key] = {n: self.engine.get(slot, n) for n in self.names}
        return params, opt
