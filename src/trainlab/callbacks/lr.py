"""Callbacks that steer the learning rate between epochs: ReduceLROnPlateau, LearningRateScheduler.

`PlateauRule` is the one plateau decision (Keras 3's ReduceLROnPlateau):
the callback applies it to the optimizer's lr, the ``plateau`` schedule
(`trainlab.schedules.Plateau`) to its lr multiplier.

Both set ``param_groups[i]["lr"]`` on the run's torch optimizer (``self.run.optimizer``)
and keep Keras 3's names, arguments and decisions. The lr the loop reports for
an epoch (``history.history["lr"]``) is the one its batches trained with, read
before ``on_epoch_end``: a change made at the end of epoch ``e`` shows up as the
lr of epoch ``e + 1``.

A recipe ``schedule`` and these callbacks do not mix: the loop applies a
schedule before every step as ``lr = base_lr * multiplier(step)``, which
overwrites whatever a callback set. Use a schedule *or* one of these callbacks.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from trainlab import check
from trainlab.callbacks import Callback, _direction, improves
from trainlab.errors import InputError, InputTypeError


def _optimizer(callback: Callback) -> Any:
    """The torch optimizer of the run in progress (set by the loop), or the model's, as in Keras."""
    run = getattr(callback, "run", None)
    optimizer = getattr(run, "optimizer", None) if run is not None else None
    if optimizer is None:
        optimizer = getattr(getattr(callback, "model", None), "optimizer", None)
    if optimizer is None or not hasattr(optimizer, "param_groups"):
        raise InputError(
            f"{type(callback).__name__} needs the run's torch optimizer to set its learning rate, "
            "but the run state has none. Pass the callback to trainlab.fit, Sequential.fit or "
            "trainlab.engine.train, which set run.optimizer before training begins."
        )
    return optimizer


