"""trainlab: train neural networks well, compare techniques side by side, explain failures.

    >>> import trainlab
    >>> from trainlab.layers import Dense
    >>> model = trainlab.Sequential([Dense(8, activation="relu"), Dense(3, activation="softmax")])
    >>> history = trainlab.fit(model, "iris", {"num_epochs": 2, "seed": 0})
    >>> len(history.history["loss"])
    2
"""

__version__ = "0.1.0"

from trainlab import callbacks, datasets, layers  # noqa: E402
from trainlab.api import fit, run_spec  # noqa: E402
from trainlab.diagnose import lr_find  # noqa: E402
from trainlab.models import Sequential  # noqa: E402
from trainlab.runs import load  # noqa: E402

__all__ = ["Sequential", "callbacks", "datasets", "fit", "layers", "load", "lr_find", "run_spec", "__version__"]
