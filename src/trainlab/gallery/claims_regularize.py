"""Gallery entries on regularization and normalization: C7 (the train/validation gap), C8 (batch norm)."""

from __future__ import annotations

import math
from typing import Any

import torch

from trainlab.gallery import pictures
from trainlab.gallery.entry import Entry, EntryContext, Measured, mean, register
from trainlab.gallery.probes import activation_statistics, probabilities
from trainlab.gallery.verdicts import Table, Verdict, combine, expect_better, expect_larger_gain

# --------------------------------------------------------------------------- C7

C7_CASES = ("none", "L2", "L1", "dropout", "early stopping", "activity L1")
#: A first-layer weight below this in magnitude counts as zero (the L1 sparsity measure).
NEAR_ZERO = 1e-3


def _cross_entropy(model: Any, x: torch.Tensor, y: torch.Tensor) -> float:
    p = probabilities(model, x).clamp_min(1e-12)
    return float(-p.gather(1, y.long().view(-1, 1)).log().mean())


def measure_c7(context: EntryContext) -> Measured:
    from trainlab.runs import load

    table: dict[str, list[float]] = {}
    for label in C7_CASES:
        gaps, zeros, activity, norms = [], [], [], []
        for planned, run_dir in zip(context.planned(label), context.run_dirs(label)):
            data = context.prepared(planned.spec).data
            model = load(run_dir)
            gaps.append(_cross_entropy(model, data.x_val, data.y_val) - _cross_entropy(model, data.x, data.y))
            first = next(p for name, p in model.named_parameters() if p.dim() == 2)
            zeros.append(float((first.detach().abs() < NEAR_ZERO).float().mean()))
            norms.append(float(first.detach().norm()))
            record = activation_statistics(model, data.x_val)
            activity.append(mean([abs(layer["mean"]) for layer in record["layers"]]))
        table[f"{label}: gap"] = gaps
        table[f"{label}: near-zero weights"] = zeros
        table[f"{label}: weight norm"] = norms
        table[f"{label}: mean activation"] = activity
    return Measured(table)


def verdict_c7(table: Table) -> Verdict:
    gap = "validation minus training cross-entropy (eval mode)"
    findings = [
        expect_better(table, f"{name}: gap", "none: gap", higher=False, what=gap,
                      statement=f"{name} shrinks the train/validation gap")
        for name in ("L2", "L1", "dropout", "early stopping")
    ]
    findings += [
        expect_better(table, "L1: near-zero weights", "L2: near-zero weights", points=True,
                      what=f"share of first-layer weights with |w| < {NEAR_ZERO:g}",
                      statement="L1 makes weights sparse; L2 does not"),
        expect_better(table, "L2: weight norm", "none: weight norm", higher=False, what="first-layer weight norm",
                      statement="a kernel regularizer (L2) acts on the weights"),
        expect_better(table, "activity L1: mean activation", "none: mean activation", higher=False,
                      what="mean |hidden activation| on validation rows",
                      statement="an activity regularizer (L1) acts on the layer outputs"),
    ]
    return combine(findings)


def picture_c7(context: EntryContext, measured: Measured) -> Any:
    fig, axes = pictures.figure(2, width=5.5)
    pictures.bars({label: measured.table[f"{label}: gap"] for label in C7_CASES},
                  title="train/validation gap (val - train cross-entropy, eval mode)", ylabel="gap",
                  ax=axes[0][0])
    pictures.bars({label: [100 * v for v in measured.table[f"{label}: near-zero weights"]]
                   for label in ("none", "L2", "L1")},
                  title=f"first-layer weights with |w| < {NEAR_ZERO:g}", ylabel="%", ax=axes[0][1])
    fig.tight_layout()
    return fig


