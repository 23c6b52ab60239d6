"""Old names of the many-series layer, kept as thin aliases for one release (0.1.x).

Many series and one series now go through the same ``lockstep.Forecaster`` and the one
reader ``lockstep.data.read``; use those. ``GlobalForecaster`` is ``Forecaster``,
``read_panel`` is ``data.read``, and the metrics live in ``lockstep.metrics``.
"""

from .data.table import Panel, read as read_panel  # noqa: F401
from .forecast import Forecaster as GlobalForecaster  # noqa: F401
from .metrics import metrics, naive_scale, seasonal_naive  # noqa: F401