@dataclass
class PlateauRule:
    """When to reduce on a plateau, epoch by epoch, as Keras 3's ReduceLROnPlateau decides.

    At each epoch end (`update`): while a cooldown runs, the epoch counts it
    down and resets the wait. An epoch improves when its value beats the best
    so far by more than `min_delta` (`trainlab.callbacks.improves`; the first
    value is the best whatever it is, NaN included); that resets the wait.
    Otherwise, outside a cooldown, the wait grows by one, and when it reaches
    `patience` the owner's `reduce` is called; if it reduced (the lr was above
    its floor) the cooldown starts and the wait restarts.

    Owners: `ReduceLROnPlateau` (reduces the optimizer's lr) and the
    ``plateau`` schedule (reduces its multiplier).

    Example:
        >>> rule, cuts = PlateauRule(direction="min", patience=1, min_delta=0.0, cooldown=0), []
        >>> for epoch, value in enumerate([float("nan"), 1.0, 0.5, 0.4]):
        ...     rule.update(value, lambda: cuts.append(epoch) is None)
        >>> cuts  # NaN stays the best (nothing beats it), so every later epoch waits and cuts
        [1, 2, 3]
    """

    direction: str
    patience: int
    min_delta: float
    cooldown: int
    best: float | None = None
    wait: int = 0
    cooldown_counter: int = 0

    def in_cooldown(self) -> bool:
        """Whether a reduction happened less than `cooldown` epochs ago."""
        return self.cooldown_counter > 0

    def update(self, current: float, reduce: Callable[[], bool]) -> None:
        """Take this epoch's monitored value; call `reduce()` (did it reduce?) when patience is used up."""
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if improves(current, self.best, self.direction, self.min_delta):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience and reduce():
                self.cooldown_counter = self.cooldown
                self.wait = 0

    def reset(self) -> None:
        self.best, self.wait, self.cooldown_counter = None, 0, 0

    def state_dict(self) -> dict[str, Any]:
        return {"wait": self.wait, "cooldown_counter": self.cooldown_counter, "best": self.best}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.wait = int(state["wait"])
        self.cooldown_counter = int(state["cooldown_counter"])
        self.best = None if state["best"] is None else float(state["best"])


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by `factor` when a monitored value stops improving (Keras 3).

    The decision is `PlateauRule`'s. At each epoch end: an epoch improves when the value beats the best so far by
    more than `min_delta` (``current < best - min_delta`` in min mode,
    ``current > best + min_delta`` in max mode); that resets the wait. While a
    cooldown runs, each epoch counts the cooldown down and resets the wait.
    Otherwise, outside a cooldown, the wait grows by one, and when it reaches
    `patience` every param group's lr becomes ``max(lr * factor, min_lr)``
    (groups already at `min_lr` are left alone), the cooldown starts and the
    wait restarts. A plateau often just means the steps are too large to go
    further down the valley; a smaller lr lets training settle into it.

    The new lr is the lr of the next epoch's batches, so history's ``lr`` shows
    it from epoch ``e + 1`` on. Do not combine with a recipe ``schedule``: the
    loop sets ``lr = base_lr * multiplier`` before every step, which undoes the
    reduction.

    Args:
        monitor: key of the epoch logs to watch ("val_loss", "loss", "val_accuracy", ...).
        factor: multiplier applied to the lr, in (0, 1): ``new_lr = lr * factor``.
        patience: epochs without improvement before the lr is reduced (0: at the first one).
        verbose: 1 prints a line at each reduction.
        mode: "min", "max", or "auto" (losses and errors are minimized, accuracies maximized).
        min_delta: smallest change that counts as an improvement (its absolute value is used).
        cooldown: epochs after a reduction during which the wait does not count.
        min_lr: lower bound of the lr.

    Raises:
        InputError: for a factor outside (0, 1), a negative patience, cooldown or min_lr, an
            unknown mode, or mode="auto" with a monitor whose direction cannot be told.

    Example:
        >>> import torch
        >>> from trainlab.callbacks import CallbackList, RunState
        >>> model = torch.nn.Linear(1, 1)
        >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> run = RunState(model=model, num_epochs=4, steps_per_epoch=1, optimizer=optimizer)
        >>> reduce = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1)
        >>> callbacks = CallbackList([reduce], model=model, run=run, params={})
        >>> callbacks.on_train_begin()
        >>> for epoch, loss in enumerate([1.0, 1.0, 1.0, 0.5]):
        ...     callbacks.on_epoch_end(epoch, {"loss": loss})
        ...     print(epoch, optimizer.param_groups[0]["lr"])
        0 0.1
        1 0.05
        2 0.025
        3 0.025
    """

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 verbose: int = 0, mode: str = "auto", min_delta: float = 1e-4, cooldown: int = 0,
                 min_lr: float = 0.0) -> None:
        if not isinstance(monitor, str):
            raise InputTypeError(f"ReduceLROnPlateau.monitor must be a key of the epoch logs such as "
                                 f"'val_loss', got {type(monitor).__name__} {monitor!r}")
        check.in_range("ReduceLROnPlateau.factor", factor, 0.0, 1.0, open_low=True, open_high=True,
                       hint="The lr is multiplied by factor at each reduction, so it must be below 1; "
                            "0.1 to 0.5 are usual.")
        check.int_at_least("ReduceLROnPlateau.patience", patience, 0,
                           "Patience counts epochs without improvement; use 0 to reduce at the first one.")
        check.int_at_least("ReduceLROnPlateau.cooldown", cooldown, 0)
        check.choice("ReduceLROnPlateau.mode", mode, ("auto", "min", "max"))
        check.number("ReduceLROnPlateau.min_delta", min_delta)
        check.at_least("ReduceLROnPlateau.min_lr", min_lr, 0.0)
        self.monitor, self.mode, self.verbose = monitor, mode, verbose
        self.factor, self.patience, self.cooldown = float(factor), patience, cooldown
        self.min_delta = abs(float(min_delta))
        self.min_lr = float(min_lr)
        # Resolved now, so that a monitor of unknown direction fails before training starts.
        self.direction = _direction(monitor, mode, "ReduceLROnPlateau")
        self.rule = PlateauRule(direction=self.direction, patience=patience, min_delta=self.min_delta,
                                cooldown=cooldown)
        self._restored = False

    @property
    def best(self) -> float | None:
        return self.rule.best

    @property
    def wait(self) -> int:
        return self.rule.wait

    @property
    def cooldown_counter(self) -> int:
        return self.rule.cooldown_counter

    def in_cooldown(self) -> bool:
        """Whether a reduction happened less than `cooldown` epochs ago."""
        return self.rule.in_cooldown()

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        # A state loaded for a resume survives the start of training; a fresh fit starts clean.
        if not self._restored:
            self.rule.reset()
        self._restored = False

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs if logs is not None else {}
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"ReduceLROnPlateau is conditioned on '{self.monitor}', which is not in the "
                          f"epoch logs. Available: {', '.join(logs)}.", stacklevel=2)
            return
        self.rule.update(float(current), lambda: self._reduce(epoch))

    def _reduce(self, epoch: int) -> bool:
        """Reduce every group's lr that is above `min_lr`; whether any was."""
        optimizer = _optimizer(self)
        reduced = False
        for group in optimizer.param_groups:
            old_lr = float(group["lr"])
            # Compared in float32, as Keras does: an lr that only differs from min_lr by
            # rounding has reached it.
            if np.float32(old_lr) > np.float32(self.min_lr):
                group["lr"] = max(old_lr * self.factor, self.min_lr)
                reduced = True
        if reduced and self.verbose > 0:
            new_lr = optimizer.param_groups[0]["lr"]
            print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
        return reduced

    def state_dict(self) -> dict[str, Any]:
        """The counters and best value; the reduced lr itself lives in the optimizer's state."""
        return self.rule.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rule.load_state_dict(state)
        self._restored = True


