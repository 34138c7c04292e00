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

import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from trainlab import check
from trainlab.data.files import FILE_SETTINGS  # reader settings by suffix (a CSV's target is data.target)
from trainlab.errors import InputError, did_you_mean

# How many problems one message lists; the rest are counted.
MAX_PROBLEMS = 20

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

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        from trainlab.data import DATASETS

        if value is not None and value not in DATASETS:
            raise ValueError(f"unknown dataset '{value}'. Bundled: {', '.join(DATASETS.names())}."
                             f"{did_you_mean(value, DATASETS.names())} `trainlab datasets` lists them; "
                             "for your own data give data.path instead")
        return value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None and Path(value).suffix.lower() not in FILE_SETTINGS:
            raise ValueError(f"must be a .csv or .npz file, got '{value}'")
        return value

    @model_validator(mode="after")
    def _source(self) -> DataSpec:
        if (self.name is None) == (self.path is None):
            raise ValueError("give exactly one of data.name (a bundled data set, see `trainlab datasets`) "
                             "or data.path (a .csv or .npz file)")
        problems = []
        if self.name is not None:
            from trainlab.data import DATASETS

            known = _settings_of(DATASETS.get(self.name))
            for key in self.options:
                if key not in known:
                    problems.append(f"data set '{self.name}' has no setting data.options.{key}. Settings: "
                                    f"{', '.join(known) or '(none)'}.{did_you_mean(key, known)}")
        elif self.path is not None:
            suffix = Path(self.path).suffix.lower()
            known = [k for k in FILE_SETTINGS.get(suffix, ()) if k != "target"]
            for key in self.options:
                if key not in known:
                    problems.append(f"a {suffix} file has no setting data.options.{key}. Settings: "
                                    f"{', '.join(known)}.{did_you_mean(key, known)}")
        if problems:
            raise ValueError("; ".join(problems))
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
        problems = []
        for i, layer in enumerate(layers):
            try:
                layer_from_config(layer, source=f"model.layers[{i}]")
            except InputError as error:
                problems.append(f"layer {i}: {error}")
        if problems:
            raise ValueError("; ".join(problems))
        return layers


class EarlyStoppingSpec(_Strict):
    """Keras's EarlyStopping settings."""

    monitor: str = "val_loss"
    min_delta: float = Field(default=0.0, allow_inf_nan=False)
    patience: int = 5
    mode: Literal["auto", "min", "max"] = "auto"
    baseline: float | None = Field(default=None, allow_inf_nan=False)
    restore_best_weights: bool = False
    start_from_epoch: int = 0

    @field_validator("patience", "start_from_epoch")
    @classmethod
    def _epochs(cls, value: int, info: Any) -> int:
        if value < 0:
            hint = ("Patience counts epochs without improvement; use 0 to stop at the first one"
                    if info.field_name == "patience" else "It is the first epoch (from 0) that counts; use 0")
            raise ValueError(f"must be an int >= 0, got {value}. {hint}")
        return value


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

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        check_device(value)
        return value

    @model_validator(mode="after")
    def _techniques(self) -> RecipeSpec:

        problems = technique_problems(self.optimizer, self.schedule, self.loss, self.metrics, self.num_epochs)
        if problems:
            raise ValueError("; ".join(problems))
        from trainlab.augment import batch_transforms, weight_noise

        batch_transforms(self)
        weight_noise(self)
        return self


