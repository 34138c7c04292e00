"""k-fold cross-validation: every fold a fresh run, trained together as members of one stack.

A single hold-out split gives one number whose value depends on which rows
happened to be held out; k-fold cross-validation trains k models, each on
k - 1 folds, scores each on the fold it did not see, and reports the k
scores' mean, spread and a confidence interval.

What trainlab does for each fold (through `trainlab.stacked.fit_members`,
the one engine; stacked when the plan says it pays):

- the folds come from scikit-learn's splitters seeded by the recipe's seed:
  ``StratifiedKFold`` (classification, the default, as scikit-learn's
  ``cross_val_score`` does for classifiers), ``KFold``, their ``Repeated``
  forms for ``repeats > 1``, and ``GroupKFold`` when rows come in groups
  (a group never straddles the training and held-out sides);
- each fold is a member with a fresh initialization (the recipe's seed, as a
  new run would start);
- scaling is fitted on the fold's own training rows only, never on the rows it
  is scored on (per-member scaling of the engine);
- each fold has its own early stopping: with ``recipe.early_stopping`` the
  fold's training rows are split again (``validation_split``) and it stops on
  that inner part, so the held-out fold stays unseen; without it, the fold
  validates on its held-out rows and its history shows that curve;
- the fold's score is computed after training, on its held-out rows, with the
  recipe's loss and metrics.

The interval is Student's t-interval over the k (or k x repeats) fold scores
(``scipy.stats.t``, k - 1 degrees of freedom). The folds share training rows,
so their scores are not independent and the interval is too narrow (Bengio and
Grandvalet, 2004); it is a guide, and `CVResult.interval_name` says so.

The fold models form an averaging ensemble (`CVResult.ensemble`), which
`CVResult.save` writes as safetensors + JSON and `trainlab.load` reads back.

Example:
    >>> import trainlab
    >>> from trainlab.layers import Dense
    >>> model = trainlab.Sequential([Dense(8, activation="relu"), Dense(3, activation="softmax")])
    >>> result = trainlab.cross_validate(model, "iris", {"num_epochs": 2, "seed": 0}, folds=3)
    >>> len(result.folds), result.metric, result.splitter.split("(")[0]
    (3, 'accuracy', 'StratifiedKFold')
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from trainlab import check, engine
from trainlab.data import Dataset
from trainlab.errors import InputError
from trainlab.generalize._setup import Setup, setup
from trainlab.generalize.ensembles import Ensemble

__all__ = ["CVResult", "FoldResult", "SeedSpread", "compare_with_holdout", "cross_validate", "make_folds"]


@dataclass
class FoldResult:
    """One fold: its rows, its held-out scores, and its trained model."""

    index: int
    repeat: int
    fold: int
    train_rows: np.ndarray
    test_rows: np.ndarray
    stopping_rows: np.ndarray | None
    scores: dict[str, float]
    epochs: int
    stop_reason: str | None
    history: Any = field(repr=False)
    model: nn.Module = field(repr=False)


@dataclass
class CVResult:
    """The folds of one cross-validation, their summary, and the fold models.

    Attributes:
        metric: the score the summary is about (the recipe's first metric, held out).
        folds: one `FoldResult` per fold (per repeat), in the splitter's order.
        splitter: the scikit-learn splitter, as its repr (its seed included).
        task: "classification" or "regression".
        confidence: the interval's level (0.95).
        seconds: wall-clock time of the training.
    """

    metric: str
    folds: list[FoldResult]
    splitter: str
    task: str
    confidence: float = 0.95
    seconds: float = 0.0
    stacked: bool = False
    name: str = "cv"

    def values(self, metric: str | None = None) -> np.ndarray:
        """Each fold's held-out value of `metric` (default: the summary's metric)."""
        key = metric or self.metric
        return np.array([f.scores[key] for f in self.folds], dtype=np.float64)

    @property
    def mean(self) -> float:
        return float(self.values().mean())

    @property
    def std(self) -> float:
        """The sample standard deviation of the fold scores (n - 1 in the denominator)."""
        values = self.values()
        return float(values.std(ddof=1)) if len(values) > 1 else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        """Student's t-interval for the mean fold score (scipy.stats.t), at `confidence`."""
        from scipy import stats

        values = self.values()
        if len(values) < 2 or self.std == 0.0:
            return self.mean, self.mean
        low, high = stats.t.interval(self.confidence, df=len(values) - 1, loc=self.mean,
                                     scale=stats.sem(values))
        return float(low), float(high)

    @property
    def interval_name(self) -> str:
        n = len(self.folds)
        return (f"{self.confidence:.0%} Student t-interval over the {n} fold scores (scipy.stats.t, {n - 1} "
                "degrees of freedom); the folds share training rows, so it is narrower than it should be")

    def table(self) -> list[dict[str, Any]]:
        """The per-fold table: one row per fold with its sizes, epochs and held-out scores."""
        return [{"fold": f.fold + 1, "repeat": f.repeat + 1, "train_rows": int(len(f.train_rows)),
                 "held_out_rows": int(len(f.test_rows)), "epochs": f.epochs, **f.scores} for f in self.folds]

    def ensemble(self) -> Ensemble:
        """The fold models as one averaging ensemble (soft vote for classes)."""
        return Ensemble([f.model for f in self.folds], task=self.task, combine="average", method="cv")

    def predict(self, x: Any) -> np.ndarray:
        """The fold models' averaged prediction on raw inputs x (each applies its own scaler)."""
        return np.asarray(self.ensemble().predict(x))

    def save(self, path: str | Path) -> Path:
        """Write the fold models as an ensemble (safetensors + JSON) and ``cv.json``; return the folder."""
        from trainlab.runs import write_json_atomic

        folder = self.ensemble().save(path)
        write_json_atomic(folder / "cv.json", self.to_dict())
        return folder

    def to_dict(self) -> dict[str, Any]:
        low, high = self.interval
        return {
            "name": self.name, "metric": self.metric, "task": self.task, "splitter": self.splitter,
            "mean": self.mean, "std": self.std, "interval": [low, high], "confidence": self.confidence,
            "interval_name": self.interval_name, "seconds": self.seconds, "stacked": self.stacked,
            "folds": [{"fold": f.fold, "repeat": f.repeat, "train_rows": int(len(f.train_rows)),
                       "test_rows": int(len(f.test_rows)), "epochs": f.epochs, "stop_reason": f.stop_reason,
                       "scores": f.scores, "history": f.history.history} for f in self.folds],
        }

    def mean_history(self) -> Any:
        """One History of the fold means, epoch by epoch, whose final ``val_`` values are the held-out means.

        Each key at epoch e is the mean over the folds that trained that epoch; the last
        ``val_<name>`` values are then the folds' held-out scores' means (what a study with
        ``[study] cv = k`` compares), which they already are without early stopping.
        """
        from trainlab.callbacks import History

        merged = History()
        keys = list(dict.fromkeys(k for f in self.folds for k in f.history.history))
        epochs = max(len(f.history.epoch) for f in self.folds)
        for key in keys:
            series = [f.history.history.get(key, []) for f in self.folds]
            merged.history[key] = [float(np.mean([s[e] for s in series if e < len(s)]))
                                   for e in range(epochs) if any(e < len(s) for s in series)]
        merged.epoch = list(range(epochs))
        for name in self.folds[0].scores:
            values = merged.history.setdefault(f"val_{name}", [math.nan] * epochs)
            if values:
                values[-1] = float(self.values(name).mean())
        merged.seed = self.folds[0].history.seed
        stops = {f.stop_reason for f in self.folds if f.stop_reason}
        merged.stop_reason = "; ".join(sorted(stops)) if stops else None
        merged.params = {"cv": {k: v for k, v in self.to_dict().items() if k != "folds"}, "kept_epoch": epochs - 1}
        merged.model = self.ensemble()
        return merged

    def summary(self) -> str:
        low, high = self.interval
        return (f"{self.metric}: {self.mean:.4g} ± {self.std:.2g} (std over {len(self.folds)} folds); "
                f"[{low:.4g}, {high:.4g}] is the {self.interval_name}.")