def _arity(schedule: Callable[..., Any]) -> int:
    """1 when `schedule` takes (epoch), 2 when it takes (epoch, lr); 0 when it takes neither."""
    try:
        signature = inspect.signature(schedule)
    except (TypeError, ValueError):
        return 2  # builtins without a signature: try (epoch, lr) as Keras does
    for arguments in ((0, 0.1), (0,)):
        try:
            signature.bind(*arguments)
        except TypeError:
            continue
        return len(arguments)
    return 0


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of each epoch from a function of the epoch (Keras 3).

    ``schedule(epoch, lr) -> new_lr`` gets the epoch (from 0) and the current lr;
    ``schedule(epoch) -> new_lr`` gets the epoch alone. The value is set on every
    param group before the epoch's first batch (a two-argument schedule is called
    once per group, with that group's lr, so relative rules such as
    ``lr * 0.9`` keep the groups' ratios). It is the per-epoch counterpart of a
    recipe ``schedule``, which acts per step; do not combine the two, the
    recipe's schedule overwrites the lr before every step.

    Args:
        schedule: a function (epoch) or (epoch, lr) returning the lr as a float.
        verbose: 1 prints the lr set at each epoch.

    Raises:
        InputError: if `schedule` is not callable or takes neither (epoch) nor (epoch, lr); during
            training, if it returns something other than a finite float >= 0.

    Example:
        >>> import torch
        >>> from trainlab.callbacks import CallbackList, RunState
        >>> model = torch.nn.Linear(1, 1)
        >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> run = RunState(model=model, num_epochs=3, steps_per_epoch=1, optimizer=optimizer)
        >>> halve = LearningRateScheduler(lambda epoch, lr: lr if epoch == 0 else lr * 0.5)
        >>> callbacks = CallbackList([halve], model=model, run=run, params={})
        >>> for epoch in range(3):
        ...     callbacks.on_epoch_begin(epoch)
        ...     print(epoch, optimizer.param_groups[0]["lr"])
        0 0.1
        1 0.05
        2 0.025
    """

    def __init__(self, schedule: Callable[..., float], verbose: int = 0) -> None:
        if not callable(schedule):
            raise InputTypeError(
                f"LearningRateScheduler.schedule must be a function (epoch) or (epoch, lr) returning the "
                f"lr, got {type(schedule).__name__} {schedule!r}. Example: "
                "LearningRateScheduler(lambda epoch, lr: lr * 0.9)."
            )
        arity = _arity(schedule)
        if arity == 0:
            raise InputError(
                f"LearningRateScheduler.schedule must take (epoch) or (epoch, lr), but {schedule!r} "
                f"takes {inspect.signature(schedule)}. Wrap it: lambda epoch, lr: ..."
            )
        self.schedule, self.verbose = schedule, verbose
        self._arity = arity
        self._set: float | None = None
        self._warned = False

    def _new_lr(self, epoch: int, lr: float) -> float:
        value = self.schedule(epoch, lr) if self._arity == 2 else self.schedule(epoch)
        # Keras accepts Python and numpy floats only; an int is more often a bug (lr=1) than meant.
        if isinstance(value, bool) or not isinstance(value, (float, np.floating)):
            raise InputTypeError(
                f"LearningRateScheduler.schedule must return the lr as a float, but at epoch {epoch} it "
                f"returned {type(value).__name__} {value!r}. Return float(...) from the schedule."
            )
        if not math.isfinite(value) or value < 0:
            raise InputError(
                f"LearningRateScheduler.schedule returned lr={value!r} at epoch {epoch}; an lr must be "
                "a finite number >= 0."
            )
        return float(value)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        optimizer = _optimizer(self)
        shared = None if self._arity == 2 else self._new_lr(epoch, float(optimizer.param_groups[0]["lr"]))
        for group in optimizer.param_groups:
            group["lr"] = shared if shared is not None else self._new_lr(epoch, float(group["lr"]))
        self._set = float(optimizer.param_groups[0]["lr"])
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {self._set}.")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        # logs["lr"] is the lr the epoch's batches trained with, read before any epoch-end callback
        # changed it; if it differs from what was set at the start, a per-step schedule overrode it.
        trained = (logs or {}).get("lr")
        if trained is None or self._set is None or self._warned:
            return
        if not math.isclose(float(trained), self._set, rel_tol=1e-12, abs_tol=0.0):
            self._warned = True
            warnings.warn(
                f"LearningRateScheduler set lr={self._set:.6g} at the start of epoch {epoch + 1}, but the "
                f"epoch ended with lr={float(trained):.6g}: something changed the lr between steps, "
                "usually a recipe schedule (applied before every step). Use either the recipe's schedule "
                "or LearningRateScheduler, not both.", stacklevel=2)
