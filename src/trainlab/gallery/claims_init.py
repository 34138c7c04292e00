"""Gallery entries on what happens inside the network: C4 (initializers), C5 (vanishing gradients),
C6 (dying ReLUs). They read the doctor's statistics (`trainlab.diagnose.statistics`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from trainlab.gallery import pictures
from trainlab.gallery.entry import Entry, EntryContext, Measured, mean, register
from trainlab.gallery.probes import activation_statistics, first_step_statistics
from trainlab.gallery.verdicts import Table, Verdict, combine, expect_better

# --------------------------------------------------------------------------- C4

C4_CASES = ("sigmoid, normal(1)", "sigmoid, xavier", "tanh, normal(1)", "tanh, xavier", "relu, xavier",
            "relu, he")


def measure_c4(context: EntryContext) -> Measured:
    table: dict[str, list[float]] = {}
    histograms: dict[str, list[dict[str, Any]]] = {}
    for label in C4_CASES:
        saturated, spread = [], []
        for planned in context.planned(label):
            init, _ = first_step_statistics(planned.spec, context.prepared(planned.spec))
            layers = init["layers"]
            histograms.setdefault(label, layers)  # the first seed's histograms for the picture
            if "saturated" in layers[0]:
                saturated.append(mean([layer["saturated"] for layer in layers]))
            # How much of the first hidden layer's spread is left at the last one.
            spread.append(layers[-1]["std"] / layers[0]["std"] if layers[0]["std"] > 0 else math.nan)
        if saturated:
            table[f"{label}: saturated"] = saturated
        table[f"{label}: spread kept"] = spread
    return Measured(table, {"histograms": histograms})


def verdict_c4(table: Table) -> Verdict:
    return combine([
        expect_better(table, "sigmoid, xavier: saturated", "sigmoid, normal(1): saturated", higher=False,
                      what="saturated fraction at init, mean over 5 layers", points=True,
                      statement="a standard-normal init saturates sigmoid layers; Xavier does not"),
        expect_better(table, "tanh, xavier: saturated", "tanh, normal(1): saturated", higher=False,
                      what="saturated fraction at init, mean over 5 layers", points=True,
                      statement="a standard-normal init saturates tanh layers; Xavier does not"),
        expect_better(table, "relu, he: spread kept", "relu, xavier: spread kept",
                      what="std of the 5th hidden layer / std of the 1st, at init",
                      statement="with ReLU, He keeps the spread through depth; Xavier's shrinks"),
    ])


def picture_c4(context: EntryContext, measured: Measured) -> Any:
    histograms = measured.extra["histograms"]
    labels = [label for label in C4_CASES if label in histograms]
    depth = max(len(layers) for layers in histograms.values())
    fig, axes = pictures.figure(depth, width=2.2, height=1.5, rows=len(labels))
    for row, label in enumerate(labels):
        for column, layer in enumerate(histograms[label]):
            ax = axes[row][column]
            counts = np.asarray(layer["hist"], dtype=float)
            low, high = layer["range"]
            edges = np.linspace(low, high, len(counts) + 1)
            ax.bar(edges[:-1], counts / max(counts.sum(), 1.0), width=edges[1] - edges[0], align="edge",
                   color=f"C{row}")
            ax.set_yticks([])
            ax.tick_params(labelsize=6)
            if row == 0:
                ax.set_title(f"hidden layer {column + 1}", fontsize=8)
            if column == 0:
                ax.set_ylabel(label, fontsize=7)
    fig.suptitle("activations at initialization, per hidden layer (first seed, 256 validation rows)",
                 fontsize=9)
    fig.tight_layout()
    return fig


register(Entry(
    id="C4", title="initializers: normal, Xavier, He",
    claim="A standard-normal init saturates sigmoid layers, with activations piled at 0 and 1; Xavier/Glorot "
          "(1/sqrt(n), or sqrt(2/(n+m)) in Keras) keeps sigmoid/tanh activations spread; He (sqrt(2/n)) does "
          "the same for ReLU, where Xavier's activations shrink with depth.",
    data="Bundled digits, standardized: what the claim is about happens at initialization, before any "
         "learning, so any data with unit-variance features shows it; digits keeps the short training that "
         "follows fast.",
    literature="layers are wide and inputs standardized (Glorot and Bengio 2010; He et al. 2015)",
    conditions="5 hidden layers of 64 units, digits standardized, activations at initialization on 256 "
               "validation rows, {seeds} seeds; training for the report: SGD lr 0.05, {epochs} epochs",
    measure=measure_c4, verdict=verdict_c4, picture=picture_c4,
    quick={"study.seeds": 2, "recipe.num_epochs": 1},
))


# --------------------------------------------------------------------------- C5

C5_CASES = ("sigmoid, glorot", "relu, he")


def measure_c5(context: EntryContext) -> Measured:
    table: dict[str, list[float]] = {}
    norms: dict[str, list[list[float]]] = {}
    for label in C5_CASES:
        ratios = []
        for planned in context.planned(label):
            _, step = first_step_statistics(planned.spec, context.prepared(planned.spec))
            layer_norms = [g["grad_norm"] for g in step["grads"]]
            norms.setdefault(label, []).append(layer_norms)
            ratios.append(math.log10(layer_norms[0] / layer_norms[-1]) if layer_norms[-1] > 0 else math.nan)
        table[f"{label}: log10 first/last"] = ratios
        table[f"{label}: val_accuracy"] = context.values(label, "val_accuracy")
    return Measured(table, {"norms": norms})


def verdict_c5(table: Table) -> Verdict:
    return combine([
        expect_better(table, "relu, he: log10 first/last", "sigmoid, glorot: log10 first/last",
                      what="log10(gradient norm of the first weight layer / the last), first step",
                      unit="decades", statement="the gradient reaching the first layer is smaller, relative "
                                                "to the last, through sigmoid than through ReLU"),
        expect_better(table, "relu, he: val_accuracy", "sigmoid, glorot: val_accuracy", points=True,
                      what="final val_accuracy", context=True,
                      statement="the deep ReLU stack learns faster than the deep sigmoid stack"),
    ])


def picture_c5(context: EntryContext, measured: Measured) -> Any:
    fig, axes = pictures.figure(2, width=5.5)
    ax = axes[0][0]
    for label, runs in measured.extra["norms"].items():
        matrix = np.asarray(runs, dtype=float)
        depth = np.arange(1, matrix.shape[1] + 1)
        line, = ax.plot(depth, np.exp(np.log(matrix).mean(axis=0)), marker="o", label=label)
        ax.fill_between(depth, matrix.min(axis=0), matrix.max(axis=0), color=line.get_color(), alpha=0.15)
    ax.set_yscale("log")
    ax.set_xlabel("weight layer (1 = next to the input)")
    ax.set_ylabel("gradient norm, first step")
    ax.set_title("gradient norm by depth (geometric mean, min-max band)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    pictures.curves(context, list(C5_CASES), "val_accuracy", title="validation accuracy", ax=axes[0][1])
    fig.tight_layout()
    return fig


register(Entry(
    id="C5", title="vanishing gradients: sigmoid vs ReLU",
    claim="Gradients vanish through deep sigmoid stacks; ReLU lets them through.",
    data="Bundled digits with 8 hidden layers: the effect is one of depth, not of data; digits keeps the runs "
         "short.",
    literature="the stack is deep (Hochreiter 1991; Glorot and Bengio 2010) and has no normalization or "
               "residual connections",
    conditions="8 hidden layers of 32 units, sigmoid + Glorot uniform vs ReLU + He normal, digits, gradient "
               "norms on the first SGD step, {seeds} seeds; accuracy after {epochs} epochs at lr 0.1",
    measure=measure_c5, verdict=verdict_c5, picture=picture_c5,
    quick={"study.seeds": 2, "recipe.num_epochs": 1},
))


# --------------------------------------------------------------------------- C6

C6_CASES = ("lr 0.01", "lr 0.1", "lr 0.5", "lr 1", "lr 0.1, bias -1")


def measure_c6(context: EntryContext) -> Measured:
    from trainlab.runs import load

    table: dict[str, list[float]] = {}
    for label in C6_CASES:
        dead = []
        for planned, run_dir in zip(context.planned(label), context.run_dirs(label)):
            x = context.prepared(planned.spec).data.x_val
            record = activation_statistics(load(run_dir), x)
            dead.append(mean([layer.get("dead", math.nan) for layer in record["layers"]]))
        table[label] = dead
    return Measured(table)


def verdict_c6(table: Table) -> Verdict:
    return combine([
        expect_better(table, "lr 0.1", "lr 1", higher=False, points=True,
                      what="dead fraction after training, mean over 3 layers",
                      statement="a large step (lr 1) leaves more dead ReLUs than a usual one (0.1)"),
        expect_better(table, "lr 0.1", "lr 0.1, bias -1", higher=False, points=True,
                      what="dead fraction after training, mean over 3 layers",
                      statement="a negative bias (-1) leaves more dead ReLUs than a zero bias"),
    ])


def picture_c6(context: EntryContext, measured: Measured) -> Any:
    fig, axes = pictures.figure(1, width=6.5)
    ax = axes[0][0]
    rates = [0.01, 0.1, 0.5, 1.0]
    labels = ["lr 0.01", "lr 0.1", "lr 0.5", "lr 1"]
    means = [100 * mean(measured.table[label]) for label in labels]
    for rate, label in zip(rates, labels):
        ax.scatter([rate] * len(measured.table[label]), [100 * v for v in measured.table[label]], color="grey",
                   s=10)
    ax.plot(rates, means, marker="o", label="bias 0")
    bias = measured.table["lr 0.1, bias -1"]
    ax.scatter([0.1] * len(bias), [100 * v for v in bias], color="C3", marker="x", label="bias -1 (lr 0.1)")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (plain SGD)")
    ax.set_ylabel("dead units, % (mean over layers)")
    ax.set_title("dead ReLU fraction after training, by learning rate", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


register(Entry(
    id="C6", title="dying ReLUs",
    claim="ReLUs die from a large step or a negative input (bias).",
    data="Bundled digits: 360 validation rows make 'zero on every input' a strict test, and the runs are "
         "seconds long.",
    literature="the rate is large enough for one update to push a unit's bias far negative (Lu et al. 2019, "
               "'Dying ReLU and initialization'); He init and small rates keep most units alive",
    conditions="3 hidden ReLU layers of 64 units (He init), plain SGD, digits, {epochs} epochs, {seeds} seeds; "
               "dead = zero on all 360 validation rows",
    measure=measure_c6, verdict=verdict_c6, picture=picture_c6,
    quick={"study.seeds": 2, "recipe.num_epochs": 2},
))
