"""Gallery entry C13: bagging and variance.

Calls `trainlab.generalize.bagging(model, dataset, recipe, members=M,
validation_split=0.2)` once per seed, and reads from each result its
``test_rows`` and ``ensemble`` (``member_outputs`` on raw inputs and
``combine_outputs``). The entry trains no study of its own (``train=False``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trainlab.gallery import pictures
from trainlab.gallery.entry import Entry, EntryContext, Measured, register
from trainlab.gallery.verdicts import Table, Verdict, combine, expect_better

MEMBERS = 8
QUICK_MEMBERS = 3


def _off_main(predictions: np.ndarray, groups: np.ndarray) -> list[float]:
    """Per group, how often its models' labels differ from the main (majority) label of the models of the
    *other* groups, averaged over the held-out rows and the group's models (Domingos's variance)."""
    values = []
    classes = int(predictions.max()) + 1
    for group in np.unique(groups):
        others = predictions[groups != group]
        counts = np.stack([(others == c).sum(axis=0) for c in range(classes)])
        main = counts.argmax(axis=0)
        values.append(float((predictions[groups == group] != main).mean()))
    return values


def measure_c13(context: EntryContext) -> Measured:
    import torch

    from trainlab.api import dataset_from_spec
    from trainlab.generalize import bagging
    from trainlab.models import Sequential

    spec = context.study.base
    dataset = dataset_from_spec(spec.data)
    members = QUICK_MEMBERS if context.quick else MEMBERS
    singles, ensembles, accuracy_single, accuracy_bag = [], [], [], []
    for planned in context.planned(context.case_labels[0]):
        result = bagging(Sequential(spec.model.layers, name=spec.name), dataset, planned.spec.recipe,
                         members=members, validation_split=spec.data.validation_split)
        rows = torch.as_tensor(np.asarray(result.test_rows))
        x, y = dataset.x[rows], dataset.y[rows].numpy()
        with torch.no_grad():
            outputs = result.ensemble.member_outputs(x)
            combined = result.ensemble.combine_outputs(outputs)
        singles.append(outputs.argmax(-1).numpy())
        ensembles.append(combined.argmax(-1).numpy())
        accuracy_single.append(float((singles[-1] == y).mean()))
        accuracy_bag.append(float((ensembles[-1] == y).mean()))
    member_predictions = np.concatenate(singles)
    member_groups = np.repeat(np.arange(len(singles)), [len(s) for s in singles])
    single_variance = _off_main(member_predictions, member_groups)
    bag_variance = _off_main(np.stack(ensembles), np.arange(len(ensembles)))
    return Measured({"single network: variance": single_variance, "bagged ensemble: variance": bag_variance,
                     "single network: accuracy": accuracy_single, "bagged ensemble: accuracy": accuracy_bag})


def verdict_c13(table: Table) -> Verdict:
    return combine([
        expect_better(table, "bagged ensemble: variance", "single network: variance", higher=False, points=True,
                      what="share of held-out predictions off the main prediction of other seeds",
                      statement="a bagged ensemble's predictions vary less across training samples than a single "
                                "network's"),
        expect_better(table, "bagged ensemble: accuracy", "single network: accuracy", points=True, context=True,
                      what="held-out accuracy", statement="the bagged ensemble is also more accurate"),
    ])


def picture_c13(context: EntryContext, measured: Measured) -> Any:
    fig, axes = pictures.figure(2, width=5.0)
    pictures.bars({"single network": [100 * v for v in measured.table["single network: variance"]],
                   "bagged ensemble": [100 * v for v in measured.table["bagged ensemble: variance"]]},
                  title="variance: predictions off the main prediction", ylabel="% of held-out rows",
                  ax=axes[0][0])
    pictures.bars({"single network": [100 * v for v in measured.table["single network: accuracy"]],
                   "bagged ensemble": [100 * v for v in measured.table["bagged ensemble: accuracy"]]},
                  title="held-out accuracy", ylabel="%", ax=axes[0][1])
    fig.tight_layout()
    return fig


register(Entry(
    id="C13", title="bagging and variance",
    claim="Bagging (bootstrap + averaging) lowers variance.",
    data="Bundled digits: a small network trained on a bootstrap sample of 1437 images changes its mind on "
         "many held-out images from sample to sample, so there is variance to remove, and eight-member "
         "ensembles train stacked in seconds.",
    literature="the base model is unstable, its predictions changing with the sample (Breiman 1996); for a "
               "stable model bagging changes little",
    conditions=f"32-unit ReLU network, Adam lr 1e-3, {{epochs}} epochs, digits (last 20% held out), {MEMBERS} "
               "members per ensemble, soft vote, {seeds} seeds",
    measure=measure_c13, verdict=verdict_c13, picture=picture_c13,
    quick={"study.seeds": 2, "recipe.num_epochs": 2}, train=False,
    requires="trainlab.generalize.bagging",
))
