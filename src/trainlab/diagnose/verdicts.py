"""Verdicts: what went wrong in a run, the numbers that show it, and the technique that fixes it.

`diagnose` reads a run's per-epoch history (loss, val_loss) and, when it was
recorded, its `TrainingStatistics` records, and returns a list of `Verdict`s,
worst first. Each check compares a number with a stated threshold; the verdict
keeps both, with the layer and epoch where it shows and the catalog technique
that usually fixes it. When nothing fires, the one verdict is "healthy".

Losses are compared on a scale that does not depend on the task: the
*reference loss* is a simple baseline's (predicting the class frequencies:
their entropy; for mean squared error, predicting the mean: the variance of y)
when it is known, else the first epoch's training loss.

The checks and their thresholds (`Thresholds`):

=======================  =============================================================================
vanishing_gradients      ||grad||/||W|| of the first weight layer over the last's < 0.02, or the plain
                         gradient-norm ratio < 0.01
exploding_gradients      a non-finite gradient norm before the loss diverged, or the gradient-norm
                         ratio (first over last) > 100
saturated_units          a sigmoid/tanh layer with > 25% of its outputs within 1% of the range's ends
dead_relus               a ReLU layer with > 30% of its units zero on every probe sample; the cause is
                         the bias or initialization when they are dead at the start, else the lr
lr_too_high              the loss became NaN/inf or the engine stopped the run as diverged; a loss spike
                         (an epoch's loss up by > 10% of the reference loss); oscillation (>= 3 rises of
                         > 2% of the reference in the last 6 epochs)
lr_too_low               updates of < 1e-4 of the weights' norm (median over layers and measured
                         steps) while the training loss is still above half the reference loss;
                         without statistics: the loss fell by < 10% of the reference loss
bad_initialization       at the start, the last hidden layer's activation std over the first's is
                         < 0.1 (collapsing) or > 10 (growing)
overfitting              validation loss lowest at epoch k >= 3 epochs before the end (or 10% above
                         that lowest value since), training loss still falling since k, and a gap
                         val_loss - loss > 10% of the reference loss
underfitting             training loss still above half the reference loss at the end, with the
                         learning rate neither too high nor too low
=======================  =============================================================================

Example:
    >>> history = {"loss": [2.3, 2.3, 2.3, 2.3], "val_loss": [2.3, 2.3, 2.3, 2.3]}
    >>> [v.name for v in diagnose(history, baseline_loss=2.3)]
    ['lr_too_low']
    >>> [v.name for v in diagnose({"loss": [2.0, 0.5, 0.3, 0.2], "val_loss": [1.0, 0.5, 0.35, 0.3]})]
    ['healthy']
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["TECHNIQUES", "Thresholds", "Verdict", "diagnose"]

SEVERITIES = ("error", "warning", "info", "ok")

#: The catalog techniques a verdict may suggest, with what they change.
TECHNIQUES: dict[str, str] = {
    "he_normal": "He initialization (kernel_initializer = 'he_normal') for ReLU layers",
    "glorot_normal": "Xavier/Glorot initialization (kernel_initializer = 'glorot_normal') for sigmoid/tanh",
    "zero_bias": "zero bias initialization (bias_initializer = 'zeros')",
    "BatchNormalization": "a BatchNormalization layer after each hidden layer",
    "lower_lr": "a 10x lower learning rate",
    "higher_lr": "a 10x higher learning rate",
    "warmup": "a learning-rate warmup (schedule warmup_epochs)",
    "clip_grad_norm": "gradient clipping (recipe clip_grad_norm = 1.0)",
    "leaky_relu": "leaky_relu activations, whose units cannot die",
    "Dropout": "Dropout layers between the hidden layers",
    "l2": "an L2 kernel regularizer",
    "early_stopping": "early stopping on val_loss, restoring the best weights",
    "more_capacity": "more capacity: wider hidden layers",
}


@dataclass(frozen=True)
class Verdict:
    """One finding: its name, how bad, the numbers behind it, and what usually fixes it."""

    name: str
    severity: str
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    threshold: str = ""
    layer: str | None = None
    epoch: int | None = None
    technique: str | None = None
    suggestion: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True, kw_only=True)
class Thresholds:
    """The numbers each check compares with (see the module docstring)."""

    vanishing_relative: float = 0.02
    vanishing_plain: float = 0.01
    exploding_plain: float = 100.0
    saturated_fraction: float = 0.25
    dead_fraction: float = 0.30
    spike: float = 0.10
    oscillation: float = 0.02
    min_progress: float = 0.10
    tiny_update: float = 1e-4
    std_collapse: float = 0.1
    std_growth: float = 10.0
    overfit_gap: float = 0.10
    overfit_patience: int = 3
    val_rise: float = 0.10
    underfit: float = 0.5


def _finite(values: Sequence[Any]) -> list[float]:
    return [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]


def _ok(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def diagnose(history: Mapping[str, Sequence[float]], statistics_records: Sequence[Mapping[str, Any]] = (), *,
             stop_reason: str | None = None, baseline_loss: float | None = None,
             thresholds: Thresholds | None = None) -> list[Verdict]:
    """The verdicts on a run, worst first; ``[healthy]`` when no check fires.

    Args:
        history: per-epoch lists, at least "loss"; "val_loss" enables the overfitting check.
        statistics_records: `TrainingStatistics.records` (or a statistics.jsonl file's lines).
        stop_reason: the run's stop reason (the engine's divergence diagnosis counts as divergence).
        baseline_loss: a simple baseline's loss on the training data (see the module docstring).
        thresholds: the numbers the checks compare with.
    """
    limits = thresholds or Thresholds()
    losses = list(history.get("loss", []))
    val = list(history.get("val_loss", []))
    first = _finite(losses[:1])
    reference = baseline_loss if baseline_loss is not None and baseline_loss > 0 else (
        first[0] if first and first[0] > 0 else None)
    records = list(statistics_records)
    verdicts: list[Verdict] = []
    diverged = _diverged(losses, stop_reason)
    too_high = _lr_too_high(losses, diverged, stop_reason, reference, limits)
    verdicts += too_high
    verdicts += _gradients(records, limits, diverged)
    verdicts += _saturation(records, limits)
    verdicts += _dead(records, limits)
    verdicts += _initialization(records, limits)
    too_low = [] if diverged or too_high else _lr_too_low(losses, records, reference, baseline_loss, limits)
    verdicts += too_low
    if not diverged:
        verdicts += _overfitting(losses, val, reference, limits)
        if not too_low and not too_high:
            verdicts += _underfitting(losses, reference, baseline_loss, limits)
    if not any(v.severity in ("error", "warning") for v in verdicts):
        verdicts.append(Verdict(
            "healthy", "ok", "No check fired: gradients, activations, learning rate and the "
            "train/validation gap are within their thresholds.",
            evidence=_summary(losses, val, records), threshold="every check of trainlab.diagnose"))
    return sorted(verdicts, key=lambda v: SEVERITIES.index(v.severity))


def _summary(losses: Sequence[float], val: Sequence[float], records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    evidence: dict[str, Any] = {}
    if losses:
        evidence["final_loss"] = losses[-1]
    if val:
        evidence["final_val_loss"] = val[-1]
    ratios = _finite([r.get("relative_grad_ratio") for r in records])
    if ratios:
        evidence["relative_grad_ratio"] = statistics.median(ratios)
    return evidence


def _diverged(losses: Sequence[float], stop_reason: str | None) -> int | None:
    """The epoch where the loss became non-finite or the engine stopped the run as diverged."""
    for epoch, value in enumerate(losses):
        if not _ok(value):
            return epoch
    if stop_reason and "diverged" in stop_reason:
        return max(len(losses) - 1, 0)
    return None


def _lr_too_high(losses: Sequence[float], diverged: int | None, stop_reason: str | None,
                 reference: float | None, limits: Thresholds) -> list[Verdict]:
    if diverged is not None:
        before = _finite(losses[:diverged])
        return [Verdict(
            "lr_too_high", "error",
            f"The loss diverged at epoch {diverged + 1}: the learning rate is too high for this "
            "optimizer and initialization.",
            evidence={"loss": losses[diverged] if diverged < len(losses) else None,
                      "loss_before": before[-1] if before else None, "stop_reason": stop_reason},
            threshold="loss NaN/inf, or more than the engine's divergence_factor times the first epoch's",
            epoch=diverged, technique="lower_lr",
            suggestion="Use a 10x lower lr (run `trainlab lr-find` to pick one); a warmup or "
                       "clip_grad_norm = 1.0 helps when only the first steps blow up.")]
    if reference is None or len(losses) < 2:
        return []
    verdicts = []
    rises = [(e, losses[e] - losses[e - 1]) for e in range(1, len(losses))]
    spikes = [(e, d) for e, d in rises if d > limits.spike * reference]
    if spikes:
        epoch, jump = max(spikes, key=lambda s: s[1])
        verdicts.append(Verdict(
            "lr_too_high", "warning",
            f"The training loss spiked at epoch {epoch + 1} (up {jump:.3g}): steps too large for the "
            "curvature of the loss.",
            evidence={"loss_before": losses[epoch - 1], "loss": losses[epoch], "rise": jump,
                      "reference_loss": reference, "spikes": len(spikes)},
            threshold=f"an epoch's training loss up by more than {limits.spike:.0%} of the reference loss",
            epoch=epoch, technique="lower_lr",
            suggestion="Lower the lr (10x), or add a warmup; clip_grad_norm stops single bad batches."))
        return verdicts
    recent = rises[-6:]
    ups = [(e, d) for e, d in recent if d > limits.oscillation * reference]
    if len(ups) >= 3:
        verdicts.append(Verdict(
            "lr_too_high", "warning",
            f"The training loss oscillates: it rose in {len(ups)} of the last {len(recent)} epochs.",
            evidence={"rises": {f"epoch {e + 1}": d for e, d in ups}, "reference_loss": reference},
            threshold=f">= 3 rises of more than {limits.oscillation:.0%} of the reference loss in the last 6 epochs",
            epoch=ups[0][0], technique="lower_lr",
            suggestion="Lower the lr, or decay it with a schedule (cosine, step)."))
    return verdicts


def _grad_records(records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in records if r.get("grads")]


def _gradients(records: Sequence[Mapping[str, Any]], limits: Thresholds, diverged: int | None) -> list[Verdict]:
    verdicts = []
    with_grads = _grad_records(records)
    if not with_grads:
        return []
    # The earliest measurement shows how training starts; later ones once it has adapted.
    first = next((r for r in with_grads if _ok(r.get("relative_grad_ratio")) and _ok(r.get("grad_ratio"))), None)
    if first is not None:
        relative, plain = float(first["relative_grad_ratio"]), float(first["grad_ratio"])
        grads = first["grads"]
        if relative < limits.vanishing_relative or plain < limits.vanishing_plain:
            verdicts.append(Verdict(
                "vanishing_gradients", "warning",
                f"Gradients vanish toward the input: layer '{grads[0]['name']}' learns "
                f"{1 / max(relative, 1e-12):.0f}x slower (relative to its weights) than '{grads[-1]['name']}'.",
                evidence={"relative_grad_ratio": relative, "grad_ratio": plain,
                          "grad_norms": {g["name"]: g["grad_norm"] for g in grads},
                          "weight_norms": {g["name"]: g["weight_norm"] for g in grads}},
                threshold=(f"first/last layer ||grad||/||W|| < {limits.vanishing_relative}, or first/last "
                           f"||grad|| < {limits.vanishing_plain}"),
                layer=grads[0]["name"], epoch=first["epoch"], technique=_init_fix(records),
                suggestion=f"Use {TECHNIQUES[_init_fix(records)]}, and consider BatchNormalization "
                           "or ReLU hidden layers, whose derivative does not shrink."))
        if plain > limits.exploding_plain:
            verdicts.append(Verdict(
                "exploding_gradients", "error",
                f"Gradients grow toward the input: '{grads[0]['name']}' gets {plain:.3g}x the gradient "
                f"norm of '{grads[-1]['name']}'.",
                evidence={"grad_ratio": plain, "grad_norms": {g["name"]: g["grad_norm"] for g in grads}},
                threshold=f"first/last layer gradient norm > {limits.exploding_plain:g}",
                layer=grads[0]["name"], epoch=first["epoch"], technique="clip_grad_norm",
                suggestion="Clip the gradient norm (clip_grad_norm = 1.0) and use a scaled initialization "
                           "(He for ReLU, Xavier for tanh)."))
    if diverged is not None:
        bad = next((r for r in with_grads if not all(_ok(g["grad_norm"]) for g in r["grads"])), None)
        if bad is not None:
            verdicts.append(Verdict(
                "exploding_gradients", "error",
                f"The gradient norm became non-finite by epoch {bad['epoch'] + 1}.",
                evidence={"grad_norms": {g["name"]: g["grad_norm"] for g in bad["grads"]}},
                threshold="a NaN/inf gradient norm", epoch=bad["epoch"], technique="clip_grad_norm",
                suggestion="Clip the gradient norm (clip_grad_norm = 1.0) and lower the lr."))
    return verdicts


def _kinds(records: Sequence[Mapping[str, Any]]) -> list[str]:
    return [layer["kind"] for layer in (records[0].get("layers", []) if records else [])]


def _init_fix(records: Sequence[Mapping[str, Any]]) -> str:
    kinds = _kinds(records)
    return "glorot_normal" if any(k in ("sigmoid", "tanh") for k in kinds) else "he_normal"


def _worst(records: Sequence[Mapping[str, Any]], key: str) -> tuple[float, Mapping[str, Any], Mapping[str, Any]] | None:
    worst = None
    for record in records:
        for layer in record.get("layers", []):
            value = layer.get(key)
            if _ok(value) and _ok(layer.get("std")) and (worst is None or value > worst[0]):
                worst = (float(value), layer, record)
    return worst


def _saturation(records: Sequence[Mapping[str, Any]], limits: Thresholds) -> list[Verdict]:
    worst = _worst(records, "saturated")
    if worst is None or worst[0] <= limits.saturated_fraction:
        return []
    value, layer, record = worst
    at_start = records[0]["epoch"] == -1 and any(
        _ok(entry.get("saturated")) and entry["saturated"] > limits.saturated_fraction
        for entry in records[0].get("layers", []))
    per_layer = {entry["name"]: entry.get("saturated") for entry in record.get("layers", [])
                 if "saturated" in entry}
    technique = "glorot_normal" if at_start else "BatchNormalization"
    return [Verdict(
        "saturated_units", "warning",
        f"{value:.0%} of the {layer['kind']} outputs of layer '{layer['name']}' sit at the ends of their "
        "range, where the derivative is nearly 0"
        + (" from the start: the initial weights are too large." if at_start else "."),
        evidence={"saturated_fraction": value, "per_layer": per_layer, "at_start": at_start},
        threshold=f"more than {limits.saturated_fraction:.0%} of a layer's outputs within 1% of its range's ends",
        layer=layer["name"], epoch=record["epoch"], technique=technique,
        suggestion=(f"Use {TECHNIQUES['glorot_normal']}: it scales the weights so pre-activations stay "
                    "in the sigmoid's linear part." if at_start else
                    "Add BatchNormalization before the activations, or lower the lr."))]


def _dead(records: Sequence[Mapping[str, Any]], limits: Thresholds) -> list[Verdict]:
    worst = _worst(records, "dead")
    if worst is None or worst[0] <= limits.dead_fraction:
        return []
    value, layer, record = worst
    start = next((entry.get("dead") for entry in (records[0].get("layers", []) if records[0]["epoch"] == -1
                                                   else []) if entry["name"] == layer["name"]), None)
    from_start = start is not None and _ok(start) and float(start) > limits.dead_fraction
    cause = "bias or initialization" if from_start else "learning rate"
    evidence = {"dead_fraction": value, "dead_at_start": start,
                "per_layer": {entry["name"]: entry.get("dead") for entry in record.get("layers", [])
                              if "dead" in entry}}
    return [Verdict(
        "dead_relus", "warning",
        f"{value:.0%} of the units of ReLU layer '{layer['name']}' are zero on every probe sample, so no "
        f"gradient reaches their weights. Likely cause: the {cause}"
        + (f" ({start:.0%} were dead at the start)." if from_start else
           f" (only {start:.0%} were dead at the start; large steps pushed them off)." if _ok(start) else "."),
        evidence=evidence,
        threshold=f"more than {limits.dead_fraction:.0%} of a layer's units zero on every probe sample",
        layer=layer["name"], epoch=record["epoch"],
        technique="zero_bias" if from_start else "lower_lr",
        suggestion=(f"Start from {TECHNIQUES['zero_bias']} and {TECHNIQUES['he_normal']}; leaky_relu "
                    "units cannot die." if from_start else
                    "Lower the lr (10x) or add a warmup; leaky_relu units cannot die."),
        )]


def _initialization(records: Sequence[Mapping[str, Any]], limits: Thresholds) -> list[Verdict]:
    if not records or records[0]["epoch"] != -1:
        return []
    layers = [entry for entry in records[0].get("layers", []) if _ok(entry.get("std"))]
    if len(layers) < 2 or layers[0]["std"] <= 0:
        return []
    ratio = layers[-1]["std"] / layers[0]["std"]
    if limits.std_collapse <= ratio <= limits.std_growth:
        return []
    trend = "collapses" if ratio < limits.std_collapse else "grows"
    fix = _init_fix(records)
    return [Verdict(
        "bad_initialization", "warning",
        f"At the start the activation std {trend} with depth: {layers[0]['std']:.3g} in "
        f"'{layers[0]['name']}', {layers[-1]['std']:.3g} in '{layers[-1]['name']}'.",
        evidence={"std_by_layer": {entry["name"]: entry["std"] for entry in layers}, "ratio": ratio},
        threshold=f"last/first hidden activation std outside [{limits.std_collapse:g}, {limits.std_growth:g}]",
        layer=layers[-1]["name"], epoch=-1, technique=fix,
        suggestion=f"Use {TECHNIQUES[fix]}: it keeps the activations' variance constant from layer to layer.")]


def _median_update(records: Sequence[Mapping[str, Any]]) -> float | None:
    values = _finite([g["update_ratio"] for r in _grad_records(records) for g in r["grads"]])
    return statistics.median(values) if values else None


def _lr_too_low(losses: Sequence[float], records: Sequence[Mapping[str, Any]], reference: float | None,
                baseline: float | None, limits: Thresholds) -> list[Verdict]:
    finite = _finite(losses)
    if reference is None or len(finite) < 2:
        return []
    start = max(finite[0], baseline or 0.0)
    progress = (start - min(finite)) / reference
    update = _median_update(records)
    if update is not None:
        # The steps' size tells a too-low lr apart from a model that cannot learn (dead units, no capacity).
        if update >= limits.tiny_update or finite[-1] <= limits.underfit * reference:
            return []
    elif progress >= limits.min_progress:
        return []
    evidence: dict[str, Any] = {"loss_first_epoch": finite[0], "loss_last_epoch": finite[-1],
                                "progress": progress, "reference_loss": reference}
    if update is not None:
        evidence["median_update_ratio"] = update
    return [Verdict(
        "lr_too_low", "warning",
        f"Training makes little progress: the loss went from {finite[0]:.3g} to {finite[-1]:.3g}"
        + (f", and each step changes the weights by {update:.2g} of their norm" if update is not None else "")
        + ".",
        evidence=evidence,
        threshold=(f"median update/weight ratio < {limits.tiny_update:g} with the loss above "
                   f"{limits.underfit:.0%} of the reference loss" if update is not None else
                   f"loss down by less than {limits.min_progress:.0%} of the reference loss"),
        epoch=len(losses) - 1, technique="higher_lr",
        suggestion="Raise the lr (10x; `trainlab lr-find` picks one); updates of about 1e-3 of the "
                   "weights' norm per step are typical of healthy training.")]


def _overfitting(losses: Sequence[float], val: Sequence[float], reference: float | None,
                 limits: Thresholds) -> list[Verdict]:
    if reference is None or len(val) < limits.overfit_patience + 2 or len(losses) != len(val):
        return []
    finite = _finite(val)
    if len(finite) != len(val):
        return []
    best = min(range(len(val)), key=lambda e: val[e])
    waited = len(val) - 1 - best
    rose = val[-1] - val[best] > limits.val_rise * val[best]
    gap = val[-1] - losses[-1]
    if not (waited >= limits.overfit_patience or (rose and waited >= 1)):
        return []
    if gap <= limits.overfit_gap * reference or losses[-1] >= losses[best]:
        return []
    return [Verdict(
        "overfitting", "warning",
        f"Overfitting: validation loss is rising since epoch {best + 1} ({val[best]:.3g} -> {val[-1]:.3g}) "
        f"while the training loss keeps falling ({losses[best]:.3g} -> {losses[-1]:.3g}).",
        evidence={"best_epoch": best, "val_loss_best": val[best], "val_loss_last": val[-1],
                  "loss_at_best": losses[best], "loss_last": losses[-1], "gap": gap,
                  "gap_at_best": val[best] - losses[best], "reference_loss": reference},
        threshold=(f"val_loss lowest >= {limits.overfit_patience} epochs before the end (or "
                   f"{limits.val_rise:.0%} above its lowest), training loss falling, and val_loss - loss > "
                   f"{limits.overfit_gap:.0%} of the reference loss"),
        epoch=best, technique="early_stopping",
        suggestion="Stop early on val_loss (restore_best_weights = true); add Dropout or an L2 penalty, "
                   "or train on more data.")]


def _underfitting(losses: Sequence[float], reference: float | None, baseline: float | None,
                  limits: Thresholds) -> list[Verdict]:
    finite = _finite(losses)
    if baseline is None or not finite or finite[-1] <= limits.underfit * baseline:
        return []
    return [Verdict(
        "underfitting", "warning",
        f"Underfitting: the training loss ends at {finite[-1]:.3g}, {finite[-1] / baseline:.0%} of what "
        f"a model that ignores the inputs gets ({baseline:.3g}).",
        evidence={"loss_last": finite[-1], "baseline_loss": baseline},
        threshold=f"final training loss > {limits.underfit:.0%} of the baseline's",
        epoch=len(losses) - 1, technique="more_capacity",
        suggestion="Give the model more capacity (wider or more layers), train longer, or remove "
                   "regularization.")]
