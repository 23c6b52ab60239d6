"""Golden files: small training runs of the reference, stored as versioned .npz files.

Every backend test loads them and must reproduce the per-epoch losses and the final
parameters bit for bit. Regenerate (only when the contract changes on purpose) with

    python -m lockstep.golden tests/golden
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import reference
from .config import ModelConfig, TrainConfig

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Case:
    name: str
    model: ModelConfig
    train: TrainConfig
    T: int
    N: int

    def file_name(self, dtype) -> str:
        return f"{self.name}_{np.dtype(dtype).name}.npz"


# Odd sizes, B=1, T=1, H=1, H not a multiple of 32, partial last batches, both losses and
# loss positions, both optimizers, momentum, clipping on and off.
CASES = (
    Case("mse_all_sgd", ModelConfig(1, 5, 1),
         TrainConfig(loss="mse", optimizer="sgd", lr=0.05, epochs=3, batch_size=4, seed=1), 6, 10),
    Case("mse_last_adam_clip", ModelConfig(3, 7, 2),
         TrainConfig(loss="mse", loss_on="last", optimizer="adam", lr=0.01, clip=0.5,
                     epochs=3, batch_size=4, seed=2), 5, 9),
    Case("ce_all_momentum_clip", ModelConfig(3, 13, 3),
         TrainConfig(loss="ce", optimizer="sgd", lr=0.5, momentum=0.9, clip=0.1, epochs=2,
                     batch_size=5, seed=3), 7, 11),
    Case("ce_last_adam_b1_t1", ModelConfig(2, 4, 4),
         TrainConfig(loss="ce", loss_on="last", optimizer="adam", lr=0.05, epochs=3,
                     batch_size=1, seed=4), 1, 3),
    Case("mse_all_adam_h1_fullbatch", ModelConfig(2, 1, 1, init="orthogonal"),
         TrainConfig(loss="mse", optimizer="adam", lr=0.02, clip=0.1, epochs=4, batch_size=0,
                     shuffle=False, seed=5), 4, 6),
    # Stacked layers (arithmetic.md section 8): 2 and 3 layers, dropout masks on and off.
    Case("mse_all_adam_2layers", ModelConfig(2, 6, 1, num_layers=2),
         TrainConfig(loss="mse", optimizer="adam", lr=0.01, clip=0.5, epochs=3, batch_size=4,
                     seed=6), 5, 9),
    Case("ce_last_sgd_3layers_dropout", ModelConfig(3, 5, 3, num_layers=3),
         TrainConfig(loss="ce", loss_on="last", optimizer="sgd", lr=0.2, momentum=0.9,
                     epochs=3, batch_size=3, dropout=0.3, seed=7), 4, 7),
)
DTYPES = (np.float32, np.float64)


def make_inputs(case: Case, dtype):
    """Deterministic inputs, targets and initial parameters of a case."""
    dt = np.dtype(dtype)
    rng = np.random.Generator(np.random.PCG64(1000 + case.train.seed))
    m, t = case.model, case.train
    x = rng.standard_normal((case.T, case.N, m.input_size)).astype(dt)
    shape = (case.T, case.N) if t.loss_on == "all" else (case.N,)
    if t.loss == "mse":
        y = rng.standard_normal(shape + (m.output_size,)).astype(dt)
    else:
        y = rng.integers(0, m.output_size, shape).astype(np.int64)
    params = reference.init_params(m, dt, seed=t.seed)
    return x, y, params


def run_reference(case: Case, dtype):
    x, y, params = make_inputs(case, dtype)
    final, history = reference.train(params, (x, y), case.train)
    return x, y, params, history["train_loss"], final


def write(case: Case, dtype, directory) -> Path:
    x, y, params, losses, final = run_reference(case, dtype)
    path = Path(directory) / case.file_name(dtype)
    meta = {"format_version": FORMAT_VERSION, "case": case.name, "dtype": np.dtype(dtype).name,
            "model": case.model.to_dict(), "train": case.train.to_dict()}
    arrays = {"meta": np.array(json.dumps(meta, sort_keys=True)), "x": x, "y": y,
              "losses": np.array(losses, dtype=dtype)}
    arrays.update({f"init_{n}": v for n, v in params.items()})
    arrays.update({f"final_{n}": v for n, v in final.items()})
    np.savez(path, **arrays)
    return path


def _names(meta):
    return reference.param_names(meta["model"].get("num_layers", 1))


def load(path) -> dict:
    """A golden file as {"meta", "model", "train", "x", "y", "init", "losses", "final"}."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        if meta["format_version"] != FORMAT_VERSION:
            raise ValueError(f"{path}: golden format {meta['format_version']}, this lockstep "
                             f"reads {FORMAT_VERSION}; regenerate with python -m lockstep.golden")
        return {
            "meta": meta,
            "model": ModelConfig(**meta["model"]),
            "train": TrainConfig(**meta["train"]),
            "x": z["x"], "y": z["y"], "losses": z["losses"],
            "init": {n: z[f"init_{n}"] for n in _names(meta)},
            "final": {n: z[f"final_{n}"] for n in _names(meta)},
        }


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m lockstep.golden DIRECTORY", file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    for case in CASES:
        for dt in DTYPES:
            print(write(case, dt, out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
