"""trainlab: train neural networks well, compare techniques side by side, explain failures.

    >>> import trainlab
    >>> from trainlab.layers import Dense
    >>> model = trainlab.Sequential([Dense(8, activation="relu"), Dense(3, activation="softmax")])
    >>> history = trainlab.fit(model, "iris", {"num_epochs": 2, "seed": 0})
    >>> len(history.history["loss"])
    2

The names below load on first use (PEP 562), so that `import trainlab` (and the
command line's `--help`, `--version` and usage errors) does not wait for torch.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from trainlab import callbacks, data, datasets, layers
    from trainlab.api import fit, run_spec
    from trainlab.diagnose import lr_find
    from trainlab.generalize import cross_validate, ensemble
    from trainlab.generalize.bias_variance import bias_variance
    from trainlab.generalize.sharpness import measure_sharpness
    from trainlab.models import Sequential, load_model
    from trainlab.runs import load
    from trainlab.search import search

_LAZY = {
    "callbacks": ("trainlab.callbacks", None),
    "data": ("trainlab.data", None),
    "datasets": ("trainlab.datasets", None),
    "layers": ("trainlab.layers", None),
    "fit": ("trainlab.api", "fit"),
    "run_spec": ("trainlab.api", "run_spec"),
    "Sequential": ("trainlab.models", "Sequential"),
    "load_model": ("trainlab.models", "load_model"),
    "lr_find": ("trainlab.diagnose", "lr_find"),
    "load": ("trainlab.runs", "load"),
    "cross_validate": ("trainlab.generalize", "cross_validate"),
    "ensemble": ("trainlab.generalize", "ensemble"),
    "bias_variance": ("trainlab.generalize.bias_variance", "bias_variance"),
    "measure_sharpness": ("trainlab.generalize.sharpness", "measure_sharpness"),
    "search": ("trainlab.search", "search"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        if importlib.util.find_spec(f"trainlab.{name}") is None:
            raise AttributeError(f"module 'trainlab' has no attribute '{name}'")
        return importlib.import_module(f"trainlab.{name}")  # a submodule, as `trainlab.engine`
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = ["Sequential", "bias_variance", "callbacks", "cross_validate", "data", "datasets", "ensemble",
           "fit", "layers", "load", "load_model", "lr_find", "measure_sharpness", "run_spec", "search",
           "__version__"]