def cross_validate(model: Any, data: Any, recipe: Any = None, folds: int = 5, repeats: int = 1,
                   stratify: bool | None = None, group_column: str | int | None = None, *,
                   groups: Any = None, scaling: Any = "auto", validation_split: float = 0.2,
                   confidence: float = 0.95, stack: str = "auto") -> CVResult:
    """Cross-validate `model` with `recipe` on `data`: k folds, each a fresh run; see the module docstring.

    Args:
        model: a trainlab Sequential (not built), a list of layers, or any nn.Module; copied per fold.
        data: a bundled data set's name, a .csv/.npz path, (x, y) or a Dataset.
        recipe: a RecipeSpec or a dict of its fields (its seed seeds the splitter and the folds' runs).
        folds: the number of folds k (>= 2).
        repeats: > 1 repeats the k-fold split with other shuffles (``Repeated(Stratified)KFold``).
        stratify: keep each class's share in every fold (``StratifiedKFold``); None means yes for
            classification and no for regression.
        group_column: a feature (its name in the data, or its index) that holds each row's group;
            it is taken out of the inputs and the folds keep groups whole (``GroupKFold``).
        groups: each row's group, given directly instead of `group_column`.
        scaling: "auto" (standardize float inputs), "standardize", "minmax" or None; fitted per
            fold on that fold's training rows.
        validation_split: with early stopping, the fraction of each fold's training rows it stops on.
        confidence: the interval's level.
        stack: "auto", "on" or "off" (`trainlab.stacked.fit_members`).

    Raises:
        InputError: fewer than 2 folds, more folds than rows (or than samples of a class when
            stratifying, or than groups), stratify with a regression target, an unknown group column.
    """
    check.int_at_least("folds", folds, 2, "k-fold cross-validation needs at least 2 folds; 5 or 10 is usual.")
    check.int_at_least("repeats", repeats, 1, "Use 1 for a single k-fold split.")
    check.in_range("confidence", confidence, 0.0, 1.0, open_low=True, open_high=True, hint="e.g. 0.95")
    ready = setup(model, data, recipe, scaling=scaling, stack=stack, tool="cross-validation")
    ready, group_ids = _with_groups(ready, group_column, groups)
    splitter, splits = make_folds(ready, folds=folds, repeats=repeats, stratify=stratify, groups=group_ids)
    seed = ready.recipe.seed
    members: list[Any] = []
    stopping_rows: list[np.ndarray | None] = []
    for index, (train, test) in enumerate(splits):
        if ready.recipe.early_stopping is not None:
            fit_rows, stop_rows = _inner_split(ready, train, validation_split, seed + index,
                                               stratified=stratify is not False and group_ids is None)
            members.append(ready.member(seed=seed, train_indices=fit_rows, val_indices=stop_rows))
            stopping_rows.append(stop_rows)
        else:
            members.append(ready.member(seed=seed, train_indices=train, val_indices=test))
            stopping_rows.append(None)
    start = time.perf_counter()
    histories = ready.fit(members, engine.TrainData(ready.x, ready.y))
    seconds = time.perf_counter() - start
    results = []
    for index, ((train, test), history) in enumerate(zip(splits, histories)):
        results.append(FoldResult(index=index, repeat=index // folds, fold=index % folds, train_rows=train,
                                  test_rows=test, stopping_rows=stopping_rows[index],
                                  scores=held_out_scores(ready, history.model, test),
                                  epochs=len(history.epoch), stop_reason=history.stop_reason, history=history,
                                  model=history.model))
    metric = next((k for k in results[0].scores if k != "loss"), "loss")
    return CVResult(metric=metric, folds=results, splitter=splitter, task=ready.task, confidence=confidence,
                    seconds=seconds, stacked=bool(histories[0].params.get("stacked")),
                    name=getattr(ready.template, "name", None) or "cv")


