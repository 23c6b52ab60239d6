"""lockstep: LSTM training for time-series forecasting, bit-identical across backends.

    from lockstep import Forecaster, data
    fc = Forecaster(hidden_size=32, window=12, backend="auto", seed=0, holdout=24)
    fc.fit(data.load("airpassengers")).predict(12)
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lockstep")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+unknown"

from . import data, reference  # noqa: E402
from .config import ConfigError, ModelConfig, TrainConfig  # noqa: E402
from .forecast import Forecaster  # noqa: E402

__all__ = ["__version__", "ConfigError", "Forecaster", "ModelConfig", "TrainConfig", "data",
           "reference"]
