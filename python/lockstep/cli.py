"""The ``lockstep`` command line."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from . import __version__, data, reference
from .config import ConfigError, ModelConfig, TrainConfig


def _windows(series, window):
    """Time-major (T, N, 1) inputs and next-value targets at every step."""
    n = len(series) - window
    x = np.stack([series[i:i + window] for i in range(n)], axis=1)[..., None]
    y = np.stack([series[i + 1:i + window + 1] for i in range(n)], axis=1)[..., None]
    return x, y


def cmd_train(args):
    series = np.log(data.load("airpassengers"))
    train_part = series[:-args.holdout]
    mu, sd = train_part.mean(), train_part.std()
    scaled = ((series - mu) / sd).astype(args.dtype)
    x, y = _windows(scaled[:-args.holdout], args.window)
    params = reference.init_params(ModelConfig(1, args.hidden, 1), args.dtype, seed=args.seed)
    cfg = TrainConfig(optimizer="adam", lr=args.lr, epochs=args.epochs, batch_size=16,
                      clip=1.0, seed=args.seed)
    params, hist = reference.train(params, (x, y), cfg)
    for e, loss in enumerate(hist["train_loss"]):
        print(f"epoch {e:3d}  train loss {float(loss):.9g}", file=sys.stderr)
    if args.json:
        print(json.dumps({"history": {"train_loss": [float(v) for v in hist["train_loss"]]}}))
    return 0


def cmd_info(args):
    from . import _cpu

    info = {"version": __version__, "backends": {"numpy": "available"},
            "cpu_build": _cpu.build_info()}
    if args.json:
        print(json.dumps(info))
    else:
        for k, v in info.items():
            print(f"{k}: {v}")
    return 0


def build_parser():
    p = argparse.ArgumentParser(prog="lockstep", description=__doc__)
    p.add_argument("--version", action="version", version=f"lockstep {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train on the bundled AirPassengers series")
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--hidden", type=int, default=32)
    t.add_argument("--window", type=int, default=12)
    t.add_argument("--holdout", type=int, default=24)
    t.add_argument("--lr", type=float, default=0.01)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_train)
    i = sub.add_parser("info", help="backends and build facts")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_info)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as e:
        print(f"lockstep: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