def make_folds(ready: Setup, *, folds: int, repeats: int = 1, stratify: bool | None = None,
               groups: np.ndarray | None = None) -> tuple[str, list[tuple[np.ndarray, np.ndarray]]]:
    """The scikit-learn splitter for these settings (its repr) and its (train, test) row arrays.

    Raises:
        InputError: with the fix, for settings the data cannot satisfy.
    """
    from sklearn import model_selection as ms

    n, seed = ready.num_rows, ready.recipe.seed
    if folds > n:
        raise InputError(f"folds={folds} but the data has only {n} rows: each fold must hold at least one row. "
                         f"Use --folds {n} or fewer (folds = rows is leave-one-out).")
    regression = ready.task != "classification"
    if stratify and regression:
        raise InputError("stratify keeps each class's share of the rows in every fold, but the target is a "
                         "regression target (continuous values, no classes). Use --no-stratify "
                         "(stratify=False), or load the target as class labels if it is one.")
    if groups is not None:
        if stratify:
            raise InputError("stratify and a group column were both asked for; GroupKFold keeps groups whole "
                             "and does not stratify. Drop --stratify, or drop --group-column.")
        count = len(np.unique(groups))
        if folds > count:
            raise InputError(f"folds={folds} but the rows fall in only {count} groups, and GroupKFold keeps "
                             f"each group inside one fold. Use --folds {count} or fewer, or another group column.")
        splits = []
        names = []
        for r in range(repeats):
            splitter: Any = ms.GroupKFold(n_splits=folds, shuffle=True, random_state=seed + r)
            names.append(repr(splitter))
            splits += list(splitter.split(np.zeros(n), None, groups))
        return " + ".join(names) if repeats > 1 else names[0], _as_int(splits)
    use_strata = (not regression) if stratify is None else bool(stratify)
    if use_strata:
        labels = ready.labels()
        classes, counts = np.unique(labels, return_counts=True)
        smallest = int(counts.min())
        if folds > smallest:
            rare = _class_name(ready.dataset, int(classes[int(counts.argmin())]))
            raise InputError(f"folds={folds} but class {rare} has only {smallest} samples: stratified k-fold "
                             f"puts samples of every class in every fold, so no class may have fewer samples "
                             f"than folds. Use --folds {max(smallest, 2)} or fewer, or --no-stratify "
                             "(stratify=False) to split without keeping class shares.")
        splitter = (ms.StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed) if repeats == 1 else
                    ms.RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed))
        return repr(splitter), _as_int(list(splitter.split(np.zeros(n), labels)))
    splitter = (ms.KFold(n_splits=folds, shuffle=True, random_state=seed) if repeats == 1 else
                ms.RepeatedKFold(n_splits=folds, n_repeats=repeats, random_state=seed))
    return repr(splitter), _as_int(list(splitter.split(np.zeros(n))))


