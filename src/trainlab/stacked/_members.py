"""Member configs and member models: what differs between the members of one stacked run."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from trainlab import check
from trainlab.callbacks import Callback, EarlyStopping, as_callback_list
from trainlab.errors import InputError, InputTypeError, did_you_mean
from trainlab.initializers import initializer as make_initializer
from trainlab.layers import Dropout, Layer
from trainlab.models import Sequential

_EARLY_STOPPING_SETTINGS = ("monitor", "min_delta", "patience", "mode", "baseline", "restore_best_weights",
                            "start_from_epoch")


@dataclass(frozen=True, kw_only=True, eq=False)
class MemberConfig:
    """One member of a stacked run: the settings that make it differ from the others.

    The fields mirror a recipe's (`trainlab.spec.RecipeSpec`), so that a study
    varying a recipe maps each case to one member. A member trained stacked
    ends where the same run trained alone by `trainlab.engine.train` ends; see
    `trainlab.stacked` for what "the same run" is for each field.

    Attributes:
        seed: the run's seed: initial weights (for a model not built yet) and
            data order. None draws one, as a solo run does.
        optimizer: name, ``{"name": ..., "lr": ..., "weight_decay": ...}``
            table, torch.optim class or factory (as `trainlab.optimizers.optimizer`).
        schedule: lr schedule spec, or None for a constant lr.
        train_indices: rows of the training data this member trains on (a
            fold, a bootstrap sample; repeats allowed), or None for all rows.
        val_indices: rows of the *training* data this member validates on (the
            held-out fold), or None to use the run's validation data.
        early_stopping: `EarlyStopping` settings (a mapping or
            `trainlab.spec.EarlyStoppingSpec`), or None.
        l1, l2: kernel penalty strengths for every weight layer (Dense, Conv),
            replacing the layers' ``kernel_regularizer`` with ``L1L2(l1, l2)``;
            None keeps the model's. Needs a trainlab Sequential.
        label_smoothing: the cross-entropy's label smoothing, or None for the loss's own.
        dropout: the rate of every Dropout layer, or None for the model's own.
        kernel_initializer: initializer of every weight layer's kernel, or None
            for the model's own. Needs a trainlab Sequential not built yet.
        callbacks: this member's own callbacks (epoch and batch hooks).
        sample_weight: one weight per row of the training data (Keras's
            ``sample_weight``; boosting), or None for the data's own.
        model: this member's own model (a Sequential or list of layers) of the
            same architecture as the base model, differing in strengths only
            (dropout rates, L1/L2 penalties, initializers); None uses the base model.

    Example:
        >>> MemberConfig(seed=1, optimizer={"name": "adam", "lr": 0.01}).seed
        1
        >>> MemberConfig(l2=-1.0)
        Traceback (most recent call last):
        ...
        trainlab.errors.InputError: MemberConfig.l2 must be >= 0, got -1.0. It is a penalty strength; use 0 for none.
    """

    seed: int | None = None
    optimizer: Any = "adam"
    schedule: Any = None
    train_indices: Any = None
    val_indices: Any = None
    early_stopping: Any = None
    l1: float | None = None
    l2: float | None = None
    label_smoothing: float | None = None
    dropout: float | None = None
    kernel_initializer: Any = None
    callbacks: Sequence[Callback] = field(default_factory=tuple)
    sample_weight: Any = None
    model: Any = None

    def __post_init__(self) -> None:
        if self.seed is not None:
            check.int_at_least("MemberConfig.seed", self.seed, 0)
        for name in ("l1", "l2"):
            value = getattr(self, name)
            if value is not None:
                check.at_least(f"MemberConfig.{name}", value, 0, "It is a penalty strength; use 0 for none.")
        if self.label_smoothing is not None:
            check.in_range("MemberConfig.label_smoothing", self.label_smoothing, 0.0, 1.0,
                           hint="It is the probability mass moved to the uniform distribution; 0.1 is usual.")
        if self.dropout is not None:
            check.in_range("MemberConfig.dropout", self.dropout, 0.0, 1.0, open_high=True,
                           hint="It is the fraction of units dropped.")
        if self.kernel_initializer is not None:
            make_initializer(self.kernel_initializer, source="MemberConfig.kernel_initializer")
        object.__setattr__(self, "train_indices", _indices("MemberConfig.train_indices", self.train_indices))
        object.__setattr__(self, "val_indices", _indices("MemberConfig.val_indices", self.val_indices))
        object.__setattr__(self, "early_stopping", _early_stopping(self.early_stopping))
        object.__setattr__(self, "callbacks", tuple(as_callback_list(list(self.callbacks))))

    def early_stopping_callback(self) -> list[Callback]:
        """A fresh EarlyStopping for this member's run (or none)."""
        return [EarlyStopping(**self.early_stopping)] if self.early_stopping is not None else []

    @property
    def changes_model(self) -> bool:
        """Whether the member's model differs from the base model (dropout, init, penalties)."""
        return any(v is not None for v in (self.l1, self.l2, self.dropout, self.kernel_initializer, self.model))


