"""Train a study: every case x seed, grouped for stacked training, resumable, recorded in the index.

The study folder is ``<runs_dir>/<study-name>/``::

    study.json              the study spec, its expansion (cases, runs, spec hashes) and its status
    <case-slug>-s<seed>/    one folder per run: spec.toml, history.jsonl, model.safetensors,
                            model.json, result.json (as `trainlab fit` writes, plus the case,
                            the spec hash and the training time)
    report.html             the comparison, self-contained (see `trainlab.study.report`)

A run folder appears complete or not at all: it is written into a hidden
``.<run-id>.partial`` folder that is renamed into place, so a study killed
midway leaves only finished runs, and `run_study(..., resume=True)` trains
just the missing ones. A finished run whose spec hash no longer matches the
study (the file changed since) is an error rather than silently reused.

Runs that share data, architecture and batch size form a group, trained by
`train_group`: runs whose layers differ only in strengths (dropout rates,
L1/L2 penalties, initializers; a run without Dropout layers takes rate-0 ones
where its stack-mates have them) and whose recipes differ only in seed,
optimizer, schedule, early stopping or the loss's label smoothing are members of one pass of the engine
(`trainlab.stacked.fit_members`, which stacks them where the plan says it pays
and otherwise trains them one at a time with the same results); each member
ends where `trainlab fit` of its spec.toml ends, to float32 rounding.

Every run is recorded in ``<runs_dir>/index.sqlite`` (`trainlab.index`) as
"running" when it starts and "finished" when its folder is in place.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import tomli_w
from torch import nn

from trainlab import __version__
from trainlab.api import check_before_training, dataset_from_spec, fit
from trainlab.callbacks import History, LambdaCallback
from trainlab.data import Dataset
from trainlab.errors import InputError
from trainlab.index import record_run, record_study
from trainlab.models import Sequential
from trainlab.runs import finish, run_folder, stage, write_json_atomic
from trainlab.study.compare import Comparison, RunRecord, compare, load_results, read_result
from trainlab.study.spec import PlannedRun, Study

__all__ = ["GroupExecutor", "StudyProgress", "StudyResult", "Trained", "group_runs", "run_study", "train_group",
           "train_groups"]


@dataclass(frozen=True)
class Trained:
    """One trained member of a group: its History (as the engine returns it), model and time.

    `shared_by` > 1: `seconds` is the wall time of a group of that many runs trained together, split
    evenly (not a measurement of this run alone).
    """

    history: History
    model: nn.Module
    seconds: float
    shared_by: int = 1


class StudyProgress:
    """What a progress display is told while a study trains; every hook does nothing by default."""

    def study_begin(self, study: Study, *, todo: Sequence[PlannedRun], finished: int) -> None:
        """Before training: `todo` will be trained, `finished` runs were already done (resume)."""

    def run_begin(self, run: PlannedRun) -> None:
        """A run starts."""

    def epoch_end(self, run: PlannedRun, epoch: int, logs: dict[str, Any]) -> None:
        """A run finished an epoch (logs: loss, metrics, val_*, lr)."""

    def run_end(self, run: PlannedRun, record: RunRecord) -> None:
        """A run finished and its folder is in place."""

    def study_end(self, status: str) -> None:
        """Training ended: "finished", "interrupted" or "failed"."""


@dataclass
class StudyResult:
    """What `run_study` did: the folder, the comparison, and which runs were trained or reused."""

    study_dir: Path
    comparison: Comparison
    trained: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    report: Path | None = None


def group_runs(runs: Sequence[PlannedRun]) -> list[list[PlannedRun]]:
    """Runs with the same data, architecture and batch size, in order of first appearance.

    Layers that differ only in strengths (a Dropout's rate, an L1/L2 penalty's
    strength, an initializer's seed) count as the same architecture: such runs
    can be trained as members of one stacked model. Dropout layers are left out
    of the comparison: a model without them is the same model with rate-0
    Dropout layers in their places.
    """
    groups: dict[str, list[PlannedRun]] = {}
    for run in runs:
        spec = run.spec_dict
        key = json.dumps([spec["data"], architecture(spec["model"]), spec["recipe"]["batch_size"]],
                         sort_keys=True, default=str)
        groups.setdefault(key, []).append(run)
    return list(groups.values())


#: Layer settings that are strengths: members may differ in them and still stack.
_STRENGTHS = ("rate", "kernel_initializer", "bias_initializer")
_PENALTIES = ("kernel_regularizer", "bias_regularizer")


def architecture(model: Any) -> Any:
    """A model table with its strengths left out (see `group_runs`).

    Dropout layers are left out too: a run without one is the same as a run with
    Dropout(rate=0) in its place (`_dropout_groups` puts them there).
    """
    if isinstance(model, dict):
        out = {}
        for key, value in model.items():
            if key in _STRENGTHS:
                continue
            if key in _PENALTIES:
                name = value.get("name") if isinstance(value, dict) else value
                if name in (None, "l1", "l2", "l1l2"):
                    continue
            out[key] = architecture(value)
        return out
    if isinstance(model, list):
        return [architecture(item) for item in model if not _is_dropout(item)]
    return model


def _is_dropout(layer: Any) -> bool:
    return isinstance(layer, dict) and layer.get("type") == "Dropout"


def _dropout_gaps(layers: Sequence[Any]) -> tuple[int, ...]:
    """How many Dropout layers sit before the first other layer, after the first, ..., after the last."""
    gaps = [0]
    for layer in layers:
        if _is_dropout(layer):
            gaps[-1] += 1
        else:
            gaps.append(0)
    return tuple(gaps)


def _padded(layers: Sequence[Any], gaps: tuple[int, ...]) -> list[Any]:
    """`layers` (which have no Dropout) with Dropout(rate=0) layers where `gaps` has them.

    A rate-0 Dropout passes its input through unchanged and draws nothing, so the
    run trains as it would without it; its layers line up with its stack-mates'.
    """
    out: list[Any] = []
    core = [layer for layer in layers if not _is_dropout(layer)]
    for i, count in enumerate(gaps):
        out.extend({"type": "Dropout", "rate": 0.0} for _ in range(count))
        if i < len(core):
            out.append(core[i])
    return out


def _dropout_groups(runs: Sequence[PlannedRun]) -> list[list[PlannedRun]]:
    """Runs split by where their Dropout layers sit; runs without any join the first such group.

    A run without Dropout can only take rate-0 Dropout layers when its model draws no
    other random numbers (the layers added would shift its other random layers' streams).
    """
    patterns: dict[tuple[int, ...], list[PlannedRun]] = {}
    plain: list[PlannedRun] = []
    for run in runs:
        gaps = _dropout_gaps(run.spec_dict["model"]["layers"])
        if not any(gaps) and not _draws_randomness(run):
            plain.append(run)
        else:
            patterns.setdefault(gaps, []).append(run)
    if not patterns:
        return [plain]
    groups = list(patterns.values())
    groups[0] = sorted([*plain, *groups[0]], key=runs.index)
    return groups


def _draws_randomness(run: PlannedRun) -> bool:
    model = Sequential(run.spec.model.layers)
    return any(getattr(module, "counter_random", False) for module in model.modules())


def _layers_in_stack(run: PlannedRun, runs: Sequence[PlannedRun]) -> list[Any]:
    """The layers `run` trains with among `runs`: its own, or with rate-0 Dropout layers lined up."""
    layers = run.spec_dict["model"]["layers"]
    if any(_dropout_gaps(layers)):
        return list(layers)
    widest = max((_dropout_gaps(r.spec_dict["model"]["layers"]) for r in runs), key=sum)
    return _padded(layers, widest) if any(widest) else list(layers)


def _own_model(run: PlannedRun, trained: nn.Module) -> nn.Module:
    """The run's own model (as its spec describes it): `trained`'s layers without the rate-0
    Dropout layers the stack added (see `_padded`; a padded run has no Dropout of its own).

    The layers are `trained`'s own objects, holding the weights it ended with: the Dropout
    layers hold no weights, so nothing is copied and no weights are drawn.
    """
    from trainlab.layers import Dropout

    kept = [layer for layer in trained.layers if not isinstance(layer, Dropout)]  # type: ignore[union-attr]
    own = Sequential(kept, name=run.spec.name)
    own.train(trained.training)
    return own


def train_group(members: Sequence[PlannedRun], dataset: Dataset, *,
                done: Callable[[PlannedRun, Trained], None], progress: StudyProgress | None = None,
                stack: str = "auto", cv: int | None = None) -> None:
    """Train runs that share data, architecture and batch size; call ``done(run, trained)`` for each.

    Runs whose recipes differ only in what a stacked member may change (seed,
    optimizer, schedule, early stopping, the loss's label smoothing) train together through
    `trainlab.stacked.fit_members`, which stacks them when that is faster
    (``stack="auto"``) and otherwise trains them one at a time with the same
    results; the others train one after another through `trainlab.fit`.
    Each History is the single-run engine's.
    """
    told = progress or StudyProgress()
    from trainlab import augment

    if cv is not None:
        _train_cv(members, dataset, folds=cv, done=done, told=told, stack=stack)
        return

    for subgroup in [g for recipes in _stackable_subgroups(members) for g in _dropout_groups(recipes)]:
        # Weight noise perturbs each run's own module in its forward; stacked members share one forward.
        if len(subgroup) > 1 and stack != "off" and augment.weight_noise(subgroup[0].spec.recipe) is None:
            _train_stacked(subgroup, dataset, done=done, told=told, stack=stack)
            continue
        for run in subgroup:
            told.run_begin(run)
            model = Sequential(run.spec.model.layers, name=run.spec.name)
            recorder = LambdaCallback(on_epoch_end=lambda epoch, logs, run=run: told.epoch_end(run, epoch, logs))
            start = time.perf_counter()
            history = fit(model, dataset, run.spec.recipe, validation_split=run.spec.data.validation_split,
                          stratify=run.spec.data.stratify, scaling=run.spec.data.scaling, callbacks=[recorder])
            done(run, Trained(history=history, model=model, seconds=time.perf_counter() - start))


def _train_cv(runs: Sequence[PlannedRun], dataset: Dataset, *, folds: int,
              done: Callable[[PlannedRun, Trained], None], told: StudyProgress, stack: str) -> None:
    """``[study] cv = k``: each run is a k-fold cross-validation (`trainlab.cross_validate`), its folds
    stacked; its History holds the fold means, so that cases are compared on fold means."""
    from trainlab.generalize import cross_validate

    for run in runs:
        told.run_begin(run)
        start = time.perf_counter()
        result = cross_validate(Sequential(run.spec.model.layers, name=run.spec.name), dataset, run.spec.recipe,
                                folds=folds, scaling=run.spec.data.scaling, stack=stack)
        history = result.mean_history()
        history.recipe, history.version, history.dataset = run.spec.recipe, __version__, dataset.name
        done(run, Trained(history=history, model=history.model, seconds=time.perf_counter() - start))


# Recipe fields a stacked member carries on its own; every other field must be equal to share a pass.
_MEMBER_FIELDS = ("seed", "optimizer", "schedule", "early_stopping")


def _stackable_subgroups(members: Sequence[PlannedRun]) -> list[list[PlannedRun]]:
    groups: dict[str, list[PlannedRun]] = {}
    for run in members:
        shared = {k: v for k, v in run.spec_dict["recipe"].items() if k not in _MEMBER_FIELDS}
        # The loss's label smoothing is a member's own too (the stacked loss smooths per member).
        shared["loss"] = _loss_without_smoothing(shared.get("loss"))
        # A stratified split depends on the seed, so those runs do not share their data.
        key = json.dumps([shared, run.spec.data.stratify and run.spec.recipe.seed], sort_keys=True, default=str)
        groups.setdefault(key, []).append(run)
    return list(groups.values())


def _loss_without_smoothing(loss: Any) -> Any:
    """A recipe's loss spec as a table without its label smoothing (the same loss for a name or a table)."""
    if isinstance(loss, str):
        return {"name": loss}
    if isinstance(loss, dict):
        return {k: v for k, v in loss.items() if k != "label_smoothing"}
    return loss


def _label_smoothing(loss: Any) -> float:
    return float(loss.get("label_smoothing", 0.0)) if isinstance(loss, dict) else 0.0


def _train_stacked(runs: Sequence[PlannedRun], dataset: Dataset, *, done: Callable[[PlannedRun, Trained], None],
                   told: StudyProgress, stack: str) -> None:
    from trainlab import augment
    from trainlab.api import prepare
    from trainlab.stacked import MemberConfig, fit_members

    first = runs[0].spec
    recipe = first.recipe
    prepared = prepare(dataset, validation_split=first.data.validation_split, stratify=first.data.stratify,
                       scaling=first.data.scaling, seed=recipe.seed)
    configs = []
    template = _layers_in_stack(runs[0], runs)
    padded = [_layers_in_stack(run, runs) != run.spec_dict["model"]["layers"] for run in runs]
    smoothing = [_label_smoothing(run.spec_dict["recipe"].get("loss")) for run in runs]
    per_member = len(set(smoothing)) > 1
    for run, member_smoothing in zip(runs, smoothing):
        told.run_begin(run)
        r = run.spec.recipe
        recorder = LambdaCallback(on_epoch_end=lambda epoch, logs, run=run: told.epoch_end(run, epoch, logs))
        layers = _layers_in_stack(run, runs)
        same_layers = layers == template
        configs.append(MemberConfig(
            seed=r.seed, optimizer=r.optimizer, schedule=r.schedule, callbacks=(recorder,),
            early_stopping=r.early_stopping.model_dump() if r.early_stopping is not None else None,
            model=None if same_layers else Sequential(layers, name=run.spec.name),
            label_smoothing=member_smoothing if per_member else None))
    metrics = recipe.metrics if recipe.metrics is not None else (
        ["accuracy"] if dataset.task == "classification" else ["mae"])
    # Augmentation, input noise, mixup and cutmix are equal across the group (they are not member fields).
    transforms = augment.batch_transforms(recipe, num_classes=dataset.num_classes)
    start = time.perf_counter()
    histories = fit_members(Sequential(template, name=first.name), configs, prepared.data,
                            loss=recipe.loss if recipe.loss is not None else "auto", metrics=metrics,
                            task=dataset.task, batch_size=recipe.batch_size, num_epochs=recipe.num_epochs,
                            device=recipe.device, stack=stack, shuffle=recipe.shuffle,
                            clip_grad_norm=recipe.clip_grad_norm, clip_grad_value=recipe.clip_grad_value,
                            divergence_factor=recipe.divergence_factor, batch_transforms=transforms)
    seconds = (time.perf_counter() - start) / len(runs)
    for run, history, added in zip(runs, histories, padded):
        if added:
            history.model = _own_model(run, history.model)
        history.model.scaler = prepared.scaler
        history.recipe, history.scaler = run.spec.recipe, prepared.scaler
        history.version, history.dataset = __version__, dataset.name
        done(run, Trained(history=history, model=history.model, seconds=seconds, shared_by=len(runs)))


class GroupExecutor(Protocol):
    """Trains groups of runs (`group_runs`) wherever it likes: ``begin(group)`` as a group starts,
    ``done(run, trained)`` in this process for each trained run (it writes the run folder and the index);
    ``cv`` is the study's ``[study] cv`` (each run estimated by k-fold cross-validation), or None.
    `train_groups` trains them here, one after another; `trainlab.scale.ray.RayExecutor` on a Ray cluster."""

    def __call__(self, groups: Sequence[tuple[list[PlannedRun], Dataset]], *,
                 begin: Callable[[Sequence[PlannedRun]], None], done: Callable[[PlannedRun, Trained], None],
                 progress: StudyProgress, cv: int | None = None) -> None: ...


def train_groups(groups: Sequence[tuple[list[PlannedRun], Dataset]], *,
                 begin: Callable[[Sequence[PlannedRun]], None], done: Callable[[PlannedRun, Trained], None],
                 progress: StudyProgress, cv: int | None = None) -> None:
    """The local `GroupExecutor`: each group through `train_group`, in order, in this process."""
    for group, dataset in groups:
        begin(group)
        train_group(group, dataset, done=done, progress=progress, cv=cv)


def run_study(study: Study, *, runs_dir: str | Path = "runs", resume: bool = False,
              progress: StudyProgress | None = None, report: bool = True, fresh: bool = False,
              executor: GroupExecutor | None = None) -> StudyResult:
    """Train every run of `study` that is not finished yet, then compare the cases and write the report.

    Args:
        study: a validated study (`load_study`, `parse_study`).
        runs_dir: the runs folder; the study folder is ``runs_dir/<study name>``.
        resume: keep the runs already finished in the study folder and train the rest.
            Without it, a study folder that holds finished runs is an error (nothing is overwritten).
        progress: told about each run and epoch (`trainlab study` shows a progress bar).
        report: write ``report.html`` in the study folder.
        fresh: retrain every run, replacing the finished ones (wins over `resume`).
        executor: where the groups of runs train (a `GroupExecutor`); None: here, one after another.

    Raises:
        InputError: the study folder holds finished runs and `resume` is False, a finished run was
            trained from another spec than the study now describes, or the data cannot be loaded.
    """
    progress = progress or StudyProgress()
    root = Path(runs_dir)
    study_dir = run_folder(root, study.name)
    finished = set() if fresh else _finished_runs(study, study_dir, resume=resume)
    todo = [run for run in study.runs if run.run_id not in finished]
    datasets = _load_datasets(todo)  # a bad data source fails before anything is written
    _check_before_training(todo, datasets)  # so do shapes, targets and devices

    study_dir.mkdir(parents=True, exist_ok=True)
    for stale in study_dir.glob(".*.partial"):
        shutil.rmtree(stale, ignore_errors=True)  # left by a killed run; that run trains again
    created = _write_study_json(study_dir, study, status="running")
    record_study(root, name=study.name, status="running", study_dir=study_dir, spec=study.raw,
                 num_runs=len(study.runs))
    trained: list[str] = []
    started: list[PlannedRun] = []
    status = "failed"
    progress.study_begin(study, todo=todo, finished=len(finished))

    def done(run: PlannedRun, member: Trained) -> None:
        extra = _sharpness(run, member, datasets[_data_key(run)]) if study.settings.sharpness else None
        result = _write_run(study_dir, study, run, member, extra=extra)
        record_run(root, run_id=f"{study.name}/{run.run_id}", name=study.name, study=study.name,
                   case=run.case.label, seed=run.seed, spec=run.spec_dict, status="finished",
                   final=result["final"], run_dir=study_dir / run.run_id)
        trained.append(run.run_id)
        progress.run_end(run, RunRecord(run_id=run.run_id, case=run.case.label, seed=run.seed,
                                        history=member.history.history, seconds=member.seconds,
                                        seconds_shared_by=member.shared_by,
                                        stop_reason=member.history.stop_reason,
                                        steps_per_epoch=result["steps_per_epoch"]))

    def begin(group: Sequence[PlannedRun]) -> None:
        for run in group:
            record_run(root, run_id=f"{study.name}/{run.run_id}", name=study.name, study=study.name,
                       case=run.case.label, seed=run.seed, spec=run.spec_dict, status="running",
                       run_dir=study_dir / run.run_id)
            started.append(run)

    try:
        groups = [(group, datasets[_data_key(group[0])]) for group in group_runs(todo)]
        (executor or train_groups)(groups, begin=begin, done=done, progress=progress, cv=study.settings.cv)
        status = "finished"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        for run in started:
            if run.run_id not in trained:
                record_run(root, run_id=f"{study.name}/{run.run_id}", name=study.name, study=study.name,
                           case=run.case.label, seed=run.seed, spec=run.spec_dict, status=status,
                           run_dir=None)
        _write_study_json(study_dir, study, status=status, created=created)
        record_study(root, name=study.name, status=status)
        progress.study_end(status)

    stored = load_results(study_dir)
    comparison = compare(stored.records, metric=study.settings.metric, mode=study.settings.mode,
                         rank_by=study.settings.rank_by, case_order=stored.case_labels)
    report_file = None
    if report:
        from trainlab.study.report import build_report

        report_file = build_report(study_dir)
    return StudyResult(study_dir=study_dir, comparison=comparison, trained=trained,
                       reused=[r.run_id for r in study.runs if r.run_id in finished], report=report_file)


def _finished_runs(study: Study, study_dir: Path, *, resume: bool) -> set[str]:
    finished = set()
    for run in study.runs:
        result = read_result(study_dir / run.run_id)
        if result is None:
            continue
        if result.get("spec_hash") != run.spec_hash:
            raise InputError(
                f"{study_dir / run.run_id} holds a finished run trained from another spec than the study now "
                f"describes for case '{run.case.label}' seed {run.seed} (the study file changed since). "
                f"Remove that folder to retrain it, retrain the whole study with --fresh (fresh=True), or "
                "change the study's name to keep both."
            )
        finished.add(run.run_id)
    if finished and not resume:
        raise InputError(
            f"{study_dir} already holds {len(finished)} finished runs of study '{study.name}'. Pass --resume "
            f"(resume=True) to keep them and train only the {len(study.runs) - len(finished)} missing runs, "
            f"or remove the folder (or change the study's name) to start over."
        )
    return finished


def _data_key(run: PlannedRun) -> str:
    data = run.spec_dict["data"]
    return json.dumps({k: data.get(k) for k in ("name", "path", "target", "options")}, sort_keys=True)


def _load_datasets(runs: Sequence[PlannedRun]) -> dict[str, Dataset]:
    loaded: dict[str, Dataset] = {}
    for run in runs:
        key = _data_key(run)
        if key not in loaded:
            loaded[key] = dataset_from_spec(run.spec.data)
    return loaded


def _check_before_training(runs: Sequence[PlannedRun], datasets: dict[str, Dataset]) -> None:
    """`trainlab.api.check_before_training` once for each distinct data, model and loss set-up."""
    seen: set[str] = set()
    for run in runs:
        spec = run.spec_dict
        recipe = spec["recipe"]
        key = json.dumps([spec["data"], spec["model"], recipe.get("loss"), recipe.get("metrics"),
                          recipe.get("early_stopping"), recipe.get("device")], sort_keys=True, default=str)
        if key in seen:
            continue
        seen.add(key)
        try:
            check_before_training(run.spec, datasets[_data_key(run)])
        except InputError as error:
            raise InputError(f"case '{run.case.label}': {error}") from None


def _write_study_json(study_dir: Path, study: Study, *, status: str, created: float | None = None) -> float:
    file = study_dir / "study.json"
    if created is None and file.is_file():
        try:
            created = json.loads(file.read_text()).get("created")
        except json.JSONDecodeError:
            created = None
    created = time.time() if created is None else created
    write_json_atomic(file, {**study.to_dict(), "status": status, "created": created, "updated": time.time(),
                             "version": __version__})
    return created


def _sharpness(run: PlannedRun, member: Trained, dataset: Dataset) -> dict[str, Any]:
    """``[study] sharpness = true``: the run's sharpness on its first 2,000 training rows, and its gap."""
    from trainlab.api import prepare
    from trainlab.generalize.sharpness import measure_gap_and_sharpness

    spec = run.spec
    prepared = prepare(dataset, validation_split=spec.data.validation_split, stratify=spec.data.stratify,
                       scaling=spec.data.scaling, seed=spec.recipe.seed)
    measured = measure_gap_and_sharpness(member.model, prepared.data, loss=spec.recipe.loss or "auto",
                                         metrics=spec.recipe.metrics, task=dataset.task, rows=2000,
                                         seed=spec.recipe.seed)
    return {"sharpness": {**measured["sharpness"].to_dict(), "measured_on": measured["rows"], "train": measured["train"],
                          "val": measured["val"], "gap": measured["gap"]}}


def _write_run(study_dir: Path, study: Study, run: PlannedRun, member: Trained,
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the run folder through a staging folder renamed into place; return its result.json.

    `extra` joins result.json (a study option's measures, such as sharpness).
    """
    history = member.history
    staging = stage(study_dir, run.run_id, tomli_w.dumps(run.spec_dict))
    try:
        params = getattr(history, "params", None) or {}
        return finish(staging, run_folder(study_dir.parent, study_dir.name, run.run_id), history=history,
                      model=member.model, recipe=run.spec.recipe, result={
                          "name": study.name, "run_id": run.run_id, "study": study.name, "case": run.case.label,
                          "spec_hash": run.spec_hash, "steps_per_epoch": params.get("steps"),
                          "seconds": member.seconds,
                          "seconds_shared_by": member.shared_by, **(extra or {})})
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