def technique_problems(optimizer: Any, schedule: Any, loss: Any, metrics: Any, num_epochs: Any) -> list[str]:
    """What is wrong with a recipe's techniques, each built once on a dummy parameter.

    Names and settings fail here, not mid-run; each technique is tried on its
    own, so that one pass reports every problem.
    """
    from trainlab.losses import loss as make_loss
    from trainlab.metrics import metric as make_metric
    from trainlab.optimizers import optimizer as make_optimizer
    from trainlab.schedules import schedule as make_schedule

    problems: list[str] = []
    lr: float | None = None
    try:
        built = make_optimizer(optimizer, [torch.nn.Parameter(torch.zeros(1))], source="recipe.optimizer")
        lr = float(built.param_groups[0]["lr"])
        if not lr > 0:
            problems.append(f"recipe.optimizer: the learning rate must be > 0, got lr = {lr:g}: with it "
                            "the weights never move. Typical values: 1e-3 for adam, 1e-2 to 1e-1 for sgd")
    except InputError as error:
        problems.append(str(error))
    if schedule is not None:
        try:
            make_schedule(schedule, steps_per_epoch=1,
                          num_epochs=num_epochs if isinstance(num_epochs, int) and num_epochs > 0 else 1,
                          base_lr=lr if lr is not None and lr > 0 else 1e-3, source="recipe.schedule")
        except InputError as error:
            problems.append(str(error))
    resolved = None
    if loss is not None:
        try:
            resolved = make_loss(loss, source="recipe.loss")
        except InputError as error:
            problems.append(str(error))
    for m in metrics if isinstance(metrics, list) else []:
        try:
            make_metric(m, loss=resolved, source="recipe.metrics")
        except InputError as error:
            problems.append(str(error))
    return problems


class FitSpec(_Strict):
    """One run: data, model and recipe."""

    name: str = "run"
    data: DataSpec
    model: ModelSpec
    recipe: RecipeSpec = Field(default_factory=RecipeSpec)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        try:
            return check.plain_name("name", value)
        except InputError as error:
            raise ValueError(str(error).removeprefix("name ")) from None

    @model_validator(mode="after")
    def _monitor(self) -> FitSpec:
        stopping = self.recipe.early_stopping
        if stopping is not None:
            check_monitor("recipe.early_stopping.monitor", stopping.monitor, recorded_names(self.recipe))
        return self


def _settings_of(factory: Any) -> list[str]:
    import inspect

    declared = getattr(factory, "accepted_settings", None)
    if callable(declared):
        return list(declared())
    return [n for n, p in inspect.signature(factory).parameters.items()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]


def recorded_names(recipe: RecipeSpec, task: str | None = None) -> list[str]:
    """The names a run's history will hold: loss, the metrics, their val_ forms, lr and penalty.

    Without `recipe.metrics` the task picks them (accuracy for classes, mae for
    regression); with `task` unknown, both are taken as possible.
    """
    from trainlab.losses import loss as make_loss
    from trainlab.metrics import metric as make_metric

    if recipe.metrics is not None:
        loss = make_loss(recipe.loss) if recipe.loss is not None else None
        names = [make_metric(m, loss=loss).name for m in recipe.metrics]
    else:
        names = {"classification": ["accuracy"], "regression": ["mae"]}.get(task or "", ["accuracy", "mae"])
    return ["loss", *names, "val_loss", *(f"val_{n}" for n in names), "lr", "penalty"]


def check_monitor(field: str, monitor: str, recorded: Sequence[str]) -> None:
    """Refuse a monitored name the run will not record (Keras only warns, and stopping is then off)."""
    if monitor not in recorded:
        shown = [n for n in recorded if n not in ("lr", "penalty")]
        raise InputError(f"{field}: '{monitor}' is not recorded by this run, so early stopping would never "
                         f"act.{did_you_mean(monitor, shown)} The history holds {', '.join(shown)}; add a "
                         "metric to recipe.metrics to monitor it")


def check_device(value: str) -> None:
    """'auto', 'cpu', 'cuda' or 'cuda:N' (when CUDA is present here) or 'mps' (when present)."""
    kinds = ("auto", "cpu", "cuda", "cuda:N", "mps")
    if value in ("auto", "cpu"):
        return
    try:
        device = torch.device(value)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(f"must be one of {', '.join(kinds)}, got {value!r}.{did_you_mean(value, kinds)}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{value!r} was asked for but CUDA is not available on this machine; use "
                             "'auto' (CUDA when present, else the CPU) or 'cpu'")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"{value!r}: this machine has {torch.cuda.device_count()} CUDA devices "
                             f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})")
        return
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"{value!r} was asked for but MPS is not available on this machine; use 'auto' "
                             "or 'cpu'")
        return
    raise ValueError(f"must be one of {', '.join(kinds)}, got {value!r}: trainlab trains on the CPU, CUDA "
                     "or MPS.")