register(Entry(
    id="C7", title="regularization and the generalization gap",
    claim="L1/L2 weight decay, dropout and early stopping shrink the gap between training and validation. "
          "L2 spreads weights evenly; L1 makes them sparse. Kernel regularizers act on weights, activity "
          "regularizers on outputs.",
    data="Bundled digits with only 359 training images (80% held out): a 2 x 256 network overfits them within "
         "a few epochs, so there is a gap to shrink; with all the data the gap is too small to see.",
    literature="the network overfits: many parameters for few examples (Srivastava et al. 2014 for dropout; "
               "Goodfellow et al. 2016, ch. 7)",
    conditions="2 x 256 ReLU network, Adam lr 1e-3, digits with 20% for training, {epochs} epochs, {seeds} "
               "seeds; L2 1e-3, L1 1e-4, dropout 0.5, early stopping (patience 5, best weights restored), "
               "activity L1 1e-4; measured on the saved models in eval mode",
    measure=measure_c7, verdict=verdict_c7, picture=picture_c7,
    quick={"study.seeds": 2, "recipe.num_epochs": 3},
))


# --------------------------------------------------------------------------- C8


def measure_c8(context: EntryContext) -> Measured:
    return Measured({label: context.values(label, "val_accuracy") for label in context.case_labels})


def verdict_c8(table: Table) -> Verdict:
    accuracy = "final val_accuracy"
    return combine([
        expect_better(table, "bn, lr 1", "plain, lr 1", points=True, what=accuracy,
                      statement="at a high rate (1.0), batch norm trains where the plain network does not"),
        expect_better(table, "bn, tiny init", "plain, tiny init", points=True, what=accuracy,
                      statement="from a bad init (normal, std 0.01), batch norm trains where the plain "
                                "network does not"),
        expect_larger_gain(table, ("bn, lr 0.05", "plain, lr 0.05"), ("bn, 2 layers", "plain, 2 layers"),
                           points=True, what=accuracy,
                           statement="batch norm helps the 6-layer stack more than the 2-layer one"),
    ])


def picture_c8(context: EntryContext, measured: Measured) -> Any:
    fig, axes = pictures.figure(2, width=5.5)
    pairs = [("lr 0.05", "6 layers, lr 0.05"), ("lr 1", "6 layers, lr 1"), ("tiny init", "6 layers, tiny init"),
             ("2 layers", "2 layers, lr 0.05")]
    ax = axes[0][0]
    for offset, kind in ((-0.2, "plain"), (0.2, "bn")):
        values = [measured.table[f"{kind}, {key}"] for key, _ in pairs]
        ax.bar([i + offset for i in range(len(pairs))], [100 * mean(v) for v in values], width=0.4,
               label="batch norm" if kind == "bn" else "plain", alpha=0.7)
        for i, v in enumerate(values):
            finite = [100 * x for x in v if math.isfinite(x)]
            ax.scatter([i + offset] * len(finite), finite, color="black", s=8)
    ax.set_xticks(range(len(pairs)), [title for _, title in pairs], rotation=15, fontsize=8)
    ax.set_ylabel("final validation accuracy, %")
    ax.set_title("batch norm vs plain", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    pictures.curves(context, ["plain, lr 1", "bn, lr 1", "plain, tiny init", "bn, tiny init"], "val_accuracy",
                    title="validation accuracy", ax=axes[0][1])
    fig.tight_layout()
    return fig


register(Entry(
    id="C8", title="batch normalization",
    claim="Batch normalization allows a higher learning rate, makes training less dependent on the "
          "initialization, and helps deep stacks most.",
    data="Bundled digits: the claims are about trainability, which shows within 10 epochs on a small set; "
         "eight configurations x five seeds train in seconds.",
    literature="the network is deep and plain (no residual connections), as in Ioffe and Szegedy 2015; "
               "Santurkar et al. 2018 attribute it to a smoother loss landscape",
    conditions="ReLU networks of 64-unit layers, plain SGD, digits, {epochs} epochs, {seeds} seeds; final "
               "validation accuracy",
    measure=measure_c8, verdict=verdict_c8, picture=picture_c8,
    quick={"study.seeds": 2, "recipe.num_epochs": 2},
))
