"""Run a search: Optuna proposes, trainlab's engine trains, a pruner stops the trials that fall behind.

The search folder is ``<runs_dir>/<name>/``::

    search.db      the Optuna storage (SQLite), unless search.storage or --storage names another
    best.toml      the best trial as a plain fit spec: ``trainlab fit best.toml`` trains it again
    report.html    Optuna's figures and the trials, self-contained (see `trainlab.search.report`)

A trial is one fit of the base spec with the trial's values set. Its seed is
the base recipe.seed, so trials differ only in what the space varies, and the
best trial's spec reproduces its value when fitted. Each epoch's metric is
reported to the trial (`PruningCallback`, an engine callback); when the
pruner says so, the run stops after that epoch and the trial is PRUNED. A run
whose metric ends non-finite (it diverged) or whose spec does not validate is
a FAIL trial, with the reason in its user attributes.

Trials are asked in batches of ``search.batch`` (Optuna's ask-and-tell);
trials of one batch that share data, architecture and batch size train as
members of one stacked pass (`trainlab.stacked.fit_members`), the others one
after another through `trainlab.fit`. TPE is told about running trials
(``constant_liar``), so a batch, or several workers, do not propose one point
many times.

Workers. ``jobs > 1`` starts that many processes sharing the storage; the
trials still to run are split between them, so the search ends with exactly
``trials`` finished trials, numbered by the storage without repeats. Each
worker's torch uses its share of the CPU cores. More machines: start
``trainlab search SPEC --storage URL --resume --trials N`` on each, with a
server storage (PostgreSQL) and N summing to the trials wanted. Or, on a Ray
cluster, ``trainlab search SPEC --ray ADDRESS --jobs N``: the same worker
function runs as N Ray tasks (`trainlab.scale.ray.RayExecutor.map`), which
share the storage; it must be reachable from every node, so a cluster needs a
server storage (``--storage postgresql://...``), while the default SQLite file
serves a Ray on this one machine.

Resume. A search stores a fingerprint of its base spec, space and metric;
``resume`` continues one (the finished trials stay, the missing ones run),
and is refused if the file changed since (use a new name or ``fresh``).
Trials a killed search left RUNNING stay so and are not counted.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainlab import __version__
from trainlab.callbacks import Callback, History
from trainlab.data import Dataset
from trainlab.errors import InputError
from trainlab.search.spec import SearchPlan, format_params, parse_search
from trainlab.spec import FitSpec, spec_to_dict

if TYPE_CHECKING:
    from trainlab.scale.ray import RayExecutor

__all__ = ["PruningCallback", "SearchProgress", "SearchResult", "open_storage", "run_search"]

_DONE_STATES = ("COMPLETE", "PRUNED", "FAIL")


class PruningCallback(Callback):
    """Report each epoch's `metric` to an Optuna trial; stop the run when the trial's pruner says so.

    The run stops after the epoch (`RunState.request_stop`, with the reason in
    its History), and `pruned_epoch` (counted from 0) says where. A NaN or
    infinite value is not reported (the engine's divergence check deals with it).
    Use it in an Optuna objective of your own as you would Optuna's Keras or
    Lightning pruning callbacks: ``trainlab.fit(model, data, recipe,
    callbacks=[PruningCallback(trial, "val_accuracy")])``, then
    ``raise optuna.TrialPruned()`` when ``pruned_epoch is not None``.
    """

    def __init__(self, trial: Any, metric: str) -> None:
        super().__init__()
        self.trial = trial
        self.metric = metric
        self.pruned_epoch: int | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        value = (logs or {}).get(self.metric)
        if value is None or not math.isfinite(float(value)):
            return
        self.trial.report(float(value), epoch)
        if self.trial.should_prune():
            self.pruned_epoch = epoch
            self.run.request_stop(f"pruned at epoch {epoch + 1}: {self.metric} = {float(value):.4g} fell behind "
                                  "the other trials' values at that epoch")


class SearchProgress:
    """What a progress display is told while a search runs; every hook does nothing by default."""

    def begin(self, *, total: int, finished: int, todo: int) -> None:
        """Before any trial: `finished` trials are in the storage already, `todo` will run."""

    def update(self, *, finished: int, best: float | None) -> None:
        """Trials finished so far (all states), and the best value so far."""

    def end(self, status: str) -> None:
        """The search ended: "finished", "interrupted" or "failed"."""


@dataclass
class SearchResult:
    """What `run_search` did.

    `counts` holds the finished trials by state (COMPLETE, PRUNED, FAIL); `best_values`
    are the best trial's values as override values (choices decoded); `seconds` is this
    call's wall time.
    """

    search_dir: Path
    storage: str
    study_name: str
    metric: str
    direction: str
    best_value: float | None
    best_trial: int | None
    best_values: dict[str, Any]
    best_spec: Path | None
    report: Path | None
    counts: dict[str, int]
    seconds: float
    trained: int
    trials: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"search_dir": str(self.search_dir), "storage": self.storage, "study_name": self.study_name,
                "metric": self.metric, "direction": self.direction, "best_value": self.best_value,
                "best_trial": self.best_trial, "best_values": self.best_values,
                "best_spec": None if self.best_spec is None else str(self.best_spec),
                "report": None if self.report is None else str(self.report), "counts": self.counts,
                "seconds": self.seconds, "trained": self.trained, "trials": self.trials}


def open_storage(url: str) -> Any:
    """An Optuna RDB storage for `url`; SQLite waits for a lock instead of failing (several workers).

    Raises:
        InputError: a URL that is not a storage URL or cannot be opened.
    """
    import optuna

    if "://" not in url:
        raise InputError(f"storage '{url}' is not a storage URL: write sqlite:///path/to/search.db (three "
                         "slashes, then the path), or a server URL such as "
                         "postgresql://user:password@host/database.")
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 120}}
    try:
        return optuna.storages.RDBStorage(url, **kwargs)
    except Exception as error:  # SQLAlchemy's errors for an unknown dialect, a missing driver, no server
        raise InputError(f"storage '{url}' cannot be opened: {type(error).__name__}: {error}. Check the URL "
                         "(sqlite:///path/to/search.db, postgresql://user:password@host/database) and that its "
                         "database driver is installed.") from None


def run_search(plan: SearchPlan, *, runs_dir: str | Path = "runs", trials: int | None = None, jobs: int = 1,
               resume: bool = False, fresh: bool = False, storage: str | None = None, report: bool = True,
               progress: SearchProgress | None = None, executor: RayExecutor | None = None) -> SearchResult:
    """Run the trials of `plan` that are missing, then write best.toml and report.html.

    Args:
        plan: a validated search (`load_search`, `parse_search`).
        runs_dir: the runs folder; the search folder is ``runs_dir/<name>``.
        trials: trials in all, instead of search.trials.
        jobs: worker processes sharing the storage.
        resume: continue the search stored under this name (its finished trials count).
        fresh: delete the stored search of this name and start again (wins over `resume`).
        storage: an Optuna storage URL, instead of search.storage and runs_dir/<name>/search.db.
        report: write report.html.
        progress: told how many trials have finished (`trainlab search` shows a progress bar).
        executor: run the `jobs` workers as tasks on a Ray cluster (`trainlab.scale.ray.RayExecutor`)
            instead of processes here; the storage must be reachable from its nodes.

    Raises:
        InputError: the storage already holds this search and neither `resume` nor `fresh` is
            given, the search file changed since it was stored, a bad storage URL, or data
            that cannot be loaded or does not fit the model. Nothing is written before these checks.
    """
    import optuna

    from trainlab import check
    from trainlab.api import check_before_training, dataset_from_spec
    from trainlab.index import record_study
    from trainlab.runs import run_folder

    progress = progress or SearchProgress()
    total = check.int_at_least("trials", plan.settings.trials if trials is None else trials, 1)
    check.int_at_least("jobs", jobs, 1, "It is the number of worker processes.")
    root = Path(runs_dir)
    search_dir = run_folder(root, plan.name)
    default_db = search_dir / "search.db"
    url = storage or plan.settings.storage or f"sqlite:///{default_db.resolve()}"
    dataset = dataset_from_spec(plan.base.data)
    check_before_training(plan.base, dataset)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    stored = None if url.endswith(str(default_db.resolve())) and not default_db.exists() else open_storage(url)
    if stored is not None and plan.name in [s.study_name for s in stored.get_all_studies()]:
        _check_stored(stored, plan, url, resume=resume, fresh=fresh)
        if fresh:
            optuna.delete_study(study_name=plan.name, storage=stored)

    search_dir.mkdir(parents=True, exist_ok=True)
    stored = stored or open_storage(url)
    study = optuna.create_study(study_name=plan.name, storage=stored, direction=plan.direction,
                                load_if_exists=True)
    if "fingerprint" not in study.user_attrs:
        study.set_user_attr("fingerprint", plan.fingerprint())
        study.set_user_attr("spec", plan.raw)
        study.set_user_attr("metric", plan.metric)
        study.set_user_attr("version", __version__)
        from trainlab.search.spec import encode_params

        for i, values in enumerate(plan.settings.enqueue):
            study.enqueue_trial(encode_params(plan, values, f"search.enqueue[{i}]"), skip_if_exists=True)
    finished = _count_finished(study)
    todo = max(total - finished, 0)
    record_study(root, name=plan.name, status="running", study_dir=search_dir, spec=plan.raw, num_runs=total)
    progress.begin(total=total, finished=finished, todo=todo)
    start = time.perf_counter()
    status = "failed"
    try:
        if todo and executor is not None:
            _run_ray_workers(plan, url, todo, jobs, study, progress, executor)
        elif todo and jobs == 1:
            _work(plan, url, todo, worker=0, dataset=dataset, progress=progress)
        elif todo:
            _run_workers(plan, url, todo, jobs, study, progress)
        status = "finished"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        record_study(root, name=plan.name, status=status)
        progress.end(status)
    seconds = time.perf_counter() - start
    study = optuna.load_study(study_name=plan.name, storage=stored)
    return _finish(plan, study, search_dir, url, seconds=seconds, trained=todo, report=report)


def _check_stored(stored: Any, plan: SearchPlan, url: str, *, resume: bool, fresh: bool) -> None:
    import optuna

    study = optuna.load_study(study_name=plan.name, storage=stored)
    count = len(study.get_trials(deepcopy=False))
    if fresh:
        return
    if not resume:
        raise InputError(f"the storage {url} already holds search '{plan.name}' with {count} trials. Pass "
                         "--resume (resume=True) to continue it, --fresh (fresh=True) to delete it and start "
                         "over, or change the spec's name to keep both.")
    if study.user_attrs.get("fingerprint") != plan.fingerprint():
        raise InputError(f"search '{plan.name}' in {url} was started from another spec (its base spec, space or "
                         "metric differ from the file's now), so its trials would not be comparable. Change the "
                         "spec's name to start a new search, or pass --fresh (fresh=True) to replace it.")


def _count_finished(study: Any) -> int:
    import optuna

    states = tuple(getattr(optuna.trial.TrialState, s) for s in _DONE_STATES)
    return len(study.get_trials(deepcopy=False, states=states))


def _best(study: Any) -> float | None:
    try:
        return float(study.best_value)
    except ValueError:  # no COMPLETE trial yet
        return None


# --------------------------------------------------------------------------- workers


def _quotas(todo: int, jobs: int) -> list[int]:
    """The trials each of `jobs` workers runs: `todo` split as evenly as can be."""
    jobs = min(jobs, todo)
    return [todo // jobs + (1 if i < todo % jobs else 0) for i in range(jobs)]


def _run_ray_workers(plan: SearchPlan, url: str, todo: int, jobs: int, study: Any, progress: SearchProgress,
                     executor: RayExecutor) -> None:
    """The workers as Ray tasks: the same `_child` a local worker process runs, one torch thread per CPU
    Ray reserves for it."""
    cluster = executor.address if executor.address is not None else os.environ.get("RAY_ADDRESS")
    if url.startswith("sqlite") and cluster not in (None, "", "local"):
        # A file on this machine: the other nodes' workers would each open a search.db of their own.
        warnings.warn(f"search '{plan.name}' keeps its trials in {url}, a SQLite file on this machine, while its "
                      f"workers run on the Ray cluster at '{cluster}'; workers on other nodes cannot share it. "
                      "Give a storage every node reaches: --storage postgresql://user:password@host/database.",
                      stacklevel=2)
    threads = max(1, int(executor.num_cpus))
    executor.map(_child, [(plan.raw, plan.source, url, quota, i, threads) for i, quota in enumerate(_quotas(todo, jobs))],
                 poll=lambda: progress.update(finished=_count_finished(study), best=_best(study)))


def _run_workers(plan: SearchPlan, url: str, todo: int, jobs: int, study: Any, progress: SearchProgress) -> None:
    quotas = _quotas(todo, jobs)
    jobs = len(quotas)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    context = multiprocessing.get_context("spawn")  # torch's threads do not survive a fork
    workers = [context.Process(target=_child, args=(plan.raw, plan.source, url, quota, i, threads),
                               name=f"trainlab-search-{i}") for i, quota in enumerate(quotas)]
    for worker in workers:
        worker.start()
    try:
        while any(w.is_alive() for w in workers):
            for w in workers:
                w.join(timeout=0.5)
            progress.update(finished=_count_finished(study), best=_best(study))
    except BaseException:
        for w in workers:
            if w.is_alive():
                w.terminate()
        for w in workers:
            w.join()
        raise
    failed = [f"worker {i} (exit status {w.exitcode})" for i, w in enumerate(workers) if w.exitcode != 0]
    if failed:
        raise RuntimeError(f"search '{plan.name}': {', '.join(failed)} stopped with an error; its message is "
                           "above. The finished trials are stored: continue with --resume.")


def _child(raw: dict[str, Any], source: str, url: str, quota: int, worker: int, threads: int) -> None:
    """A worker process: its own torch threads, storage connection and sampler."""
    import torch

    torch.set_num_threads(threads)
    _work(parse_search(raw, source=source), url, quota, worker=worker, dataset=None, progress=None)


def _work(plan: SearchPlan, url: str, quota: int, *, worker: int, dataset: Dataset | None,
          progress: SearchProgress | None) -> None:
    """Ask, train and tell `quota` trials, `plan.settings.batch` at a time."""
    import optuna

    from trainlab.api import dataset_from_spec

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dataset = dataset if dataset is not None else dataset_from_spec(plan.base.data)
    storage = open_storage(url)
    probe = optuna.load_study(study_name=plan.name, storage=storage)
    # A resumed or parallel worker must not replay the random start-up draws of another one.
    seed = plan.base.recipe.seed + 100_003 * worker + 1_009 * len(probe.get_trials(deepcopy=False))
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=plan.settings.startup_trials,
                                         constant_liar=True)
    study = optuna.load_study(study_name=plan.name, storage=storage, sampler=sampler, pruner=plan.pruner())
    done = 0
    while done < quota:
        batch = [study.ask(dict(plan.space)) for _ in range(min(plan.settings.batch, quota - done))]
        _train_batch(plan, study, batch, dataset)
        done += len(batch)
        if progress is not None:
            progress.update(finished=_count_finished(study), best=_best(study))


@dataclass
class _Entry:
    trial: Any
    spec: FitSpec
    reporter: PruningCallback


def _train_batch(plan: SearchPlan, study: Any, batch: Sequence[Any], dataset: Dataset) -> None:
    import optuna

    entries: list[_Entry] = []
    for trial in batch:
        trial.set_user_attr("values", json.loads(json.dumps(plan.values_of(trial.params), default=str)))
        try:
            spec = plan.spec_for(trial.params, name=f"{plan.name}-trial-{trial.number}")
        except InputError as error:
            trial.set_user_attr("failure", str(error))
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        entries.append(_Entry(trial, spec, PruningCallback(trial, plan.metric)))
    for group in _stackable(entries):
        start = time.perf_counter()
        try:
            histories = _fit_group(group, dataset)
        except InputError as error:
            for entry in group:
                entry.trial.set_user_attr("failure", str(error))
                study.tell(entry.trial, state=optuna.trial.TrialState.FAIL)
            continue
        except BaseException as error:
            for entry in group:
                entry.trial.set_user_attr("failure", f"{type(error).__name__}: {error}")
                study.tell(entry.trial, state=optuna.trial.TrialState.FAIL)
            raise
        seconds = (time.perf_counter() - start) / len(group)
        for entry, history in zip(group, histories):
            _tell(plan, study, entry, history, seconds=seconds, shared_by=len(group))


def _stackable(entries: Sequence[_Entry]) -> list[list[_Entry]]:
    """Trials that can be members of one stacked pass (as a study groups its runs)."""
    from trainlab import augment
    from trainlab.study.runner import architecture

    member_fields = ("seed", "optimizer", "schedule", "early_stopping")
    groups: dict[str, list[_Entry]] = {}
    for i, entry in enumerate(entries):
        spec = spec_to_dict(entry.spec)
        shared = {k: v for k, v in spec["recipe"].items() if k not in member_fields}
        alone = augment.weight_noise(entry.spec.recipe) is not None  # noise perturbs each run's own module
        key = json.dumps([spec["data"], architecture(spec["model"]), shared, i if alone else None],
                         sort_keys=True, default=str)
        groups.setdefault(key, []).append(entry)
    return list(groups.values())


def _fit_group(group: Sequence[_Entry], dataset: Dataset) -> list[History]:
    from trainlab import augment
    from trainlab.api import fit, prepare
    from trainlab.models import Sequential
    from trainlab.stacked import MemberConfig, fit_members

    first = group[0].spec
    if len(group) == 1:
        model = Sequential(first.model.layers, name=first.name)
        return [fit(model, dataset, first.recipe, validation_split=first.data.validation_split,
                    stratify=first.data.stratify, scaling=first.data.scaling, callbacks=[group[0].reporter])]
    recipe = first.recipe
    prepared = prepare(dataset, validation_split=first.data.validation_split, stratify=first.data.stratify,
                       scaling=first.data.scaling, seed=recipe.seed)
    base_layers = spec_to_dict(first)["model"]
    configs = []
    for entry in group:
        r = entry.spec.recipe
        same_layers = spec_to_dict(entry.spec)["model"] == base_layers
        configs.append(MemberConfig(
            seed=r.seed, optimizer=r.optimizer, schedule=r.schedule, callbacks=(entry.reporter,),
            early_stopping=r.early_stopping.model_dump() if r.early_stopping is not None else None,
            model=None if same_layers else Sequential(entry.spec.model.layers, name=entry.spec.name)))
    metrics = recipe.metrics if recipe.metrics is not None else (
        ["accuracy"] if dataset.task == "classification" else ["mae"])
    histories = fit_members(Sequential(first.model.layers, name=first.name), configs, prepared.data,
                            loss=recipe.loss if recipe.loss is not None else "auto", metrics=metrics,
                            task=dataset.task, batch_size=recipe.batch_size, num_epochs=recipe.num_epochs,
                            device=recipe.device, shuffle=recipe.shuffle, clip_grad_norm=recipe.clip_grad_norm,
                            clip_grad_value=recipe.clip_grad_value, divergence_factor=recipe.divergence_factor,
                            batch_transforms=augment.batch_transforms(recipe, num_classes=dataset.num_classes))
    return histories


def _tell(plan: SearchPlan, study: Any, entry: _Entry, history: History, *, seconds: float,
          shared_by: int) -> None:
    import optuna

    trial = entry.trial
    values = [float(v) for v in history.history.get(plan.metric, [])]
    trial.set_user_attr("epochs", len(history.history.get("loss", [])))
    trial.set_user_attr("stop_reason", history.stop_reason)
    trial.set_user_attr("seconds", seconds)
    trial.set_user_attr("stacked_with", shared_by)
    trial.set_user_attr("curve", [v if math.isfinite(v) else None for v in values])
    if entry.reporter.pruned_epoch is not None:
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return
    value = _trial_value(values, plan)
    if value is None:
        trial.set_user_attr("failure", f"{plan.metric} is not finite at the end ({history.stop_reason or 'diverged'})"
                            if values else f"the run recorded no {plan.metric}")
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return
    study.tell(trial, value)


def _trial_value(values: Sequence[float], plan: SearchPlan) -> float | None:
    """A trial's value: its last epoch's metric, or its best epoch's (search.rank_by)."""
    if not values:
        return None
    if plan.settings.rank_by == "final":
        return values[-1] if math.isfinite(values[-1]) else None
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return None
    return max(finite) if plan.direction == "maximize" else min(finite)


# --------------------------------------------------------------------------- results


def _finish(plan: SearchPlan, study: Any, search_dir: Path, url: str, *, seconds: float, trained: int,
            report: bool) -> SearchResult:
    import tomli_w

    from trainlab.runs import write_text_atomic

    trials = study.get_trials(deepcopy=False)
    counts = {s: sum(t.state.name == s for t in trials) for s in _DONE_STATES}
    best_value = _best(study)
    best_trial = study.best_trial if best_value is not None else None
    best_spec = None
    best_values: dict[str, Any] = {}
    if best_trial is not None:
        best_values = plan.values_of(best_trial.params)
        spec = plan.spec_for(best_trial.params, name=f"{plan.name}-best")
        header = (f"# The best trial (number {best_trial.number}) of search '{plan.name}': {plan.metric} = "
                  f"{best_value:.6g} ({plan.settings.rank_by} epoch), with {format_params(best_values)}.\n"
                  f"# A plain fit spec: `trainlab fit {search_dir / 'best.toml'}` trains it again.\n")
        best_spec = search_dir / "best.toml"
        write_text_atomic(best_spec, header + tomli_w.dumps(spec_to_dict(spec)))
    rows = [{"number": t.number, "state": t.state.name, "value": t.value,
             "values": t.user_attrs.get("values", plan.values_of(t.params)),
             "epochs": t.user_attrs.get("epochs"), "seconds": t.user_attrs.get("seconds"),
             "stacked_with": t.user_attrs.get("stacked_with"),
             "failure": t.user_attrs.get("failure")} for t in trials]
    report_file = None
    if report:
        from trainlab.search.report import build_report

        report_file = build_report(study, plan, search_dir, seconds=seconds)
    return SearchResult(search_dir=search_dir, storage=url, study_name=plan.name, metric=plan.metric,
                        direction=plan.direction, best_value=best_value,
                        best_trial=None if best_trial is None else best_trial.number, best_values=best_values,
                        best_spec=best_spec, report=report_file, counts=counts, seconds=seconds, trained=trained,
                        trials=rows)
