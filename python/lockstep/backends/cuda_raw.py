"""Backend "cuda-raw": the cuda/*.cu kernels, driven from Python.

Devices: ``gpu`` runs them through CuPy (cubins compiled by ``cuda_build``, never CuPy's own
``RawModule(code=...)``); ``emu`` runs the very same kernels on the CPU through the SIMT
emulator ``lockstep._simt`` with NumPy arrays in place of CuPy arrays. The driver below is
written once against a small device abstraction (an array module plus ``launch``), so both
devices share every launch, every buffer and every argument.

Strategies (docs/cuda.md): ``naive`` (one kernel per operation per time step), ``fused`` (one
kernel per time step, projection/head/weight gradients as GEMMs around the loop) and
``persistent`` (one cooperative launch per sequence direction, W_hh slices in shared memory, a
grid barrier between time steps). Stacked layers run layer by layer, each with its strategy's
kernels; the dropout masks are uploaded per minibatch and multiplied in by ``mask_mul``.

Inside an epoch parameters, optimizer state and data stay on the device; the host uploads the
epoch's sample indices once and reads back only the batch losses.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from .. import reference
from ..config import ConfigError
from . import Backend

# The emulator's "device": few SMs and 48 KiB of shared memory per block, so that the
# persistent strategy's slicing (several blocks, partial last slice) is exercised on tiny H.
EMU_PROPS = {"name": "SIMT emulator (lockstep._simt)", "sm_count": 4,
             "smem_per_block": 48 * 1024}

# Published figures of an H200 SXM: `CudaRawBackend(..., device="emu", emulate="h200")` runs the
# kernels with the launch geometry they get on that GPU, so the emulator's cost counters
# (docs/cuda.md) are those of the device's launches.
H200_PROPS = {"name": "SIMT emulator as an NVIDIA H200 (132 SMs, 227 KiB shared per block)",
              "sm_count": 132, "smem_per_block": 227 * 1024, "arch": "sm_90"}

SOURCES = ("lstm_common", "lstm_naive", "lstm_fused", "lstm_persistent")
COOPERATIVE = ("lstm_persistent",)  # modules whose kernels need a cooperative launch


# ---- the persistent strategy's limits ------------------------------------------------------

TILE, ROWS = 32, 32  # kPersistTile, kPersistRows of cuda/lstm_persistent.cu


def _persistent_smem(H, hs, itemsize):
    """The W_hh slice (4 * hs * H) and the staged tile ((ROWS + 1) x (TILE + 1))."""
    return (4 * hs * H + (ROWS + 1) * (TILE + 1)) * itemsize


def persistent_plan(H: int, itemsize: int, sm_count: int, smem_per_block: int,
                    static_smem: int = 0):
    """(blocks, hs, dynamic shared-memory bytes) for the persistent kernels, or a ConfigError.

    At most one block per SM (all must be resident for the grid barrier), each owning hs hidden
    units and holding 4 * hs * H weights of W_hh in shared memory. hs is ceil(H / SMs) rounded up
    to a multiple of 8 when that fits (a warp then moves whole 32-byte sectors of every per-unit
    array), else ceil(H / SMs) itself. ``static_smem``: the kernels' own static shared memory
    (from the compiled cubin, lockstep.sass), which shares the per-block limit.
    """
    room = smem_per_block - static_smem
    hs0 = -(-H // sm_count)
    for hs in (-(-hs0 // 8) * 8, hs0):
        smem = _persistent_smem(H, min(hs, H), itemsize)
        if smem <= room:
            hs = min(hs, H)
            return -(-H // hs), hs, smem
    raise ConfigError(
        f"strategy persistent cannot hold W_hh on chip for H={H} in "
        f"{'float32' if itemsize == 4 else 'float64'}: it needs {smem + static_smem} bytes of "
        f"shared memory per block ({sm_count} SMs, {hs0} units per block) but a block has "
        f"{smem_per_block}; the largest H is "
        f"{persistent_max_hidden(itemsize, sm_count, room)}. Use strategy fused instead")


def persistent_static_smem(sfx: str, arch: str) -> int:
    """The larger static shared memory of persistent_fwd/bwd (sfx "_f32" or "_f64") on
    ``arch`` as ptxas compiled them (lockstep/gpu_resources.json, `python -m lockstep.sass
    --write-docs`); 0 when the table lacks them."""
    import json
    from importlib import resources

    # read here, not through lockstep.sass (which imports this module for the plan)
    table = json.loads((resources.files("lockstep") / "gpu_resources.json").read_text())
    ks = table["kernels"].get(arch) or table["kernels"]["sm_90"]
    res = [ks.get(f"persistent_{d}{sfx}") for d in ("fwd", "bwd")]
    return max((r["shared"] for r in res if r), default=0)


def persistent_max_hidden(itemsize: int, sm_count: int, smem_per_block: int) -> int:
    """The largest H the persistent plan accepts (its shared memory grows with H)."""
    def fits(H):
        return _persistent_smem(H, -(-H // sm_count), itemsize) <= smem_per_block
    lo, hi = 0, 1
    while fits(hi):
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


# ---- devices: an array module and a launcher -----------------------------------------------

class _EmuDevice:
    """NumPy arrays and lockstep._simt.launch."""

    kind = "emu"
    xp = np
    threads = 32       # per block of an element-wise kernel: few fibers, still several
    max_blocks = 2     # blocks, so grid-stride loops cross block boundaries
    persistent_threads = 16

    def __init__(self, emulate=None):
        from .. import _simt

        self._simt = _simt
        self.props = dict(EMU_PROPS)
        if emulate is not None:
            if emulate != "h200":
                raise ConfigError(f"emu can emulate the launch geometry of: h200; got {emulate!r}")
            self.props = dict(H200_PROPS)
            self.threads, self.max_blocks = _GpuDevice.threads, _GpuDevice.max_blocks
            self.persistent_threads = _GpuDevice.persistent_threads

    def launch(self, name, grid, block, args, shared_mem=0, cooperative=False):
        self._simt.launch(name, grid, block, args, shared_mem, cooperative)

    def upload(self, a, dtype=None):
        a = np.asarray(a, dtype=dtype)
        out = _aligned_empty(a.size, a.dtype)
        out[:] = a.reshape(-1)
        return out.reshape(a.shape)

    @staticmethod
    def zeros(n, dtype):
        out = _aligned_empty(n, np.dtype(dtype))
        out[:] = 0
        return out

    def download(self, a):
        return np.array(a, copy=True)


def _aligned_empty(n, dtype):
    """A 1-D array starting on a 256-byte boundary, like a CUDA allocation, so that the
    emulator's sector counts are those of the device."""
    raw = np.empty(n * dtype.itemsize + 256, np.uint8)
    off = (-raw.ctypes.data) % 256
    return raw[off:off + n * dtype.itemsize].view(dtype)


