"""Backend-agnostic training loop: host-side seeded shuffling, minibatches, epoch losses."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

import numpy as np

from . import backends, reference
from .backends import EpochBatches
from .config import ConfigError


def new_rng(seed: int) -> np.random.Generator:
    """The host generator for shuffling (docs/arithmetic.md section 7)."""
    return np.random.Generator(np.random.PCG64(seed))


def run_epochs(backend, x, y, cfg, rng, epochs, data_key=None):
    """Train ``backend`` for ``epochs`` epochs on (x, y); yield each epoch's training loss,
    the sample-weighted mean of its batch losses in the working dtype (bit-identical to
    reference.train).

    ``x`` may also be a window source (``x.shape`` (T, N, I) and ``x.gather(idx) -> (x, y)``,
    with ``y`` None): the epoch's batches then go to the backend in chunks of whole batches,
    each gathered by index into a compact array of at most ``CHUNK_BYTES``. Batches run in
    the same order with the same optimizer state either way, so the bits do not change;
    only the windows of one chunk exist at a time."""
    T, n = np.shape(x)[:2] if not hasattr(x, "gather") else x.shape[:2]
    L, H = backend.model_cfg.num_layers, backend.model_cfg.hidden_size
    reference.check_dropout(cfg, L)
    for _ in range(epochs):
        order = reference.batch_order(n, cfg, rng)
        masks = reference.epoch_masks(rng, cfg, L, T, H, order, backend.dtype)
        masks = None if masks[0] is None else masks
        if hasattr(x, "gather"):
            losses = []
            for lo, hi in _chunks(order, x.window_bytes):
                idx = np.concatenate(order[lo:hi])
                cx, cy = x.gather(idx)
                sizes = np.cumsum([0] + [len(i) for i in order[lo:hi]])
                local = [np.arange(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
                losses += backend.train_epoch(EpochBatches(
                    cx, cy, local, cfg.loss_on, None, None if masks is None else masks[lo:hi]))
        else:
            losses = backend.train_epoch(EpochBatches(x, y, order, cfg.loss_on, data_key,
                                                      masks))
        yield reference.mean_loss(losses, [len(i) for i in order], backend.dtype)


CHUNK_BYTES = 256 << 20  # windows gathered at a time from a window source


def _chunks(order, window_bytes):
    """(lo, hi) ranges of consecutive batches whose windows fit in CHUNK_BYTES."""
    per = max(1, CHUNK_BYTES // max(1, window_bytes))
    lo, count = 0, 0
    for k, idx in enumerate(order):
        if count and count + len(idx) > per:
            yield lo, k
            lo, count = k, 0
        count += len(idx)
    yield lo, len(order)


# ---- the Trainer: what a user's run goes through ----------------------------------------


@dataclass
class TrainState:
    """Everything needed to continue a run bit-exactly."""

    params: dict
    opt_state: dict | None
    rng: np.random.Generator
    epoch: int = 0
    train_loss: list = field(default_factory=list)
    valid_loss: list = field(default_factory=list)
    best_epoch: int | None = None
    best_valid: object = None
    best_params: dict | None = None
    stopped: str | None = None  # None while running; "completed", "early-stop" or "diverged"


class Diverged(RuntimeError):
    """Training produced a non-finite loss; the last good state was kept."""


def _exact(v) -> str:
    """A loss printed so that it reads back to the same bits."""
    f = float(v)
    return repr(f) if math.isfinite(f) else str(f)


class Trainer:
    """Trains any backend: epochs, minibatches (host-side seeded shuffling), validation loss
    per epoch, early stopping with patience, divergence detection, a progress bar on stderr
    (only on a TTY, never with quiet) and one log line per epoch with exact values."""

    def __init__(self, model_cfg, train_cfg, backend="auto", dtype=np.float64, strategy=None,
                 device=None, patience=None, quiet=False, progress=None, log=None, comm=None):
        self.model_cfg, self.cfg = model_cfg, train_cfg
        self.dtype = np.dtype(dtype)
        self.backend = backends.create(backend, model_cfg, train_cfg, self.dtype,
                                       strategy=strategy, device=device)
        if comm is not None:  # data-parallel over MPI: same bits for any number of ranks
            from .distributed import DataParallel
            self.backend = DataParallel(self.backend, comm)
        if patience is not None and patience <= 0:
            raise ConfigError(f"patience must be a positive number of epochs, got {patience}")
        self.patience = patience
        self.quiet = quiet
        self.progress = (not quiet and sys.stderr.isatty()) if progress is None else progress
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))

    @property
    def run_name(self):
        return self.backend.run_name

    def new_state(self, params):
        return TrainState(params=params, opt_state=None, rng=new_rng(self.cfg.seed))

    def fit(self, state: TrainState, train, valid=None, epochs=None, on_epoch=None) -> TrainState:
        """Continue ``state`` until ``epochs`` epochs (default cfg.epochs) are done, early
        stopping triggers, or the loss diverges. ``on_epoch(state)`` runs after every good
        epoch (checkpointing goes there). Returns the final state; when validation data is
        given, ``state.best_params`` holds the parameters of the best validation epoch."""
        epochs = self.cfg.epochs if epochs is None else epochs
        x, y = train
        self.backend.load(state.params, state.opt_state)
        bar = None
        if self.progress:
            from tqdm import tqdm
            bar = tqdm(total=epochs, initial=state.epoch, file=sys.stderr, unit="epoch",
                       desc=f"{self.run_name}", leave=False, dynamic_ncols=True)
        try:
            while state.epoch < epochs and state.stopped is None:
                good = (state.params, state.opt_state)
                loss = next(run_epochs(self.backend, x, y, self.cfg, state.rng, 1, data_key=id(x)))
                vloss = self.backend.evaluate(*valid) if valid is not None else None
                if not np.isfinite(loss) or (vloss is not None and not np.isfinite(vloss)):
                    state.params, state.opt_state = good
                    state.stopped = "diverged"
                    self.log(f"epoch {state.epoch + 1}: loss is {_exact(loss)}"
                             f"{'' if vloss is None else ' / valid ' + _exact(vloss)}; training "
                             "diverged, keeping the last good state (try a smaller --lr or --clip)")
                    break
                state.epoch += 1
                state.params, state.opt_state = self._host_state()
                state.train_loss.append(loss)
                msg = f"epoch {state.epoch:4d}/{epochs}  train {_exact(loss)}"
                if vloss is not None:
                    state.valid_loss.append(vloss)
                    if state.best_valid is None or vloss < state.best_valid:
                        state.best_epoch, state.best_valid = state.epoch, vloss
                        state.best_params = state.params
                        msg += f"  valid {_exact(vloss)} *"
                    else:
                        msg += f"  valid {_exact(vloss)}"
                    if self.patience and state.epoch - state.best_epoch >= self.patience:
                        state.stopped = "early-stop"
                        msg += f"  (no improvement for {self.patience} epochs: stopping)"
                if bar:
                    bar.write(msg, file=sys.stderr)
                elif not self.quiet:
                    self.log(msg)
                if bar:
                    bar.update(1)
                    bar.set_postfix(train=f"{float(loss):.4g}",
                                    valid="-" if vloss is None else f"{float(vloss):.4g}")
                if on_epoch:
                    on_epoch(state)
        finally:
            if bar:
                bar.close()
        if state.stopped is None:
            state.stopped = "completed"
        return state

    def _host_state(self):
        params, opt = self.backend.state()
        return ({n: np.array(params[n], copy=True) for n in reference.names_of(params)},
                _copy_tree(opt))


def _copy_tree(t):
    if isinstance(t, dict):
        return {k: _copy_tree(v) for k, v in t.items()}
    return np.array(t, copy=True) if isinstance(t, np.ndarray) else t
