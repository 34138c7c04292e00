"""Hyperparameter search on Optuna: `trainlab search SPEC --trials N`, or `trainlab.search(spec, trials=N)`.

A search file is a fit spec plus ``[search]`` with a ``[search.space]`` of
override paths (`trainlab.overrides`) and distributions::

    [search]
    trials = 40
    pruner = "median"

    [search.space]
    lr = {log_uniform = [1e-4, 1]}
    optimizer = {choice = ["sgd", "momentum", "adam"]}
    "model.layers[0].units" = {int = [16, 512], log = true}

Optuna's TPE sampler (seeded by recipe.seed) proposes the trials; trainlab's
engine trains them, reporting each epoch's metric to the pruner through an
engine callback (`PruningCallback`); the storage is SQLite under runs/ or any
Optuna storage URL, shared by ``jobs`` worker processes. The best trial is
written as a plain fit spec (best.toml), and report.html holds Optuna's
figures. See `trainlab.search.spec` for the table, `trainlab.search.runner`
for how trials run, stack, prune and resume.

``trainlab.search`` is both this package and the function `search`: calling
the package calls the function.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trainlab.search.runner import PruningCallback, SearchProgress, SearchResult, open_storage, run_search
from trainlab.search.spec import DISTRIBUTIONS, PRUNERS, SearchPlan, load_search, parse_search

__all__ = ["DISTRIBUTIONS", "PRUNERS", "PruningCallback", "SearchPlan", "SearchProgress", "SearchResult",
           "load_search", "open_storage", "parse_search", "run_search", "search"]


def search(spec: str | Path | Mapping[str, Any] | SearchPlan, *, trials: int | None = None, jobs: int = 1,
           resume: bool = False, fresh: bool = False, storage: str | None = None,
           runs_dir: str | Path = "runs", report: bool = True,
           progress: SearchProgress | None = None) -> SearchResult:
    """Search the space of a search spec with Optuna; return the best trial and where things were written.

    Args:
        spec: a search TOML file, a mapping of one (a fit spec plus ``search``), or a `SearchPlan`.
        trials: trials in all, instead of search.trials (a resumed search runs the missing ones).
        jobs: worker processes sharing the storage.
        resume: continue the search stored under the spec's name.
        fresh: delete the stored search of that name first.
        storage: an Optuna storage URL (default: search.storage, else runs_dir/<name>/search.db).
        runs_dir: the runs folder; the search folder is runs_dir/<name>.
        report: write report.html.
        progress: told how many trials have finished.

    Returns:
        `SearchResult`: best_value, best_trial, best_values, best_spec (best.toml), report,
        counts by state, seconds, and every trial.

    Raises:
        InputError: a bad search spec (unknown distribution, path or pruner, with the right
            word), or a stored search of that name without resume/fresh; nothing is written.
    """
    if isinstance(spec, SearchPlan):
        plan = spec
    elif isinstance(spec, Mapping):
        plan = parse_search(spec)
    else:
        plan = load_search(spec)
    return run_search(plan, runs_dir=runs_dir, trials=trials, jobs=jobs, resume=resume, fresh=fresh,
                      storage=storage, report=report, progress=progress)


class _CallableModule(types.ModuleType):
    """`trainlab.search(...)` works whichever of the package or the function the name holds."""

    def __call__(self, *args: Any, **kwargs: Any) -> SearchResult:
        return search(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
