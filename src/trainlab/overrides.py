"""The override-path language: "model.layers[0].activation" = "tanh" applied to a spec mapping.

Studies vary a base spec with it (`trainlab.study.spec`); searches and
cross-validation reuse it. A key is a dotted path into the spec:
``recipe.optimizer.lr``, ``recipe.schedule.name``,
``recipe.early_stopping.patience``, ``data.validation_split``,
``model.layers[0].units``, ``model.layers`` (the whole list). Nested tables
mean the same as dotted keys (`flatten`: ``{recipe = {batch_size = 32}}`` is
``recipe.batch_size = 32``).

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
"momentum", step_size to "step"). A table value sets each of its fields, name
first. Any other value replaces the field.

A path that leaves the spec's fields, indexes past a list's end, or goes
inside a single value is an InputError that names the path and the fix.

Example:
    >>> base = {"data": {"name": "iris"},
    ...         "model": {"layers": [{"type": "Dense", "units": 8, "activation": "relu"},
    ...                              {"type": "Dense", "units": 3, "activation": "softmax"}]},
    ...         "recipe": {"optimizer": "adam"}}
    >>> spec = apply_overrides(base, {"lr": 0.1, "activation": "tanh"}, "example")
    >>> spec["recipe"]["optimizer"], [layer["activation"] for layer in spec["model"]["layers"]]
    ({'name': 'adam', 'lr': 0.1}, ['tanh', 'softmax'])
    >>> parse_path("model.layers[0].activation", "example")
    ['model', 'layers', 0, 'activation']
    >>> apply_overrides(base, {"model.layers[5].units": 4}, "example")
    Traceback (most recent call last):
    ...
    trainlab.errors.InputError: example: 'model.layers[5].units': model.layers has 2 entries, so [5] does not exist (positions start at 0).
"""

from __future__ import annotations

import copy
import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from trainlab.errors import InputError, did_you_mean
from trainlab.spec import FitSpec

__all__ = ["ALIASES", "Part", "apply_overrides", "flatten", "format_path", "parse_path", "resolve_key"]

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


def flatten(table: Mapping[str, Any], *, stop_at_lists: bool, prefix: str = "") -> dict[str, Any]:
    """Flatten nested tables into dotted keys (TOML writes `a.b = 1` as {a: {b: 1}})."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, stop_at_lists=stop_at_lists, prefix=path))
        else:
            out[path] = value
    return out


def parse_path(key: str, where: str) -> list[Part]:
    parts: list[Part] = []
    for segment in key.split("."):
        match = _SEGMENT.match(segment)
        if match is None:
            raise InputError(f"{where}: '{key}' is not a field path. Write fields joined by dots, with list "
                             "positions in brackets: recipe.optimizer.lr, model.layers[0].activation.")
        parts.append(match.group(1))
        parts.extend(int(i) for i in re.findall(r"\[(\d+)\]", match.group(2)))
    return parts


def resolve_key(key: str, where: str) -> tuple[list[Part], bool]:
    """The path a key stands for (aliases expanded) and whether it is the all-hidden-layers shortcut."""
    parts = parse_path(key, where)
    head = parts[0]
    if isinstance(head, str) and head in ALIASES:
        parts = parse_path(ALIASES[head], where) + parts[1:]
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


def apply_overrides(base: dict[str, Any], overrides: Mapping[str, Any], where: str) -> dict[str, Any]:
    spec = copy.deepcopy(base)
    steps: list[tuple[list[Part], bool, Any]] = []
    for key, value in overrides.items():
        parts, shortcut = resolve_key(key, where)
        if isinstance(value, Mapping) and value:
            # A table value sets each of its fields; "name" first, so a technique's name change
            # drops the base's settings before the table's own settings are set.
            leaves = flatten(value, stop_at_lists=False)
            for sub in sorted(leaves, key=lambda k: k != "name"):
                steps.append((parts + parse_path(sub, where), shortcut, leaves[sub]))
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
            raise InputError(f"{where}: cannot set '{format_path(parts)}': {format_path(path)} holds {child!r}, not a "
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
            raise InputError(f"{where}: cannot index '{format_path(parts[:depth])}' with [{part}]: it is not a "
                             "list.")
        if not 0 <= part < len(node):
            raise InputError(f"{where}: '{format_path(parts)}': {format_path(parts[:depth])} has {len(node)} entries, "
                             f"so [{part}] does not exist (positions start at 0).")
        return node[part]
    if not isinstance(node, dict):
        raise InputError(f"{where}: cannot set '{format_path(parts)}': {format_path(parts[:depth])} is not a table.")
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


def format_path(parts: Sequence[Part]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out