class _GpuDevice:
    """CuPy arrays and cubins from cuda_build.load_module."""

    kind = "gpu"
    threads = 256
    max_blocks = 4096
    persistent_threads = 256

    def __init__(self):
        import cupy

        from .. import cuda_build

        self.xp = cupy
        # CuPy decides cooperative launches per module (RawModule(enable_cooperative_groups=)).
        self._modules = [(cuda_build.load_module(s, cooperative=s in COOPERATIVE),
                          s in COOPERATIVE) for s in SOURCES]
        self._fns = {}
        dev = cupy.cuda.Device()
        attrs = dev.attributes
        self.props = {"name": cupy.cuda.runtime.getDeviceProperties(dev.id)["name"].decode(),
                      "sm_count": attrs["MultiProcessorCount"],
                      "smem_per_block": attrs.get("MaxSharedMemoryPerBlockOptin",
                                                  attrs["MaxSharedMemoryPerBlock"]),
                      "arch": cuda_build.device_arch()}

    def _fn(self, name):
        hit = self._fns.get(name)
        if hit is None:
            for m, coop in self._modules:
                try:
                    hit = (m.get_function(name), coop)
                    break
                except Exception:  # noqa: BLE001 - not in this module, try the next
                    continue
            if hit is None:
                raise ConfigError(f"no kernel {name} in {', '.join(SOURCES)}")
            self._fns[name] = hit
        return hit

    def launch(self, name, grid, block, args, shared_mem=0, cooperative=False):
        fn, coop = self._fn(name)
        if coop != cooperative:
            raise ConfigError(f"kernel {name}: cooperative={cooperative}, but its module is "
                              f"loaded with enable_cooperative_groups={coop}")
        if shared_mem > 48 * 1024 and fn.max_dynamic_shared_size_bytes < shared_mem:
            fn.max_dynamic_shared_size_bytes = shared_mem
        fn(_dim(grid), _dim(block), tuple(args), shared_mem=shared_mem)

    def upload(self, a, dtype=None):
        return self.xp.asarray(np.ascontiguousarray(a, dtype=dtype))

    def zeros(self, n, dtype):
        return self.xp.zeros(n, dtype)

    def download(self, a):
        return self.xp.asnumpy(a)


