"""The learning-rate range test, over several seeds, with named zones and a reasoned suggestion.

`lr_find` trains copies of the model for a few hundred steps while the lr grows
exponentially from `start_lr` to `end_lr` (Smith 2017, "Cyclical learning
rates"), records the loss of every batch, and repeats this for `num_seeds`
seeds (initial weights and batch order). Each seed's loss is smoothed with a
bias-corrected exponential moving average; the seeds' median is the curve,
their min and max the band. On the median curve:

- the slope is taken against log10(lr) (per decade), as a centred difference
  over 5% of the sweep, not against the lr:
  on a log axis the steepest part of the curve is where the lr is most
  effective, and a slope in lr units would favour large lrs;
- zones: "too low" until the loss falls for good below its starting level
  (the median of the first 10% of the sweep) minus 10% of its total drop (no
  progress yet); "good" from there to the minimum (steepest stable
  descent); "too high" once the loss climbs past `climb_factor` (1.5) times
  its minimum; the divergence point is where it passes `diverge_factor` (4)
  times its minimum or turns NaN/inf;
- the suggestion is the steepest descent point in the good zone, capped at a
  tenth of the minimum's lr (at the minimum itself the loss is about to blow
  up), with the reasoning spelled out;
- the suggestion is called weak, with the reason, when the curve is flat (the
  loss falls by less than 10%), when the seeds disagree (their own suggestions
  spread over more than a decade) or the band at the suggestion is wider than
  half the loss's drop, or when the good zone is too short to find a slope.

The model and the optimizer are left as they were: each seed trains a copy of
the model (a trainlab `Sequential` is rebuilt from its config, so its initial
weights come from the seed; any other module is deep-copied, so only the batch
order varies) with a fresh optimizer of the same kind and settings.

Each seed is one member of one stacked run of the one engine
(`trainlab.stacked.fit_members`), with the lr sweep as its schedule, the
engine's per-step history for the batch losses, and a callback that stops the
member after the sweep's last batch (or at the end of the epoch in which its
loss diverged).

Example:
    >>> import trainlab
    >>> from trainlab.layers import Dense
    >>> model = trainlab.Sequential([Dense(16, activation="relu"), Dense(3, activation="softmax")])
    >>> found = lr_find(model, "iris", "sgd", num_steps=60, num_seeds=2, batch_size=16)
    >>> len(found.lrs), found.losses.shape
    (60, (2, 60))
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from trainlab import check
from trainlab.callbacks import Callback
from trainlab.errors import InputError, InputTypeError

__all__ = ["LRFinder", "LRFinderResult", "lr_find"]


@dataclass
class LRFinderResult:
    """The sweep, the curves, the zones and the suggestion (JSON-safe with `to_dict`)."""

    optimizer: str
    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    median: np.ndarray
    low: np.ndarray
    high: np.ndarray
    slope: np.ndarray
    seeds: list[int]
    suggestion: float | None
    min_lr: float | None
    divergence_lr: float | None
    zones: dict[str, tuple[float, float]]
    reasoning: str
    weak: bool
    weak_reasons: list[str] = field(default_factory=list)
    seed_suggestions: list[float] = field(default_factory=list)
    climb_factor: float = 1.5
    diverge_factor: float = 4.0

    def to_dict(self) -> dict[str, Any]:
        def clean(values: np.ndarray) -> list[float | None]:
            return [float(v) if math.isfinite(v) else None for v in np.asarray(values, dtype=float).ravel()]

        return {"optimizer": self.optimizer, "suggestion": self.suggestion, "min_lr": self.min_lr,
                "divergence_lr": self.divergence_lr, "zones": {k: list(v) for k, v in self.zones.items()},
                "reasoning": self.reasoning, "weak": self.weak, "weak_reasons": self.weak_reasons,
                "seeds": self.seeds, "seed_suggestions": self.seed_suggestions,
                "lrs": clean(self.lrs), "median": clean(self.median), "low": clean(self.low),
                "high": clean(self.high)}

    def plot(self, path: str | Path | None = None, *, ax: Any = None) -> Any:
        """Draw the band, the median curve, the zones, the divergence point and the suggestion.

        With `path`, the figure is written there (PNG) and the path returned; else the figure.
        """
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        figure = None
        if ax is None:
            figure, ax = plt.subplots(figsize=(8, 4.2))
        colours = {"too low": "#bbbbbb", "good": "#2ca02c", "too high": "#d62728"}
        for name, (low, high) in self.zones.items():
            ax.axvspan(low, high, color=colours[name], alpha=0.15, lw=0, label=f"{name}")
        finite = np.isfinite(self.median)
        ax.fill_between(self.lrs[finite], self.low[finite], self.high[finite], color="#1f77b4", alpha=0.25,
                        lw=0, label=f"min-max over {len(self.seeds)} seeds")
        ax.plot(self.lrs[finite], self.median[finite], color="#1f77b4", label="median (smoothed)")
        if self.divergence_lr is not None:
            ax.axvline(self.divergence_lr, color="#d62728", ls="--", lw=1, label="divergence")
        if self.suggestion is not None:
            y = float(np.interp(math.log10(self.suggestion), np.log10(self.lrs[finite]), self.median[finite]))
            ax.plot([self.suggestion], [y], "o", color="black", ms=7,
                    label=f"suggestion {self.suggestion:.2g}" + (" (weak)" if self.weak else ""))
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("training loss")
        values = self.high[finite]
        if values.size:
            top = min(float(np.nanmax(values)), self.diverge_factor * 1.2 * float(np.nanmin(self.median[finite])),
                      float(self.median[finite][0]) * 1.5)
            ax.set_ylim(max(0.0, float(np.nanmin(self.low[finite])) * 0.9), max(top, 1e-12))
        ax.set_title(f"LR range test: {self.optimizer}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
        if figure is not None and path is not None:
            target = Path(path)
            figure.savefig(target, dpi=100, bbox_inches="tight")
            plt.close(figure)
            return target
        return figure if figure is not None else ax


class _SweepEnd(Callback):
    """Stops a member once the sweep is over (after that batch) or its loss has diverged (at an epoch's end)."""

    def __init__(self, num_steps: int, diverge_factor: float) -> None:
        self.num_steps = num_steps
        self.diverge_factor = diverge_factor
        self._seen: list[Tensor] = []

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is not None and len(self._seen) < self.num_steps:
            self._seen.append(logs["loss"])
        if len(self._seen) >= self.num_steps:
            self.run.request_stop("the lr sweep is complete")  # takes effect after this batch

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if not self._seen or self.run.stop_requested:
            return
        values = torch.stack(self._seen).float().cpu().numpy()  # one wait per epoch
        finite = values[np.isfinite(values)]
        if finite.size < values.size or (finite.size and values[-1] > self.diverge_factor * finite.min()):
            self.run.request_stop("the loss diverged")


def _model_copy(model: nn.Module) -> nn.Module:
    from trainlab.models import Sequential

    if isinstance(model, Sequential):
        try:
            config = model.get_config()
        except InputError:
            return copy.deepcopy(model)
        config.pop("input_shape", None)  # unbuilt: the engine builds it under the run's seed
        config.pop("scaler", None)
        return Sequential.from_config(config)
    return copy.deepcopy(model)


def _optimizer_factory(optimizer: Any, start_lr: float) -> tuple[Any, str]:
    """An optimizer spec like `optimizer` with its lr set to `start_lr` (the original is not changed)."""
    if isinstance(optimizer, torch.optim.Optimizer):
        cls, defaults = type(optimizer), {**optimizer.defaults, "lr": start_lr}
        return (lambda params: cls(params, **defaults)), cls.__name__
    if isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer):
        built: Any = optimizer
        return (lambda params: built(params, lr=start_lr)), optimizer.__name__
    if isinstance(optimizer, str):
        return {"name": optimizer, "lr": start_lr}, optimizer
    if isinstance(optimizer, dict):
        if "name" not in optimizer:
            raise InputError("lr_find: the optimizer table needs a name, e.g. {'name': 'sgd', 'momentum': 0.9}")
        table = {**optimizer, "lr": start_lr}
        shown = ", ".join(f"{k}={v}" for k, v in optimizer.items() if k not in ("name", "lr"))
        return table, str(optimizer["name"]) + (f" ({shown})" if shown else "")
    raise InputTypeError(f"lr_find: optimizer must be a name, a settings table, a torch optimizer or its "
                         f"class, got {type(optimizer).__name__}")


