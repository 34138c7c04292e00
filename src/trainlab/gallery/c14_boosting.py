"""Gallery entry C14: boosting and bias.

Calls `trainlab.generalize.boost(model, dataset, recipe, method="adaboost",
rounds=R, validation_split=0.2, stratify=True)` once per seed and reads its
``rounds`` records (``train_error``, ``val_error`` after each round). The entry
trains no study of its own (``train=False``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trainlab.gallery import pictures
from trainlab.gallery.entry import Entry, EntryContext, Measured, register
from trainlab.gallery.verdicts import Table, Verdict, combine, expect_better

ROUNDS = 10
QUICK_ROUNDS = 3


def measure_c14(context: EntryContext) -> Measured:
    from trainlab.api import dataset_from_spec
    from trainlab.generalize import boost
    from trainlab.models import Sequential

    spec = context.study.base
    dataset = dataset_from_spec(spec.data)
    rounds = QUICK_ROUNDS if context.quick else ROUNDS
    table: dict[str, list[float]] = {k: [] for k in ("first member: training error", "boosted: training error",
                                                     "first member: held-out error", "boosted: held-out error")}
    curves = []
    for planned in context.planned(context.case_labels[0]):
        result = boost(Sequential(spec.model.layers, name=spec.name), dataset, planned.spec.recipe,
                       method="adaboost", rounds=rounds, validation_split=spec.data.validation_split, stratify=True)
        first, last = result.rounds[0], result.rounds[-1]
        table["first member: training error"].append(float(first["train_error"]))
        table["boosted: training error"].append(float(last["train_error"]))
        table["first member: held-out error"].append(float(first.get("val_error", np.nan)))
        table["boosted: held-out error"].append(float(last.get("val_error", np.nan)))
        curves.append([float(r["train_error"]) for r in result.rounds])
    return Measured(table, {"curves": curves})


def verdict_c14(table: Table) -> Verdict:
    return combine([
        expect_better(table, "boosted: training error", "first member: training error", higher=False, points=True,
                      what="error on the training rows",
                      statement="boosting lowers the weak learner's error on its own training rows (its bias)"),
        expect_better(table, "boosted: held-out error", "first member: held-out error", higher=False, points=True,
                      context=True, what="held-out error", statement="boosting also lowers the held-out error"),
    ])


def picture_c14(context: EntryContext, measured: Measured) -> Any:
    fig, axes = pictures.figure(1, width=6.0)
    ax = axes[0][0]
    for i, curve in enumerate(measured.extra["curves"]):
        ax.plot(range(1, len(curve) + 1), [100 * v for v in curve], marker="o", color="C0", alpha=0.6,
                label="training error, one line per seed" if i == 0 else None)
    ax.set_xlabel("boosting round")
    ax.set_ylabel("training error of the ensemble, %")
    ax.set_title("AdaBoost: the ensemble's training error by round", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


register(Entry(
    id="C14", title="boosting and bias",
    claim="Boosting (weak learners in sequence) lowers bias.",
    data="Bundled breast_cancer: a 2-unit network trained for 3 epochs underfits it, so there is bias to remove, "
         "and the binary task suits SAMME's weighted votes.",
    literature="the base learner is weak and underfits (Freund and Schapire 1997; Friedman 2001); boosting "
               "strong learners mostly adds variance",
    conditions=f"weak learner: 2-unit ReLU network, SGD lr 0.05, {{epochs}} epochs; AdaBoost (SAMME) for {ROUNDS} "
               "rounds, stratified 20% held out, {seeds} seeds",
    measure=measure_c14, verdict=verdict_c14, picture=picture_c14,
    quick={"study.seeds": 2}, train=False,
    requires="trainlab.generalize.boosting",
))
