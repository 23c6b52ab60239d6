"""lockstep: LSTM training for time-series forecasting, bit-identical across backends.

    from lockstep import Forecaster, data
    fc = Forecaster(hidden_size=32, window=12, backend="auto", seed=0, holdout=24)
    fc.fit(data.load("airpassengers")).predict(12)
"""

__all__ = ["__version__", "ConfigError", "Forecaster", "ModelConfig", "TrainConfig", "data",
           "reference"]

# The public names, and the version (importlib.metadata takes ~50 ms), load on first use
# (PEP 562): `import lockstep.cli` runs no more than this file before the command line
# installs its interrupt handling.
_LAZY = {"data": (".data", None), "reference": (".reference", None),
         "ConfigError": (".config", "ConfigError"), "ModelConfig": (".config", "ModelConfig"),
         "TrainConfig": (".config", "TrainConfig"), "Forecaster": (".forecast", "Forecaster")}


def __getattr__(name):
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("lockstep")
        except PackageNotFoundError:  # running from a source tree
            value = "0.0.0+unknown"
        globals()[name] = value
        return value
    if name not in _LAZY:
        raise AttributeError(f"module 'lockstep' has no attribute {name!r}")
    import importlib

    module, attr = _LAZY[name]
    m = importlib.import_module(module, __name__)
    value = m if attr is None else getattr(m, attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | {"__version__"})