def held_out_scores(ready: Setup, model: nn.Module, rows: np.ndarray) -> dict[str, float]:
    """The recipe's loss and metrics of `model` on `rows` (its own scaler applied), as the engine evaluates."""
    index = torch.as_tensor(rows, dtype=torch.long)
    x, y = ready.x[index], ready.y[index]
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    xs = x.to(device)
    scaler = getattr(model, "scaler", None)
    if scaler is not None:
        xs = scaler.transform(xs)
    out = engine.probe_outputs(model, xs)
    num_outputs = out.shape[-1] if out.dim() > 1 else 1
    technique = engine.Technique(loss=ready.loss, metrics=ready.metrics, task=ready.task)
    loss_fn, forward, from_logits = engine.resolve_loss(model, technique, ready.y, num_outputs)
    metrics = engine.make_metrics(ready.metrics, loss_fn, num_outputs)
    target = engine.targets(y, loss_fn, num_outputs, "held-out", device)
    return engine.evaluate_tensors(model, forward, loss_fn, metrics, xs, target,
                                   batch_size=max(ready.recipe.batch_size, 1024), from_logits=from_logits)


def _inner_split(ready: Setup, train: np.ndarray, fraction: float, seed: int, *,
                 stratified: bool) -> tuple[np.ndarray, np.ndarray]:
    """A fold's training rows split again: rows to fit on and rows early stopping watches."""
    from sklearn.model_selection import train_test_split

    check.in_range("validation_split", fraction, 0.0, 1.0, open_low=True, open_high=True,
                   hint="With early stopping, it is the fraction of each fold's training rows it stops on.")
    strata = ready.labels()[train] if (stratified and ready.task == "classification") else None
    try:
        fit_rows, stop_rows = train_test_split(train, test_size=fraction, random_state=seed, stratify=strata)
    except ValueError:  # a class too rare to stratify the inner split: split without strata
        fit_rows, stop_rows = train_test_split(train, test_size=fraction, random_state=seed)
    return np.sort(fit_rows), np.sort(stop_rows)


def _with_groups(ready: Setup, group_column: str | int | None, groups: Any) -> tuple[Setup, np.ndarray | None]:
    """The setup without the group column in its inputs, and each row's group (or None)."""
    from dataclasses import replace

    if group_column is not None and groups is not None:
        raise InputError("give either group_column (a feature of the data) or groups (one id per row), not both")
    if groups is not None:
        ids = np.asarray(groups)
        if ids.ndim != 1 or ids.shape[0] != ready.num_rows:
            raise InputError(f"groups must hold one group id per row ({ready.num_rows} rows), got shape "
                             f"{ids.shape}.")
        return ready, ids
    if group_column is None:
        return ready, None
    dataset = ready.dataset
    names = list(dataset.feature_names or [])
    if isinstance(group_column, int) and not isinstance(group_column, bool):
        column = group_column
    elif str(group_column) in names:
        column = names.index(str(group_column))
    elif str(group_column).isdigit():
        column = int(str(group_column))
    else:
        from trainlab.errors import did_you_mean

        known = f" Its columns: {', '.join(names)}." if names else " The data has no column names; give an index."
        raise InputError(f"--group-column '{group_column}' is not a column of the data.{did_you_mean(str(group_column), names)}"
                         f"{known}")
    if dataset.x.dim() != 2 or not 0 <= column < dataset.x.shape[1]:
        raise InputError(f"--group-column {group_column}: the inputs have shape {tuple(dataset.x.shape[1:])}; a "
                         "group column must be one of the columns of tabular (2-D) data.")
    ids = dataset.x[:, column].cpu().numpy()
    keep = [c for c in range(dataset.x.shape[1]) if c != column]
    reduced = Dataset(x=dataset.x[:, keep].contiguous(), y=dataset.y, task=dataset.task,
                      num_classes=dataset.num_classes, name=dataset.name,
                      feature_names=tuple(n for c, n in enumerate(names) if c != column) if names else None,
                      class_names=dataset.class_names)
    return replace(ready, dataset=reduced), ids