def parse_spec(raw: dict[str, Any], *, source: str = "spec") -> FitSpec:
    """Validate a spec mapping; a bad one raises InputError with every problem in one paragraph."""
    try:
        return FitSpec.model_validate(raw)
    except ValidationError as error:
        raise InputError(format_validation_error(error, source, extra=_unchecked_techniques(raw, error))) from None


def _unchecked_techniques(raw: Any, error: ValidationError) -> list[str]:
    """The technique problems of a recipe whose own validator did not run (another field failed first)."""
    recipe = raw.get("recipe") if isinstance(raw, dict) else None
    if not isinstance(recipe, dict) or any(tuple(e["loc"]) == ("recipe",) for e in error.errors()):
        return []
    named = [recipe.get(k) for k in ("optimizer", "schedule", "loss")]
    if not all(v is None or isinstance(v, (str, dict)) for v in named):
        return []
    try:
        return technique_problems(recipe.get("optimizer", "adam"), recipe.get("schedule"), recipe.get("loss"),
                                  recipe.get("metrics"), recipe.get("num_epochs", 20))
    except Exception:  # the raw values failed validation already; their message is enough
        return []


def read_toml(path: str | Path, *, what: str = "spec") -> dict[str, Any]:
    """The TOML file at `path` as a dict.

    A missing file, a folder, a file that is not UTF-8 text (binary, UTF-16, a
    pickle) and bad TOML are each an InputError that says which.
    """
    file = Path(path)
    if file.is_dir():
        raise InputError(f"{what} file '{file}' is a folder, not a file: give the path of a .toml file"
                         + _toml_files_in(file))
    if not file.is_file():
        raise InputError(f"{what} file '{file}' does not exist (relative paths start in {Path.cwd()})")
    try:
        data = file.read_bytes()
    except OSError as error:
        raise InputError(f"{what} file '{file}' cannot be read: {error.strerror or error}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"{what} file '{file}' is not UTF-8 text ({_kind_of_bytes(data)}; byte "
                         f"{error.start} cannot be decoded). A {what} is a TOML text file saved as UTF-8; "
                         "re-save it with that encoding.") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"{file} is not valid TOML: {error}") from None
    except RecursionError:
        raise InputError(f"{file} is not valid TOML: its tables or arrays are nested too deeply") from None


def _kind_of_bytes(data: bytes) -> str:
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "it looks like UTF-16"
    if data[:1] == b"\x80":
        return "it looks like a Python pickle"
    if b"\x00" in data[:1024]:
        return "it holds NUL bytes: a binary file or UTF-16"
    return "it may be in another encoding such as Latin-1 or Windows-1252"


def _toml_files_in(folder: Path) -> str:
    try:
        found = sorted(p.name for p in folder.glob("*.toml"))[:5]
    except OSError:
        return ""
    return f" (it holds {', '.join(found)})." if found else "."


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


def format_validation_error(error: ValidationError, source: str, *, extra: Sequence[str] = ()) -> str:
    """One paragraph: each problem with its field path, what was given and what would fix it.

    `extra` adds problems found outside pydantic; at most `MAX_PROBLEMS` are listed.
    """
    problems = []
    for item in error.errors():
        loc = tuple(item["loc"])
        path = _path_text(loc) or "(top level)"
        if item["type"] == "extra_forbidden":
            known = _fields_at(loc)
            problems.append(f"{path}: unknown field.{did_you_mean(str(loc[-1]), known)}"
                            + (f" Known fields here: {', '.join(known)}." if known else ""))
        elif item["type"] == "missing":
            problems.append(f"{path}: required field is missing")
        else:
            message = item["msg"].removeprefix("Value error, ")
            given = item.get("input")
            shown = "" if isinstance(given, (dict, list)) or given is None or "got " in message \
                else f" (got {_short(given)})"
            problems.append(f"{path}: {message}{shown}" if loc else f"{message}{shown}")
    problems += [p for p in extra if not any(p in q for q in problems)]
    more = len(problems) - MAX_PROBLEMS
    listed = "; ".join(problems[:MAX_PROBLEMS]) + (f"; and {more} more problems" if more > 0 else "")
    count = f" ({len(problems)} problems)" if len(problems) > 1 else ""
    return f"{source} is not a valid spec{count}: " + listed


def _path_text(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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
