"""Gallery entry C12: k-fold cross-validation against a single hold-out split.

Calls `trainlab.generalize.compare_with_holdout(model, dataset, recipe, folds=5,
seeds=N, validation_split=0.2)` once (its ``holdout`` and ``cv`` lists: one
estimate per seed). The entry trains no study of its own (``train=False``).
"""

from __future__ import annotations

from typing import Any

from trainlab.gallery import pictures
from trainlab.gallery.entry import Entry, EntryContext, Measured, register
from trainlab.gallery.verdicts import Table, Verdict, combine, expect_less_spread

FOLDS = 5


def measure_c12(context: EntryContext) -> Measured:
    from trainlab.api import dataset_from_spec
    from trainlab.generalize import compare_with_holdout
    from trainlab.models import Sequential

    spec = context.study.base
    spread = compare_with_holdout(Sequential(spec.model.layers, name=spec.name), dataset_from_spec(spec.data),
                                  spec.recipe, folds=FOLDS, seeds=context.seeds(),
                                  validation_split=spec.data.validation_split)
    return Measured({"hold-out": [float(v) for v in spread.holdout], "5-fold CV": [float(v) for v in spread.cv]})


def verdict_c12(table: Table) -> Verdict:
    return combine([
        expect_less_spread(table, "5-fold CV", "hold-out", points=True, what="estimated accuracy",
                           statement="the k-fold estimate moves less from seed to seed than the hold-out estimate"),
    ])


def picture_c12(context: EntryContext, measured: Measured) -> Any:
    fig, axes = pictures.figure(1, width=6.0)
    ax = axes[0][0]
    for i, values in enumerate(measured.table.values()):
        ax.scatter([i] * len(values), [100 * v for v in values], s=24, color=f"C{i}")
        ax.boxplot([100 * v for v in values], positions=[i], widths=0.4, showfliers=False)
    ax.set_xticks(range(len(measured.table)), list(measured.table))
    ax.set_ylabel("estimated accuracy, % (one dot per seed)")
    ax.set_title("estimate spread: single hold-out against 5-fold CV", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    return fig


register(Entry(
    id="C12", title="k-fold CV against a hold-out",
    claim="k-fold cross-validation estimates generalization more reliably than a single hold-out split.",
    data="Bundled breast_cancer (569 rows): small enough that one 20% hold-out (114 rows) moves with the split, "
         "which is where the choice matters.",
    literature="the data set is small (Kohavi 1995); with large data one hold-out is as good and cheaper",
    conditions="16-unit ReLU network, Adam lr 1e-3, {epochs} epochs, breast_cancer standardized per training "
               "part, stratified 80/20 hold-out vs stratified 5-fold CV, {seeds} seeds",
    measure=measure_c12, verdict=verdict_c12, picture=picture_c12,
    quick={"study.seeds": 3, "recipe.num_epochs": 3}, train=False,
    requires="trainlab.generalize.cv",
))
