"""lockstep: LSTM training for time-series forecasting, bit-identical across backends."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lockstep")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+unknown"
