"""Backend "numba-cuda": Numba CUDA kernels (lockstep.numba_kernels) with two strategies,
"per-sample" (one thread per sample for the whole sequence) and "fused" (threads over
(sample, hidden unit), one launch per time step), on a real GPU ("gpu") or under Numba's CUDA
simulator ("sim", a process started with NUMBA_ENABLE_CUDASIM=1). See docs/numba.md.

Inside an epoch the parameters, the optimizer state, the data and every intermediate stay on
the device; the host uploads the epoch's sample order once and copies back only the per-batch
losses. Adam's running powers b1_pow and b2_pow are scalars updated on the host in the working
dtype, exactly as the reference does, and passed to the update kernel.

Stacked layers run one after another (layer by layer) on views of the flat parameter, gradient
and scratch arrays; each minibatch's dropout masks are uploaded once and every kernel that
needs them indexes its group's columns.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np

from .. import reference
from ..config import ConfigError
from . import Backend

_SIM_ENV = "NUMBA_ENABLE_CUDASIM"


def _numba_cuda():
    """(numba.cuda module, None) or (None, the reason it cannot be imported)."""
    try:
        from numba import cuda
    except Exception as e:  # noqa: BLE001 - any import failure is the reason
        return None, (f"numba-cuda is not importable ({type(e).__name__}: {e}); "
                      "pip install numba-cuda[cu13] (or lockstep[cuda13])")
    return cuda, None


class NumbaCudaBackend(Backend):
    name = "numba-cuda"
    strategies = ("per-sample", "fused")
    devices = ("gpu", "sim")
    device_env = {"sim": {_SIM_ENV: "1"}}

    @classmethod
    def available(cls, device=None):
        device = device or cls.devices[0]
        if device not in cls.devices:
            return False, f"numba-cuda runs on {', '.join(cls.devices)}; got {device!r}"
        cuda, why = _numba_cuda()
        if cuda is None:
            return False, why
        sim = bool(cuda.config.ENABLE_CUDASIM)
        if device == "sim":
            if not sim:
                return False, (f"the CUDA simulator needs a process started with {_SIM_ENV}=1 "
                               "(set before numba is imported)")
            return True, "available"
        if sim:
            return False, (f"this process runs the CUDA simulator ({_SIM_ENV}=1); "
                           "use device 'sim' or a process without it")
        try:
            ok = cuda.is_available()
        except Exception as e:  # noqa: BLE001
            return False, f"no CUDA GPU: {type(e).__name__}: {e}"
        if not ok:
            return False, "no CUDA GPU: numba.cuda.is_available() is False (no device or driver)"
        return True, "available"

    def __init__(self, model_cfg, train_cfg, dtype, strategy=None, device=None):
        super().__init__(model_cfg, train_cfg, dtype, strategy, device)
        ok, why = self.available(self.device)
        if not ok:
            raise ConfigError(f"backend {self.run_name} is unavailable: {why}")
        from numba import cuda

        from ..numba_kernels import common
        from ..numba_kernels.fused import make_fused, transpose_grid
        from ..numba_kernels.per_sample import make_per_sample
        self.cuda = cuda
        self.sim = bool(cuda.config.ENABLE_CUDASIM)
        self.common = common.make_common(self.dtype)
        self.fused = make_fused(self.dtype)
        self.per_sample = make_per_sample(self.dtype) if self.strategy == "per-sample" else None
        mc = model_cfg
        self.I, self.H, self.O = mc.input_size, mc.hidden_size, mc.output_size
        self.L = mc.num_layers
        self.names = reference.param_names(self.L)
        self.lay = common.layout(self.I, self.H, self.O, self.L)
        # layer l's block starts at bases[l]; bases[L] is W_out's offset
        self.bases = [common.layer_base(self.I, self.H, l) for l in range(self.L + 1)]
        self.kinds = {"sgd": common.SGD, "momentum": common.MOMENTUM, "adam": common.ADAM}
        # 1-D kernels use grid-stride loops: on a GPU one thread per output; under the
        # simulator (one Python thread per CUDA thread) a single small block does them all.
        self.tpb = 4 if self.sim else 128
        self.wgrad_geom = [common.wgrad_launch(self._K(l), self.H, self.O, self.sim,
                                               head=l == self.L - 1) for l in range(self.L)]
        self.transpose_geom = transpose_grid(self.H, self.sim)
        self._data_key = self._data = None
        self._scratch_shape = None

    def _K(self, l):
        """Input size of layer l."""
        return self.I if l == 0 else self.H

    # ---- state -----------------------------------------------------------------------------
    def _flat(self, d):
        return np.concatenate([np.asarray(d[n], self.dtype).reshape(-1) for n in self.names])

    def _unflat(self, flat):
        out = {}
        for n in self.names:
            o, shape = self.lay[n], self.lay["shapes"][n]
            out[n] = np.ascontiguousarray(flat[o:o + int(np.prod(shape))].reshape(shape))
        return out

    def load(self, params, opt_state=None):
        L = reference.num_layers_of(params)
        if L != self.L:
            raise ConfigError(f"parameters are for {L} layer(s), config says {self.L}")
        params = {n: np.asarray(params[n], self.dtype) for n in self.names}
        I, H, O, _ = reference.check_params(params)
        if (I, H, O) != (self.I, self.H, self.O):
            raise ConfigError(f"parameters are for (I, H, O) = {(I, H, O)}, config says "
                              f"{(self.I, self.H, self.O)}")
        tc = self.train_cfg
        opt = reference.init_opt_state(params, tc) if opt_state is None else opt_state
        dt, cuda = self.dtype, self.cuda
        self.step = int(opt["step"])
        self.P = cuda.to_device(self._flat(params))
        dummy = np.zeros(1, dt)
        if tc.optimizer == "adam":
            self.kind = self.kinds["adam"]
            self.b1_pow, self.b2_pow = dt.type(opt["b1_pow"]), dt.type(opt["b2_pow"])
            self.M = cuda.to_device(self._flat(opt["m"]))
            self.V = cuda.to_device(self._flat(opt["v"]))
        elif tc.momentum:
            self.kind = self.kinds["momentum"]
            self.M, self.V = cuda.to_device(self._flat(opt["velocity"])), cuda.to_device(dummy)
        else:
            self.kind = self.kinds["sgd"]
            self.M, self.V = cuda.to_device(dummy), cuda.to_device(dummy)
        self.G = cuda.device_array(self.lay["size"], dt)
        # sharded batches: a group's gradients before they are added into G
        self.GP = (cuda.device_array(self.lay["size"], dt) if self.train_cfg.grad_shards > 1
                   else None)
        self.PARTS = cuda.device_array(self.train_cfg.grad_shards, dt)  # groups' loss sums
        self.WT = cuda.device_array(4 * H * H, dt)  # W_hh^T for the fused forward step
        self.NB = cuda.to_device(np.zeros(2, dt))
        self.ROWS = cuda.device_array(12 * H * self.L + 2 * O, dt)
        self.NOMASK = (cuda.to_device(dummy), 0, 1, 0)  # (M, masked, Bm, lo) without dropout

    def state(self):
        params = self._unflat(self.P.copy_to_host())
        dt = self.dtype
        if self.kind == self.kinds["adam"]:
            opt = {"step": self.step, "b1_pow": dt.type(self.b1_pow),
                   "b2_pow": dt.type(self.b2_pow), "m": self._unflat(self.M.copy_to_host()),
                   "v": self._unflat(self.V.copy_to_host())}
        elif self.kind == self.kinds["momentum"]:
            opt = {"step": self.step, "velocity": self._unflat(self.M.copy_to_host())}
        else:
            opt = {"step": self.step}
        return params, opt

    # ---- data and scratch ------------------------------------------------------------------
    def _upload(self, x, y, loss_on, key):
        """x, y to the device once per data key (None: always)."""
        if key is not None and key == self._data_key and self._data is not None:
            return self._data
        x = np.asarray(x)
        if x.ndim != 3 or x.shape[2] != self.I:
            raise ConfigError(f"x must be a (T, N, {self.I}) array (time-major), got {x.shape}")
        T, N, _ = x.shape
        if T == 0 or N == 0:
            raise ConfigError(f"x must have at least one time step and one sample, got {x.shape}")
        cuda, dt = self.cuda, self.dtype
        y = np.asarray(y)
        ce = self.train_cfg.loss == "ce"
        if ce:
            want = (T, N) if loss_on == "all" else (N,)
            if y.shape != want or not np.issubdtype(y.dtype, np.integer):
                raise ConfigError(f"cross-entropy targets must be a {want} integer array, "
                                  f"got {y.shape} {y.dtype}")
            if y.min() < 0 or y.max() >= self.O:
                raise ConfigError(f"cross-entropy targets must lie in [0, {self.O})")
            YF, YI = np.zeros(1, dt), y.astype(np.int64).reshape(-1)
        else:
            want = (T, N, self.O) if loss_on == "all" else (N, self.O)
            if y.shape != want:
                raise ConfigError(f"MSE targets must be a {want} array, got {y.shape}")
            YF, YI = np.asarray(y, dt).reshape(-1), np.zeros(1, np.int64)
        self._data = (T, N, cuda.to_device(np.ascontiguousarray(x, dt).reshape(-1)),
                      cuda.to_device(np.ascontiguousarray(YF)),
                      cuda.to_device(np.ascontiguousarray(YI)))
        self._data_key = key
        return self._data

    def _scratch(self, T, B):
        if self._scratch_shape is not None and self._scratch_shape[0] == T \
                and self._scratch_shape[1] >= B:
            return self.S
        H, O, L, dt, cuda = self.H, self.O, self.L, self.dtype, self.cuda
        n = T * B
        self.S = {k: cuda.device_array(max(size, 1), dt) for k, size in (
            ("HS", L * (n + B) * H), ("CS", L * (n + B) * H), ("GA", L * n * 4 * H),
            ("TC", L * n * H), ("DA", L * n * 4 * H), ("XM", (L - 1) * n * H),
            ("OUT", n * O), ("DY", n * O), ("DCN", B * H), ("TERMS", n * O),
            ("XP", n * 4 * H), ("DHA", n * H))}
        # the identity sample order: layers above 0 read their input as a (T, B, H) array
        self.S["ID"] = cuda.to_device(np.arange(B, dtype=np.int64))
        self._scratch_shape = (T, B)
        return self.S

    def _layer(self, S, l, T, B):
        """Views of layer l's scratch (HS, CS, GA, TC, DA) for a batch of B samples."""
        n, H = T * B, self.H
        hs, ga, tc = (n + B) * H, n * 4 * H, n * H
        return {"HS": S["HS"][l * hs:(l + 1) * hs], "CS": S["CS"][l * hs:(l + 1) * hs],
                "GA": S["GA"][l * ga:(l + 1) * ga], "TC": S["TC"][l * tc:(l + 1) * tc],
                "DA": S["DA"][l * ga:(l + 1) * ga]}

    def _input(self, S, l, T, B, X, PERM, off, N, masked):
        """(array, sample order, offset, row count N) of layer l's input x^l: the data for
        layer 0; above it h^{l-1}[1:] of the layer below (a view of HS) or, with dropout, the
        masked copy in XM."""
        if l == 0:
            return X, PERM, off, N
        n, H = T * B, self.H
        if masked:
            return S["XM"][(l - 1) * n * H:l * n * H], S["ID"], 0, B
        below = (l - 1) * (n + B) * H
        return S["HS"][below + B * H:below + (n + B) * H], S["ID"], 0, B

    def _grid(self, n):
        if self.sim:
            return 1, self.tpb
        return max(1, (n + self.tpb - 1) // self.tpb), self.tpb

    # ---- kernels ---------------------------------------------------------------------------
    def _forward_fused(self, T, N, X, PERM, off, B, S, t0, nsteps, mk):
        """Every layer bottom up, then the head on the top layer; ``mk`` = (M, masked, Bm,
        lo): the minibatch's dropout masks and where this group's samples start in them."""
        fz, H, O = self.fused, self.H, self.O
        TU, SB = fz.tiles
        M, masked, Bm, lo = mk
        blocks = ((H + TU - 1) // TU, (B + SB - 1) // SB)
        for l in range(self.L):
            K, Pl, ly = self._K(l), self.P[self.bases[l]:], self._layer(S, l, T, B)
            XI, PI, oi, NI = self._input(S, l, T, B, X, PERM, off, N, masked)
            if l and masked:  # XI is XM: fill it from the layer below
                fz.mask_input[self._grid(T * B * H)](self._layer(S, l - 1, T, B)["HS"], M, l - 1,
                                                     T, B, Bm, lo, H, XI)
            # W_hh^T of this layer: P changes only in the update after the backward pass, so
            # this is once per parameter update and layer (and once per predict).
            fz.transpose_whh[self.transpose_geom, (TU, SB)](Pl, K, H, self.WT)
            fz.input_proj[self._grid(T * B * 4 * H)](Pl, XI, PI, oi, B, T, NI, K, H, S["XP"],
                                                      ly["HS"], ly["CS"])
            for t in range(T):
                fz.forward_step[blocks, (TU, SB)](self.WT, t, B, H, S["XP"], ly["HS"],
                                                  ly["CS"], ly["GA"], ly["TC"])
        top = self.L - 1
        fz.head[self._grid(nsteps * B * O)](self.P[self.bases[top]:], t0, nsteps, B,
                                            self._K(top), H, O, self._layer(S, top, T, B)["HS"],
                                            S["OUT"])

    def _batch(self, T, N, X, YF, YI, PERM, off, B, bi, LOSSES, M):
        """One training step: each group of the batch (docs/arithmetic.md, "Sharded
        gradients"; one group unless grad_shards > 1) gives its loss sum and gradients, added
        in group order into LOSSES[bi] and self.G; then clipping and the update. M: the
        batch's dropout masks on the device, or None."""
        tc, dt = self.train_cfg, self.dtype
        ce = 1 if tc.loss == "ce" else 0
        steps = T if tc.loss_on == "all" else 1
        nf = dt.type(steps * B * (1 if ce else self.O))  # the whole batch's N
        nshards = tc.grad_shards
        for g, (lo, hi) in enumerate(reference.shard_bounds(B, nshards)):
            G = self.G if g == 0 else self.GP
            if hi == lo:  # an empty group: +0 partials
                G.copy_to_device(np.zeros(self.lay["size"], dt))
                self.common.loss_part[1, 1](G, 0, self.PARTS, g)
            else:
                mk = self.NOMASK if M is None else (M, 1, B, lo)
                self._group(T, N, X, YF, YI, PERM, off + lo, hi - lo, nf, G, g, mk)
            if g:
                self.common.add_into[self._grid(self.lay["size"])](self.G, self.GP,
                                                                    self.lay["size"])
        self.common.loss_combine[1, 1](self.PARTS, nshards, nf, LOSSES, bi)
        self._update()

    def _group(self, T, N, X, YF, YI, PERM, off, B, nf, G, g, mk):
        """Loss sum (into PARTS[g]) and gradients (into G) of the B samples PERM[off:off+B],
        dy divided by the whole batch's nf; mk = (M, masked, Bm, lo) their dropout masks."""
        tc = self.train_cfg
        I, H, O, L = self.I, self.H, self.O, self.L
        S = self._scratch(T, B)
        ce = 1 if tc.loss == "ce" else 0
        loss_all = 1 if tc.loss_on == "all" else 0
        steps = T if loss_all else 1
        nterms = steps * B * (1 if ce else O)
        M, masked, Bm, lo = mk
        cm = self.common
        if self.strategy == "per-sample":
            self.per_sample.sample_step[max(1, (B + 31) // 32), min(32, B)](
                self.P, X, YF, YI, PERM, off, B, T, N, I, H, O, L, ce, loss_all, nf, M, masked,
                Bm, lo, S["HS"], S["CS"], S["GA"], S["TC"], S["XM"], S["OUT"], S["DY"], S["DA"],
                S["DCN"], S["TERMS"])
        else:
            fz = self.fused
            TU, SB = fz.tiles
            self._forward_fused(T, N, X, PERM, off, B, S, 0 if loss_all else T - 1, steps, mk)
            fz.loss_terms[self._grid(T * B)](PERM, off, T, B, N, O, ce, loss_all, nf, S["OUT"],
                                             YF, YI, S["DY"], S["TERMS"])
            blocks = ((H + TU - 1) // TU, (B + SB - 1) // SB)
            for l in range(L - 1, -1, -1):
                ly = self._layer(S, l, T, B)
                if l == L - 1:  # from the head: dy_t W_out
                    fz.dh_above[self._grid(T * B * H)](S["DY"], O, self.P, self.bases[L], T, B,
                                                       H, M, 0, 0, Bm, lo, S["DHA"])
                else:  # from the layer above: (da^{l+1}_t W_ih^{l+1}) * m_l
                    fz.dh_above[self._grid(T * B * H)](
                        self._layer(S, l + 1, T, B)["DA"], 4 * H, self.P, self.bases[l + 1], T,
                        B, H, M, masked, l, Bm, lo, S["DHA"])
                Pl = self.P[self.bases[l]:]
                for t in range(T - 1, -1, -1):
                    fz.backward_step[blocks, (TU, SB)](Pl, t, T, B, self._K(l), H, S["DHA"],
                                                       ly["GA"], ly["CS"], ly["TC"], ly["DA"],
                                                       S["DCN"])
        cm.loss_part[1, 1](S["TERMS"], nterms, self.PARTS, g)
        # Per layer, tiled over (gradient row, column) with every sum over n ascending in one
        # thread; the top layer's launch also computes the head's gradients.
        for l in range(L):
            XI, PI, oi, NI = self._input(S, l, T, B, X, PERM, off, N, masked)
            ly = self._layer(S, l, T, B)
            cm.wgrad[self.wgrad_geom[l]](XI, PI, oi, B, T, NI, self._K(l), H, O, ly["HS"],
                                         ly["DA"], S["DY"], G[self.bases[l]:])

    def _update(self):
        tc, dt, cm = self.train_cfg, self.dtype, self.common
        I, H, O = self.I, self.H, self.O
        if tc.clip:
            nrows = 12 * H * self.L + 2 * O
            cm.row_norms[self._grid(nrows)](self.G, I, H, O, self.L, self.ROWS)
            cm.clip_scale[1, 1](self.ROWS, nrows, dt.type(tc.clip), self.NB)
        # Optimizer scalars, in the working dtype exactly as reference.apply_update.
        one = dt.type(1)
        lr = dt.type(tc.lr)
        mu = dt.type(tc.momentum) if self.kind == self.kinds["momentum"] else dt.type(0)
        b1, b2, eps = dt.type(tc.beta1), dt.type(tc.beta2), dt.type(tc.eps)
        step_size, bc = lr, one
        self.step += 1
        if self.kind == self.kinds["adam"]:
            self.b1_pow = self.b1_pow * b1
            self.b2_pow = self.b2_pow * b2
            step_size = lr / (one - self.b1_pow)
            bc = np.sqrt(one - self.b2_pow)
        cm.update[self._grid(self.lay["size"])](self.P, self.G, self.NB, self.M, self.V,
                                                self.kind, lr, mu, b1, b2, eps, step_size, bc,
                                                self.lay["size"])

    @contextlib.contextmanager
    def _quiet_occupancy(self):
        """The serial kernels (loss sum, clipping norm) run one thread by contract, and small
        models give small grids: Numba's low-occupancy warnings say nothing useful here."""
        try:  # numba-cuda has its own warning classes; older versions used numba's
            from numba.cuda.core.errors import NumbaPerformanceWarning
        except ImportError:
            from numba.core.errors import NumbaPerformanceWarning
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".*Grid size", NumbaPerformanceWarning)
            yield

    def train_epoch(self, batches):
        with self._quiet_occupancy():
            return self._train_epoch(batches)

    def _train_epoch(self, batches):
        T, N, X, YF, YI = self._upload(batches.x, batches.y, batches.loss_on, batches.data_key)
        if not len(batches):
            return []
        order = np.concatenate([np.asarray(i, np.int64) for i in batches.indices])
        PERM = self.cuda.to_device(order)
        LOSSES = self.cuda.device_array(len(batches), self.dtype)
        off = 0
        for bi, idx in enumerate(batches.indices):
            masks = batches.mask(bi)
            M = None if masks is None else self.cuda.to_device(self._masks(masks, T, len(idx)))
            self._batch(T, N, X, YF, YI, PERM, off, len(idx), bi, LOSSES, M)
            off += len(idx)
        host = LOSSES.copy_to_host()
        return [self.dtype.type(v) for v in host]

    def _masks(self, masks, T, B):
        """A minibatch's (or group's) dropout masks, checked, flat for the device."""
        want = (self.L - 1, T, B, self.H)
        if np.shape(masks) != want:
            raise ConfigError(f"dropout masks must have shape {want}, got {np.shape(masks)}")
        return np.ascontiguousarray(masks, self.dtype).reshape(-1)

    # Data-parallel training (lockstep.distributed), through host buffers: one group's
    # partials computed on the device and copied back, and an update from gradients combined
    # on the host (flat, in param_names(L) order, as the device buffer G is).
    def shard_partial(self, x, y, idx, nterms, data_key=None, masks=None):
        with self._quiet_occupancy():
            T, N, X, YF, YI = self._upload(x, y, self.train_cfg.loss_on, data_key)
            idx = np.asarray(idx, np.int64)
            if len(idx) == 0:
                return self.dtype.type(0), np.zeros(self.lay["size"], self.dtype)
            mk = self.NOMASK if masks is None else (
                self.cuda.to_device(self._masks(masks, T, len(idx))), 1, len(idx), 0)
            self._group(T, N, X, YF, YI, self.cuda.to_device(idx), 0, len(idx),
                        self.dtype.type(nterms), self.G, 0, mk)
            return self.PARTS.copy_to_host()[0], self.G.copy_to_host()

    def apply_grads(self, flat):
        with self._quiet_occupancy():
            self.G.copy_to_device(np.ascontiguousarray(flat, self.dtype))
            self._update()

    def predict(self, x):
        """The forward pass on the device (fused forward kernels for either strategy)."""
        x = np.ascontiguousarray(x, self.dtype)
        if x.ndim != 3 or x.shape[2] != self.I or x.shape[0] == 0 or x.shape[1] == 0:
            raise ConfigError(f"x must be a non-empty (T, B, {self.I}) array, got {x.shape}")
        T, B, _ = x.shape
        cuda = self.cuda
        X = cuda.to_device(x.reshape(-1))
        PERM = cuda.to_device(np.arange(B, dtype=np.int64))
        S = self._scratch(T, B)
        with self._quiet_occupancy():
            self._forward_fused(T, B, X, PERM, 0, B, S, 0, T, self.NOMASK)
        return S["OUT"].copy_to_host()[:T * B * self.O].reshape(T, B, self.O)

    def evaluate(self, x, y):
        """Loss of the device forward pass; the loss itself is reference.loss_grad on the host
        (the same arithmetic the kernels use)."""
        return reference.loss_grad(self.predict(x), y, self.train_cfg)[0]
