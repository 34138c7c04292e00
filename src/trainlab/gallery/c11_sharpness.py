"""Gallery entry C11: batch size, sharpness and generalization.

Calls `trainlab.generalize.sharpness.run_sharpness(run_dir, rows=1000)` on each
finished run folder of the study (its ``sharpness.top_eigenvalue``); the rest
is the study machinery.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trainlab.gallery import pictures
from trainlab.gallery.entry import Entry, EntryContext, Measured, register
from trainlab.gallery.verdicts import Table, Verdict, combine, expect_better

C11_SIZES = ("16", "128", "1024")
SHARPNESS_ROWS = 1000


def measure_c11(context: EntryContext) -> Measured:
    from trainlab.generalize.sharpness import run_sharpness

    table: dict[str, list[float]] = {}
    for size in C11_SIZES:
        label = f"batch_size={size}"
        eigen = [float(run_sharpness(run_dir, rows=SHARPNESS_ROWS).sharpness.top_eigenvalue)
                 for run_dir in context.run_dirs(label)]
        table[f"{label}: top eigenvalue"] = eigen
        table[f"{label}: val_accuracy"] = context.values(label, "val_accuracy")
        table[f"{label}: loss"] = context.values(label, "loss")
    return Measured(table)


def verdict_c11(table: Table) -> Verdict:
    return combine([
        expect_better(table, "batch_size=16: top eigenvalue", "batch_size=1024: top eigenvalue", higher=False,
                      what=f"top Hessian eigenvalue of the training loss ({SHARPNESS_ROWS} training rows)",
                      statement="large batches (1024) end in sharper minima than small ones (16)"),
        expect_better(table, "batch_size=16: val_accuracy", "batch_size=1024: val_accuracy", points=True,
                      what="final val_accuracy",
                      statement="small batches (16) generalize better than large ones (1024)"),
        expect_better(table, "batch_size=16: loss", "batch_size=1024: loss", higher=False, context=True,
                      what="final training loss",
                      statement="small batches also fit the training rows further in the same epochs"),
    ])


def picture_c11(context: EntryContext, measured: Measured) -> Any:
    fig, axes = pictures.figure(2, width=5.5)
    ax = axes[0][0]
    sizes = [int(s) for s in C11_SIZES]
    for i, size in enumerate(C11_SIZES):
        eigen = measured.table[f"batch_size={size}: top eigenvalue"]
        ax.scatter([sizes[i]] * len(eigen), eigen, color=f"C{i}", s=14)
    ax.plot(sizes, [float(np.mean(measured.table[f"batch_size={s}: top eigenvalue"])) for s in C11_SIZES],
            color="black", marker="o")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("top Hessian eigenvalue (training loss)")
    ax.set_title("sharpness against batch size", fontsize=10)
    ax.grid(alpha=0.3)
    pictures.bars({f"batch {s}": [100 * v for v in measured.table[f"batch_size={s}: val_accuracy"]]
                   for s in C11_SIZES}, title="final validation accuracy", ylabel="%", ax=axes[0][1])
    fig.tight_layout()
    return fig


register(Entry(
    id="C11", title="large batches and sharp minima",
    claim="Large batches find sharp minimizers and small batches flat ones; flat ones generalize better.",
    data="MNIST-1D: an MLP overfits its 4000 training signals, so generalization differs between runs, and "
         "three batch sizes x five seeds plus a Hessian eigenvalue each stay within a few minutes on a CPU.",
    literature="the rate is not scaled with the batch and the epochs are the same (Keskar et al. 2017); Dinh "
               "et al. 2017 show sharpness depends on the parametrization, and Goyal et al. 2017 close the gap "
               "by scaling the rate with the batch",
    conditions="2 x 128 ReLU network, SGD momentum 0.9 at lr 0.05 for every batch size, MNIST-1D, {epochs} "
               "epochs, {seeds} seeds; sharpness = top Hessian eigenvalue on 1000 training rows",
    measure=measure_c11, verdict=verdict_c11, picture=picture_c11,
    quick={"study.seeds": 2, "recipe.num_epochs": 2, "data.options": {"num_samples": 1000}},
    requires="trainlab.generalize.sharpness",
))
