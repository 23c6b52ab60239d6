"""Shared plumbing of the forecasting benchmarks (bench/m3.py, bench/accuracy.py,
bench/scale.py): study settings from the command line, and quiet comparison anchors."""

from __future__ import annotations

import json
import logging


def parse_set(items):
    """``KEY=VALUE`` pairs as Forecaster settings (VALUE read as JSON where it parses, else
    text)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def quiet_lightning():
    """No per-fit banners from neuralforecast's trainer in the benchmarks' tables."""
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
