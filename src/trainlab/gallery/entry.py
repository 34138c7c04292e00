"""A gallery entry: one claim, the study spec that tests it, what it measures, and its verdict function.

The spec is a study file shipped in the package (``trainlab/gallery/specs/C4.toml``);
``trainlab gallery C4 --export my_c4.toml`` copies it, and ``trainlab study
my_c4.toml`` trains it as any study. The entry adds what a study does not
know: the claim in words, why this data, the quick version's changes, what to
measure from the finished runs (`Measured`: a result table of values per
seed, plus what the picture draws), the verdict function (result table ->
`Verdict`), and the picture.
"""

from __future__ import annotations

import copy
import importlib.resources
import math
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from trainlab.errors import InputError, did_you_mean
from trainlab.gallery.verdicts import Table, Verdict

__all__ = ["ENTRIES", "Entry", "EntryContext", "Measured", "entry", "register", "spec_text"]


@dataclass
class Measured:
    """What an entry measured: the result table its verdict reads, and the data its picture draws."""

    table: dict[str, list[float]]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Entry:
    """One claim of the gallery.

    Attributes:
        id: "C1" ... "C20".
        title: a few words ("learning rate too low or too high").
        claim: the claim, in our words.
        data: which data and why there.
        literature: the conditions under which the literature reports the claim holds.
        conditions: what this entry trains (model, optimizer, epochs), for the verdict.
        measure: finished study -> `Measured`.
        verdict: result table -> `Verdict` (pure: tested on synthetic tables).
        picture: (context, measured) -> a matplotlib Figure, or None.
        quick: dotted-path overrides of the spec for ``--quick`` ("study.seeds": 2, ...); a key
            ``"case:NAME"`` maps to keys set in that named case.
        train: False when `measure` trains what it needs itself (no study runs).
        requires: a module the entry needs that may be missing (its status then says so).
    """

    id: str
    title: str
    claim: str
    data: str
    literature: str
    conditions: str
    measure: Callable[[EntryContext], Measured]
    verdict: Callable[[Table], Verdict]
    picture: Callable[[EntryContext, Measured], Any] | None = None
    quick: Mapping[str, Any] = field(default_factory=dict)
    train: bool = True
    requires: str | None = None

    @property
    def spec_file(self) -> str:
        return f"{self.id}.toml"

    def raw_spec(self, *, quick: bool = False) -> dict[str, Any]:
        """The study spec as a mapping; with `quick`, its quick changes applied and its name suffixed."""
        raw = tomllib.loads(spec_text(self.id))
        if quick:
            raw = copy.deepcopy(raw)
            for path, value in self.quick.items():
                if path.startswith("case:"):  # changes to one named case: {"case:NAME": {key: value}}
                    case = next(c for c in raw["study"]["case"] if c["name"] == path.removeprefix("case:"))
                    case.update(value)
                else:
                    _set_path(raw, path, value)
            raw["name"] = f"{raw['name']}-quick"
        return raw

    def available(self) -> str | None:
        """None when the entry can run here, else why not (a tool it needs is not installed)."""
        if self.requires is None:
            return None
        import importlib.util

        try:
            found = importlib.util.find_spec(self.requires) is not None
        except ModuleNotFoundError:
            found = False
        return None if found else f"needs {self.requires}, which this installation does not have"


#: The gallery's entries by id, in order (C1 ... C20).
ENTRIES: dict[str, Entry] = {}


def register(new: Entry) -> Entry:
    """Add an entry; a duplicate id is an error."""
    if new.id in ENTRIES:
        raise InputError(f"gallery entry '{new.id}' is registered twice")
    ENTRIES[new.id] = new
    return new


def entry(entry_id: str) -> Entry:
    """The entry with this id (case-insensitive: 'c4' is C4); an unknown id lists the known ones."""
    from trainlab.gallery import load_entries

    load_entries()
    key = entry_id.strip().upper()
    if key not in ENTRIES:
        raise InputError(f"unknown gallery entry '{entry_id}'. Known: {', '.join(sorted_ids())}."
                         f"{did_you_mean(key, list(ENTRIES))} `trainlab gallery` lists them with their claims.")
    return ENTRIES[key]


def sorted_ids() -> list[str]:
    return sorted(ENTRIES, key=lambda i: int(i[1:]) if i[1:].isdigit() else math.inf)


def spec_text(entry_id: str) -> str:
    """The shipped spec file of an entry, as text."""
    files = importlib.resources.files("trainlab.gallery") / "specs" / f"{entry_id}.toml"
    return files.read_text(encoding="utf-8")


def _set_path(raw: dict[str, Any], path: str, value: Any) -> None:
    keys = path.split(".")
    node = raw
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value


@dataclass
class EntryContext:
    """What `Entry.measure` sees: the study, its finished runs, and helpers to read them."""

    entry: Entry
    quick: bool
    study: Any  # trainlab.study.Study
    study_dir: Path
    records: Any = None  # trainlab.study.compare.StudyRecords, None for an entry that trains itself

    @cached_property
    def case_labels(self) -> list[str]:
        return [c.label for c in self.study.cases]

    def case(self, label: str) -> Any:
        for case in self.study.cases:
            if case.label == label:
                return case
        raise InputError(f"{self.entry.id}: the study has no case '{label}' (it has "
                         f"{', '.join(self.case_labels)}){did_you_mean(label, self.case_labels)}")

    def runs(self, label: str) -> list[Any]:
        """The finished RunRecords of a case, by seed."""
        self.case(label)
        return sorted((r for r in self.records.records if r.case == label), key=lambda r: r.seed)

    def planned(self, label: str) -> list[Any]:
        """The PlannedRuns of a case, by seed."""
        return sorted((r for r in self.study.runs if r.case.label == label), key=lambda r: r.seed)

    def values(self, label: str, key: str, *, at: str | int = "final") -> list[float]:
        """One value per seed of history `key`: at the last epoch ("final"), the "min"/"max" over epochs,
        or at a 0-based epoch. A run stopped as diverged gives NaN (it is ranked last by the verdicts)."""
        out = []
        for run in self.runs(label):
            series = run.history.get(key, [])
            if (run.stop_reason or "").startswith("training diverged") or not series:
                out.append(math.nan)
                continue
            finite = [v for v in series if math.isfinite(v)]
            if at == "final":
                out.append(float(series[-1]))
            elif at == "min":
                out.append(min(finite) if finite else math.nan)
            elif at == "max":
                out.append(max(finite) if finite else math.nan)
            else:
                index = min(int(at), len(series) - 1)
                out.append(float(series[index]))
        return out

    def run_dirs(self, label: str) -> list[Path]:
        return [self.study_dir / r.run_id for r in self.runs(label)]

    def prepared(self, spec: Any) -> Any:
        """The split and scaled data of a run's spec, as the run trained on it (`trainlab.api.prepare`)."""
        key = (spec.data.model_dump_json(), spec.recipe.seed if spec.data.stratify else 0)
        cache: dict[Any, Any] = self.__dict__.setdefault("_prepared", {})
        if key not in cache:
            from trainlab.api import dataset_from_spec, prepare

            dataset = dataset_from_spec(spec.data)
            cache[key] = prepare(dataset, validation_split=spec.data.validation_split,
                                 stratify=spec.data.stratify, scaling=spec.data.scaling, seed=spec.recipe.seed)
        return cache[key]

    def seeds(self) -> int:
        return int(self.study.settings.seeds)


def mean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan
