"""Bootstrap aggregating (bagging): members trained on bootstrap samples, combined by vote or average.

Each member trains on a bootstrap sample of the training rows: n rows drawn
with replacement (a row may appear several times; about 1 - 1/e = 63% of the
rows appear at least once). The rows a member never drew are its out-of-bag
(OOB) rows. Averaging members that err in different ways lowers the variance
of the prediction (Breiman, 1996).

Reported:

- the out-of-bag estimate: each training row predicted by the members that
  did not draw it (combined as the ensemble combines), scored against its
  target; rows drawn by every member are left out (``oob_coverage`` says how
  many were scored), as scikit-learn's ``oob_score`` does;
- each member's score on its own OOB rows, and on the held-out part;
- the ensemble's score on the held-out part against the members' mean and
  spread there.

Prediction is the soft vote (the mean of the members' class probabilities)
or, with ``vote="hard"``, the majority vote; for regression, the average.

The members train together through `trainlab.stacked.fit_members` (stacked
when the plan says it pays), each with its own rows, its own scaling fitted on
its own sample and, with ``recipe.early_stopping``, its own early stopping
watching its OOB rows (the OOB estimate is then slightly optimistic).

Example:
    >>> import trainlab
    >>> from trainlab.layers import Dense
    >>> model = trainlab.Sequential([Dense(8, activation="relu"), Dense(3, activation="softmax")])
    >>> result = trainlab.ensemble(model, "iris", {"num_epochs": 2, "seed": 0}, members=3)
    >>> len(result.ensemble), sorted(result.oob_score)
    (3, ['accuracy', 'error'])
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainlab import check, engine
from trainlab.errors import InputError
from trainlab.generalize._setup import holdout, primary, scores, setup
from trainlab.generalize.ensembles import Ensemble

__all__ = ["METHODS", "EnsembleResult", "bagging", "bootstrap_rows", "ensemble"]

#: The values of `ensemble(method=...)` and ``trainlab ensemble --method``.
METHODS = ("bagging", "adaboost", "gradient")


@dataclass
class EnsembleResult:
    """What an ensemble tool found: the ensemble, each member's scores, and the ensemble's.

    Attributes:
        method: "bagging", "adaboost" or "gradient".
        ensemble: the trained `Ensemble` (predicts; `save` writes it).
        task: "classification" or "regression".
        metric: the score the summary is about: accuracy (classes) or mse (regression).
        member_scores: each member alone on the held-out rows (empty without a held-out part).
        ensemble_score: the ensemble on the held-out rows (None without a held-out part).
        oob_score: bagging's out-of-bag estimate of the ensemble (None for boosting).
        oob_coverage: the fraction of training rows that were out of bag for at least one member.
        member_oob_scores: bagging: each member on its own out-of-bag rows.
        rounds: boosting: one dict per round (member weight, member error, ensemble train/val error).
        samples: bagging: each member's (drawn rows, out-of-bag rows), as row numbers of the data.
        histories: each member's History.
    """

    method: str
    ensemble: Ensemble
    task: str
    metric: str
    member_scores: list[dict[str, float]] = field(default_factory=list)
    ensemble_score: dict[str, float] | None = None
    oob_score: dict[str, float] | None = None
    oob_coverage: float = 0.0
    member_oob_scores: list[dict[str, float]] = field(default_factory=list)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    samples: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list, repr=False)
    histories: list[Any] = field(default_factory=list, repr=False)
    train_rows: np.ndarray | None = field(default=None, repr=False)
    test_rows: np.ndarray | None = field(default=None, repr=False)
    residuals: list[torch.Tensor] = field(default_factory=list, repr=False)
    seconds: float = 0.0
    stacked: bool = False
    stop_reason: str | None = None
    name: str = "ensemble"

    @property
    def weights(self) -> list[float]:
        """The members' weights in the ensemble (AdaBoost's alphas; gradient boosting's shrinkage)."""
        return list(self.ensemble.weights)

    def member_values(self, metric: str | None = None) -> np.ndarray:
        """Each member's held-out value of `metric` (its OOB value where there is no held-out part)."""
        key = metric or self.metric
        source = self.member_scores or self.member_oob_scores
        return np.array([s[key] for s in source], dtype=np.float64)

    @property
    def members_mean(self) -> float:
        values = self.member_values()
        return float(values.mean()) if len(values) else float("nan")

    @property
    def members_std(self) -> float:
        """The sample standard deviation of the members' scores (n - 1 in the denominator)."""
        values = self.member_values()
        return float(values.std(ddof=1)) if len(values) > 1 else 0.0

    def save(self, path: str | Path) -> Path:
        """Write the ensemble (safetensors + JSON) and ``result.json``; return the folder."""
        from trainlab.runs import write_json_atomic

        folder = self.ensemble.save(path)
        write_json_atomic(folder / "result.json", self.to_dict())
        return folder

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "method": self.method, "task": self.task, "metric": self.metric,
            "combine": self.ensemble.combine, "members": len(self.ensemble), "weights": self.weights,
            "ensemble_score": self.ensemble_score, "member_scores": self.member_scores,
            "members_mean": self.members_mean, "members_std": self.members_std,
            "oob_score": self.oob_score, "oob_coverage": self.oob_coverage,
            "member_oob_scores": self.member_oob_scores, "rounds": self.rounds, "seconds": self.seconds,
            "stacked": self.stacked, "stop_reason": self.stop_reason,
            "histories": [h.history for h in self.histories],
        }

    def summary(self) -> str:
        """Two sentences: the ensemble against its members, and the out-of-bag estimate."""
        m = self.metric
        parts = []
        if self.ensemble_score is not None:
            parts.append(f"held-out {m}: ensemble {self.ensemble_score[m]:.4g} against the members' "
                         f"{self.members_mean:.4g} ± {self.members_std:.2g} (mean ± std of {len(self.ensemble)})")
        if self.oob_score is not None:
            parts.append(f"out-of-bag {m}: {self.oob_score[m]:.4g} ({self.oob_coverage:.0%} of the training "
                         "rows were out of bag for some member)")
        if self.rounds:
            key = "train_error" if self.task == "classification" else "train_mse"
            first, last = self.rounds[0][key], self.rounds[-1][key]
            parts.append(f"{key.replace('_', ' ')} {first:.4g} after round 1, {last:.4g} after round "
                         f"{len(self.rounds)}")
        return "; ".join(parts) + "."


