"""`trainlab.datasets` is `trainlab.data` under its first name; existing imports keep working.

New code imports from `trainlab.data` (see its docstring for what is where).
"""

from __future__ import annotations

from trainlab.data import (
    DATASETS,
    SCALERS,
    TASKS,
    Dataset,
    MinMax,
    NoScaling,
    Scaler,
    Standardize,
    Task,
    as_dataset,
    describe_datasets,
    from_arrays,
    from_csv,
    from_npz,
    load,
    scaler,
    scaler_from_dict,
    split_validation,
)

__all__ = [
    "DATASETS",
    "SCALERS",
    "TASKS",
    "Dataset",
    "MinMax",
    "NoScaling",
    "Scaler",
    "Standardize",
    "Task",
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
