"""Gallery entries on the data side of training: C15 (label smoothing, mixup), C16 (augmentation),
C17 (input scaling), C20 (noise and robustness)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from trainlab.gallery import pictures
from trainlab.gallery.entry import Entry, EntryContext, Measured, register
from trainlab.gallery.probes import predict, probabilities
from trainlab.gallery.verdicts import Table, Verdict, combine, expect_better, expect_larger_gain

# --------------------------------------------------------------------------- C15

C15_CASES = ("none", "label smoothing 0.1", "mixup 0.2")
RELIABILITY_BINS = 10


def measure_c15(context: EntryContext) -> Measured:
    from sklearn.calibration import calibration_curve

    from trainlab.runs import load

    table: dict[str, list[float]] = {}
    reliability: dict[str, tuple[list[float], list[float]]] = {}
    for label in C15_CASES:
        over, confidences, correct = [], [], []
        for planned, run_dir in zip(context.planned(label), context.run_dirs(label)):
            data = context.prepared(planned.spec).data
            p = probabilities(load(run_dir), data.x_val)
            confidence, predicted = p.max(dim=1)
            hit = (predicted == data.y_val.long()).float()
            over.append(float(confidence.mean() - hit.mean()))
            confidences.append(confidence.numpy())
            correct.append(hit.numpy())
        table[f"{label}: val_accuracy"] = context.values(label, "val_accuracy")
        table[f"{label}: overconfidence"] = over
        table[f"{label}: ece"] = context.values(label, "val_ece")
        accuracy, confidence = calibration_curve(np.concatenate(correct), np.concatenate(confidences),
                                                 n_bins=RELIABILITY_BINS, strategy="uniform")
        reliability[label] = (confidence.tolist(), accuracy.tolist())
    return Measured(table, {"reliability": reliability})


def verdict_c15(table: Table) -> Verdict:
    return combine([
        expect_better(table, "label smoothing 0.1: val_accuracy", "none: val_accuracy", points=True,
                      what="final val_accuracy", statement="label smoothing improves accuracy"),
        expect_better(table, "mixup 0.2: val_accuracy", "none: val_accuracy", points=True,
                      what="final val_accuracy", statement="mixup improves accuracy"),
        expect_better(table, "label smoothing 0.1: overconfidence", "none: overconfidence", higher=False,
                      points=True, what="mean confidence minus accuracy (validation)",
                      statement="label smoothing curbs overconfidence"),
        expect_better(table, "mixup 0.2: overconfidence", "none: overconfidence", higher=False, points=True,
                      what="mean confidence minus accuracy (validation)", statement="mixup curbs overconfidence"),
        expect_better(table, "label smoothing 0.1: ece", "none: ece", higher=False, points=True, context=True,
                      what="expected calibration error (validation)",
                      statement="label smoothing lowers the calibration error"),
        expect_better(table, "mixup 0.2: ece", "none: ece", higher=False, points=True, context=True,
                      what="expected calibration error (validation)", statement="mixup lowers the calibration error"),
    ])


def picture_c15(context: EntryContext, measured: Measured) -> Any:
    fig, axes = pictures.figure(2, width=5.0)
    ax = axes[0][0]
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    for label, (confidence, accuracy) in measured.extra["reliability"].items():
        ax.plot(confidence, accuracy, marker="o", label=label)
    ax.set_xlabel("top-class confidence (bin mean)")
    ax.set_ylabel("accuracy in the bin")
    ax.set_title(f"reliability diagram (validation, all seeds, {RELIABILITY_BINS} bins)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    pictures.bars({label: [100 * v for v in measured.table[f"{label}: overconfidence"]] for label in C15_CASES},
                  title="overconfidence: mean confidence - accuracy", ylabel="points", ax=axes[0][1])
    fig.tight_layout()
    return fig


register(Entry(
    id="C15", title="label smoothing and mixup",
    claim="Label smoothing and mixup improve results; they curb overconfidence.",
    data="Fashion-MNIST (3000 images): an MLP overfits it and becomes overconfident within 30 epochs, and its "
         "classes overlap (shirt, T-shirt, pullover), which is where soft targets are said to help.",
    literature="the network is large and trained long enough to become overconfident (Szegedy et al. 2016; "
               "Mueller et al. 2019 'When does label smoothing help?'; Zhang et al. 2018 and Thulasidasan et "
               "al. 2019 for mixup on CIFAR/ImageNet-scale convnets)",
    conditions="2 x 256 ReLU network, Adam lr 1e-3, batch 64, Fashion-MNIST 3000 images (25% validation), "
               "{epochs} epochs, {seeds} seeds",
    measure=measure_c15, verdict=verdict_c15, picture=picture_c15,
    quick={"study.seeds": 2, "recipe.num_epochs": 2, "data.options": {"subset": 600, "layout": "flat"}},
))


# --------------------------------------------------------------------------- C16


def measure_c16(context: EntryContext) -> Measured:
    return Measured({label: context.values(label, "val_accuracy") for label in context.case_labels})


def verdict_c16(table: Table) -> Verdict:
    return combine([
        expect_better(table, "scarce, augmented", "scarce, none", points=True,
                      what="final val_accuracy", statement="with scarce data (500 signals), augmentation helps"),
        expect_larger_gain(table, ("scarce, augmented", "scarce, none"), ("plenty, augmented", "plenty, none"),
                           points=True, what="final val_accuracy",
                           statement="augmentation helps more with 500 signals than with 4000"),
    ])


def picture_c16(context: EntryContext, measured: Measured) -> Any:
    fig, axes = pictures.figure(2, width=5.5)
    pictures.bars({label: [100 * v for v in measured.table[label]] for label in context.case_labels},
                  title="final validation accuracy", ylabel="%", ax=axes[0][0])
    pictures.curves(context, context.case_labels, "val_accuracy", title="validation accuracy", ax=axes[0][1])
    fig.tight_layout()
    return fig


register(Entry(
    id="C16", title="augmentation with scarce data",
    claim="Data augmentation helps when data is scarce.",
    data="MNIST-1D: its digits are 1-D patterns placed at random offsets, so shift augmentation adds exactly "
         "the variation the test data holds, and 500 vs 4000 signals train in seconds (Fashion-MNIST needs a "
         "convnet for flips and shifts to mean anything, which a 2-core CPU trains slowly).",
    literature="the augmentation matches invariances of the data and the model cannot learn them from the "
               "examples it has (Simard et al. 2003; Shorten and Khoshgoftaar 2019)",
    conditions="2 x 128 ReLU network, Adam lr 1e-3, batch 64, MNIST-1D unscaled, {epochs} epochs, {seeds} "
               "seeds; shift up to 4 points + jitter 0.05",
    measure=measure_c16, verdict=verdict_c16, picture=picture_c16,
    quick={"study.seeds": 2, "recipe.num_epochs": 3, "case:plenty, none": {"data.options": {"num_samples": 1250}},
           "case:plenty, augmented": {"data.options": {"num_samples": 1250}}},
))


# --------------------------------------------------------------------------- C17


def measure_c17(context: EntryContext) -> Measured:
    return Measured({label: context.values(label, "val_accuracy") for label in context.case_labels})


def verdict_c17(table: Table) -> Verdict:
    return combine([
        expect_better(table, "wine, standardize", "wine, raw", points=True, what="final val_accuracy",
                      statement="standardizing wine's inputs trains better than raw inputs"),
        expect_better(table, "wine, minmax", "wine, raw", points=True, what="final val_accuracy",
                      statement="scaling wine's inputs to [0, 1] trains better than raw inputs"),
        expect_better(table, "breast_cancer, standardize", "breast_cancer, raw", points=True,
                      what="final val_accuracy",
                      statement="standardizing breast_cancer's inputs trains better than raw inputs"),
    ])


def picture_c17(context: EntryContext, measured: Measured) -> Any:
    fig, axes = pictures.figure(2, width=5.5)
    pictures.bars({label: [100 * v for v in measured.table[label]] for label in context.case_labels},
                  title="final validation accuracy (a diverged run: no dot)", ylabel="%", ax=axes[0][0])
    pictures.curves(context, context.case_labels, "loss", title="training loss (log scale)", log=True,
                    ax=axes[0][1])
    fig.tight_layout()
    return fig


register(Entry(
    id="C17", title="input scaling",
    claim="Scaling inputs (normalize to [0, 1] or standardize) matters for training.",
    data="Bundled wine and breast_cancer: real measurements on scales four orders of magnitude apart (wine's "
         "proline reaches 1680, its hue 0.5), which is when scaling matters; digits' pixels share one scale.",
    literature="features differ in scale and the optimizer is plain gradient descent (LeCun et al. 1998, "
               "'Efficient BackProp'); adaptive optimizers and batch norm make it matter less",
    conditions="32-unit ReLU network, plain SGD lr 0.01, batch 16, {epochs} epochs, {seeds} seeds, stratified "
               "20% validation; scalers fitted on the training part",
    measure=measure_c17, verdict=verdict_c17, picture=picture_c17,
    quick={"study.seeds": 2, "recipe.num_epochs": 3},
))


# --------------------------------------------------------------------------- C20

C20_CASES = ("none", "input noise 0.5", "weight noise 0.05")
TEST_NOISE = 1.0
NOISE_LEVELS = (0.0, 0.25, 0.5, 1.0, 1.5)


def _noisy_accuracy(model: Any, x: torch.Tensor, y: torch.Tensor, std: float, seed: int = 1234) -> float:
    generator = torch.Generator().manual_seed(seed)
    noisy = x + std * torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return float((predict(model, noisy) == y.long()).float().mean())


def measure_c20(context: EntryContext) -> Measured:
    from trainlab.runs import load

    table: dict[str, list[float]] = {}
    curves: dict[str, list[float]] = {}
    for label in C20_CASES:
        noisy, by_level = [], []
        for planned, run_dir in zip(context.planned(label), context.run_dirs(label)):
            data = context.prepared(planned.spec).data
            model = load(run_dir)
            noisy.append(_noisy_accuracy(model, data.x_val, data.y_val, TEST_NOISE))
            by_level.append([_noisy_accuracy(model, data.x_val, data.y_val, s) for s in NOISE_LEVELS])
        table[f"{label}: noisy accuracy"] = noisy
        table[f"{label}: clean accuracy"] = context.values(label, "val_accuracy")
        curves[label] = np.asarray(by_level).mean(axis=0).tolist()
    return Measured(table, {"curves": curves})


def verdict_c20(table: Table) -> Verdict:
    what = f"validation accuracy with input noise of std {TEST_NOISE:g}"
    return combine([
        expect_better(table, "input noise 0.5: noisy accuracy", "none: noisy accuracy", points=True, what=what,
                      statement="training with input noise makes the network more robust to noisy inputs"),
        expect_better(table, "weight noise 0.05: noisy accuracy", "none: noisy accuracy", points=True, what=what,
                      statement="training with weight noise makes the network more robust to noisy inputs"),
        expect_better(table, "input noise 0.5: clean accuracy", "none: clean accuracy", points=True,
                      what="clean final val_accuracy", context=True,
                      statement="input noise also changes the clean accuracy"),
    ])


def picture_c20(context: EntryContext, measured: Measured) -> Any:
    fig, axes = pictures.figure(1, width=6.5)
    ax = axes[0][0]
    for label, values in measured.extra["curves"].items():
        ax.plot(NOISE_LEVELS, [100 * v for v in values], marker="o", label=label)
    ax.set_xlabel("std of the Gaussian noise added to the validation inputs (standardized units)")
    ax.set_ylabel("validation accuracy, % (mean over seeds)")
    ax.set_title("robustness to input noise, by training noise", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


register(Entry(
    id="C20", title="noise in training and robustness",
    claim="Noise added to inputs or weights makes a network more robust.",
    data="Bundled digits: standardized pixels make 'noise of std 1' a meaningful perturbation, and the runs "
         "are short enough to train weight-noise runs one at a time.",
    literature="the test perturbation resembles the training noise (Bishop 1995: input noise is Tikhonov "
               "regularization; Graves 2011 for weight noise); robustness to other perturbations does not follow",
    conditions="2 x 64 ReLU network, Adam lr 1e-3, digits, {epochs} epochs, {seeds} seeds; test noise std "
               f"{TEST_NOISE:g}, one fixed draw",
    measure=measure_c20, verdict=verdict_c20, picture=picture_c20,
    quick={"study.seeds": 2, "recipe.num_epochs": 3},
))
