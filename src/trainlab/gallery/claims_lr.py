"""Gallery entries on the learning rate: C1 (too low, too high), C2 (decay), C3 (warmup)."""

from __future__ import annotations

from typing import Any

from trainlab.gallery import pictures
from trainlab.gallery.entry import Entry, EntryContext, Measured, register
from trainlab.gallery.verdicts import Table, Verdict, combine, expect_better

LRS = ("0.0001", "0.001", "0.01", "0.1", "1", "10")


# --------------------------------------------------------------------------- C1


def measure_c1(context: EntryContext) -> Measured:
    table = {f"lr={lr}": context.values(f"lr={lr}", "loss") for lr in LRS}
    return Measured(table)


def verdict_c1(table: Table) -> Verdict:
    return combine([
        expect_better(table, "lr=0.1", "lr=0.0001", higher=False, what="final training loss",
                      statement="too low a rate (1e-4) ends far above a usual one (0.1)"),
        expect_better(table, "lr=0.1", "lr=10", higher=False, what="final training loss",
                      statement="too high a rate (10) diverges or ends above a usual one (0.1)"),
    ])


def picture_c1(context: EntryContext, measured: Measured) -> Any:
    fig, axes = pictures.figure(2, width=5.5)
    labels = [f"lr={lr}" for lr in LRS]
    pictures.curves(context, labels, "loss", title="training loss by learning rate (mean, min-max band)",
                    log=True, ax=axes[0][0])
    pictures.curves(context, labels, "val_accuracy", title="validation accuracy by learning rate",
                    ax=axes[0][1])
    fig.tight_layout()
    return fig


register(Entry(
    id="C1", title="learning rate too low or too high",
    claim="Too low a learning rate makes no progress in the given steps; too high a rate diverges or "
          "never finds the minimum.",
    data="Bundled digits (1437 training images as 64 features): small enough that six rates x five seeds "
         "train in seconds, and plain SGD on it shows both failure modes within 20 epochs.",
    literature="the step budget is fixed (Bengio 2012, 'Practical recommendations'; Goodfellow et al. 2016, "
               "8.3): a rate too low converges too, given many more steps",
    conditions="plain SGD, 64-unit ReLU network, digits, {epochs} epochs, {seeds} seeds per rate; final "
               "training loss",
    measure=measure_c1, verdict=verdict_c1, picture=picture_c1,
    quick={"study.seeds": 2, "recipe.num_epochs": 3},
))


# --------------------------------------------------------------------------- C2


def measure_c2(context: EntryContext) -> Measured:
    return Measured({name: context.values(name, "val_accuracy") for name in ("constant", "step", "cosine",
                                                                             "linear")})


def verdict_c2(table: Table) -> Verdict:
    return combine([
        expect_better(table, "step", "constant", what="final val_accuracy", points=True,
                      statement="step decay ends better than a constant rate"),
        expect_better(table, "cosine", "constant", what="final val_accuracy", points=True,
                      statement="cosine decay ends better than a constant rate"),
        expect_better(table, "cosine", "linear", what="final val_accuracy", points=True,
                      statement="cosine decay ends better than linear decay"),
    ])


def picture_c2(context: EntryContext, measured: Measured) -> Any:
    fig, axes = pictures.figure(2, width=5.5)
    labels = ["constant", "step", "cosine", "linear"]
    pictures.curves(context, labels, "val_accuracy", title="validation accuracy by schedule", ax=axes[0][0])
    pictures.curves(context, labels, "lr", title="learning rate by schedule (end of epoch)", ax=axes[0][1])
    fig.tight_layout()
    return fig


register(Entry(
    id="C2", title="learning-rate decay",
    claim="Decaying the learning rate (step, cosine) ends better than keeping it constant; cosine decay is "
          "said to beat linear decay.",
    data="MNIST-1D (4000 training signals): an MLP does not saturate it, so the final accuracy still moves "
         "with the schedule, unlike digits where every schedule ends near 97%.",
    literature="training runs long enough for the noise of a constant rate to dominate the final loss "
               "(Loshchilov and Hutter 2017 for cosine vs step on CIFAR); cosine vs linear is usually within "
               "noise (Defazio et al. 2023 find linear decay as good or better)",
    conditions="SGD momentum 0.9 at lr 0.05, 2 x 128 ReLU network, MNIST-1D, {epochs} epochs, {seeds} seeds; "
               "final validation accuracy, equivalence margin 1 point",
    measure=measure_c2, verdict=verdict_c2, picture=picture_c2,
    quick={"study.seeds": 2, "recipe.num_epochs": 3, "data.options": {"num_samples": 1000}},
))


# --------------------------------------------------------------------------- C3


def measure_c3(context: EntryContext) -> Measured:
    return Measured({name: context.values(name, "val_accuracy") for name in context.case_labels})


def verdict_c3(table: Table) -> Verdict:
    return combine([
        expect_better(table, "lr 0.5, warmup", "lr 0.5, no warmup", what="final val_accuracy", points=True,
                      statement="at a high rate, a warmup ends better than no warmup"),
        expect_better(table, "lr 0.05, warmup", "lr 0.05, no warmup", what="final val_accuracy", points=True,
                      context=True,
                      statement="at a usual rate, a warmup changes little (second condition)"),
    ])


def picture_c3(context: EntryContext, measured: Measured) -> Any:
    fig, axes = pictures.figure(2, width=5.5)
    pictures.curves(context, context.case_labels, "loss", title="training loss", log=True, ax=axes[0][0])
    pictures.curves(context, context.case_labels, "val_accuracy", title="validation accuracy", ax=axes[0][1])
    fig.tight_layout()
    return fig


register(Entry(
    id="C3", title="warmup",
    claim="A warmup lets training start with a learning rate that would otherwise fail.",
    data="Bundled digits with a 4-layer ReLU network: deep enough that a high momentum-SGD rate blows up in "
         "the first steps, small enough to train 24 runs in seconds.",
    literature="the early steps are unstable: large batches (Goyal et al. 2017), Adam on transformers "
               "(Liu et al. 2020), very deep nets without normalization",
    conditions="SGD momentum 0.9, 4 x 64 ReLU network (He init), digits, {epochs} epochs, {seeds} seeds; "
               "2-epoch linear warmup from 0; final validation accuracy (a diverged run counts as worst)",
    measure=measure_c3, verdict=verdict_c3, picture=picture_c3,
    quick={"study.seeds": 2, "recipe.num_epochs": 3},
))
