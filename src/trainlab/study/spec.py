"""Study specs: a base fit spec plus what to vary, expanded into validated runs.

A study file is a fit spec (``name``, ``[data]``, ``[[model.layers]]``,
``[recipe]``; see `trainlab.spec`) plus a ``[study]`` table::

    [study]
    seeds = 3                    # repeats of each case; repeat r trains with recipe.seed + r
    metric = "val_accuracy"      # what the table ranks by; default: val_<first metric>, else val_loss
    rank_by = "final"            # rank by the "final" (last epoch) or the "best" epoch's value
    cv = 5                       # optional: each run is a 5-fold cross-validation, compared on its fold means

    [study.vary]                 # a grid: every combination of the axes, the first axis outermost
    optimizer = ["sgd", "momentum", "adam"]
    lr = [0.001, 0.01, 0.1]

    [[study.case]]               # or named cases, each overriding some fields
    name = "he+relu"
    "layers.kernel_initializer" = "he_normal"
    "layers.activation" = "relu"

Batch size as an axis. ``batch_size = [32, 256, 1024]`` in ``[study.vary]``
varies it; ``lr_scaling`` says how each case's learning rate follows it,
relative to ``base_batch_size`` (default: the base spec's batch size), whose
lr is the one the spec gives: "none" keeps it, "linear" multiplies it by
batch_size / base_batch_size (Goyal et al. 2017), "sqrt" by the square root of
that ratio (Krizhevsky 2014; Hoffer et al. 2017). ``sharpness = true`` adds
each run's sharpness (top Hessian eigenvalue on its first 2,000 training rows,
Hutchinson trace, epsilon-sharpness; `trainlab.generalize.sharpness`) and its
generalization gap to its result.json, and a chart of sharpness against batch
size to the report::

    [study]
    lr_scaling = "linear"
    base_batch_size = 32
    sharpness = true

    [study.vary]
    batch_size = [32, 256, 1024]

With both ``vary`` and ``case``, every case is crossed with the grid; with
neither, the study repeats the base spec over seeds.

Paths. A key (``lr``, ``recipe.optimizer.lr``, ``model.layers[0].activation``,
``layers.activation`` for every hidden layer) is written in the override-path
language of `trainlab.overrides`, which describes the short names and how a
technique's name and settings combine.

Validation. Before anything trains, every case is built into a full spec and
checked by `trainlab.spec.parse_spec`; an unknown field (with a suggestion),
an empty axis, a value that does not validate are errors that name the case.
A run's id is ``<case-slug>-s<seed>``; it names its folder in the study folder.

Example:
    >>> study = parse_study({
    ...     "name": "demo", "data": {"name": "iris"},
    ...     "model": {"layers": [{"type": "Dense", "units": 8, "activation": "relu"},
    ...                          {"type": "Dense", "units": 3, "activation": "softmax"}]},
    ...     "recipe": {"optimizer": {"name": "momentum", "momentum": 0.8}, "num_epochs": 2},
    ...     "study": {"seeds": 2, "vary": {"optimizer": ["sgd", "adam"], "lr": [0.01, 0.1]}},
    ... })
    >>> [case.label for case in study.cases]
    ['optimizer=sgd, lr=0.01', 'optimizer=sgd, lr=0.1', 'optimizer=adam, lr=0.01', 'optimizer=adam, lr=0.1']
    >>> [run.run_id for run in study.runs][:3]
    ['optimizer-sgd-lr-0.01-s0', 'optimizer-sgd-lr-0.01-s1', 'optimizer-sgd-lr-0.1-s0']
    >>> study.runs[0].spec.recipe.optimizer
    {'name': 'sgd', 'lr': 0.01}
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trainlab.errors import InputError, did_you_mean
from trainlab.index import spec_hash
from trainlab.overrides import ALIASES, apply_overrides, flatten, resolve_key
from trainlab.spec import FitSpec, format_validation_error, parse_spec, read_toml, spec_to_dict

__all__ = ["ALIASES", "Case", "PlannedRun", "Study", "StudySettings", "load_study", "parse_study"]

_MAX_SLUG = 80


class StudySettings(BaseModel):
    """The ``[study]`` table: seeds, what to rank by, and what to vary."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seeds: int = Field(default=3, ge=1)
    metric: str | None = None
    mode: Literal["auto", "min", "max"] = "auto"
    rank_by: Literal["final", "best"] = "final"
    cv: int | None = Field(default=None, ge=2)
    vary: dict[str, Any] = Field(default_factory=dict)
    case: list[dict[str, Any]] = Field(default_factory=list)
    lr_scaling: Literal["none", "linear", "sqrt"] = "none"
    base_batch_size: int | None = Field(default=None, ge=1)
    sharpness: bool = False


