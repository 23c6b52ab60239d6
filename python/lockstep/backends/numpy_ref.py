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
        self.names = reference.param_names(self.model_cfg.num_layers)
        self.params = {n: np.array(params[n], dtype=self.dtype) for n in self.names}
        self.opt = (reference.init_opt_state(self.params, self.train_cfg) if opt_state is None
                    else opt_state)

    # Overflow to inf/nan is IEEE behaviour and the trainer's divergence check reports it;
    # NumPy's warnings about it would only be noise.
    def train_epoch(self, batches):
        losses = []
        with np.errstate(all="ignore"):
            for k, (xb, yb) in enumerate(batches):
                loss, self.params, self.opt = reference.train_step(self.params, self.opt, xb, yb,
                                                                   self.train_cfg, batches.mask(k))
                losses.append(loss)
        return losses

    # Data-parallel training (lockstep.distributed): one group's partials, and an update
    # from gradients combined elsewhere. Flat vectors in param_names order.
    def shard_partial(self, x, y, idx, nterms, data_key=None, masks=None):
        xb, yb = reference.take_batch(x, y, np.asarray(idx, np.int64), self.train_cfg)
        with np.errstate(all="ignore"):
            lsum, grads = reference.shard_partial(self.params, xb, yb, self.train_cfg, nterms,
                                                  masks)
        return lsum, np.concatenate([grads[n].reshape(-1) for n in self.names])

    def apply_grads(self, flat):
        grads, o = {}, 0
        for n in self.names:
            size = self.params[n].size
            grads[n] = np.asarray(flat[o:o + size], self.dtype).reshape(self.params[n].shape)
            o += size
        with np.errstate(all="ignore"):
            self.params, self.opt = reference.apply_update(
                self.params, reference.clip_grads(grads, self.train_cfg.clip), self.opt,
                self.train_cfg)

    def evaluate(self, x, y):
        with np.errstate(all="ignore"):
            return reference.evaluate(self.params, x, y, self.train_cfg)

    def predict(self, x):
        with np.errstate(all="ignore"):
            return reference.forward(self.params, np.asarray(x, self.dtype))[0]

    def state(self):
        return self.params, self.opt