def _smooth(values: np.ndarray, beta: float) -> np.ndarray:
    """Bias-corrected exponential moving average; NaN from the first non-finite value on."""
    out = np.full(values.shape, np.nan)
    average = 0.0
    for i, value in enumerate(values):
        if not math.isfinite(value):
            break
        average = beta * average + (1 - beta) * value
        out[i] = average / (1 - beta ** (i + 1))
    return out


def _cut_divergence(curve: np.ndarray, factor: float) -> tuple[np.ndarray, int | None]:
    """The curve with NaN from its divergence point on, and that point's index."""
    best = math.inf
    for i, value in enumerate(curve):
        if not math.isfinite(value) or value > factor * best:
            cut = curve.copy()
            cut[i:] = np.nan
            return cut, i
        best = min(best, value)
    return curve, None


@dataclass(frozen=True)
class _Analysis:
    suggestion: float | None
    min_index: int | None
    too_low_end: int | None
    too_high_start: int | None
    divergence: int | None
    slope: np.ndarray


def _slope(curve: np.ndarray, logs: np.ndarray) -> np.ndarray:
    """d curve / d log10(lr) as a centred difference over a window of 5% of the points (at least 2)."""
    count = curve.size
    width = max(2, count // 20)
    slope = np.full(count, np.nan)
    for i in range(count):
        a, b = max(0, i - width), min(count - 1, i + width)
        if b > a:
            slope[i] = (curve[b] - curve[a]) / (logs[b] - logs[a])
    return slope


def _analyse(lrs: np.ndarray, curve: np.ndarray, climb: float, diverge: float) -> _Analysis:
    cut, divergence = _cut_divergence(curve, diverge)
    valid = np.isfinite(cut)
    slope = np.full(curve.shape, np.nan)
    if valid.sum() < 5:
        return _Analysis(None, None, None, None, divergence, slope)
    end = int(np.nonzero(valid)[0][-1]) + 1
    slope[:end] = _slope(cut[:end], np.log10(lrs[:end]))
    lowest = int(np.nanargmin(cut[:end]))
    # The starting level over the first 10% of the sweep, so that early noise does not count as progress.
    start_loss, low_loss = float(np.median(cut[:max(1, end // 10)])), float(cut[lowest])
    drop = start_loss - low_loss
    level = start_loss - 0.1 * drop
    # "Too low" ends where the loss falls below 10% of its drop for good (noise may cross it earlier).
    above = [i for i in range(lowest + 1) if cut[i] >= level]
    too_low_end = min(above[-1] + 1, lowest) if above else 0
    too_high_start = next((i for i in range(lowest, end) if cut[i] > climb * low_loss), None)
    if too_high_start is None and divergence is not None:
        too_high_start = divergence
    window = range(too_low_end, lowest + 1)
    suggestion = None
    if len(window) >= 2:
        steepest = min(window, key=lambda i: slope[i])
        suggestion = float(min(lrs[steepest], lrs[lowest] / 10.0))
    return _Analysis(suggestion, lowest, too_low_end, too_high_start, divergence, slope)


class LRFinder:
    """The range test's settings; `run(model, data, optimizer)` returns an `LRFinderResult`."""

    def __init__(self, *, start_lr: float = 1e-6, end_lr: float = 10.0, num_steps: int = 200,
                 num_seeds: int = 3, batch_size: int = 32, beta: float = 0.9,
                 climb_factor: float = 1.5, diverge_factor: float = 4.0) -> None:
        self.start_lr = check.positive("lr_find: start_lr", start_lr)
        self.end_lr = check.positive("lr_find: end_lr", end_lr)
        if self.end_lr <= self.start_lr:
            raise InputError(f"lr_find: end_lr ({end_lr}) must be larger than start_lr ({start_lr}); the sweep "
                             "grows the lr from start_lr to end_lr")
        self.num_steps = check.int_at_least("lr_find: num_steps", num_steps, 10)
        self.num_seeds = check.int_at_least("lr_find: num_seeds", num_seeds, 1)
        self.batch_size = check.int_at_least("lr_find: batch_size", batch_size, 1)
        if not 0.0 <= beta < 1.0:
            raise InputError(f"lr_find: beta must be in [0, 1), got {beta}; it is the moving average's "
                             "weight on the past, e.g. 0.9")
        self.beta = float(beta)
        self.climb_factor = check.at_least("lr_find: climb_factor", climb_factor, 1.0)
        self.diverge_factor = check.at_least("lr_find: diverge_factor", diverge_factor, self.climb_factor)

    def sweep(self) -> np.ndarray:
        """The lr of each step: start_lr * (end_lr / start_lr) ** (step / (num_steps - 1))."""
        return np.asarray(self.start_lr * (self.end_lr / self.start_lr) **
                          (np.arange(self.num_steps) / (self.num_steps - 1)), dtype=float)

    def run(self, model: nn.Module, data: Any, optimizer: Any = "sgd", *, loss: Any = "auto",
            task: str | None = None, seed: int = 0, device: str = "auto") -> LRFinderResult:
        from trainlab import engine
        from trainlab.stacked import MemberConfig, fit_members

        factory, label = _optimizer_factory(optimizer, self.start_lr)
        lrs = self.sweep()
        ratio, last = self.end_lr / self.start_lr, self.num_steps - 1

        def multiplier(step: int) -> float:
            return float(ratio ** (step / last)) if step <= last else 0.0

        n = data.x.shape[0]
        steps_per_epoch = math.ceil(n / self.batch_size)
        num_epochs = math.ceil(self.num_steps / steps_per_epoch)
        seeds = [seed + k for k in range(self.num_seeds)]
        losses = np.full((self.num_seeds, self.num_steps), np.nan)
        # The seeds are members of one stacked run (the engine's plan decides whether they share a pass;
        # each member's losses equal its run alone), so the band costs about one run.
        members = [MemberConfig(seed=member_seed, optimizer=factory, schedule=multiplier,
                                callbacks=(_SweepEnd(self.num_steps, self.diverge_factor),))
                   for member_seed in seeds]
        histories = fit_members(_model_copy(model), members, engine.TrainData(data.x, data.y), loss=loss,
                                task=task, batch_size=self.batch_size, num_epochs=num_epochs, device=device,
                                divergence_factor=None, record_steps=True)
        for k, history in enumerate(histories):
            values = np.asarray(history.steps.get("loss", [])[: self.num_steps], dtype=float)
            losses[k, :values.size] = values
        return self.analyse(label, lrs, losses, seeds)

    def analyse(self, label: str, lrs: np.ndarray, losses: np.ndarray, seeds: Sequence[int]) -> LRFinderResult:
        """Smooth, band, zones and suggestion from raw per-seed batch losses (seeds x steps)."""
        smoothed = np.stack([_cut_divergence(_smooth(row, self.beta), self.diverge_factor)[0] for row in losses])
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                median = np.nanmedian(smoothed, axis=0)
                low, high = np.nanmin(smoothed, axis=0), np.nanmax(smoothed, axis=0)
        # The median curve stops where half the seeds have diverged.
        alive = np.isfinite(smoothed).sum(axis=0)
        median[alive * 2 < len(seeds)] = np.nan
        analysis = _analyse(lrs, median, self.climb_factor, self.diverge_factor)
        per_seed = [_analyse(lrs, row, self.climb_factor, self.diverge_factor).suggestion for row in smoothed]
        seed_suggestions = [float(s) for s in per_seed if s is not None]
        zones: dict[str, tuple[float, float]] = {}
        reasons: list[str] = []
        end_index = (analysis.divergence if analysis.divergence is not None else len(lrs)) - 1
        if analysis.min_index is not None and analysis.too_low_end is not None:
            zones["too low"] = (float(lrs[0]), float(lrs[analysis.too_low_end]))
            zones["good"] = (float(lrs[analysis.too_low_end]), float(lrs[analysis.min_index]))
            if analysis.too_high_start is not None:
                zones["too high"] = (float(lrs[analysis.too_high_start]), float(lrs[-1]))
        finite = median[np.isfinite(median)]
        drop = float(finite[0] - finite.min()) if finite.size else 0.0
        if not finite.size or drop < 0.1 * abs(float(finite[0])):
            reasons.append(f"the curve is flat: the smoothed loss falls by {drop:.3g}, less than 10% of its "
                           "start, so no lr in the sweep trains well (check the data, the loss, or widen the "
                           "sweep)")
        if analysis.suggestion is None:
            reasons.append("the good zone is too short to find a slope (the loss diverges right after it "
                           "starts falling: lower start_lr, or use more steps)")
        if len(seed_suggestions) >= 2:
            spread = math.log10(max(seed_suggestions) / min(seed_suggestions))
            if spread > 1.0:
                reasons.append(f"the seeds disagree: their own suggestions span {spread:.1f} decades "
                               f"({min(seed_suggestions):.2g} to {max(seed_suggestions):.2g})")
        if analysis.suggestion is not None and drop > 0:
            at = int(np.argmin(np.abs(lrs - analysis.suggestion)))
            width = float(high[at] - low[at])
            if math.isfinite(width) and width > 0.5 * drop:
                reasons.append(f"the band is wide at the suggestion: the seeds' smoothed losses differ by "
                               f"{width:.3g}, more than half the loss's drop ({drop:.3g})")
        weak = bool(reasons)
        reasoning = self._reasoning(label, lrs, median, analysis, len(seeds), end_index)
        if weak:
            reasoning += " The suggestion is weak: " + "; ".join(reasons) + "."
        return LRFinderResult(
            optimizer=label, lrs=lrs, losses=losses, smoothed=smoothed, median=median, low=low, high=high,
            slope=analysis.slope, seeds=list(seeds), suggestion=analysis.suggestion,
            min_lr=None if analysis.min_index is None else float(lrs[analysis.min_index]),
            divergence_lr=None if analysis.divergence is None else float(lrs[analysis.divergence]),
            zones=zones, reasoning=reasoning, weak=weak, weak_reasons=reasons, seed_suggestions=seed_suggestions,
            climb_factor=self.climb_factor, diverge_factor=self.diverge_factor)

    def _reasoning(self, label: str, lrs: np.ndarray, median: np.ndarray, analysis: _Analysis, seeds: int,
                   end_index: int) -> str:
        if analysis.min_index is None or analysis.suggestion is None:
            return f"{label}: no lr could be suggested from the median of {seeds} seeds."
        lowest = float(lrs[analysis.min_index])
        first = int(analysis.too_low_end or 0)
        steepest = int(np.nanargmin(analysis.slope[first:analysis.min_index + 1])) + first
        parts = [f"{label}: over {seeds} seeds, the median smoothed loss falls fastest at lr "
                 f"{lrs[steepest]:.2g} ({analysis.slope[steepest]:.3g} per decade of lr) and is lowest at "
                 f"{lowest:.2g} ({median[analysis.min_index]:.3g})."]
        if analysis.too_high_start is not None:
            parts.append(f"Past {lrs[analysis.too_high_start]:.2g} it climbs above {self.climb_factor:g}x its "
                         "minimum (too high)")
        if analysis.divergence is not None:
            parts.append(f"and diverges (over {self.diverge_factor:g}x the minimum) at "
                         f"{lrs[analysis.divergence]:.2g}.")
        else:
            parts.append(f"(no divergence up to {lrs[end_index]:.2g}).")
        if analysis.suggestion < float(lrs[steepest]):
            parts.append(f"Suggested: {analysis.suggestion:.2g}, a tenth of the lr at the minimum, below the "
                         "steepest point: at the minimum the loss is about to climb.")
        else:
            parts.append(f"Suggested: {analysis.suggestion:.2g}, the steepest stable descent, at most a tenth "
                         "of the lr at the minimum.")
        return " ".join(parts)


def lr_find(model: nn.Module, data: Any, optimizer: Any = "sgd", *, start_lr: float = 1e-6, end_lr: float = 10.0,
            num_steps: int = 200, num_seeds: int = 3, batch_size: int = 32, loss: Any = "auto",
            seed: int = 0, scaling: Any = "auto", device: str = "auto") -> LRFinderResult:
    """Run the LR range test on copies of `model` (see the module docstring); the model is not changed.

    Args:
        model: a trainlab Sequential (rebuilt per seed) or any nn.Module (deep-copied).
        data: a bundled data set's name, a (x, y) pair, a Dataset or a `TrainData`; scaled as
            `trainlab.fit` scales it (`scaling`), unless it is already a `TrainData`.
        optimizer: a name, a settings table, a torch optimizer (its class and settings are used;
            the object itself is not touched) or an optimizer class.
        start_lr, end_lr, num_steps: the exponential sweep.
        num_seeds: repeats for the band.
        batch_size: the batch size of the run the lr is for.
        loss: the loss ("auto" picks it from the task).
        seed: the first seed; the others follow it.
    """
    from trainlab import engine
    from trainlab.api import as_model, prepare
    from trainlab.datasets import as_dataset

    finder = LRFinder(start_lr=start_lr, end_lr=end_lr, num_steps=num_steps, num_seeds=num_seeds,
                      batch_size=batch_size)
    task = None
    if not isinstance(data, engine.TrainData):
        dataset = as_dataset(data, source="data")
        task = dataset.task
        data = prepare(dataset, validation_split=None, scaling=scaling).data
    return finder.run(as_model(model), data, optimizer, loss=loss, task=task, seed=seed, device=device)
