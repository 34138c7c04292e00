"""Search specs: a base fit spec plus a ``[search]`` table, checked before anything is written.

A search file is a fit spec (``name``, ``[data]``, ``[[model.layers]]``,
``[recipe]``; see `trainlab.spec`) plus::

    [search]
    trials = 40                  # trials in all (a resumed search runs the missing ones)
    metric = "val_accuracy"      # what is optimized; default: val_<first metric>, else val_loss
    mode = "auto"                # "min" or "max"; "auto" takes the metric's own direction
    rank_by = "final"            # a trial's value: its "final" (last epoch) or its "best" epoch's
    pruner = "median"            # "median", "percentile", "asha", "hyperband" or "none";
                                 # or a table: {name = "asha", reduction_factor = 3}
    startup_trials = 10          # random trials before TPE models the results
    batch = 4                    # trials proposed at once, trained as stacked members where they can be
    storage = "sqlite:///..."    # any Optuna storage URL; default: runs/<name>/search.db
    enqueue = [{lr = 0.01}]      # trials to run first, with these values (Optuna's enqueue_trial)

    [search.space]               # override paths (`trainlab.overrides`) and their distributions
    lr = {log_uniform = [1e-4, 1]}
    optimizer = {choice = ["sgd", "momentum", "adam"]}
    "model.layers[0].units" = {int = [16, 512], log = true}
    "model.layers[1].rate" = {uniform = [0.0, 0.5]}
    batch_size = {int = [16, 128], step = 16}

Distributions, as Optuna's ``suggest_*`` calls:

    ==============================  ======================================
    ``{uniform = [low, high]}``     ``FloatDistribution(low, high)``
    ``{log_uniform = [low, high]}`` ``FloatDistribution(low, high, log=True)``
    ``{float = [low, high]}``       the same, with ``log = true`` or ``step = s``
    ``{int = [low, high]}``         ``IntDistribution(low, high)``, with ``log`` or ``step``
    ``{choice = [a, b, ...]}``      ``CategoricalDistribution``; a choice may be a table or list
    ==============================  ======================================

Bounds are inclusive, as in Optuna. Every key is checked as an override path
and every distribution's ends (each choice) are applied to the base spec and
validated before the storage is touched, so a bad path or value is an error
that names it, with nothing written.

Example:
    >>> plan = parse_search({
    ...     "name": "demo", "data": {"name": "iris"},
    ...     "model": {"layers": [{"type": "Dense", "units": 8, "activation": "relu"},
    ...                          {"type": "Dense", "units": 3, "activation": "softmax"}]},
    ...     "recipe": {"num_epochs": 2},
    ...     "search": {"trials": 4, "space": {"lr": {"log_uniform": [1e-3, 1e-1]},
    ...                                      "optimizer": {"choice": ["sgd", "adam"]}}}})
    >>> plan.space["lr"]
    FloatDistribution(high=0.1, log=True, low=0.001, step=None)
    >>> plan.spec_for({"lr": 0.01, "optimizer": "sgd"}).recipe.optimizer
    {'name': 'sgd', 'lr': 0.01}
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trainlab.errors import InputError, InputTypeError, did_you_mean
from trainlab.overrides import apply_overrides, resolve_key
from trainlab.spec import FitSpec, format_validation_error, parse_spec, read_toml

__all__ = ["DISTRIBUTIONS", "PRUNERS", "SearchPlan", "SearchSettings", "load_search", "parse_search"]

#: The distribution words of a ``[search.space]`` entry and what each becomes in Optuna.
DISTRIBUTIONS = {
    "uniform": "FloatDistribution(low, high)",
    "log_uniform": "FloatDistribution(low, high, log=True)",
    "float": "FloatDistribution(low, high, log=..., step=...)",
    "int": "IntDistribution(low, high, log=..., step=...)",
    "choice": "CategoricalDistribution(choices)",
}
# Words Optuna, scikit-learn, Ray Tune or hyperopt users may write, and ours for them.
_SYNONYMS = {
    "loguniform": "log_uniform", "suggest_loguniform": "log_uniform", "log": "log_uniform",
    "reciprocal": "log_uniform", "qloguniform": "log_uniform",
    "suggest_uniform": "uniform", "suggest_float": "float", "real": "float",
    "integer": "int", "randint": "int", "suggest_int": "int", "qrandint": "int", "lograndint": "int",
    "categorical": "choice", "choices": "choice", "suggest_categorical": "choice", "category": "choice",
    "discrete_uniform": "float", "quniform": "float",
}
_MODIFIERS = {"uniform": (), "log_uniform": (), "float": ("log", "step"), "int": ("log", "step"), "choice": ()}

#: Pruner names and the Optuna classes they build.
PRUNERS = {
    "none": "NopPruner",
    "median": "MedianPruner",
    "percentile": "PercentilePruner",
    "asha": "SuccessiveHalvingPruner",
    "successive_halving": "SuccessiveHalvingPruner",
    "hyperband": "HyperbandPruner",
}


class SearchSettings(BaseModel):
    """The ``[search]`` table, without its space (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trials: int = Field(default=20, ge=1)
    metric: str | None = None
    mode: Literal["auto", "min", "max"] = "auto"
    rank_by: Literal["final", "best"] = "final"
    pruner: str | dict[str, Any] = "median"
    startup_trials: int = Field(default=10, ge=0)
    batch: int = Field(default=1, ge=1)
    storage: str | None = None
    enqueue: list[dict[str, Any]] = Field(default_factory=list)
    space: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class SearchPlan:
    """A validated search: the base spec, the Optuna space, the pruner and what is optimized.

    `space` maps each key as written to its Optuna distribution; a choice that
    is a table or a list is held in Optuna as its JSON text (Optuna's choices are
    plain values) and turned back by `values_of`.
    """

    name: str
    source: str
    raw: dict[str, Any]
    base_raw: dict[str, Any]
    base: FitSpec
    settings: SearchSettings
    space: dict[str, Any]
    metric: str
    direction: Literal["minimize", "maximize"]
    pruner_name: str
    pruner_settings: dict[str, Any]

    def values_of(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """A trial's Optuna params as override values (JSON-held choices decoded)."""
        return {key: _decode(value) for key, value in params.items() if key in self.space}

    def spec_for(self, params: Mapping[str, Any], *, name: str | None = None) -> FitSpec:
        """The fit spec of one trial: the base spec with the trial's values set."""
        raw = apply_overrides(self.base_raw, self.values_of(params), "search.space")
        if name is not None:
            raw["name"] = name
        return parse_spec(raw, source=f"search '{self.name}' with {format_params(self.values_of(params))}")

    def pruner(self) -> Any:
        """A fresh Optuna pruner."""
        import optuna

        return getattr(optuna.pruners, PRUNERS[self.pruner_name])(**self.pruner_settings)

    def fingerprint(self) -> str:
        """A hash of what makes trials comparable: the base spec, the space, the metric and rank_by."""
        payload = {"base": self.base_raw, "space": self.settings.space, "metric": self.metric,
                   "rank_by": self.settings.rank_by, "direction": self.direction}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def load_search(path: str | Path) -> SearchPlan:
    """Read and validate a search TOML file (see the module docstring)."""
    return parse_search(read_toml(path, what="search"), source=str(path))


def parse_search(raw: Mapping[str, Any], *, source: str = "search") -> SearchPlan:
    """Validate a search mapping: the base spec, the ``[search]`` settings, the space and the pruner.

    Raises:
        InputError: an invalid base spec, an unknown search setting, distribution or pruner (each
            with the right word), an override path that does not exist, bounds that are not a
            range, a choice or bound that makes the spec invalid, or a metric the runs will not
            record. Nothing is written before this passes.
    """
    if not isinstance(raw, Mapping):
        raise InputError(f"{source}: a search must be a table, got {type(raw).__name__}")
    if "search" not in raw:
        raise InputError(f"{source} has no [search] table: a search is a fit spec plus [search] with "
                         "[search.space], e.g. lr = {log_uniform = [1e-4, 1]} (see examples/search.toml).")
    settings = _settings(raw["search"], source)
    base_raw = {k: copy.deepcopy(v) for k, v in raw.items() if k != "search"}
    base = parse_spec(base_raw, source=f"{source} (the base spec, without [search])")
    if not settings.space:
        raise InputError(f"{source}: [search.space] is empty: name at least one setting to search, e.g. "
                         "lr = {log_uniform = [1e-4, 1]} or optimizer = {choice = [\"sgd\", \"adam\"]}.")
    space = {key: _distribution(key, table, source) for key, table in _space_items(settings.space)}
    for key, distribution in space.items():
        _check_values(key, distribution, base_raw, source)
    metric, direction = _metric(settings, base, source)
    pruner_name, pruner_settings = _pruner(settings.pruner, source)
    plan = SearchPlan(name=base.name, source=source, raw=_plain(dict(raw)), base_raw=base_raw, base=base,
                      settings=settings, space=space, metric=metric, direction=direction,
                      pruner_name=pruner_name, pruner_settings=pruner_settings)
    for i, values in enumerate(settings.enqueue):
        encode_params(plan, values, f"{source}: search.enqueue[{i}]")
    return plan


def encode_params(plan: SearchPlan, values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Override values (as in search.enqueue) as Optuna params, checked against the space."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in plan.space:
            raise InputError(f"{where}: '{key}' is not in [search.space].{did_you_mean(key, list(plan.space))} "
                             f"The space holds {', '.join(plan.space)}.")
        distribution = plan.space[key]
        encoded = _encode(value)
        if not _contains(distribution, encoded):
            raise InputError(f"{where}: {key} = {value!r} is outside its distribution {distribution}.")
        out[key] = encoded
    try:
        plan.spec_for(out)
    except InputError as error:
        raise InputError(f"{where}: {error}") from None
    return out


def format_params(values: Mapping[str, Any]) -> str:
    """``lr=0.0123, optimizer=adam``: a trial's values, short."""
    from trainlab.study.spec import format_value

    return ", ".join(f"{k}={format_value(float(f'{v:.4g}') if isinstance(v, float) else v)}"
                     for k, v in values.items())


# --------------------------------------------------------------------------- the [search] table


def _settings(table: Any, source: str) -> SearchSettings:
    if not isinstance(table, Mapping):
        raise InputError(f"{source}: [search] must be a table (trials, metric, pruner, space, ...), got "
                         f"{type(table).__name__} {table!r}")
    known = list(SearchSettings.model_fields)
    for key in table:
        if key not in known:
            raise InputError(f"{source}: search.{key} is not a search setting.{did_you_mean(key, known)} "
                             f"Known settings: {', '.join(known)}. What is searched goes in [search.space]; "
                             "fields of the trained spec go in [data], [model] and [recipe].")
    try:
        return SearchSettings.model_validate(dict(table))
    except ValidationError as error:
        message = format_validation_error(error, source)
        raise InputError(message.replace("is not a valid spec: ", "is not a valid search: search.")) from None


def _space_items(space: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Space entries; a nested table (``[search.space.recipe]``) means dotted keys, down to a distribution."""
    items: list[tuple[str, Any]] = []
    for key, value in space.items():
        # A table of tables is a level of dotted keys; a table with a list or a value is a distribution.
        if isinstance(value, Mapping) and value and all(isinstance(v, Mapping) for v in value.values()):
            items.extend((f"{key}.{k}", v) for k, v in _space_items(value))
        else:
            items.append((str(key), value))
    return items


def _distribution(key: str, table: Any, source: str) -> Any:
    import optuna.distributions as od

    where = f"{source}: search.space.{_quoted(key)}"
    parts = key.split(".")
    if parts[0] in ("seed", "name") or parts[:2] == ["recipe", "seed"]:
        raise InputError(f"{where}: '{key}' cannot be searched: every trial trains with the base recipe.seed, "
                         "so that trials differ only in what the space varies. Set recipe.seed in the spec.")
    resolve_key(key, f"{source}: search.space")  # an unknown field fails here, with a suggestion
    words = ", ".join(DISTRIBUTIONS)
    if not isinstance(table, Mapping) or not table:
        raise InputError(f"{where} must be a table naming one distribution ({words}), e.g. "
                         f"{_quoted(key)} = {{log_uniform = [1e-4, 1]}} or {{choice = [...]}}; got {table!r}. "
                         "To fix a value for every trial, set it in the base spec.")
    kinds = [k for k in table if k not in ("log", "step")]
    if len(kinds) != 1:
        shown = ", ".join(kinds) or "none"
        raise InputError(f"{where} must name exactly one distribution ({words}), got {shown}.")
    kind = kinds[0]
    if kind not in DISTRIBUTIONS:
        hint = f" Did you mean '{_SYNONYMS[kind.lower()]}'?" if kind.lower() in _SYNONYMS else \
            did_you_mean(kind, list(DISTRIBUTIONS))
        raise InputError(f"{where}: '{kind}' is not a search distribution.{hint} Known distributions: "
                         + "; ".join(f"{k} (Optuna's {v})" for k, v in DISTRIBUTIONS.items()) + ".")
    for extra in (k for k in table if k != kind):
        if extra not in _MODIFIERS[kind]:
            allowed = " and ".join(_MODIFIERS[kind]) or "no settings"
            hint = " Use float = [low, high] with log = true or step = s instead." if kind in (
                "uniform", "log_uniform") else ""
            raise InputError(f"{where}: {kind} takes {allowed}, got {extra} = {table[extra]!r}.{hint}")
    value = table[kind]
    if kind == "choice":
        if not isinstance(value, list) or not value:
            raise InputError(f"{where}: choice must be a non-empty list of values, e.g. choice = [\"sgd\", "
                             f"\"adam\"], got {value!r}.")
        encoded = [_encode(v) for v in value]
        if len(set(map(repr, encoded))) < len(encoded):
            raise InputError(f"{where}: choice lists a value twice; each value is one option.")
        return od.CategoricalDistribution(encoded)
    if not isinstance(value, list) or len(value) != 2:
        raise InputError(f"{where}: {kind} takes [low, high], got {value!r}.")
    low, high = value
    for end, number in (("low", low), ("high", high)):
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
            raise InputTypeError(f"{where}: {kind}'s {end} must be a finite number, got {number!r}.")
        if kind == "int" and not isinstance(number, int):
            raise InputTypeError(f"{where}: int's {end} must be a whole number, got {number!r}; use "
                                 "float = [low, high] for real values.")
    if low > high:
        raise InputError(f"{where}: {kind} = [{low}, {high}] has low > high; write [{high}, {low}].")
    log = bool(table.get("log", kind == "log_uniform"))
    step = table.get("step")
    if log and low <= 0:
        raise InputError(f"{where}: a log scale needs low > 0, got {kind} = [{low}, {high}]. Start the range "
                         "at a small positive value, or use a uniform scale.")
    if log and step is not None:
        raise InputError(f"{where}: log = true and step cannot go together (as in Optuna); drop one.")
    try:
        if kind == "int":
            return od.IntDistribution(int(low), int(high), log=log, step=1 if step is None else step)
        return od.FloatDistribution(float(low), float(high), log=log, step=step)
    except (ValueError, TypeError) as error:
        raise InputError(f"{where}: {error}") from None


def _check_values(key: str, distribution: Any, base_raw: dict[str, Any], source: str) -> None:
    """Apply each end of the range (each choice) to the base spec; a value that makes the spec invalid is
    an error naming the key and the value.

    Keys are checked one at a time: settings that only go together (momentum with an optimizer
    choice that has none) fail as that trial, with the reason in its user attributes.
    """
    import optuna.distributions as od

    def ends(d: Any) -> list[Any]:
        if isinstance(d, od.CategoricalDistribution):
            return list(d.choices)
        return [d.low, d.high]

    where = f"{source}: search.space.{_quoted(key)}"
    for value in ends(distribution):
        spec_raw = apply_overrides(base_raw, {key: _decode(value)}, where)
        try:
            parse_spec(spec_raw, source=f"{where} = {_decode(value)!r}")
        except InputError as error:
            text = str(error).rstrip(".")
            raise InputError(f"{text}{'' if text.endswith('?') else '.'} Fix the path or the values of "
                             f"search.space.{_quoted(key)}.") from None


def _metric(settings: SearchSettings, base: FitSpec, source: str) -> tuple[str, Literal["minimize", "maximize"]]:
    from trainlab.callbacks import _direction
    from trainlab.losses import loss as make_loss
    from trainlab.metrics import metric as make_metric

    recipe = base.recipe
    loss = make_loss(recipe.loss) if recipe.loss is not None else None
    names = [make_metric(m, loss=loss).name for m in recipe.metrics] if recipe.metrics is not None else []
    metric = settings.metric or (f"val_{names[0]}" if names else "val_loss")
    recorded = ["loss", *names, "val_loss", *(f"val_{n}" for n in names)] if names else \
        ["loss", "accuracy", "mae", "val_loss", "val_accuracy", "val_mae"]
    if metric not in recorded:
        raise InputError(f"{source}: search.metric '{metric}' is not recorded by the trials, whose history holds "
                         f"{', '.join(recorded)}.{did_you_mean(metric, recorded)} Add the metric to "
                         "recipe.metrics or optimize one of these.")
    if metric.startswith("val_") and not base.data.validation_split:
        raise InputError(f"{source}: search.metric '{metric}' is measured on the validation part, but "
                         "data.validation_split is 0. Hold out a part (e.g. validation_split = 0.2), or "
                         "optimize a training metric such as 'loss'.")
    try:
        mode = _direction(metric, settings.mode, "search.metric")
    except InputError as error:
        raise InputError(f"{source}: {error} (set search.mode)") from None
    return metric, "minimize" if mode == "min" else "maximize"


def _pruner(value: Any, source: str) -> tuple[str, dict[str, Any]]:
    import optuna

    table = {"name": value} if isinstance(value, str) else dict(value)
    name = table.pop("name", None)
    where = f"{source}: search.pruner"
    if not isinstance(name, str):
        raise InputError(f"{where} needs a name ({', '.join(PRUNERS)}), e.g. pruner = {{name = \"median\", "
                         f"n_warmup_steps = 2}}; got {value!r}.")
    if name not in PRUNERS:
        raise InputError(f"{where}: unknown pruner '{name}'.{did_you_mean(name, list(PRUNERS))} Known pruners: "
                         + ", ".join(f"{k} (Optuna's {v})" for k, v in PRUNERS.items())
                         + ". Pruning stops a trial whose epoch values fall behind the other trials'.")
    cls = getattr(optuna.pruners, PRUNERS[name])
    accepted = [p for p in inspect.signature(cls).parameters if p != "self"]
    for key in table:
        if key not in accepted:
            raise InputError(f"{where}: the {name} pruner ({PRUNERS[name]}) has no setting '{key}'."
                             f"{did_you_mean(key, accepted)} Settings: {', '.join(accepted) or 'none'}.")
    try:
        cls(**table)
    except (ValueError, TypeError) as error:
        raise InputError(f"{where}: {error}") from None
    return name, table


# --------------------------------------------------------------------------- choices as Optuna values


def _encode(value: Any) -> Any:
    """A choice as Optuna holds it: plain values as they are, tables and lists as JSON text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return "json:" + json.dumps(_plain(value), sort_keys=True)


def _decode(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("json:"):
        return json.loads(value[5:])
    return value


def _contains(distribution: Any, value: Any) -> bool:
    import optuna.distributions as od

    if isinstance(distribution, od.CategoricalDistribution):
        return any(type(value) is type(c) and value == c for c in distribution.choices)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(distribution, od.IntDistribution) and not isinstance(value, int):
        return False
    return bool(distribution.low <= value <= distribution.high)


def _quoted(key: str) -> str:
    return f'"{key}"' if any(c in key for c in ".[]") else key


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
