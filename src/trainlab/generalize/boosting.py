"""Boosting with networks: weak members trained one round after another, each fixing the last ones' errors.

Bagging averages members that were trained independently; boosting trains
them in sequence, and each round looks at what the ensemble so far gets wrong.

AdaBoost (``method="adaboost"``, classification): SAMME (Zhu, Zou, Rosset and
Hastie, 2009), the multi-class AdaBoost that scikit-learn's
``AdaBoostClassifier`` implements. Every training row has a weight w_i, at
first 1/n. Round m trains a member with those weights *in its loss* (the
engine's per-sample weights, Keras's ``sample_weight``: no resampling), takes
its weighted error

    err_m = sum_i w_i [h_m(x_i) != y_i] / sum_i w_i,

gives it the weight

    alpha_m = learning_rate * (log((1 - err_m) / err_m) + log(K - 1))

(K classes; alpha_m > 0 exactly when the member beats chance, err_m < 1 - 1/K),
and multiplies the weight of every row it got wrong by exp(alpha_m), then
normalizes. The ensemble predicts the class with the largest sum of alpha_m
over the members that vote for it. A member no better than chance ends the
boosting (it is not added), as does a member without a weighted error.

Gradient boosting (``method="gradient"``, regression): least-squares boosting
(Friedman, 2001). It starts from F_0 = the mean training target; round m fits
a small network to the residuals r_i = y_i - F_{m-1}(x_i) (the negative
gradient of the squared loss) and adds it with shrinkage nu:
F_m = F_{m-1} + nu * f_m. Small nu (0.1) needs more rounds and generalizes better.

Both record, round by round, the member's weight, its own error and the
ensemble's training and validation error (``rounds``), and give a
`trainlab.generalize.EnsembleResult` whose ensemble saves and reloads like
bagging's. Rounds depend on each other, so they train one after another
(each through `trainlab.stacked.fit_members`, the one engine).

Example:
    >>> samme_weight(0.2, num_classes=3) == math.log(0.8 / 0.2) + math.log(2)
    True
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
from torch import Tensor

from trainlab import check, engine
from trainlab.errors import InputError
from trainlab.generalize._setup import Setup, holdout, outputs, probabilities, scores, setup
from trainlab.generalize.bagging import EnsembleResult
from trainlab.generalize.ensembles import Ensemble

__all__ = ["BOOSTING_METHODS", "boost", "check_method", "samme_error", "samme_weight"]

BOOSTING_METHODS = ("adaboost", "gradient")


def samme_error(wrong: Any, sample_weight: Any) -> float:
    """The weighted error sum_i w_i [wrong_i] / sum_i w_i.

    Example:
        >>> samme_error([True, False, False, False], [0.25, 0.25, 0.25, 0.25])
        0.25
    """
    miss = np.asarray(wrong, dtype=np.float64)
    w = np.asarray(sample_weight, dtype=np.float64)
    return float((w * miss).sum() / w.sum())


def samme_weight(error: float, *, num_classes: int, learning_rate: float = 1.0) -> float:
    """SAMME's member weight: learning_rate * (log((1 - error) / error) + log(K - 1)).

    Positive exactly when the member beats chance (error < 1 - 1/K); for two classes it
    is AdaBoost.M1's log((1 - error) / error).
    """
    return learning_rate * (math.log((1.0 - error) / error) + math.log(num_classes - 1))


def boost(model: Any, data: Any, recipe: Any = None, *, method: str = "adaboost", rounds: int = 10,
          learning_rate: float = 1.0, shrinkage: float = 0.1, validation_split: float | None = 0.2,
          stratify: bool = False, scaling: Any = "auto") -> EnsembleResult:
    """Boost `model` (a weak learner) for `rounds` rounds; see the module docstring.

    Args:
        model: the weak member: a small trainlab Sequential (not built), a list of layers or an nn.Module.
        data: a bundled data set's name, a .csv/.npz path, (x, y) or a Dataset.
        recipe: a RecipeSpec or a dict; round m trains with seed ``recipe.seed + m``.
        method: "adaboost" (classification, SAMME) or "gradient" (regression, squared loss).
        rounds: the most members (>= 1); AdaBoost may stop earlier (see the module docstring).
        learning_rate: AdaBoost's factor on each member's weight.
        shrinkage: gradient boosting's factor nu on each member's prediction, in (0, 1].
        validation_split: the held-out part the validation error is measured on (the last
            fraction of the rows, or a stratified random part with `stratify`); None for none.
        stratify: hold out a stratified random part.
        scaling: "auto", "standardize", "minmax" or None, fitted on the training rows.

    Raises:
        InputError: an unknown method; adaboost on a regression target or gradient on classes;
            a loss that cannot weigh its samples (AdaBoost) or that is not the squared loss
            (gradient boosting); a first member no better than chance.
    """
    check.choice("method", method, BOOSTING_METHODS,
                 "'adaboost' boosts classifiers with sample weights; 'gradient' fits regressors to residuals.")
    check.int_at_least("rounds", rounds, 1, "Each round adds one member; 10 to 100 is usual.")
    check.positive("learning_rate", learning_rate, "AdaBoost's factor on each member's weight; 1.0 is usual.")
    check.in_range("shrinkage", shrinkage, 0.0, 1.0, open_low=True,
                   hint="Gradient boosting's factor on each member's prediction; 0.1 is usual.")
    ready = setup(model, data, recipe, scaling=scaling, stack="off", tool="boosting")
    check_method(method, ready.task, ready.loss)
    train, test = holdout(ready, validation_split, stratify=stratify)
    start = time.perf_counter()
    result = (_adaboost(ready, train, test, rounds, learning_rate) if method == "adaboost"
              else _gradient(ready, train, test, rounds, shrinkage))
    result.seconds = time.perf_counter() - start
    result.train_rows, result.test_rows = train, test
    result.name = getattr(ready.template, "name", None) or method
    return result


# ------------------------------------------------------------------------------------------ checks


def check_method(method: str, task: str, loss: Any) -> None:
    """Refuse a boosting method that does not fit the task, or a loss it cannot use.

    AdaBoost needs classes and a loss that is a mean of per-sample terms (each
    row's term is weighed by its boosting weight); gradient boosting needs a
    regression target and the squared loss (its members fit residuals).
    """
    from trainlab.losses import loss as make_loss

    built = None if loss in (None, "auto") else make_loss(loss, source="recipe.loss")
    name = built.name if built is not None else "auto"
    if method == "adaboost":
        if task != "classification":
            raise InputError("--method adaboost boosts classifiers (SAMME), but the target is a regression "
                             "target. Use --method gradient (gradient boosting on residuals) for regression.")
        if built is not None and not built.sample_mean:
            raise InputError(
                f"recipe.loss '{name}' cannot take sample weights the way AdaBoost needs: AdaBoost weighs each "
                "row's own loss term by its boosting weight, so the loss must be a mean of per-sample terms, and "
                f"'{name}' is not (it is computed from the batch as a whole). Use "
                "'sparse_categorical_crossentropy' (or leave recipe.loss out to pick the cross-entropy that fits "
                "the targets).")
        return
    if task != "regression":
        raise InputError("--method gradient fits regressors to residuals with the squared loss, but the target "
                         "holds classes. Use --method adaboost for classification.")
    if built is not None and name != "mse":
        raise InputError(f"recipe.loss '{name}': gradient boosting here is least-squares boosting, whose "
                         "members fit the residuals y - F(x) with the squared loss. Use loss = 'mse' or leave "
                         "recipe.loss out.")


# ------------------------------------------------------------------------------------------ AdaBoost


def _adaboost(ready: Setup, train: np.ndarray, test: np.ndarray | None, rounds: int,
              learning_rate: float) -> EnsembleResult:
    labels = ready.labels()
    num_classes = int(ready.dataset.num_classes or labels.max() + 1)
    if num_classes < 2:
        raise InputError("AdaBoost needs at least 2 classes in the target; the data has 1.")
    n_all, n = ready.num_rows, len(train)
    w = np.full(n, 1.0 / n)
    train_index = torch.as_tensor(train, dtype=torch.long)
    test_index = torch.as_tensor(test, dtype=torch.long) if test is not None else None
    votes_train = torch.zeros(n, num_classes, dtype=torch.float64)
    votes_test = torch.zeros(len(test) if test is not None else 0, num_classes, dtype=torch.float64)
    members, alphas, histories, log = [], [], [], []
    stop_reason = None
    seed = ready.recipe.seed
    for m in range(rounds):
        # Weights with mean 1 over the training rows keep the loss, and so the step size, on the usual scale.
        weights = torch.zeros(n_all)
        weights[train_index] = torch.as_tensor(w * n, dtype=torch.float32)
        config = ready.member(seed=seed + m, train_indices=train, sample_weight=weights,
                              val_indices=test if test is not None else None)
        history = ready.fit([config], engine.TrainData(ready.x, ready.y))[0]
        member = history.model
        predicted = _classes(member, ready.x[train_index])
        wrong = predicted != labels[train]
        error = samme_error(wrong, w)
        if error >= 1.0 - 1.0 / num_classes:
            if m == 0:
                raise InputError(
                    f"the first AdaBoost member is no better than chance on the training rows (weighted error "
                    f"{error:.3f} >= 1 - 1/K = {1 - 1 / num_classes:.3f}), so boosting cannot start. Train it "
                    "longer (recipe.num_epochs), raise its lr or give it more units.")
            stop_reason = (f"round {m + 1}: the member is no better than chance on the weighted rows (error "
                           f"{error:.3f} >= {1 - 1 / num_classes:.3f}); it was not added")
            break
        alpha = samme_weight(error, num_classes=num_classes, learning_rate=learning_rate) if error > 0 else 1.0
        members.append(member)
        alphas.append(alpha)
        histories.append(history)
        votes_train += alpha * torch.nn.functional.one_hot(torch.as_tensor(predicted), num_classes).double()
        entry: dict[str, Any] = {"round": m + 1, "weight": alpha, "member_error": error,
                                 "train_error": _vote_error(votes_train, labels[train])}
        if test_index is not None and test is not None:
            votes_test += alpha * torch.nn.functional.one_hot(
                torch.as_tensor(_classes(member, ready.x[test_index])), num_classes).double()
            entry["val_error"] = _vote_error(votes_test, labels[test])
        log.append(entry)
        if error <= 0:
            stop_reason = f"round {m + 1}: the member fits every weighted training row; nothing is left to boost"
            break
        w = w * np.exp(alpha * wrong)  # only the rows it got wrong gain weight
        w = w / w.sum()
    built = Ensemble(members, task="classification", combine="adaboost", weights=alphas, method="adaboost")
    result = EnsembleResult(method="adaboost", ensemble=built, task="classification", metric="accuracy",
                            rounds=log, histories=histories, stop_reason=stop_reason)
    if test_index is not None:
        _score_held_out(result, ready, test_index)
    return result


def _classes(member: Any, x: Tensor) -> np.ndarray:
    return np.asarray(probabilities(member, outputs(member, x)).argmax(-1).cpu().numpy(), dtype=np.int64)


def _vote_error(votes: Tensor, labels: np.ndarray) -> float:
    return float((votes.argmax(-1).numpy() != labels).mean())


# ------------------------------------------------------------------------------------------ gradient


def _gradient(ready: Setup, train: np.ndarray, test: np.ndarray | None, rounds: int,
              shrinkage: float) -> EnsembleResult:
    y = ready.y.to(torch.float32)
    train_index = torch.as_tensor(train, dtype=torch.long)
    init = y[train_index].mean(0)  # F_0: the constant that minimizes the squared loss
    current = init.expand_as(y).clone()  # F_{m-1} on every row
    members, histories, log, residuals = [], [], [], []
    seed = ready.recipe.seed
    for m in range(rounds):
        target = y - current  # the residuals: the negative gradient of (1/2)(y - F)^2
        residuals.append(target[train_index].clone())
        config = ready.member(seed=seed + m, train_indices=train, val_indices=test if test is not None else None)
        history = ready.fit([config], engine.TrainData(ready.x, target), loss="mse")[0]
        member = history.model
        fitted = outputs(member, ready.x).to(torch.float32).cpu().reshape(y.shape)
        current = current + shrinkage * fitted
        members.append(member)
        histories.append(history)
        entry: dict[str, Any] = {"round": m + 1, "weight": shrinkage,
                                 "member_mse": float(((target - fitted)[train_index] ** 2).mean()),
                                 "train_mse": float(((y - current)[train_index] ** 2).mean())}
        if test is not None:
            test_index = torch.as_tensor(test, dtype=torch.long)
            entry["val_mse"] = float(((y - current)[test_index] ** 2).mean())
        log.append(entry)
    built = Ensemble(members, task="regression", combine="gradient", weights=[shrinkage] * len(members),
                     init=init.reshape(-1).tolist(), method="gradient")
    result = EnsembleResult(method="gradient", ensemble=built, task="regression", metric="mse", rounds=log,
                            histories=histories, residuals=residuals)
    if test is not None:
        _score_held_out(result, ready, torch.as_tensor(test, dtype=torch.long))
    return result


def _score_held_out(result: EnsembleResult, ready: Setup, index: Tensor) -> None:
    """The ensemble and each member alone on the held-out rows."""
    built = result.ensemble
    each = built.member_outputs(ready.x[index])
    y = ready.y[index]
    if built.combine == "gradient":
        # A gradient member alone predicts a residual; on its own it is F_0 + its fit.
        init = torch.tensor(built.init or [0.0], dtype=each.dtype, device=each.device)
        alone = [each[k] + (init.view(-1) if each[k].dim() > 1 else init.reshape(())) for k in range(len(built))]
        result.member_scores = [scores(ready.task, a, y) for a in alone]
    else:
        result.member_scores = [scores(ready.task, each[k], y) for k in range(len(built))]
    result.ensemble_score = scores(ready.task, built.combine_outputs(each), y)