@dataclass(frozen=True)
class Case:
    """One combination of settings: a label, a folder-safe slug, and what it sets.

    `values` maps each grid axis (as written in the study file) to this case's
    value, plus ``"case"`` to the named case's name when there are named cases.
    """

    label: str
    slug: str
    values: dict[str, Any]
    overrides: dict[str, Any]
    spec: FitSpec


@dataclass(frozen=True)
class PlannedRun:
    """One case trained with one seed: the unit that is trained, written and resumed."""

    run_id: str
    case: Case
    repeat: int
    seed: int
    spec: FitSpec
    spec_dict: dict[str, Any]
    spec_hash: str


@dataclass(frozen=True)
class Study:
    """A validated study: its settings, the base spec, the cases and the runs to train."""

    name: str
    settings: StudySettings
    raw: dict[str, Any]
    base: FitSpec
    axes: dict[str, list[Any]]
    cases: tuple[Case, ...]
    runs: tuple[PlannedRun, ...] = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The expansion as plain data (what study.json stores)."""
        return {
            "name": self.name,
            "settings": self.settings.model_dump(mode="json", exclude={"vary", "case"}),
            "spec": self.raw,
            "axes": self.axes,
            "cases": [{"label": c.label, "slug": c.slug, "values": c.values, "overrides": c.overrides}
                      for c in self.cases],
            "runs": [{"run_id": r.run_id, "case": r.case.label, "slug": r.case.slug, "repeat": r.repeat,
                      "seed": r.seed, "spec_hash": r.spec_hash, "spec": r.spec_dict} for r in self.runs],
        }


def load_study(path: str | Path) -> Study:
    """Read, expand and validate a study TOML file (see the module docstring)."""
    return parse_study(read_toml(path, what="study"), source=str(path))


def parse_study(raw: Mapping[str, Any], *, source: str = "study") -> Study:
    """Expand a study mapping into its cases and runs, validating every case before anything trains.

    Raises:
        InputError: an unknown study setting, an invalid base spec, an unknown field (with a
            suggestion), an empty or non-list axis, a case without a name, two cases with one name,
            a study.metric the runs will not record, or cases whose specs do not validate; the
            message names the axis or the case.
    """
    if not isinstance(raw, Mapping):
        raise InputError(f"{source}: a study must be a table, got {type(raw).__name__}")
    settings = _settings(raw.get("study", {}), source)
    base_raw = {k: copy.deepcopy(v) for k, v in raw.items() if k != "study"}
    base = parse_spec(base_raw, source=f"{source} (the base spec, without [study])")
    axes = _axes(settings.vary, source)
    named = _named_cases(settings.case, source)
    grid = [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]

    cases: list[Case] = []
    problems: list[str] = []
    unnamed: list[tuple[str | None, dict[str, Any]]] = [(None, {})]
    for name, case_overrides in named or unnamed:
        for point in grid:
            parts = [name, *(f"{k}={format_value(v)}" for k, v in point.items())]
            label = ", ".join(p for p in parts if p) or "base"
            where = f"case '{label}'"
            overrides = {**case_overrides, **point}
            spec_raw = apply_overrides(base_raw, overrides, where)
            if settings.lr_scaling != "none":
                spec_raw = scale_lr(spec_raw, settings.lr_scaling, settings.base_batch_size or base.recipe.batch_size,
                                    where)
            try:
                spec = parse_spec(spec_raw, source=where)
            except InputError as error:
                problems.append(str(error))
                continue
            values = {**({"case": name} if name is not None else {}), **point}
            cases.append(Case(label=label, slug=_slug(label), values=values,
                              overrides=overrides, spec=spec))
    if problems:
        shown = problems[:3]
        more = f" ({len(problems) - 3} more cases fail too.)" if len(problems) > 3 else ""
        raise InputError(f"{source}: {len(problems)} of {len(grid) * max(len(named), 1)} cases do not "
                         f"validate, nothing was trained. " + " ".join(s.rstrip(".") + "." for s in shown)
                         + more)
    _unique_slugs(cases, source)
    _check_metric(settings, cases, source)

    runs = []
    for case in cases:
        for repeat in range(settings.seeds):
            seed = case.spec.recipe.seed + repeat
            spec = case.spec.model_copy(update={"recipe": case.spec.recipe.model_copy(update={"seed": seed})})
            spec_dict = spec_to_dict(spec)
            runs.append(PlannedRun(run_id=f"{case.slug}-s{seed}", case=case, repeat=repeat, seed=seed,
                                   spec=spec, spec_dict=spec_dict, spec_hash=spec_hash(spec_dict)))
    return Study(name=base.name, settings=settings, raw=_plain(dict(raw)), base=base, axes=axes,
                 cases=tuple(cases), runs=tuple(runs))


# --------------------------------------------------------------------------- the [study] table


def _settings(table: Any, source: str) -> StudySettings:
    if not isinstance(table, Mapping):
        raise InputError(f"{source}: [study] must be a table (seeds, metric, rank_by, vary, case), "
                         f"got {type(table).__name__} {table!r}")
    known = list(StudySettings.model_fields)
    for key in table:
        if key not in known:
            raise InputError(f"{source}: study.{key} is not a study setting.{did_you_mean(key, known)} "
                             f"Known settings: {', '.join(known)}. Fields of the trained spec go in "
                             f"[data], [model] and [recipe]; what varies goes in [study.vary] or "
                             f"[[study.case]].")
    try:
        return StudySettings.model_validate(dict(table))
    except ValidationError as error:
        message = format_validation_error(error, source)
        raise InputError(message.replace("is not a valid spec: ", "is not a valid study: study.")) from None


def _axes(vary: Mapping[str, Any], source: str) -> dict[str, list[Any]]:
    axes: dict[str, list[Any]] = {}
    for key, values in flatten(vary, stop_at_lists=True).items():
        where = f"{source}: study.vary.{key}"
        if not isinstance(values, list):
            raise InputError(f"{where} must be a list of values, e.g. {key} = [0.01, 0.1], got "
                             f"{format_value(values)!r}. To set one value for every case, put it in the base "
                             "spec.")
        if not values:
            raise InputError(f"{where} is an empty list: an axis needs at least one value to try. "
                             "Give its values, or remove the axis.")
        seen: list[str] = []
        for value in values:
            shown = format_value(value)
            if shown in seen:
                raise InputError(f"{where} lists the value {shown} twice; each value makes one case.")
            seen.append(shown)
        resolve_key(key, f"{source}: study.vary")  # unknown fields fail here, before any case is built
        axes[key] = values
    return axes


def _named_cases(cases: Sequence[Mapping[str, Any]], source: str) -> list[tuple[str, dict[str, Any]]]:
    named: list[tuple[str, dict[str, Any]]] = []
    for i, table in enumerate(cases):
        name = table.get("name")
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"{source}: study.case[{i}] needs a name, e.g. name = \"he+relu\" "
                             f"(got {name!r}); the name labels the case in the table and the report.")
        if name in [n for n, _ in named]:
            raise InputError(f"{source}: two cases are named '{name}'; give each case its own name.")
        overrides = flatten({k: v for k, v in table.items() if k != "name"}, stop_at_lists=False)
        for key in overrides:
            resolve_key(key, f"{source}: case '{name}'")
        named.append((name, overrides))
    return named


def lr_scale(rule: str, batch_size: int, base_batch_size: int) -> float:
    """The lr multiplier of a scaling rule: 1 ("none"), b / b0 ("linear") or sqrt(b / b0) ("sqrt").

    Example:
        >>> lr_scale("linear", 256, 32), lr_scale("sqrt", 128, 32), lr_scale("none", 256, 32)
        (8.0, 2.0, 1.0)
    """
    ratio = batch_size / base_batch_size
    return {"none": 1.0, "linear": ratio, "sqrt": math.sqrt(ratio)}[rule]


def scale_lr(spec_raw: dict[str, Any], rule: str, base_batch_size: int, where: str) -> dict[str, Any]:
    """`spec_raw` with its optimizer's lr scaled for its batch size (see the module docstring).

    The lr the case would train with (its optimizer's own default where the spec gives none)
    is multiplied by `lr_scale`; the optimizer becomes a table with that ``lr``.
    """
    import torch

    from trainlab.optimizers import optimizer as make_optimizer

    recipe = dict(spec_raw.get("recipe") or {})
    batch_size = recipe.get("batch_size", 32)
    optimizer = recipe.get("optimizer", "adam")
    if not isinstance(batch_size, int) or not isinstance(optimizer, (str, Mapping)):
        return spec_raw  # the spec's own validation names the problem
    try:
        built = make_optimizer(optimizer, [torch.nn.Parameter(torch.zeros(1))], source=f"{where}: recipe.optimizer")
    except InputError:
        return spec_raw
    table = {"name": optimizer} if isinstance(optimizer, str) else {
        k: v for k, v in optimizer.items() if k not in ("lr", "learning_rate")}
    table["lr"] = float(built.param_groups[0]["lr"]) * lr_scale(rule, batch_size, base_batch_size)
    return {**spec_raw, "recipe": {**recipe, "optimizer": table}}


# --------------------------------------------------------------------------- labels and checks


def format_value(value: Any) -> str:
    """A short readable form of a value for labels: 0.01, sgd, normal(std=1), [64, 64]."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, Mapping):
        settings = ", ".join(f"{k}={format_value(v)}" for k, v in value.items() if k != "name")
        if "name" in value:
            return f"{format_value(value['name'])}({settings})" if settings else format_value(value["name"])
        return "{" + settings + "}"
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, Mapping) and "type" in v for v in value):
            return "[" + ", ".join(str(v["type"]) for v in value) + "]"
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)


