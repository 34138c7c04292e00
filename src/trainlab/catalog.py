"""Every registry in one table, for `trainlab catalog`: each technique's summary, defaults and claim."""

from __future__ import annotations

import inspect
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
from trainlab.registry import Entry, Registry
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
    """Rows (kind, name, summary, defaults, claim) for one kind (singular or plural) or all of them.

    `summary` is the first paragraph of the technique's docstring (or its registered summary), whole;
    `defaults` lists the settings a user may give with their default values ("lr=0.001, betas=(0.9,
    0.999), ...").

    Example:
        >>> adam = next(row for row in entries("optimizer") if row["name"] == "adam")
        >>> adam["defaults"].startswith("lr=0.001, betas=(0.9, 0.999)")
        True
    """
    kinds = list(REGISTRIES) if kind is None else [canonical_kind(kind)]
    return [{"kind": k, "name": e.name, "summary": full_summary(e), "defaults": defaults(e), "claim": e.claim}
            for k in kinds for e in REGISTRIES[k].describe()]


def kinds() -> list[dict[str, Any]]:
    """One row per kind: its name, how many entries it has, and the first few names."""
    return [{"kind": k, "count": len(r.names()), "names": r.names()} for k, r in REGISTRIES.items()]


def canonical_kind(kind: str) -> str:
    """'optimizers', 'Optimizer' -> 'optimizer'; an unknown kind lists the known ones."""
    lowered = kind.lower()
    singular = "loss" if lowered in ("loss", "losses") else lowered.removesuffix("s")
    if lowered in REGISTRIES:
        singular = lowered
    if singular not in REGISTRIES:
        raise InputError(f"unknown kind '{kind}'. Known: {', '.join(REGISTRIES)}."
                         f"{did_you_mean(kind, REGISTRIES)}")
    return singular


def full_summary(entry: Entry[Any]) -> str:
    """The whole first paragraph of the factory's docstring when the summary is its first line."""
    paragraphs = (inspect.getdoc(entry.factory) or "").split("\n\n")
    if not entry.summary or not paragraphs[0].startswith(entry.summary):
        return entry.summary
    text = " ".join(line.strip() for line in paragraphs[0].splitlines())
    if text.endswith(":") and len(paragraphs) > 1:  # "Adadelta, with torch's accumulators:" + the update
        text += " " + "; ".join(line.strip() for line in paragraphs[1].splitlines() if line.strip())
    return text


# Arguments the caller supplies (parameters, step counts, the loss), not settings a user writes.
_CONTEXT = {"params", "steps_per_epoch", "num_epochs", "total_steps", "base_lr", "loss", "num_outputs",
            "generator", "kwargs"}


def defaults(entry: Entry[Any]) -> str:
    """'lr=0.001, betas=(0.9, 0.999), eps=1e-08': the settings with a default value."""
    factory = entry.factory
    # A layer class forwards **kwargs to its bases: read the defaults along the class chain.
    inits = [k.__dict__["__init__"] for k in factory.__mro__ if "__init__" in k.__dict__
             and k.__module__.startswith("trainlab")] if isinstance(factory, type) else [factory]
    parameters: list[inspect.Parameter] = []
    for init in inits:
        try:
            parameters += [p for p in inspect.signature(init).parameters.values()
                           if p.name != "self" and p.name not in {q.name for q in parameters}]
        except (TypeError, ValueError):
            continue
    shown = []
    for p in parameters:
        if p.name in _CONTEXT or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.default is p.empty \
                or p.default is None:
            continue
        value = tuple(p.default) if isinstance(p.default, list) else p.default
        shown.append(f"{p.name}={value!r}" if isinstance(value, str) else f"{p.name}={value}")
    return ", ".join(shown)
