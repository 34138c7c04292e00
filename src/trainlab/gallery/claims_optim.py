"""Gallery entries on optimizers: C9 (momentum, Nesterov, Adam's tolerance of the rate), C10 (Adagrad,
Adadelta, RMSprop)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from trainlab.gallery import pictures
from trainlab.gallery.entry import Entry, EntryContext, Measured, register
from trainlab.gallery.verdicts import Table, Verdict, combine, expect_better

# --------------------------------------------------------------------------- C9

C9_OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam")
C9_LRS = ("0.0001", "0.001", "0.01", "0.1", "1")
#: A rate is "good" for an optimizer when it ends within this of the optimizer's best rate (per seed).
GOOD_WITHIN = 0.02


def _label(optimizer: str, lr: str) -> str:
    return f"optimizer={optimizer}, lr={lr}"


def measure_c9(context: EntryContext) -> Measured:
    table: dict[str, list[float]] = {}
    accuracy: dict[str, list[list[float]]] = {}
    for optimizer in C9_OPTIMIZERS:
        table[f"{optimizer}: loss at lr 0.01"] = context.values(_label(optimizer, "0.01"), "loss")
        # seeds x rates; a diverged run counts as 0 accuracy.
        rows = np.asarray([context.values(_label(optimizer, lr), "val_accuracy") for lr in C9_LRS]).T
        rows = np.where(np.isfinite(rows), rows, 0.0)
        accuracy[optimizer] = rows.tolist()
        table[f"{optimizer}: good rates"] = [float((row >= row.max() - GOOD_WITHIN).sum()) for row in rows]
    return Measured(table, {"accuracy": accuracy})


def verdict_c9(table: Table) -> Verdict:
    loss = "training loss after the last epoch at lr 0.01"
    return combine([
        expect_better(table, "momentum: loss at lr 0.01", "sgd: loss at lr 0.01", higher=False, what=loss,
                      statement="momentum goes faster than plain SGD"),
        expect_better(table, "nesterov: loss at lr 0.01", "momentum: loss at lr 0.01", higher=False, what=loss,
                      statement="Nesterov converges faster than momentum"),
        expect_better(table, "adam: good rates", "momentum: good rates", unit="rates of 5",
                      what=f"rates ending within {100 * GOOD_WITHIN:g} points of the optimizer's best",
                      statement="Adam is less sensitive to the learning rate than SGD + momentum"),
    ])


def picture_c9(context: EntryContext, measured: Measured) -> Any:
    fig, axes = pictures.figure(1, width=7.0)
    ax = axes[0][0]
    rates = [float(lr) for lr in C9_LRS]
    for i, optimizer in enumerate(C9_OPTIMIZERS):
        rows = np.asarray(measured.extra["accuracy"][optimizer])
        means = 100 * rows.mean(axis=0)
        ax.plot(rates, means, marker="o", color=f"C{i}", label=optimizer)
        good = means >= means.max() - 100 * GOOD_WITHIN
        ax.scatter(np.asarray(rates)[good], means[good], s=160, facecolors="none", edgecolors=f"C{i}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("final validation accuracy, % (mean over seeds)")
    ax.set_title(f"the good-rate region per optimizer (circled: within {100 * GOOD_WITHIN:g} points of its best)",
                 fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


register(Entry(
    id="C9", title="momentum, Nesterov, Adam",
    claim="Momentum goes faster than plain SGD; Nesterov converges faster than momentum; SGD + momentum is "
          "sensitive to the learning rate, and Adam much less.",
    data="Bundled digits: 20 optimizer x rate settings x 5 seeds is 100 runs, which digits trains stacked in "
         "about a minute; differences of speed show in 10 epochs.",
    literature="the problem is ill-conditioned and the rate is small (Sutskever et al. 2013 for momentum and "
               "Nesterov on deep autoencoders); Nesterov's edge is a worst-case guarantee for convex "
               "problems with full gradients, often invisible with noisy mini-batches",
    conditions="64-unit ReLU network, digits, {epochs} epochs, batch 32, {seeds} seeds; momentum 0.9; rates "
               "1e-4 to 1",
    measure=measure_c9, verdict=verdict_c9, picture=picture_c9,
    quick={"study.seeds": 2, "recipe.num_epochs": 2},
))


# --------------------------------------------------------------------------- C10


def _second_half_share(series: list[float]) -> float:
    """Of the training loss's total drop, the share made in the second half of the epochs."""
    if len(series) < 2 or not all(math.isfinite(v) for v in series):
        return math.nan
    middle = len(series) // 2
    total = series[0] - series[-1]
    return (series[middle] - series[-1]) / total if total > 0 else math.nan


def measure_c10(context: EntryContext) -> Measured:
    table: dict[str, list[float]] = {}
    for label in context.case_labels:
        table[f"{label}: loss"] = context.values(label, "loss")
        table[f"{label}: val_accuracy"] = context.values(label, "val_accuracy")
        table[f"{label}: late share"] = [_second_half_share(run.history.get("loss", []))
                                         for run in context.runs(label)]
    return Measured(table)


def verdict_c10(table: Table) -> Verdict:
    return combine([
        expect_better(table, "rmsprop: loss", "adagrad: loss", higher=False, what="final training loss",
                      statement="RMSprop keeps learning where Adagrad stalls"),
        expect_better(table, "adadelta: loss", "adagrad: loss", higher=False, what="final training loss",
                      statement="Adadelta (lr 1, its paper's rule) keeps learning where Adagrad stalls"),
        expect_better(table, "rmsprop: late share", "adagrad: late share", points=True,
                      what="share of the loss drop made in the second half of training", context=True,
                      statement="Adagrad makes less of its progress late (its steps shrink)"),
        expect_better(table, "adadelta: val_accuracy", "adadelta, lr 0.1: val_accuracy", points=True,
                      what="final val_accuracy", context=True,
                      statement="Adadelta still depends on the rate torch gives it: lr 1 vs lr 0.1"),
    ])


def picture_c10(context: EntryContext, measured: Measured) -> Any:
    fig, axes = pictures.figure(2, width=5.5)
    pictures.curves(context, context.case_labels, "loss", title="training loss (log scale)", log=True,
                    ax=axes[0][0])
    pictures.bars({label: [100 * v for v in measured.table[f"{label}: val_accuracy"]]
                   for label in context.case_labels}, title="final validation accuracy", ylabel="%",
                  ax=axes[0][1])
    fig.tight_layout()
    return fig


register(Entry(
    id="C10", title="Adagrad, Adadelta, RMSprop",
    claim="Adagrad's accumulated squares shrink its steps until learning stalls; Adadelta and RMSprop fix it; "
          "Adadelta needs no learning rate.",
    data="MNIST-1D: an MLP keeps improving on it for many epochs, so a stall shows as a plateau where the "
         "others still descend; on digits every optimizer reaches ~100% training accuracy first.",
    literature="training is long, so the sum of squared gradients grows large (Zeiler 2012; Hinton's "
               "RMSprop lecture); Adadelta's unit correction removes the rate only in its paper's form "
               "(torch and Keras still multiply by lr)",
    conditions="2 x 128 ReLU network, MNIST-1D, batch 64, {epochs} epochs, {seeds} seeds; Adagrad lr 0.01, "
               "RMSprop lr 1e-3, Adadelta lr 1 (and 0.1, 10)",
    measure=measure_c10, verdict=verdict_c10, picture=picture_c10,
    quick={"study.seeds": 2, "recipe.num_epochs": 3, "data.options": {"num_samples": 1000}},
))
