"""The validated spec: data, model and recipe in one value (TOML file or Python dict).

This is the one place that rejects bad input. Unknown fields are errors that
name the field's path and suggest the right word; technique names and their
settings are checked by building them once against the registries, so that a
spec that validates trains.

    name = "digits-mlp"

    [data]
    name = "digits"              # or path = "data.csv", target = "label"
    validation_split = 0.2
    scaling = "standardize"

    [[model.layers]]
    type = "Dense"
    units = 256
    activation = "relu"

    [recipe]
    optimizer = {name = "adam", lr = 0.001}
    loss = "sparse_categorical_crossentropy"
    metrics = ["accuracy"]
    batch_size = 32
    num_epochs = 20
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import tomllib
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from trainlab.errors import InputError, did_you_mean

NameOrTable = str | dict[str, Any]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSpec(_Strict):
    """Where the data comes from and how it is split and scaled."""

    name: str | None = None
    path: str | None = None
    target: str | int = -1
    options: dict[str, Any] = Field(default_factory=dict)
    validation_split: float = 0.2
    stratify: bool = False
    scaling: Literal["auto", "standardize", "minmax", "none"] = "auto"

    @field_validator("validation_split")
    @classmethod
    def _split(cls, value: float) -> float:
        if not 0.0 < value < 1.0:
            raise ValueError(f"must be in (0, 1), got {value}: it is the fraction of samples held out "
                             "for validation, e.g. 0.2")
        return value

    @model_validator(mode="after")
    def _source(self) -> DataSpec:
        if (self.name is None) == (self.path is None):
            raise ValueError("give exactly one of data.name (a bundled data set, see `trainlab datasets`) "
                             "or data.path (a .csv or .npz file)")
        return self


class ModelSpec(_Strict):
    """The model as a list of Keras-style layers: ``[[model.layers]] type = "Dense" ...``."""

    layers: list[dict[str, Any]]

    @field_validator("layers")
    @classmethod
    def _layers(cls, layers: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from trainlab.layers import layer_from_config

        if not layers:
            raise ValueError("needs at least one layer")
        for i, layer in enumerate(layers):
            try:
                layer_from_config(layer, source=f"model.layers[{i}]")
            except InputError as error:
                raise ValueError(f"layer {i}: {error}") from None
        return layers


class EarlyStoppingSpec(_Strict):
    """Keras's EarlyStopping settings."""

    monitor: str = "val_loss"
    min_delta: float = 0.0
    patience: int = 5
    mode: Literal["auto", "min", "max"] = "auto"
    baseline: float | None = None
    restore_best_weights: bool = False
    start_from_epoch: int = 0


class RecipeSpec(_Strict):
    """The training technique: optimizer, schedule, loss, metrics, batch size, epochs, stopping, seed."""

    optimizer: NameOrTable = "adam"
    schedule: NameOrTable | None = None
    loss: NameOrTable | None = None
    metrics: list[NameOrTable] | None = None
    batch_size: int = Field(default=32, ge=1)
    num_epochs: int = Field(default=20, ge=1)
    shuffle: bool = True
    seed: int = Field(default=0, ge=0)
    early_stopping: EarlyStoppingSpec | None = None
    clip_grad_norm: float | None = Field(default=None, gt=0)
    clip_grad_value: float | None = Field(default=None, gt=0)
    divergence_factor: float | None = Field(default=100.0, gt=0)
    device: str = "auto"
    augment: list[NameOrTable] | None = None
    input_noise: float | dict[str, Any] | None = None
    weight_noise: float | dict[str, Any] | None = None
    mixup: float | dict[str, Any] | None = None
    cutmix: float | dict[str, Any] | None = None

    @model_validator(mode="after")
    def _techniques(self) -> RecipeSpec:
        from trainlab.losses import loss as make_loss
        from trainlab.metrics import metric as make_metric
        from trainlab.optimizers import optimizer as make_optimizer
        from trainlab.schedules import schedule as make_schedule

        # Build each technique once on a dummy parameter, so names and settings fail here, not mid-run.
        built = make_optimizer(self.optimizer, [torch.nn.Parameter(torch.zeros(1))], source="recipe.optimizer")
        if self.schedule is not None:
            make_schedule(self.schedule, steps_per_epoch=1, num_epochs=self.num_epochs,
                          base_lr=built.param_groups[0]["lr"], source="recipe.schedule")
        resolved = make_loss(self.loss, source="recipe.loss") if self.loss is not None else None
        for m in self.metrics or []:
            make_metric(m, loss=resolved, source="recipe.metrics")
        from trainlab.augment import batch_transforms, weight_noise

        batch_transforms(self)
        weight_noise(self)
        return self


class FitSpec(_Strict):
    """One run: data, model and recipe."""

    name: str = "run"
    data: DataSpec
    model: ModelSpec
    recipe: RecipeSpec = Field(default_factory=RecipeSpec)


def parse_spec(raw: dict[str, Any], *, source: str = "spec") -> FitSpec:
    """Validate a spec mapping; a bad one raises InputError with every problem in one paragraph."""
    try:
        return FitSpec.model_validate(raw)
    except ValidationError as error:
        raise InputError(format_validation_error(error, source)) from None


def read_toml(path: str | Path, *, what: str = "spec") -> dict[str, Any]:
    """The TOML file at `path` as a dict; a missing file or bad TOML is an InputError."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"{what} file '{file}' does not exist")
    try:
        return tomllib.loads(file.read_text())
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"{file} is not valid TOML: {error}") from None


def load_spec(path: str | Path) -> FitSpec:
    """Read and validate a TOML spec file."""
    return parse_spec(read_toml(path), source=str(path))


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    model: Any = FitSpec
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        annotation = field.annotation
        model = next((a for a in getattr(annotation, "__args__", (annotation,))
                      if isinstance(a, type) and issubclass(a, BaseModel)), None)
    return list(model.model_fields) if model is not None else []


def format_validation_error(error: ValidationError, source: str) -> str:
    """One paragraph: each problem with its field path, what was given and what would fix it."""
    problems = []
    for item in error.errors():
        loc = tuple(item["loc"])
        path = ".".join(str(p) for p in loc) or "(top level)"
        if item["type"] == "extra_forbidden":
            known = _fields_at(loc)
            problems.append(f"{path}: unknown field.{did_you_mean(str(loc[-1]), known)}"
                            + (f" Known fields here: {', '.join(known)}." if known else ""))
        elif item["type"] == "missing":
            problems.append(f"{path}: required field is missing")
        else:
            message = item["msg"].removeprefix("Value error, ")
            given = item.get("input")
            shown = "" if isinstance(given, (dict, list)) or given is None else f" (got {given!r})"
            problems.append(f"{path}: {message}{shown}")
    return f"{source} is not a valid spec: " + "; ".join(problems)


def spec_to_dict(spec: FitSpec) -> dict[str, Any]:
    """The resolved spec, every default written out, without None values (TOML has no null)."""
    resolved: dict[str, Any] = _drop_none(spec.model_dump(mode="json"))
    return resolved


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value
