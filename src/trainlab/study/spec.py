"""Study specs: a base fit spec plus what to vary, expanded into validated runs.

A study file is a fit spec (``name``, ``[data]``, ``[[model.layers]]``,
``[recipe]``; see `trainlab.spec`) plus a ``[study]`` table::

    [study]
    seeds = 3                    # repeats of each case; repeat r trains with recipe.seed + r
    metric = "val_accuracy"      # what the table ranks by; default: val_<first metric>, else val_loss
    rank_by = "final"            # rank by the "final" (last epoch) or the "best" epoch's value

    [study.vary]                 # a grid: every combination of the axes, the first axis outermost
    optimizer = ["sgd", "momentum", "adam"]
    lr = [0.001, 0.01, 0.1]

    [[study.case]]               # or named cases, each overriding some fields
    name = "he+relu"
    "layers.kernel_initializer" = "he_normal"
    "layers.activation" = "relu"

With both ``vary`` and ``case``, every case is crossed with the grid; with
neither, the study repeats the base spec over seeds.

Paths. A key is a dotted path into the base spec: ``recipe.optimizer.lr``,
``recipe.schedule.name``, ``recipe.early_stopping.patience``,
``data.validation_split``, ``model.layers[0].units``, ``model.layers`` (the
whole list). Unquoted dotted keys are TOML tables (``recipe.batch_size = [16,
32]`` is ``{recipe = {batch_size = [16, 32]}}``); both spellings mean the same.
Short names (`ALIASES`): ``optimizer``, ``lr``, ``momentum``,
``weight_decay``, ``schedule``, ``loss``, ``metrics``, ``batch_size``,
``num_epochs``/``epochs``, ``early_stopping``, ``patience``,
``validation_split``, ``dataset``, ``activation``, ``initializer``/
``kernel_initializer``, ``regularizer``/``kernel_regularizer``, and
``layers`` (= ``model.layers``).

``layers.<field>`` sets ``<field>`` on every layer whose type takes it, except
the last layer: the output layer's activation and initializer go with the loss
(softmax with the cross-entropy), so varying "the activation" means the hidden
layers'. Name one layer with ``model.layers[i].<field>`` to reach the output layer.

Techniques. The optimizer, schedule, loss, each metric and a layer's
activation, initializer or regularizer are techniques: a name or a table with
a ``name``. Setting a field inside one turns a name into a table (``"adam"``
plus ``lr = 0.1`` is ``{name = "adam", lr = 0.1}``). Changing its name drops
the base's other settings, because settings belong to a technique (momentum to
"momentum", step_size to "step"): ``vary.optimizer = ["sgd", "adam"]`` trains
each optimizer with its own defaults unless the case sets more (as ``lr`` does
in an optimizer x lr grid). A table value sets each of its fields, name first.
Any other value replaces the field.

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
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trainlab.errors import InputError, did_you_mean
from trainlab.index import spec_hash
from trainlab.spec import FitSpec, format_validation_error, parse_spec, read_toml, spec_to_dict

__all__ = ["ALIASES", "Case", "PlannedRun", "Study", "StudySettings", "load_study", "parse_study"]

ALIASES: dict[str, str] = {
    "optimizer": "recipe.optimizer",
    "lr": "recipe.optimizer.lr",
    "momentum": "recipe.optimizer.momentum",
    "weight_decay": "recipe.optimizer.weight_decay",
    "schedule": "recipe.schedule",
    "loss": "recipe.loss",
    "metrics": "recipe.metrics",
    "batch_size": "recipe.batch_size",
    "num_epochs": "recipe.num_epochs",
    "epochs": "recipe.num_epochs",
    "early_stopping": "recipe.early_stopping",
    "patience": "recipe.early_stopping.patience",
    "validation_split": "data.validation_split",
    "dataset": "data.name",
    "activation": "layers.activation",
    "initializer": "layers.kernel_initializer",
    "kernel_initializer": "layers.kernel_initializer",
    "regularizer": "layers.kernel_regularizer",
    "kernel_regularizer": "layers.kernel_regularizer",
}

Part = str | int
_SEGMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)$")
_TECHNIQUE_LAYER_FIELD = re.compile(r"(^|_)(activation|initializer|regularizer)$")
_MAX_SLUG = 80


class StudySettings(BaseModel):
    """The ``[study]`` table: seeds, what to rank by, and what to vary."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seeds: int = Field(default=3, ge=1)
    metric: str | None = None
    mode: Literal["auto", "min", "max"] = "auto"
    rank_by: Literal["final", "best"] = "final"
    vary: dict[str, Any] = Field(default_factory=dict)
    case: list[dict[str, Any]] = Field(default_factory=list)


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
            spec_raw = _apply_all(base_raw, overrides, where)
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
    for key, values in _leaves(vary, stop_at_lists=True).items():
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
        _resolve_key(key, f"{source}: study.vary")  # unknown fields fail here, before any case is built
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
        overrides = _leaves({k: v for k, v in table.items() if k != "name"}, stop_at_lists=False)
        for key in overrides:
            _resolve_key(key, f"{source}: case '{name}'")
        named.append((name, overrides))
    return named


