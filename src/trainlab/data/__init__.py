"""Data sets: the bundled real ones, your arrays and files, the validation split, and feature scaling.

A `Dataset` is two tensors plus the facts a trainer needs about them: the task
(classification with `num_classes` classes, or regression) and readable names.
Everything that makes one checks the data once, here, so that the training
loop can trust it: rows match, nothing is empty, nothing is NaN or infinite.

Where data comes from:

- `load(name)` / `DATASETS`: the small real data sets scikit-learn ships
  (digits, iris, wine, breast_cancer, diabetes; offline), plus generated ones
  (`synthetic`, `sequences`) for tests and benchmarks, and regression sets with
  known noise (`friedman1`, `noisy_sine`; `trainlab.data.regression`).
- `from_arrays`, `from_csv`, `from_npz`: your own data.
- `as_dataset`: any of the above, from whatever a user wrote in a spec.

`split_validation` holds out a validation part (Keras semantics: the last
rows, unless stratified), and `SCALERS` hold the feature scalings, fitted on
the training part only and stored with the model as JSON.

Modules: `dataset` (the Dataset, its checks, `from_arrays`), `bundled` (the
`DATASETS` registry, the scikit-learn and generated sets, `load`), `files`
(.csv and .npz readers, `as_dataset`), `split` (`split_validation`) and
`scaling` (`SCALERS`). A module that adds data sets registers them in
`DATASETS` and is imported below, after `bundled`, so that every name is known
once `trainlab.data` is imported.

Example:
    >>> data = load("iris")
    >>> data
    Dataset('iris': 150 samples x 4 features, classification, 3 classes)
    >>> x_train, y_train, x_val, y_val = split_validation(data.x, data.y, fraction=0.2, stratify=True)
    >>> scaling = scaler("standardize").fit(x_train)
    >>> x_train, x_val = scaling.transform(x_train), scaling.transform(x_val)
    >>> len(x_train), len(x_val)
    (120, 30)
"""

from __future__ import annotations

import trainlab.data_images  # noqa: F401,E402  (fashion_mnist, mnist1d, digits_images join the bundled names)
from trainlab.data.bundled import DATASETS, describe_datasets, load
from trainlab.data.dataset import TASKS, Dataset, Task, from_arrays
from trainlab.data.files import as_dataset, from_csv, from_npz
from trainlab.data.regression import friedman1, noisy_sine  # noqa: F401  (registers the names)
from trainlab.data.scaling import SCALERS, MinMax, NoScaling, Scaler, Standardize, scaler, scaler_from_dict
from trainlab.data.split import split_validation

__all__ = [
    "DATASETS",
    "SCALERS",
    "Dataset",
    "TASKS",
    "Task",
    "MinMax",
    "NoScaling",
    "Scaler",
    "Standardize",
    "as_dataset",
    "describe_datasets",
    "from_arrays",
    "from_csv",
    "from_npz",
    "load",
    "scaler",
    "scaler_from_dict",
    "split_validation",
]
