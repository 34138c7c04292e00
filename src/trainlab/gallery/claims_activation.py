"""Gallery entries C18 (tanh vs sigmoid) and C19 (batch, mini-batch and stochastic gradient descent)."""

from __future__ import annotations

from typing import Any

from trainlab.gallery import pictures
from trainlab.gallery.entry import Entry, EntryContext, Measured, register
from trainlab.gallery.verdicts import Table, Verdict, combine, expect_better

# --------------------------------------------------------------------------- C18


def measure_c18(context: EntryContext) -> Measured:
    table: dict[str, list[float]] = {}
    for label in context.case_labels:
        table[f"{label}: val_accuracy"] = context.values(label, "val_accuracy")
        table[f"{label}: loss"] = context.values(label, "loss")
    return Measured(table)


def verdict_c18(table: Table) -> Verdict:
    return combine([
        expect_better(table, "sgd, tanh: loss", "sgd, sigmoid: loss", higher=False, what="final training loss",
                      statement="with SGD, tanh hidden layers train faster than sigmoid ones"),
        expect_better(table, "sgd, tanh: val_accuracy", "sgd, sigmoid: val_accuracy", points=True,
                      what="final val_accuracy", statement="with SGD, tanh ends more accurate than sigmoid"),
        expect_better(table, "adam, tanh: val_accuracy", "adam, sigmoid: val_accuracy", points=True,
                      what="final val_accuracy", context=True,
                      statement="with Adam, tanh ends more accurate than sigmoid (second condition)"),
    ])


def picture_c18(context: EntryContext, measured: Measured) -> Any:
    fig, axes = pictures.figure(2, width=5.5)
    pictures.curves(context, context.case_labels, "loss", title="training loss (log scale)", log=True,
                    ax=axes[0][0])
    pictures.curves(context, context.case_labels, "val_accuracy", title="validation accuracy", ax=axes[0][1])
    fig.tight_layout()
    return fig


register(Entry(
    id="C18", title="tanh vs sigmoid",
    claim="tanh (zero-centred) trains better than sigmoid in hidden layers.",
    data="Bundled digits with three hidden layers: enough depth for the non-zero mean of sigmoid outputs to "
         "bias the next layer's updates, small enough for 20 epochs x 20 runs in seconds.",
    literature="training uses plain SGD on a network without normalization (LeCun et al. 1998; Glorot and "
               "Bengio 2010 saw sigmoid saturate its top layer); adaptive optimizers and batch norm shrink "
               "the difference",
    conditions="3 hidden layers of 64 units, Glorot uniform init, digits, {epochs} epochs, {seeds} seeds; SGD "
               "lr 0.1 (and Adam lr 1e-3 as a second condition)",
    measure=measure_c18, verdict=verdict_c18, picture=picture_c18,
    quick={"study.seeds": 2, "recipe.num_epochs": 3},
))


# --------------------------------------------------------------------------- C19

C19_SIZES = ("1", "32", "1437")


def measure_c19(context: EntryContext) -> Measured:
    table: dict[str, list[float]] = {}
    for size in C19_SIZES:
        label = f"batch_size={size}"
        table[f"{label}: val_loss"] = context.values(label, "val_loss")
        table[f"{label}: seconds per epoch"] = [run.seconds / max(len(run.history.get("loss", [])), 1)
                                                for run in context.runs(label)]
    return Measured(table)


def verdict_c19(table: Table) -> Verdict:
    return combine([
        expect_better(table, "batch_size=32: val_loss", "batch_size=1437: val_loss", higher=False,
                      what="final val_loss after the same epochs",
                      statement="mini-batches (32) get further per epoch than the whole batch (1437)"),
        expect_better(table, "batch_size=32: seconds per epoch", "batch_size=1: seconds per epoch", higher=False,
                      what="seconds per epoch", unit="s",
                      statement="mini-batches (32) take less time per epoch than single examples (1)"),
        expect_better(table, "batch_size=32: val_loss", "batch_size=1: val_loss", higher=False, context=True,
                      what="final val_loss after the same epochs",
                      statement="mini-batches end as well as single examples per epoch (second condition)"),
    ])


def picture_c19(context: EntryContext, measured: Measured) -> Any:
    fig, axes = pictures.figure(2, width=5.5)
    labels = [f"batch_size={size}" for size in C19_SIZES]
    pictures.curves(context, labels, "val_loss", title="validation loss by batch size (per epoch)", log=True,
                    ax=axes[0][0])
    pictures.bars({label: measured.table[f"{label}: seconds per epoch"] for label in labels},
                  title="seconds per epoch (runs of a batch size trained stacked, time split evenly)",
                  ylabel="s", log=True, ax=axes[0][1])
    fig.tight_layout()
    return fig


register(Entry(
    id="C19", title="batch, mini-batch, stochastic",
    claim="Batch, mini-batch and stochastic gradient descent trade noise for speed: mini-batch is the "
          "practical middle.",
    data="Bundled digits: 1437 training images make one full-batch step and 1437 single-example steps per "
         "epoch both affordable on a CPU.",
    literature="the per-step cost is dominated by fixed overhead or parallel hardware (Bottou et al. 2018, "
               "'Optimization methods for large-scale machine learning'); per epoch, small batches make more "
               "progress but each step costs about as much as a larger one",
    conditions="64-unit ReLU network, plain SGD lr 0.05, digits, {epochs} epochs, {seeds} seeds; the same lr at "
               "every batch size (no scaling rule)",
    measure=measure_c19, verdict=verdict_c19, picture=picture_c19,
    quick={"study.seeds": 2, "recipe.num_epochs": 1},
))