def _indices(field_name: str, value: Any) -> Tensor | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise InputTypeError(f"{field_name} must be a sequence of row numbers (list, array or tensor), "
                             f"got {type(value).__name__} {value!r}")
    tensor = value.detach().cpu() if isinstance(value, Tensor) else torch.as_tensor(np.asarray(value))
    if tensor.dim() != 1 or tensor.dtype in (torch.bool,) or tensor.is_floating_point() or tensor.is_complex():
        raise InputTypeError(
            f"{field_name} must be a 1-D list of integer row numbers, got a {tensor.dtype} tensor of shape "
            f"{tuple(tensor.shape)}. For a boolean mask m, pass numpy.flatnonzero(m)."
        )
    if tensor.numel() == 0:
        raise InputError(f"{field_name} is empty: a member needs at least one row to train or validate on.")
    return tensor.to(torch.long)


def _early_stopping(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        value = dump()
    if not isinstance(value, Mapping):
        raise InputTypeError(
            f"MemberConfig.early_stopping must be a mapping of EarlyStopping settings (e.g. "
            f"{{'patience': 5}}) or an EarlyStoppingSpec, got {type(value).__name__} {value!r}"
        )
    settings = dict(value)
    for key in settings:
        if key not in _EARLY_STOPPING_SETTINGS:
            raise InputError(
                f"MemberConfig.early_stopping has an unknown setting '{key}'.{did_you_mean(key, _EARLY_STOPPING_SETTINGS)}"
                f" Known: {', '.join(_EARLY_STOPPING_SETTINGS)}."
            )
    EarlyStopping(**settings)  # validates the values now, not at the first epoch
    return settings


def member_model(template: nn.Module, config: MemberConfig, where: str) -> nn.Module:
    """A copy of `template` with the member's dropout, initializer and kernel penalties.

    For a trainlab Sequential the copy is rebuilt from its config with the
    changes written in, so the member's `get_config` records them; a model
    already built keeps its weights.
    """
    if config.model is not None:
        from trainlab.api import as_model

        template = as_model(config.model)
        config = replace(config, model=None)
    if not config.changes_model:
        return copy.deepcopy(template)
    needs_layers = [name for name in ("l1", "l2", "kernel_initializer") if getattr(config, name) is not None]
    describable = isinstance(template, Sequential) and all(isinstance(layer, Layer) for layer in template.layers)
    if not describable:
        if needs_layers:
            raise InputError(
                f"{where}: {', '.join(needs_layers)} change(s) the layers of a trainlab Sequential, but the model "
                f"is a {type(template).__name__}. Build the model from trainlab layers, or put the penalty "
                f"or initializer in the model itself."
            )
        model = copy.deepcopy(template)
        for module in model.modules():
            if isinstance(module, Dropout):
                module.rate = float(config.dropout)  # type: ignore[arg-type]
                module._config["rate"] = float(config.dropout)  # type: ignore[arg-type]
            elif isinstance(module, nn.Dropout):
                module.p = float(config.dropout)  # type: ignore[arg-type]
        return model
    if config.kernel_initializer is not None and template.built:
        raise InputError(
            f"{where}: kernel_initializer sets the initial weights, but the model is already built (it has "
            f"weights). Pass a model that has not been built or fitted yet."
        )
    described = template.get_config()  # type: ignore[operator]
    for layer in described["layers"]:
        _override(layer, config)
    with torch.random.fork_rng(devices=[]):
        model = Sequential.from_config(described)
    if template.built:
        model.load_state_dict(template.state_dict())
    model.scaler = copy.deepcopy(getattr(template, "scaler", None))
    return model


def _override(layer: dict[str, Any], config: MemberConfig) -> None:
    if layer.get("type") == "Dropout" and config.dropout is not None:
        layer["rate"] = float(config.dropout)
    if "kernel_initializer" in layer and config.kernel_initializer is not None:
        layer["kernel_initializer"] = config.kernel_initializer
    if "kernel_regularizer" in layer and (config.l1 is not None or config.l2 is not None):
        layer["kernel_regularizer"] = {"name": "l1l2", "l1": float(config.l1 or 0.0), "l2": float(config.l2 or 0.0)}
    inner = layer.get("layer")
    if isinstance(inner, dict):
        _override(inner, config)