def bootstrap_rows(num_rows: int, num_members: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each member's bootstrap sample (num_rows draws with replacement) and its out-of-bag rows.

    The draws come from ``numpy.random.default_rng(seed)``, member after member.

    Example:
        >>> drawn, oob = bootstrap_rows(5, 1, seed=0)[0]
        >>> sorted(set(drawn.tolist()) | set(oob.tolist())) == list(range(5))
        True
    """
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(num_members):
        drawn = rng.integers(0, num_rows, size=num_rows)
        out.append((drawn, np.setdiff1d(np.arange(num_rows), drawn)))
    return out


def bagging(model: Any, data: Any, recipe: Any = None, *, members: int = 10, vote: str = "soft",
            validation_split: float | None = 0.2, stratify: bool = False, scaling: Any = "auto",
            stack: str = "auto") -> EnsembleResult:
    """Train `members` copies of `model` on bootstrap samples of the training rows; see the module docstring.

    Args:
        model: a trainlab Sequential (not built), a list of layers, or any nn.Module; copied per member.
        data: a bundled data set's name, a .csv/.npz path, (x, y) or a Dataset.
        recipe: a RecipeSpec or a dict of its fields; member k trains with seed ``recipe.seed + k``
            and the bootstrap draws are seeded by ``recipe.seed``.
        members: how many members (>= 2).
        vote: "soft" (average the class probabilities; for regression, the values) or "hard"
            (majority vote, classification only).
        validation_split: the held-out part the ensemble and its members are scored on (the last
            fraction of the rows, or a stratified random part with `stratify`); None for none.
        stratify: hold out a stratified random part.
        scaling: "auto", "standardize", "minmax" or None: fitted per member on its own sample.
        stack: "auto", "on" or "off" (`trainlab.stacked.fit_members`).

    Raises:
        InputError: fewer than 2 members, an unknown vote, a hard vote for regression.
    """
    check.int_at_least("members", members, 2,
                       "Bagging averages several models trained on different bootstrap samples; with 1 member "
                       "there is nothing to average, and that member has seen only about 63% of the rows. Use "
                       "--members 2 or more (10 is usual), or `trainlab fit` to train one model.")
    check.choice("vote", vote, ("soft", "hard"), "'soft' averages probabilities, 'hard' takes the majority.")
    ready = setup(model, data, recipe, scaling=scaling, stack=stack, tool="bagging")
    if vote == "hard" and ready.task != "classification":
        raise InputError("vote='hard' is a majority vote over classes, but the target is a regression target; "
                         "use vote='soft' (the members' values are averaged).")
    train, test = holdout(ready, validation_split, stratify=stratify)
    seed = ready.recipe.seed
    samples = [(train[drawn], train[oob]) for drawn, oob in bootstrap_rows(len(train), members, seed)]
    stopping = ready.recipe.early_stopping is not None
    configs = []
    for k, (drawn, oob) in enumerate(samples):
        # Early stopping watches the member's own out-of-bag rows; otherwise its history shows the held-out part.
        watch = oob if (stopping or test is None) else test
        configs.append(ready.member(seed=seed + k, train_indices=drawn, val_indices=watch if len(watch) else None))
    start = time.perf_counter()
    histories = ready.fit(configs, engine.TrainData(ready.x, ready.y))
    seconds = time.perf_counter() - start
    built = Ensemble([h.model for h in histories], task=ready.task, combine="average" if vote == "soft" else "vote",
                     method="bagging")
    result = EnsembleResult(method="bagging", ensemble=built, task=ready.task, metric=primary(ready.task),
                            samples=samples, histories=histories, train_rows=train, test_rows=test,
                            seconds=seconds, stacked=bool(histories[0].params.get("stacked")),
                            name=getattr(ready.template, "name", None) or "bagging")
    _score_oob(result, ready.x, ready.y)
    if test is not None:
        index = torch.as_tensor(test, dtype=torch.long)
        each = built.member_outputs(ready.x[index])
        result.member_scores = [scores(ready.task, each[k], ready.y[index]) for k in range(len(built))]
        result.ensemble_score = scores(ready.task, built.combine_outputs(each), ready.y[index])
    return result


def _score_oob(result: EnsembleResult, x: torch.Tensor, y: torch.Tensor) -> None:
    """The out-of-bag estimate and each member's score on its own out-of-bag rows."""
    built = result.ensemble
    rows = np.unique(np.concatenate([oob for _, oob in result.samples]))
    if len(rows) == 0:
        return
    index = torch.as_tensor(rows, dtype=torch.long)
    each = built.member_outputs(x[index])  # (K, R, ...)
    mask = torch.zeros(len(built), len(rows), dtype=torch.bool)
    position = {int(r): i for i, r in enumerate(rows)}
    for k, (_, oob) in enumerate(result.samples):
        mask[k, [position[int(r)] for r in oob]] = True
    result.member_oob_scores = [
        scores(result.task, each[k][mask[k].to(each.device)], y[index][mask[k]]) for k in range(len(built))
        if bool(mask[k].any())]
    weights = torch.tensor(built.weights, dtype=each.dtype, device=each.device).view(-1, 1)
    shares = mask.to(each.device, each.dtype) * weights  # (K, R): members that did not draw the row
    values = each
    if built.combine == "vote":
        values = torch.nn.functional.one_hot(each.argmax(-1), each.shape[-1]).to(each.dtype)
    extra = (1,) * (values.dim() - 2)
    combined = (values * shares.view(*shares.shape, *extra)).sum(0) / shares.sum(0).clamp_min(1e-12).view(-1, *extra)
    # Every row here is out of bag for some member; the rows drawn by all members have no estimate.
    result.oob_coverage = len(rows) / (len(result.train_rows) if result.train_rows is not None else len(rows))
    result.oob_score = scores(result.task, combined, y[index])


def ensemble(model: Any, data: Any, recipe: Any = None, *, method: str = "bagging", members: int = 10,
             vote: str = "soft", learning_rate: float = 1.0, shrinkage: float = 0.1,
             validation_split: float | None = 0.2, stratify: bool = False, scaling: Any = "auto",
             stack: str = "auto") -> EnsembleResult:
    """An ensemble of `members` models by `method`: "bagging", "adaboost" or "gradient".

    Bagging (`bagging`) trains the members together on bootstrap samples; AdaBoost and
    gradient boosting (`trainlab.generalize.boost`) train them one round after another,
    `members` rounds. `vote` applies to bagging, `learning_rate` to AdaBoost and
    `shrinkage` to gradient boosting.
    """
    check.choice("method", method, METHODS,
                 "'bagging' averages members trained on bootstrap samples; 'adaboost' (classes) and "
                 "'gradient' (regression) boost weak members round by round.")
    if method == "bagging":
        return bagging(model, data, recipe, members=members, vote=vote, validation_split=validation_split,
                       stratify=stratify, scaling=scaling, stack=stack)
    from trainlab.generalize.boosting import boost

    return boost(model, data, recipe, method=method, rounds=members, learning_rate=learning_rate,
                 shrinkage=shrinkage, validation_split=validation_split, stratify=stratify, scaling=scaling)