def _slug(label: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._+]+", "-", label).strip("-.") or "case"
    if len(slug) > _MAX_SLUG:
        slug = slug[:_MAX_SLUG - 9].rstrip("-.") + "-" + hashlib.sha256(label.encode()).hexdigest()[:8]
    return slug


def _unique_slugs(cases: Sequence[Case], source: str) -> None:
    seen: dict[str, str] = {}
    for case in cases:
        if case.slug in seen:
            raise InputError(f"{source}: cases '{seen[case.slug]}' and '{case.label}' would share the run "
                             f"folder '{case.slug}'; rename one of them.")
        seen[case.slug] = case.label


def _check_metric(settings: StudySettings, cases: Sequence[Case], source: str) -> None:
    from trainlab.callbacks import _direction
    from trainlab.losses import loss as make_loss
    from trainlab.metrics import metric as make_metric

    if settings.metric is None:
        return
    for case in cases:
        recipe = case.spec.recipe
        loss = make_loss(recipe.loss) if recipe.loss is not None else None
        # Without recipe.metrics the task picks them: accuracy for classes, mae for regression.
        names = ([make_metric(m, loss=loss).name for m in recipe.metrics] if recipe.metrics is not None
                 else ["accuracy", "mae"])
        recorded = ["loss", *names, "val_loss", *(f"val_{n}" for n in names)]
        if settings.metric not in recorded:
            raise InputError(f"{source}: study.metric '{settings.metric}' is not recorded by case "
                             f"'{case.label}', whose history holds {', '.join(recorded)}."
                             f"{did_you_mean(settings.metric, recorded)} Add the metric to recipe.metrics "
                             "or rank by one of these.")
    try:
        _direction(settings.metric, settings.mode, "study.metric")
    except InputError as error:
        raise InputError(f"{source}: {error} (set study.mode)") from None


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