def _dim(d):
    return d if isinstance(d, tuple) else (d,)


def _gpu_reason():
    try:
        import cupy
    except ImportError:
        return "CuPy is not installed (pip install cupy-cuda13x, or lockstep[cuda13])"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # noqa: BLE001 - no driver, no device: all mean unavailable
        return f"no CUDA device answers: {type(e).__name__}: {e}"
    if n < 1:
        return "no CUDA device answers"
    from .. import cuda_build

    ok, why = cuda_build.nvrtc_available()
    return None if ok else why


# ---- the backend ---------------------------------------------------------------------------

class CudaRawBackend(Backend):
    name = "cuda-raw"
    strategies = ("naive", "fused", "persistent")
    devices = ("gpu", "emu")

    @classmethod
    def available(cls, device=None):
        device = device or cls.devices[0]
        if device == "emu":
            try:
                from .. import _simt  # noqa: F401
            except ImportError as e:
                return False, f"the SIMT emulator lockstep._simt is not built: {e}"
            return True, "available"
        if device != "gpu":
            return False, f"unknown device {device!r}; cuda-raw runs on gpu or emu"
        why = _gpu_reason()
        return (False, why) if why else (True, "available")

    def __init__(self, model_cfg, train_cfg, dtype, strategy=None, device=None, emulate=None):
        super().__init__(model_cfg, train_cfg, dtype, strategy, device)
        ok, why = self.available(self.device)
        if not ok:
            raise ConfigError(f"backend cuda-raw@{self.device} is unavailable: {why}")
        self.dev = _EmuDevice(emulate) if self.device == "emu" else _GpuDevice()
        self.xp = self.dev.xp
        self.sfx = "_f32" if self.dtype == np.float32 else "_f64"
        I, H, O = model_cfg.input_size, model_cfg.hidden_size, model_cfg.output_size
        self.I, self.H, self.O, self.L = I, H, O, model_cfg.num_layers
        if self.strategy == "persistent":
            arch = self.dev.props.get("arch")
            self.plan = persistent_plan(H, self.dtype.itemsize, self.dev.props["sm_count"],
                                        self.dev.props["smem_per_block"],
                                        persistent_static_smem(self.sfx, arch) if arch else 0)
        if train_cfg.loss == "ce" and O > 2 ** 24:
            raise ConfigError("cross-entropy labels travel as exact floats: at most 2**24 classes")
        # The flat layout of parameters, gradients and optimizer slots: param_names(L) order.
        H4 = 4 * H
        self.shapes = {}
        for l in range(self.L):
            n_ih, n_hh, n_b = reference.layer_names(l)
            self.shapes |= {n_ih: (H4, I if l == 0 else H), n_hh: (H4, H), n_b: (H4,)}
        self.shapes |= {"W_out": (O, H), "b_out": (O,)}
        self.off, self.P = {}, 0
        for n, shape in self.shapes.items():
            self.off[n], self.P = self.P, self.P + int(np.prod(shape))
        self._cap = (0, 0)
        self._data_key = self._x = self._y = None
        self.p = None

    # -- small helpers ----------------------------------------------------------------------
    def _s(self, v):
        return self.dtype.type(v)

    def _k(self, name, n, args):
        """An element-wise (grid-stride) kernel over n outputs."""
        t = max(1, min(self.dev.threads, n))
        self.dev.launch(name + self.sfx, max(1, min(self.dev.max_blocks, -(-n // t))), t,
                        [_i(a) for a in args])

    def _gemm(self, name, R, C, args):
        """A tiled GEMM of lstm_common.cu over an R x C output: 256 threads per tile of
        64 x 64, or 256 x 16 when C <= 16, or 16 x 256 when R <= 16 (gemm_shape there); the
        grid is capped like the element-wise kernels' (tiles are grid-strided)."""
        gm, gn = (256, 16) if C <= 16 else (16, 256) if R <= 16 else (64, 64)
        cap = self.dev.max_blocks
        self.dev.launch(name + self.sfx, (max(1, min(cap, -(-C // gn))),
                                          max(1, min(cap, -(-R // gm)))), 256,
                        [_i(a) for a in args])

    def _fused_step(self, name, B, args):
        """A fused step kernel: blocks of 32 units x 8 samples (FU, FB in lstm_fused.cu)."""
        cap = self.dev.max_blocks
        self.dev.launch(name + self.sfx, (max(1, min(cap, -(-self.H // 32))),
                                          max(1, min(cap, -(-B // 8)))), (32, 8),
                        [_i(a) for a in args])

    def _k1(self, name, args):
        """A single-thread kernel (a contract-ordered serial sum)."""
        self.dev.launch(name + self.sfx, 1, 1, [_i(a) for a in args])

    def _view(self, flat, name):
        o = self.off[name]
        return flat[o:o + int(np.prod(self.shapes[name]))]

    def _split(self, flat):
        host = self.dev.download(flat)
        return {n: host[self.off[n]:self.off[n] + int(np.prod(s))].reshape(s).copy()
                for n, s in self.shapes.items()}

    def _flat(self, tensors):
        return self.dev.upload(np.concatenate([np.asarray(tensors[n], self.dtype).reshape(-1)
                                               for n in self.shapes]))

    def _layer_params(self, l):
        """(W_ih, W_hh, b) of layer l: views of the flat parameters."""
        return tuple(self._view(self.p, n) for n in reference.layer_names(l))

    # -- state ------------------------------------------------------------------------------
    def load(self, params, opt_state=None):
        I, H, O, dt = reference.check_params(params)
        L = reference.num_layers_of(params)
        if (I, H, O, L) != (self.I, self.H, self.O, self.L) or dt != self.dtype:
            raise ConfigError(f"parameters are for (I, H, O, layers) = {(I, H, O, L)} in {dt}; "
                              f"this backend was built for {(self.I, self.H, self.O, self.L)} in "
                              f"{self.dtype}")
        xp, cfg = self.xp, self.train_cfg
        opt = reference.init_opt_state(params, cfg) if opt_state is None else opt_state
        self.p = self._flat(params)
        self.g = self.dev.zeros(self.P, self.dtype)
        # sharded batches: a group's gradients before they are added into g; the loss sums
        self.gp = self.dev.zeros(self.P, self.dtype) if cfg.grad_shards > 1 else None
        self.parts = self.dev.zeros(cfg.grad_shards, self.dtype)
        self.step = int(opt["step"])
        self.info = self.dev.zeros(2, self.dtype)  # (clip scale, clipped?)
        self.rows = self.dev.zeros(12 * H * self.L + 2 * O, self.dtype)
        self.bar = self.dev.zeros(2, np.uint32)    # the persistent kernels' grid barrier
        # fused: every layer's W_hh^T, made once per update
        self.wt = self.dev.zeros(self.L * 4 * H * H, self.dtype)
        self._wt_step = [None] * self.L
        if cfg.optimizer == "adam":
            self.m, self.v = self._flat(opt["m"]), self._flat(opt["v"])
            self.pw = self.dev.upload(np.array([opt["b1_pow"], opt["b2_pow"], 0, 0], self.dtype))
        elif cfg.momentum:
            self.vel = self._flat(opt["velocity"])

    def state(self):
        if self.p is None:
            raise ConfigError("cuda-raw: load(params, opt_state) first")
        params = self._split(self.p)
        opt = {"step": self.step}
        if self.train_cfg.optimizer == "adam":
            pw = self.dev.download(self.pw)
            opt.update(b1_pow=self.dtype.type(pw[0]), b2_pow=self.dtype.type(pw[1]),
                       m=self._split(self.m), v=self._split(self.v))
        elif self.train_cfg.momentum:
            opt["velocity"] = self._split(self.vel)
        return params, opt

    # -- buffers ----------------------------------------------------------------------------
    def _ensure(self, Tn, B):
        if Tn <= self._cap[0] and B <= self._cap[1]:
            return
        Tn, B = max(Tn, self._cap[0]), max(B, self._cap[1])
        z = lambda n: self.dev.zeros(n, self.dtype)  # noqa: E731
        H, H4, I, O, L = self.H, 4 * self.H, self.I, self.O, self.L
        self.xb, self.yb = z(Tn * B * I), z(Tn * B * max(O, 1))
        self.a, self.xproj = z(B * H4), z(Tn * B * H4)
        self.out, self.dy, self.lrow = z(Tn * B * O), z(Tn * B * O), z(Tn * B)
        self.dh, self.dcn = z(B * H), z(B * H)
        self.dha = z(Tn * B * H) if L > 1 else None  # dh_above of a layer below the top
        # Per layer: its cache (h and c with h_{-1} = c_{-1} first), da, and x^l: the masked
        # input of a layer above the first (with dropout; x^l is set by _forward).
        drop = self.train_cfg.dropout and L > 1
        self.lay = [SimpleNamespace(h=z((Tn + 1) * B * H), c=z((Tn + 1) * B * H),
                                    tc=z(Tn * B * H), act=z(Tn * B * H4), da=z(Tn * B * H4),
                                    xin=z(Tn * B * H) if drop and l else None, x=None)
                    for l in range(L)]
        self._cap = (Tn, B)

    def _targets(self, y):
        """MSE targets as they are; cross-entropy labels as exact floats (fewer than 2**24)."""
        y = np.asarray(y)
        if self.train_cfg.loss == "ce":
            if not np.issubdtype(y.dtype, np.integer):
                raise ConfigError(f"cross-entropy targets must be integer class indices, got "
                                  f"{y.dtype}")
            if y.size and (y.min() < 0 or y.max() >= self.O):
                raise ConfigError(f"cross-entropy targets must lie in [0, {self.O}), got "
                                  f"{y.min()}..{y.max()}")
        elif y.dtype != self.dtype:
            raise ConfigError(f"MSE targets must be {self.dtype}, got {y.dtype}")
        return self.dev.upload(y.reshape(-1), self.dtype)

    def _upload_data(self, x, y, key):
        if key is None or key != self._data_key or self._x is None:
            self._x = self.dev.upload(np.asarray(x, self.dtype).reshape(-1))
            self._y = self._targets(y)
            self._data_key = key

    # -- one training step ------------------------------------------------------------------
    def train_epoch(self, batches):
        if self.p is None:
            raise ConfigError("cuda-raw: load(params, opt_state) first")
        x = np.asarray(batches.x)
        if x.ndim != 3 or x.shape[2] != self.I or x.dtype != self.dtype:
            raise ConfigError(f"x must be a (T, N, {self.I}) {self.dtype} array, got "
                              f"{x.shape} {x.dtype}")
        Tn, N, _ = x.shape
        indices = [np.asarray(i) for i in batches.indices]
        if not indices:
            return []
        self._upload_data(x, batches.y, batches.data_key)
        self._ensure(Tn, max(len(i) for i in indices))
        idx_all = self.dev.upload(np.concatenate(indices).astype(np.int32))
        losses = self.xp.zeros(len(indices), self.dtype)
        last = self.train_cfg.loss_on == "last"
        ycols = self.O if self.train_cfg.loss == "mse" else 1
        pos = 0
        S = self.train_cfg.grad_shards
        for bi, idx in enumerate(indices):
            B = len(idx)
            nt = reference.loss_terms_count(Tn, B, self.O, self.train_cfg)
            masks = batches.mask(bi)
            # Each group of the batch (one unless grad_shards > 1; docs/arithmetic.md) gives
            # its loss sum and gradients, added in group order into parts[0] and g.
            for gi, (lo, hi) in enumerate(reference.shard_bounds(B, S)):
                self._group(Tn, N, idx_all[pos + lo:pos + hi], hi - lo, nt, gi,
                            self.g if gi == 0 else self.gp, reference.shard_masks(masks, lo, hi))
                if gi:
                    self._k("add_into", self.P, [self.g, self.gp, self.P])
            self._k1("loss_combine", [self.parts, S, nt, losses[bi:bi + 1]])
            pos += B
            self._update()
        host = self.dev.download(losses)
        return [self.dtype.type(v) for v in host]

    def _group(self, Tn, N, ib, Bg, nt, gi, g, masks=None):
        """One group of a batch: the samples ib (device indices, Bg of them) give their loss
        sum in parts[gi] (dy divided by nt, the whole batch's N) and their gradients in g;
        masks: the group's dropout masks (host, (L-1, Tn, Bg, H)) or None."""
        if Bg == 0:  # an empty group: +0 partials
            self._k("fill", self.P, [g, self.P, self._s(0)])
            self._k1("fill", [self.parts[gi:], 1, self._s(0)])
            return
        last = self.train_cfg.loss_on == "last"
        ycols = self.O if self.train_cfg.loss == "mse" else 1
        self._k("gather", Tn * Bg * self.I, [self._x, ib, self.xb, Tn, N, Bg, self.I])
        outer = 1 if last else Tn
        self._k("gather", outer * Bg * ycols, [self._y, ib, self.yb, outer, N, Bg, ycols])
        md = self._masks(masks, Tn, Bg)
        self._forward(self.xb, Tn, Bg, md)
        self._loss_part(Tn, Bg, nt, gi)
        self._backward(Tn, Bg, md)
        self._weight_grads(Tn, Bg, g)

    def _masks(self, masks, Tn, B):
        """A minibatch's (or group's) dropout masks on the device, flat, or None."""
        if masks is None:
            return None
        want = (self.L - 1, Tn, B, self.H)
        if np.shape(masks) != want:
            raise ConfigError(f"dropout masks must have shape {want}, got {np.shape(masks)}")
        return self.dev.upload(np.asarray(masks).reshape(-1), self.dtype)

    # Data-parallel training (lockstep.distributed), through host buffers: one group's
    # partials computed on the device and copied back, and an update from gradients combined
    # on the host (flat, in param_names(L) order, as the device buffers are).
    def shard_partial(self, x, y, idx, nterms, data_key=None, masks=None):
        x = np.asarray(x)
        Tn, N, _ = x.shape
        idx = np.asarray(idx)
        self._upload_data(x, y, data_key)
        self._ensure(Tn, max(1, len(idx)))
        ib = self.dev.upload(idx.astype(np.int32)) if len(idx) else None
        self._group(Tn, N, ib, len(idx), int(nterms), 0, self.g, masks)
        return self.dev.download(self.parts)[0], self.dev.download(self.g)

    def apply_grads(self, flat):
        self.g[:] = self.dev.upload(np.ascontiguousarray(flat, self.dtype))
        self._update()

    def _forward(self, x, Tn, B, masks=None):
        """The layers bottom up, one after another: layer l > 0 reads x^l = layer l-1's h_t
        (t >= 0), times its dropout mask when ``masks`` (the (L-1, Tn, B, H) masks on the
        device, flat) are given; then the head on the top layer's h."""
        H, O, n = self.H, self.O, Tn * B * self.H
        for l, lay in enumerate(self.lay):
            if l:
                x = self.lay[l - 1].h[B * H:]
                if masks is not None:
                    self._k("mask_mul", n, [lay.xin, x, masks[(l - 1) * n:], n])
                    x = lay.xin
            lay.x = x  # the weight gradients read the same input
            self._layer_forward(l, x, Tn, B)
        if self.strategy != "naive":  # naive runs the head inside its time loop
            W_out, b_out = self._view(self.p, "W_out"), self._view(self.p, "b_out")
            self._gemm("linear", Tn * B, O, [self.out, self.lay[-1].h[B * H:], W_out, b_out,
                                             Tn * B, H, O, 0])

    def _layer_forward(self, l, x, Tn, B):
        """Layer l over the sequence x (Tn, B, K): its h, c, tc and act."""
        H, H4, O = self.H, 4 * self.H, self.O
        K = self.I if l == 0 else H
        W_ih, W_hh, b = self._layer_params(l)
        lay = self.lay[l]
        BH, BH4 = B * H, B * H4
        self._k("fill", BH, [lay.h, BH, self._s(0)])  # h_{-1} = c_{-1} = 0
        self._k("fill", BH, [lay.c, BH, self._s(0)])
        h, c, tc, act = lay.h, lay.c, lay.tc, lay.act
        if self.strategy == "naive":
            head = l == self.L - 1
            W_out, b_out = self._view(self.p, "W_out"), self._view(self.p, "b_out")
            for t in range(Tn):
                a, act_t = self.a, act[t * BH4:]
                self._gemm("linear", B, H4, [a, x[t * B * K:], W_ih, b, B, K, H4, 0])
                self._gemm("linear", B, H4, [a, h[t * BH:], W_hh, b, B, H, H4, 1])
                self._k("naive_gates", BH4, [a, act_t, B, H])
                self._k("naive_cell", BH, [act_t, c[t * BH:], c[(t + 1) * BH:], tc[t * BH:],
                                           h[(t + 1) * BH:], B, H])
                if head:
                    self._gemm("linear", B, O, [self.out[t * B * O:], h[(t + 1) * BH:], W_out,
                                                 b_out, B, H, O, 0])
            return
        if self.strategy == "fused":
            wt = self.wt[l * H4 * H:]
            if self._wt_step[l] != self.step:  # W_hh^T for coalesced reads, once per update
                self.dev.launch("fused_transpose" + self.sfx,
                                (min(-(-H // 32), 64), min(-(-H4 // 32), 64)), (32, 8),
                                [W_hh, wt, _i(H4), _i(H)])
                self._wt_step[l] = self.step
            self._gemm("linear", Tn * B, H4, [self.xproj, x, W_ih, b, Tn * B, K, H4, 0])
            for t in range(Tn):
                self._fused_step("fused_fwd_step", B, [self.xproj[t * BH4:], wt, h[t * BH:],
                                                       c[t * BH:], act[t * BH4:],
                                                       c[(t + 1) * BH:], tc[t * BH:],
                                                       h[(t + 1) * BH:], B, H])
        else:
            blocks, hs, smem = self.plan
            self._gemm("linear", Tn * B, H4, [self.xproj, x, W_ih, b, Tn * B, K, H4, 0])
            self.dev.launch("persistent_fwd" + self.sfx, blocks, self.dev.persistent_threads,
                            [_i(a) for a in (self.xproj, W_hh, act, h, c, tc, Tn, B, H, hs,
                                             self.bar)], smem, True)

    def _loss_part(self, Tn, B, nt, gi, y=None):
        """dy (divided by nt, the whole batch's number of terms) and the loss sum of these B
        samples into parts[gi]."""
        ce = int(self.train_cfg.loss == "ce")
        last = int(self.train_cfg.loss_on == "last")
        y = self.yb if y is None else y
        self._k("loss_rows", Tn * B, [self.out, y, self.dy, self.lrow, Tn, B, self.O, ce, last,
                                      nt])
        self._k1("loss_part", [self.out, y, self.lrow, self.parts, gi, Tn, B, self.O, ce, last])

    def _backward(self, Tn, B, masks=None):
        """The layers top down. The top layer starts from the head's dy (its terms summed in
        the step kernels, or a GEMM per step in naive); a layer l below it from dh_above =
        (da^{l+1} W_ih^{l+1}) * m_l, one GEMM over all steps (and mask_mul) before its BPTT."""
        H, n = self.H, Tn * B * self.H
        for l in reversed(range(self.L)):
            if l < self.L - 1:
                W_ih_up = self._layer_params(l + 1)[0]
                self._gemm("matmul_nn", Tn * B, H, [self.dha, self.lay[l + 1].da, W_ih_up,
                                                    Tn * B, 4 * H, H, 0])
                if masks is not None:
                    self._k("mask_mul", n, [self.dha, self.dha, masks[l * n:], n])
            self._layer_backward(l, Tn, B)

    def _layer_backward(self, l, Tn, B):
        """BPTT through layer l: its da from its cache and what arrives from above."""
        H, H4 = self.H, 4 * self.H
        top = l == self.L - 1
        # From above: the head's dy with its O outputs, or (O = 0 for the step kernels) the
        # layer's dh_above, H per row.
        up, O = (self.dy, self.O) if top else (self.dha, 0)
        W_out, W_hh = self._view(self.p, "W_out"), self._layer_params(l)[1]
        lay = self.lay[l]
        BH, BH4 = B * H, B * H4
        act, c, tc, da = lay.act, lay.c, lay.tc, lay.da
        if self.strategy == "persistent":
            blocks, hs, smem = self.plan
            self.dev.launch("persistent_bwd" + self.sfx, blocks, self.dev.persistent_threads,
                            [_i(a) for a in (up, W_out, W_hh, act, c, tc, self.dcn, da, Tn, B, H,
                                             O, hs, self.bar)], smem, True)
            return
        row = O if top else H
        for t in reversed(range(Tn)):
            first = int(t == Tn - 1)
            da_next = da if first else da[(t + 1) * BH4:]  # not read at t = T-1
            if self.strategy == "naive":
                if top:
                    dh = self.dh
                    self._gemm("matmul_nn", B, H, [dh, up[t * B * O:], W_out, B, O, H, 0])
                else:  # the recurrent terms accumulate onto dh_above_t in place
                    dh = up[t * BH:]
                if not first:
                    self._gemm("matmul_nn", B, H, [dh, da_next, W_hh, B, H4, H, 1])
                self._k("naive_cell_bwd", BH, [dh, act[t * BH4:], c[t * BH:], tc[t * BH:],
                                               self.dcn, da[t * BH4:], B, H, first])
            else:
                self._fused_step("fused_bwd_step", B, [up[t * B * row:], W_out, da_next, W_hh,
                                                       act[t * BH4:], c[t * BH:], tc[t * BH:],
                                                       self.dcn, da[t * BH4:], B, H, O, first])

    def _weight_grads(self, Tn, B, g):
        """Every layer's gradients from its own input x^l, then the head's."""
        H, H4, O = self.H, 4 * self.H, self.O
        N = Tn * B
        v = lambda n: self._view(g, n)  # noqa: E731
        for l, lay in enumerate(self.lay):
            n_ih, n_hh, n_b = reference.layer_names(l)
            K = self.I if l == 0 else H
            self._gemm("matmul_tn", H4, K, [v(n_ih), lay.da, lay.x, N, H4, K])
            self._gemm("matmul_tn", H4, H, [v(n_hh), lay.da, lay.h, N, H4, H])
            self._k("colsum", H4, [v(n_b), lay.da, N, H4])
        self._gemm("matmul_tn", O, H, [v("W_out"), self.dy, self.lay[-1].h[B * H:], N, O, H])
        self._k("colsum", O, [v("b_out"), self.dy, N, O])

    def _update(self):
        cfg, s = self.train_cfg, self._s
        if cfg.clip:
            R = 12 * self.H * self.L + 2 * self.O
            self.dev.launch("rowsq" + self.sfx,  # a warp per 32 rows
                            max(1, min(self.dev.max_blocks, -(-R // 32))), 32,
                            [_i(a) for a in (self.g, self.rows, self.I, self.H, self.O,
                                             self.L)])
            self._k1("clip_norm", [self.rows, R, s(cfg.clip), self.info])
        if cfg.optimizer == "adam":
            self._k1("adam_scalars", [self.pw, s(cfg.beta1), s(cfg.beta2), s(cfg.lr)])
            self._k("adam", self.P, [self.p, self.g, self.m, self.v, self.P, s(cfg.beta1),
                                     s(cfg.beta2), s(cfg.eps), self.pw, self.info])
        elif cfg.momentum:
            self._k("momentum", self.P, [self.p, self.g, self.vel, self.P, s(cfg.lr),
                                         s(cfg.momentum), self.info])
        else:
            self._k("sgd", self.P, [self.p, self.g, self.P, s(cfg.lr), self.info])
        self.step += 1

    # -- inference --------------------------------------------------------------------------
    def _forward_host(self, x):
        x = np.asarray(x, self.dtype)
        if x.ndim != 3 or x.shape[2] != self.I:
            raise ConfigError(f"x must be a (T, B, {self.I}) array (time-major), got {x.shape}")
        Tn, B, _ = x.shape
        if Tn == 0 or B == 0:
            raise ConfigError(f"x must have at least one time step and one sample, got {x.shape}")
        self._ensure(Tn, B)
        self._forward(self.dev.upload(x.reshape(-1)), Tn, B)
        return Tn, B

    def predict(self, x):
        Tn, B = self._forward_host(x)
        return self.dev.download(self.out[:Tn * B * self.O]).reshape(Tn, B, self.O)

    def evaluate(self, x, y):
        Tn, B = self._forward_host(x)
        loss = self.xp.zeros(1, self.dtype)
        nt = reference.loss_terms_count(Tn, B, self.O, self.train_cfg)
        self._loss_part(Tn, B, nt, 0, y=self._targets(y))
        self._k1("loss_combine", [self.parts, 1, nt, loss])
        return self.dtype.type(self.dev.download(loss)[0])


def _i(a):
    """Python ints travel as C ints (every size parameter of the kernels is an int)."""
    if isinstance(a, (int, np.integer)) and not isinstance(a, bool):
        if not -2 ** 31 <= int(a) < 2 ** 31:
            raise ConfigError(f"size {a} does not fit a kernel's int parameter")
        return np.int32(a)
    return a