def _class_name(dataset: Dataset, label: int) -> str:
    names = dataset.class_names
    return f"'{names[label]}' (label {label})" if names and 0 <= label < len(names) else str(label)


def _as_int(splits: Sequence[tuple[Any, Any]]) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)) for a, b in splits]



@dataclass
class SeedSpread:
    """A single hold-out estimate and the k-fold CV estimate, each taken with several seeds.

    A seed changes the rows held out (and the initialization); how much an estimate
    moves from seed to seed is how far one number of it can be trusted.
    """

    metric: str
    folds: int
    seeds: list[int]
    holdout: list[float]
    cv: list[float]
    results: list[CVResult] = field(default_factory=list, repr=False)

    def spread(self, which: str) -> float:
        """The sample standard deviation over seeds of "holdout" or "cv"."""
        values = np.asarray(getattr(self, which), dtype=np.float64)
        return float(values.std(ddof=1)) if len(values) > 1 else 0.0

    def summary(self) -> str:
        h, c = np.asarray(self.holdout), np.asarray(self.cv)
        ratio = self.spread("holdout") / self.spread("cv") if self.spread("cv") > 0 else math.inf
        return (f"Across {len(self.seeds)} seeds, the single hold-out {self.metric} ranged from {h.min():.4g} to "
                f"{h.max():.4g} (std {self.spread('holdout'):.3g}); the {self.folds}-fold CV mean ranged from "
                f"{c.min():.4g} to {c.max():.4g} (std {self.spread('cv'):.3g}), "
                f"{ratio:.1f}x less spread from seed to seed.")

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "folds": self.folds, "seeds": self.seeds, "holdout": self.holdout,
                "cv": self.cv, "holdout_std": self.spread("holdout"), "cv_std": self.spread("cv")}


def compare_with_holdout(model: Any, data: Any, recipe: Any = None, *, folds: int = 5, seeds: int = 5,
                         validation_split: float = 0.2, stratify: bool | None = None, scaling: Any = "auto",
                         stack: str = "auto") -> SeedSpread:
    """k-fold CV against a single hold-out split on the same data, each with `seeds` seeds.

    Seed s (``recipe.seed`` + 0, 1, ...) seeds the CV's splitter and runs, and the hold-out's
    stratified random split (scikit-learn's ``train_test_split``, `validation_split` held out)
    and run; the hold-out runs of all seeds train as members of one stack. Both estimates are
    the recipe's first metric on held-out rows.

    Raises:
        InputError: as `cross_validate`, and for fewer than 2 seeds.
    """
    from sklearn.model_selection import train_test_split

    check.int_at_least("seeds", seeds, 2, "Comparing how estimates vary needs at least 2 seeds; 5 is usual.")
    ready = setup(model, data, recipe, scaling=scaling, stack=stack, tool="cross-validation")
    first = ready.recipe.seed
    chosen = [first + k for k in range(seeds)]
    results = [cross_validate(model, ready.dataset, ready.recipe.model_copy(update={"seed": s}), folds=folds,
                              stratify=stratify, scaling=scaling, validation_split=validation_split, stack=stack)
               for s in chosen]
    rows = np.arange(ready.num_rows)
    strata = ready.labels() if (ready.task == "classification" and stratify is not False) else None
    members, held = [], []
    for s in chosen:
        train, test = train_test_split(rows, test_size=validation_split, random_state=s, stratify=strata)
        if ready.recipe.early_stopping is not None:
            fit_rows, stop_rows = _inner_split(ready, train, validation_split, s, stratified=strata is not None)
            members.append(ready.member(seed=s, train_indices=fit_rows, val_indices=stop_rows))
        else:
            members.append(ready.member(seed=s, train_indices=train, val_indices=test))
        held.append(test)
    histories = ready.fit(members, engine.TrainData(ready.x, ready.y))
    metric = results[0].metric
    holdout = [held_out_scores(ready, h.model, test)[metric] for h, test in zip(histories, held)]
    return SeedSpread(metric=metric, folds=folds, seeds=chosen, holdout=holdout, cv=[r.mean for r in results],
                      results=results)