# --------------------------------------------------------------------------- paths


def _leaves(table: Mapping[str, Any], *, stop_at_lists: bool, prefix: str = "") -> dict[str, Any]:
    """Flatten nested tables into dotted keys (TOML writes `a.b = 1` as {a: {b: 1}})."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(_leaves(value, stop_at_lists=stop_at_lists, prefix=path))
        else:
            out[path] = value
    return out


def _parse_path(key: str, where: str) -> list[Part]:
    parts: list[Part] = []
    for segment in key.split("."):
        match = _SEGMENT.match(segment)
        if match is None:
            raise InputError(f"{where}: '{key}' is not a field path. Write fields joined by dots, with list "
                             "positions in brackets: recipe.optimizer.lr, model.layers[0].activation.")
        parts.append(match.group(1))
        parts.extend(int(i) for i in re.findall(r"\[(\d+)\]", match.group(2)))
    return parts


def _resolve_key(key: str, where: str) -> tuple[list[Part], bool]:
    """The path a key stands for (aliases expanded) and whether it is the all-hidden-layers shortcut."""
    parts = _parse_path(key, where)
    head = parts[0]
    if isinstance(head, str) and head in ALIASES:
        parts = _parse_path(ALIASES[head], where) + parts[1:]
    if parts[0] == "layers":
        if len(parts) >= 2 and isinstance(parts[1], str):
            if len(parts) > 2 and isinstance(parts[2], int):
                raise InputError(f"{where}: '{key}': layers.{parts[1]} applies to every hidden layer; "
                                 "index a layer as model.layers[i].field instead.")
            return parts, True
        parts = ["model", *parts]
    if parts == ["name"]:
        raise InputError(f"{where}: 'name' is the study's name and cannot vary; a case's label comes from "
                         "its values or its name.")
    if parts[:2] == ["recipe", "seed"]:
        raise InputError(f"{where}: '{key}' cannot vary: the seeds come from study.seeds (repeat r trains "
                         "with the base recipe.seed + r). Set study.seeds instead.")
    _check_schema(parts, key, where)
    return parts, False


def _check_schema(parts: list[Part], key: str, where: str) -> None:
    """Reject a path that leaves the spec's fields; what is inside a technique or a layer is free-form
    (the technique's own settings are checked when the case is validated)."""
    model: Any = FitSpec
    walked: list[str] = []
    for i, part in enumerate(parts):
        if model is None:
            return
        if model == "scalar":
            raise InputError(f"{where}: '{key}' goes inside {'.'.join(walked)}, which holds a single value; "
                             f"vary {'.'.join(walked)} itself.")
        if isinstance(part, int):
            raise InputError(f"{where}: '{key}': {'.'.join(walked) or 'the spec'} is not a list.")
        fields = model.model_fields
        if part not in fields:
            here = ".".join(walked)
            options = [f"{here}.{f}" if here else f for f in fields if not (not here and f == "name")]
            known = ", ".join(f for f in fields if not (not here and f == "name"))
            hint = did_you_mean(".".join([*walked, part]), options) or did_you_mean(str(part), list(ALIASES))
            raise InputError(f"{where}: '{key}' is not a field of the spec: {here or 'the top level'} has no "
                             f"field '{part}'.{hint} Fields there: {known}. Short names: "
                             f"{', '.join(ALIASES)}.")
        walked.append(part)
        model = _inner(fields[part].annotation)
        if model is None and i + 1 < len(parts) and part == "layers" and not isinstance(parts[i + 1], int):
            raise InputError(f"{where}: '{key}': model.layers is a list; index a layer as "
                             f"model.layers[i].{parts[i + 1]}, or use layers.{parts[i + 1]} for every "
                             "hidden layer.")


def _inner(annotation: Any) -> Any:
    """The pydantic model inside a field's type, None for free-form (dict/list/Any), "scalar" otherwise."""
    args = typing.get_args(annotation) if isinstance(annotation, (types.UnionType,)) or \
        typing.get_origin(annotation) is typing.Union else (annotation,)
    for arg in args:
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    for arg in args:
        origin = typing.get_origin(arg) or arg
        if origin in (dict, list) or arg is Any:
            return None
    return "scalar"


# --------------------------------------------------------------------------- applying overrides


def _apply_all(base: dict[str, Any], overrides: Mapping[str, Any], where: str) -> dict[str, Any]:
    spec = copy.deepcopy(base)
    steps: list[tuple[list[Part], bool, Any]] = []
    for key, value in overrides.items():
        parts, shortcut = _resolve_key(key, where)
        if isinstance(value, Mapping) and value:
            # A table value sets each of its fields; "name" first, so a technique's name change
            # drops the base's settings before the table's own settings are set.
            leaves = _leaves(value, stop_at_lists=False)
            for sub in sorted(leaves, key=lambda k: k != "name"):
                steps.append((parts + _parse_path(sub, where), shortcut, leaves[sub]))
        else:
            steps.append((parts, shortcut, value))
    # Outer fields before inner ones (a new optimizer before its lr); at one depth, names first.
    steps.sort(key=lambda s: (len(s[0]) + (2 if s[1] else 0), s[0][-1] != "name"))
    for parts, shortcut, value in steps:
        if shortcut:
            _set_hidden_layers(spec, parts, value, where)
        else:
            _set(spec, parts, copy.deepcopy(value), where)
    _collapse_names(spec)
    return spec


def _collapse_names(spec: dict[str, Any]) -> None:
    """Write a technique table that holds only a name as the name ({name = "adam"} -> "adam"), so that
    one technique has one spelling and one spec hash however a case reached it."""
    def collapse(value: Any) -> Any:
        return value["name"] if isinstance(value, dict) and list(value) == ["name"] else value

    recipe = spec.get("recipe")
    if isinstance(recipe, dict):
        for key in ("optimizer", "schedule", "loss"):
            if key in recipe:
                recipe[key] = collapse(recipe[key])
        if isinstance(recipe.get("metrics"), list):
            recipe["metrics"] = [collapse(m) for m in recipe["metrics"]]
    layers = spec.get("model", {}).get("layers") if isinstance(spec.get("model"), dict) else None
    for layer in layers if isinstance(layers, list) else []:
        if isinstance(layer, dict):
            for key in layer:
                if _TECHNIQUE_LAYER_FIELD.search(key):
                    layer[key] = collapse(layer[key])


def _set_hidden_layers(spec: dict[str, Any], parts: list[Part], value: Any, where: str) -> None:
    from trainlab.layers import LAYERS

    field_name = str(parts[1])
    layers = spec.get("model", {}).get("layers", [])
    hits = []
    for i, layer in enumerate(layers[:-1]):
        kind = layer.get("type") if isinstance(layer, dict) else None
        if isinstance(kind, str) and kind in LAYERS and field_name in LAYERS.get(kind).accepted_settings():
            hits.append(i)
    if not hits:
        raise InputError(f"{where}: layers.{field_name} matches no hidden layer: no layer before the output "
                         f"layer takes '{field_name}'. Name a layer with model.layers[i].{field_name}, or "
                         "check the field's spelling (e.g. activation, kernel_initializer, "
                         "kernel_regularizer).")
    for i in hits:
        _set(spec, ["model", "layers", i, *parts[1:]], copy.deepcopy(value), where)


def _is_technique(path: Sequence[Part]) -> bool:
    if len(path) == 2 and path[0] == "recipe" and path[1] in ("optimizer", "schedule", "loss"):
        return True
    if len(path) == 3 and path[:2] == ["recipe", "metrics"] and isinstance(path[2], int):
        return True
    return (len(path) == 4 and path[:2] == ["model", "layers"] and isinstance(path[3], str)
            and _TECHNIQUE_LAYER_FIELD.search(path[3]) is not None)


def _technique_name(value: Any) -> Any:
    return value.get("name") if isinstance(value, dict) else value


def _set(spec: dict[str, Any], parts: list[Part], value: Any, where: str) -> None:
    node: Any = spec
    model: Any = FitSpec
    for depth, part in enumerate(parts[:-1]):
        path = parts[:depth + 1]
        child = _get(node, part, parts, depth, where)
        if child is None:
            child = _default(model, part)
        if isinstance(child, str) and _is_technique(path):
            child = {"name": child}
        if not isinstance(child, (dict, list)):
            raise InputError(f"{where}: cannot set '{_join(parts)}': {_join(path)} holds {child!r}, not a "
                             "table of settings.")
        node[part] = child
        node = child
        model = _inner(model.model_fields[part].annotation) if _has_field(model, part) else None
    last = parts[-1]
    _get(node, last, parts, len(parts) - 1, where)
    if _is_technique(parts) and isinstance(value, str):
        # The same technique keeps its settings; another one starts from its own defaults.
        if _technique_name(node.get(last) if isinstance(node, dict) else node[last]) == value:
            return
    if last == "name" and _is_technique(parts[:-1]) and isinstance(node, dict) and node.get("name") != value:
        node.clear()
    node[last] = value


def _get(node: Any, part: Part, parts: list[Part], depth: int, where: str) -> Any:
    if isinstance(part, int):
        if not isinstance(node, list):
            raise InputError(f"{where}: cannot index '{_join(parts[:depth])}' with [{part}]: it is not a "
                             "list.")
        if not 0 <= part < len(node):
            raise InputError(f"{where}: '{_join(parts)}': {_join(parts[:depth])} has {len(node)} entries, "
                             f"so [{part}] does not exist (positions start at 0).")
        return node[part]
    if not isinstance(node, dict):
        raise InputError(f"{where}: cannot set '{_join(parts)}': {_join(parts[:depth])} is not a table.")
    return node.get(part)


def _has_field(model: Any, part: Part) -> bool:
    return isinstance(model, type) and issubclass(model, BaseModel) and isinstance(part, str) \
        and part in model.model_fields


def _default(model: Any, part: Part) -> Any:
    """The value a missing field stands for: its default, as a table when it is a technique name."""
    if _has_field(model, part):
        info = model.model_fields[part]
        default = info.get_default(call_default_factory=True)
        if isinstance(default, BaseModel) or default is None:
            return {}
        if isinstance(default, str):
            return {"name": default}
        return copy.deepcopy(default)
    return {}


def _join(parts: Sequence[Part]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


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
