"""Every registry in one table, for `trainlab catalog`."""

from __future__ import annotations

from typing import Any

from trainlab.activations import ACTIVATIONS
from trainlab.augment import AUGMENTATIONS
from trainlab.datasets import DATASETS, SCALERS
from trainlab.errors import InputError, did_you_mean
from trainlab.initializers import INITIALIZERS
from trainlab.layers import LAYERS
from trainlab.losses import LOSSES
from trainlab.metrics import METRICS
from trainlab.optimizers import OPTIMIZERS
from trainlab.registry import Registry
from trainlab.regularizers import REGULARIZERS
from trainlab.schedules import SCHEDULES

REGISTRIES: dict[str, Registry[Any]] = {
    "optimizer": OPTIMIZERS,
    "schedule": SCHEDULES,
    "initializer": INITIALIZERS,
    "activation": ACTIVATIONS,
    "regularizer": REGULARIZERS,
    "loss": LOSSES,
    "metric": METRICS,
    "layer": LAYERS,
    "augmentation": AUGMENTATIONS,
    "dataset": DATASETS,
    "scaler": SCALERS,
}


def entries(kind: str | None = None) -> list[dict[str, str]]:
    """Rows (kind, name, summary, claim) for one kind (singular or plural) or all of them."""
    if kind is None:
        kinds = list(REGISTRIES)
    else:
        singular = kind.lower().removesuffix("s") if kind.lower() not in REGISTRIES else kind.lower()
        if singular == "loss" or kind.lower() == "losses":
            singular = "loss"
        if singular not in REGISTRIES:
            raise InputError(f"unknown kind '{kind}'. Known: {', '.join(REGISTRIES)}."
                             f"{did_you_mean(kind, REGISTRIES)}")
        kinds = [singular]
    return [{"kind": k, "name": e.name, "summary": e.summary, "claim": e.claim}
            for k in kinds for e in REGISTRIES[k].describe()]
