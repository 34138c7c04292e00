"""Callbacks: observe and steer the training loop, with Keras's hook names and order.

Hook order (see `trainlab.engine`):

    on_train_begin(logs)
      for each epoch:  on_epoch_begin(epoch, logs)
        for each batch:  on_batch_begin(batch, logs)  /  on_batch_end(batch, logs)
        (validation)
      on_epoch_end(epoch, logs)          logs: loss, metrics, val_loss, val_<metric>, lr
    on_train_end(logs)                   always runs, also after a stop or an error

A callback sees `self.model` and `self.run` (a `RunState`: epoch, step,
history, lr). It stops training by asking: `self.run.request_stop(reason)` or,
as in Keras, `self.model.stop_training = True`; training ends after the current
epoch. Batch logs hold ``{"loss": Tensor}``: a 0-d tensor, so that the loop
never waits for the device unless a callback reads the value.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from trainlab import check
from trainlab.errors import InputError


@dataclass
class RunState:
    """What a callback may know about the run in progress."""

    model: nn.Module
    num_epochs: int
    steps_per_epoch: int
    epoch: int = 0
    step: int = 0
    lr: float = 0.0
    history: dict[str, list[float]] = field(default_factory=dict)
    stop_reason: str | None = None
    stopped_epoch: int | None = None
    optimizer: Any = None  # the torch optimizer; callbacks that steer the lr set its param_groups

    def request_stop(self, reason: str) -> None:
        """Ask the loop to stop after the current epoch, saying why."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self.model.stop_training = True  # type: ignore[assignment]


class Callback:
    """Base class; override the hooks you need (Keras signatures)."""

    model: nn.Module
    run: RunState
    params: dict[str, Any]

    def set_model(self, model: nn.Module) -> None:
        self.model = model

    def set_run(self, run: RunState) -> None:
        self.run = run

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None: ...
    def on_train_end(self, logs: dict[str, Any] | None = None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None: ...
    def on_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None: ...
    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None: ...

    # Keras aliases, so Keras callbacks written against train_batch hooks work too.
    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.on_batch_end(batch, logs)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def _overrides(callback: Callback, *hooks: str) -> bool:
    # A hook counts when the class overrides it or the instance sets it (LambdaCallback does).
    return any(h in vars(callback) or getattr(type(callback), h) is not getattr(Callback, h) for h in hooks)


class CallbackList:
    """Calls each hook on every callback in order; skips batch hooks nobody overrides."""

    def __init__(self, callbacks: Iterable[Callback], *, model: nn.Module, run: RunState,
                 params: dict[str, Any]) -> None:
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            cb.set_model(model)
            cb.set_run(run)
            cb.set_params(params)
        self._batch_begin = [cb for cb in self.callbacks
                             if _overrides(cb, "on_batch_begin", "on_train_batch_begin")]
        self._batch_end = [cb for cb in self.callbacks
                           if _overrides(cb, "on_batch_end", "on_train_batch_end")]
        self.has_batch_hooks = bool(self._batch_begin or self._batch_end)

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        for cb in self.callbacks:
            cb.on_train_begin(logs)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        for cb in self.callbacks:
            cb.on_train_end(logs)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)

    def on_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        for cb in self._batch_begin:
            cb.on_train_batch_begin(batch, logs)

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        for cb in self._batch_end:
            cb.on_train_batch_end(batch, logs)


