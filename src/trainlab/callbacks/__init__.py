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
as in Keras, `self.model.stop_training = True`. Asked from `on_batch_end`,
training stops after that batch (Keras 3 checks after every batch); from
`on_epoch_end`, after the epoch. The stop flag lives in the run state: the loop
writes nothing on the user's module. Batch logs hold ``{"loss": Tensor}``: a
0-d tensor, so that the loop never waits for the device unless a callback reads
the value.
"""

from __future__ import annotations

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
    stop_requested: bool = False
    #: Whether the model's own ``stop_training`` attribute was already set when the run began
    #: (then only a change made during the run counts, as the loop never resets a user's module).
    model_flag_at_start: bool = False

    def request_stop(self, reason: str) -> None:
        """Ask the loop to stop after the current batch or epoch, saying why."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self.stop_requested = True

    def should_stop(self) -> bool:
        """Whether a stop was asked for: `request_stop`, or Keras's ``model.stop_training = True``."""
        if self.stop_requested:
            return True
        flag = getattr(self.model, "stop_training", False) is True
        return flag and not self.model_flag_at_start


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
        #: Per-step lists ("loss": each batch's loss, "lr") when the loop runs with record_steps=True.
        self.steps: dict[str, list[float]] = {}
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
    """'min' or 'max' for a monitored log key: `mode` if given, else the metric's own direction.

    The one rule trainlab uses (early stopping, plateau callbacks and schedules, checkpoints,
    study comparisons): losses and errors are minimized; a registered metric says its
    direction (`trainlab.metrics.direction_of`).
    """
    if mode != "auto":
        return mode
    from trainlab.metrics import direction_of

    found = direction_of(monitor)
    if found is not None:
        return found
    raise InputError(
        f"{who} received monitor='{monitor}' and cannot tell whether it should be minimized or maximized. "
        "Pass mode='max' to stop on the highest value, or mode='min' for the lowest."
    )


def improves(current: float, best: float | None, direction: str, min_delta: float = 0.0) -> bool:
    """Whether `current` beats `best` by more than `min_delta` (Keras 3's MonitorCallback rule).

    There is no best before the first monitored value, so the first value always counts as an
    improvement, even NaN (Keras 3.15 takes it as the best whatever it is).

    Example:
        >>> improves(float("nan"), None, "min"), improves(1.0, float("nan"), "min")
        (True, False)
    """
    if best is None:
        return True
    if direction == "min":
        return current + min_delta < best
    return current - min_delta > best


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
        self.best: float | None = None
        self.wait = 0
        self.stopped_epoch = 0
        self.best_epoch = 0
        self.best_weights: dict[str, torch.Tensor] | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.wait, self.stopped_epoch, self.best_epoch, self.best_weights = 0, 0, 0, None
        self.best = None

    def _improves(self, value: float, reference: float | None) -> bool:
        return improves(value, reference, self.direction or "min", self.min_delta)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.direction is None:
            self.direction = _direction(self.monitor, self.mode, "EarlyStopping")
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
            if self.baseline is None or improves(current, self.baseline, self.direction, self.min_delta):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            best = float("nan") if self.best is None else self.best
            reason = (f"{self.monitor} did not improve for {self.wait} epochs "
                      f"(best {best:.4g} at epoch {self.best_epoch + 1})")
            if hasattr(self, "run"):
                self.run.request_stop(reason)
            else:
                self.model.stop_training = True  # type: ignore[assignment]  # no run: Keras's own flag

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
    run = RunState(model=model, num_epochs=num_epochs, steps_per_epoch=1,
                   model_flag_at_start=getattr(model, "stop_training", False) is True)
    callbacks = CallbackList([callback], model=model, run=run, params={"epochs": num_epochs})
    callbacks.on_train_begin()
    stopped: int | None = None
    for epoch in range(num_epochs):
        run.epoch = epoch
        callbacks.on_epoch_begin(epoch)
        callbacks.on_epoch_end(epoch, {k: v[epoch] for k, v in logs_per_epoch.items()})
        if run.should_stop():
            stopped = epoch
            break
    callbacks.on_train_end()
    return stopped


# Callbacks with modules of their own, importable from here as in Keras (keras.callbacks.X).
from trainlab.callbacks.checkpoint import ModelCheckpoint  # noqa: E402
from trainlab.callbacks.logs import CSVLogger, TensorBoard, TerminateOnNaN  # noqa: E402
from trainlab.callbacks.lr import LearningRateScheduler, ReduceLROnPlateau  # noqa: E402
from trainlab.callbacks.progress import ProgressBar  # noqa: E402

__all__ = [
    "CSVLogger", "Callback", "CallbackList", "EarlyStopping", "History", "LambdaCallback",
    "LearningRateScheduler", "ModelCheckpoint", "ProgressBar", "ReduceLROnPlateau", "RunState",
    "TensorBoard", "TerminateOnNaN", "as_callback_list", "drive_epochs", "format_logs",
]
