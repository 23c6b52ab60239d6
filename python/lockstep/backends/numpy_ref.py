"""Backend "numpy": the reference itself, behind the backend interface."""

from __future__ import annotations

import numpy as np

from .. import reference
from . import Backend


class NumpyBackend(Backend):
    name = "numpy"
    strategies = ("reference",)
    devices = ("cpu",)

    def load(self, params, opt_state=None):
        self.params = {n: np.array(params[n], dtype=self.dtype) for n in reference.PARAM_NAMES}
        self.opt = (reference.init_opt_state(self.params, self.train_cfg) if opt_state is None
                    else opt_state)

    # Overflow to inf/nan is IEEE behaviour and the trainer's divergence check reports it;
    # NumPy's warnings about it would only be noise.
    def train_epoch(self, batches):
        losses = []
        with np.errstate(all="ignore"):
            for xb, yb in batches:
                loss, self.params, self.opt = reference.train_step(self.params, self.opt, xb, yb,
                                                                   self.train_cfg)
                losses.append(loss)
        return losses

    def evaluate(self, x, y):
        with np.errstate(all="ignore"):
            return reference.evaluate(self.params, x, y, self.train_cfg)

    def predict(self, x):
        with np.errstate(all="ignore"):
            return reference.forward(self.params, np.asarray(x, self.dtype))[0]

    def state(self):
        return self.params, self.opt