def as_callback_list(callbacks: Callback | Iterable[Callback] | None) -> list[Callback]:
    """`callbacks=` accepts one callback, a list of them, or None."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback):
        return [callbacks]
    items = list(callbacks)
    for item in items:
        if not isinstance(item, Callback):
            raise InputError(
                f"callbacks must be trainlab.callbacks.Callback objects, got {type(item).__name__}. "
                "Subclass Callback, or use LambdaCallback(on_epoch_end=...) for a function."
            )
    return items


class History(Callback):
    """Records the per-epoch logs; `fit` returns it. `.history` maps each key to a list."""

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.stop_reason: str | None = None
        self.seed: int | None = None
        self.params: dict[str, Any] = {}
        # Filled in by the entry point that trained: the trained model, the recipe it used,
        # the fitted input scaler, the data set's name and the trainlab version.
        self.model: Any = None
        self.recipe: Any = None
        self.scaler: Any = None
        self.dataset: str | None = None
        self.version: str | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)

    def __repr__(self) -> str:
        keys = ", ".join(self.history)
        return f"History(epochs={len(self.epoch)}, keys=[{keys}])"


def _direction(monitor: str, mode: str, who: str) -> str:
    if mode != "auto":
        return mode
    base = monitor.removeprefix("val_")
    if base in ("loss", "mse", "rmse", "mae", "penalty", "ece") or base.endswith("loss") or base.endswith("error"):
        return "min"
    if base in ("accuracy", "acc", "precision", "recall", "f1", "auc", "r2", "top_k_accuracy") or \
            base.endswith("accuracy"):
        return "max"
    raise InputError(
        f"{who} received monitor='{monitor}' and cannot tell whether it should be minimized or maximized. "
        "Pass mode='max' to stop on the highest value, or mode='min' for the lowest."
    )


class EarlyStopping(Callback):
    """Stop training when a monitored value has stopped improving (Keras 3 semantics).

    Each epoch from `start_from_epoch` on counts as "waiting" unless the value
    beats the best so far by more than `min_delta`; training stops when the
    wait reaches `patience` (never at epoch 0). With `baseline`, the wait is
    only reset by values that beat the baseline too. With
    `restore_best_weights`, the weights of the best epoch are put back when
    training ends.

    Example:
        >>> from trainlab.callbacks import drive_epochs
        >>> stopper = EarlyStopping(monitor="val_loss", patience=2)
        >>> drive_epochs(stopper, {"val_loss": [1.0, 0.8, 0.9, 0.85, 0.95]})
        3
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0,
                 verbose: int = 0, mode: str = "auto", baseline: float | None = None,
                 restore_best_weights: bool = False, start_from_epoch: int = 0) -> None:
        check.choice("EarlyStopping.mode", mode, ("auto", "min", "max"))
        check.int_at_least("EarlyStopping.patience", patience, 0,
                           "Patience counts epochs without improvement; use 0 to stop at the first one.")
        check.int_at_least("EarlyStopping.start_from_epoch", start_from_epoch, 0)
        check.number("EarlyStopping.min_delta", min_delta)
        if baseline is not None:
            check.number("EarlyStopping.baseline", baseline)
        self.monitor, self.mode, self.patience, self.verbose = monitor, mode, patience, verbose
        self.min_delta = abs(float(min_delta))
        self.baseline, self.restore_best_weights = baseline, restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.direction: str | None = None
        self.best: float = math.inf
        self.wait = 0
        self.stopped_epoch = 0
        self.best_epoch = 0
        self.best_weights: dict[str, torch.Tensor] | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.wait, self.stopped_epoch, self.best_epoch, self.best_weights = 0, 0, 0, None

    def _improves(self, value: float, reference: float) -> bool:
        if self.direction == "min":
            return value + self.min_delta < reference
        return value - self.min_delta > reference

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.direction is None:
            self.direction = _direction(self.monitor, self.mode, "EarlyStopping")
            self.best = math.inf if self.direction == "min" else -math.inf
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(f"EarlyStopping is monitoring '{self.monitor}', which is not in the logs. "
                          f"Available: {', '.join(logs or {})}", stacklevel=2)
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = _copy_weights(self.model)
            self.best_epoch = epoch
        self.wait += 1
        if self._improves(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = _copy_weights(self.model)
            if self.baseline is None or self._improves(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            reason = (f"{self.monitor} did not improve for {self.wait} epochs "
                      f"(best {self.best:.4g} at epoch {self.best_epoch + 1})")
            if hasattr(self, "run"):
                self.run.request_stop(reason)
            else:
                self.model.stop_training = True  # type: ignore[assignment]

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict[str, Any]:
        return {"wait": self.wait, "best": self.best, "best_epoch": self.best_epoch,
                "stopped_epoch": self.stopped_epoch, "direction": self.direction,
                "best_weights": self.best_weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.wait, self.best, self.best_epoch = state["wait"], state["best"], state["best_epoch"]
        self.stopped_epoch, self.direction = state["stopped_epoch"], state["direction"]
        self.best_weights = state.get("best_weights")


def _copy_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class LambdaCallback(Callback):
    """A callback made of plain functions (Keras `LambdaCallback`)."""

    def __init__(self, on_epoch_begin: Callable[..., Any] | None = None,
                 on_epoch_end: Callable[..., Any] | None = None,
                 on_train_begin: Callable[..., Any] | None = None,
                 on_train_end: Callable[..., Any] | None = None,
                 on_batch_begin: Callable[..., Any] | None = None,
                 on_batch_end: Callable[..., Any] | None = None) -> None:
        for name, fn in (("on_epoch_begin", on_epoch_begin), ("on_epoch_end", on_epoch_end),
                         ("on_train_begin", on_train_begin), ("on_train_end", on_train_end),
                         ("on_batch_begin", on_batch_begin), ("on_batch_end", on_batch_end)):
            if fn is not None:
                setattr(self, name, fn)


class ProgressBar(Callback):
    """Shows epochs done, loss, metrics and time left (rich), or one line per epoch.

    `verbose=1` draws a live bar; `verbose=2` prints one line per epoch, like Keras.
    """

    def __init__(self, verbose: int = 1) -> None:
        self.verbose = verbose
        self._progress: Any = None
        self._task: Any = None
        self._start = 0.0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._start = time.perf_counter()
        if self.verbose == 1:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("epoch"), MofNCompleteColumn(), BarColumn(), TextColumn("{task.fields[logs]}"),
                TimeRemainingColumn(), transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task("fit", total=self.run.num_epochs,
                                                 completed=self.run.epoch, logs="")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        text = format_logs(logs or {})
        if self._progress is not None:
            self._progress.update(self._task, completed=epoch + 1, logs=text)
        elif self.verbose == 2:
            elapsed = time.perf_counter() - self._start
            print(f"Epoch {epoch + 1}/{self.run.num_epochs} - {elapsed:.1f}s - {text}", flush=True)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def format_logs(logs: dict[str, Any]) -> str:
    """'loss: 0.1234 - accuracy: 0.9500 - ...' (Keras's epoch line)."""
    parts = []
    for key, value in logs.items():
        if isinstance(value, float):
            parts.append(f"{key}: {value:.4g}" if key == "lr" else f"{key}: {value:.4f}")
    return " - ".join(parts)


def drive_epochs(callback: Callback, logs_per_epoch: dict[str, list[float]], *,
                 model: nn.Module | None = None) -> int | None:
    """Feed `callback` a scripted sequence of epoch logs; return the epoch at which it asked to stop.

    Used to check a callback's decisions against Keras's for the same monitored values.
    """
    model = model if model is not None else nn.Linear(1, 1)
    num_epochs = len(next(iter(logs_per_epoch.values())))
    run = RunState(model=model, num_epochs=num_epochs, steps_per_epoch=1)
    model.stop_training = False  # type: ignore[assignment]
    callbacks = CallbackList([callback], model=model, run=run, params={"epochs": num_epochs})
    callbacks.on_train_begin()
    stopped: int | None = None
    for epoch in range(num_epochs):
        run.epoch = epoch
        callbacks.on_epoch_begin(epoch)
        callbacks.on_epoch_end(epoch, {k: v[epoch] for k, v in logs_per_epoch.items()})
        if getattr(model, "stop_training", False):
            stopped = epoch
            break
    callbacks.on_train_end()
    return stopped


# Callbacks with modules of their own, importable from here as in Keras (keras.callbacks.X).
from trainlab.callbacks.checkpoint import ModelCheckpoint  # noqa: E402
from trainlab.callbacks.logs import CSVLogger, TensorBoard, TerminateOnNaN  # noqa: E402
from trainlab.callbacks.lr import LearningRateScheduler, ReduceLROnPlateau  # noqa: E402

__all__ = [
    "CSVLogger", "Callback", "CallbackList", "EarlyStopping", "History", "LambdaCallback",
    "LearningRateScheduler", "ModelCheckpoint", "ProgressBar", "ReduceLROnPlateau", "RunState",
    "TensorBoard", "TerminateOnNaN", "as_callback_list", "drive_epochs", "format_logs",
]
