"""Learning-rate schedules: the multiplier of the base lr before each optimizer step.

A schedule is an object with ``__call__(step) -> float``: the factor the
optimizer's base lr is multiplied by before update `step` (0-based count of
updates done). It also has ``state_dict()``/``load_state_dict()`` (empty for
the stateless ones) so that a resumed run continues exactly, and
``on_epoch_end(epoch, logs)``, which the engine calls after validation each
epoch (only `plateau` uses it).

Time. Every time setting (step_size, milestones, period, step_size_up, ...) is
counted in epochs, which may be fractional (0.5 = half an epoch). The `per`
setting says which clock a schedule reads: ``"epoch"`` reads whole epochs done
(``step // steps_per_epoch``), so the multiplier is constant within an epoch,
the textbook form of `step`, `multistep` and `exponential` (their default);
``"step"`` reads every update, the form of `cosine`, `linear`, `cyclic`,
`cosine_restarts` and `one_cycle` (their default).

Warmup. Any schedule built by `schedule` may carry ``warmup_epochs`` or
``warmup_steps`` (and ``warmup_start``): the spec
``{"name": "cosine", "warmup_epochs": 5}`` becomes
``with_warmup(cosine(...), warmup_steps=5 * steps_per_epoch)``. The inner
schedule's clock starts when the warmup ends, and schedules that span the run
(cosine, linear, one_cycle) span what is left of it, so cosine still reaches
its floor at the last step (as in optax, Keras's CosineDecay warmup and torch's
SequentialLR). A consequence to know: `step`/`multistep` times also count from
the end of the warmup (milestones [30, 60] after a 5-epoch warmup fall on
epochs 35 and 65).

Example:
    >>> s = schedule({"name": "cosine", "warmup_epochs": 1}, steps_per_epoch=4, num_epochs=3)
    >>> [round(s(step), 3) for step in range(12)]
    [0.0, 0.25, 0.5, 0.75, 1.0, 0.962, 0.854, 0.691, 0.5, 0.309, 0.146, 0.038]
"""

from __future__ import annotations

import bisect
import functools
import inspect
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch

from trainlab import check
from trainlab.errors import InputError, InputTypeError, did_you_mean
from trainlab.registry import Registry

__all__ = [
    "SCHEDULES",
    "Schedule",
    "schedule",
    "with_warmup",
    "plot_schedule",
    "Clock",
    "Constant",
    "StepDecay",
    "MultiStep",
    "Exponential",
    "Cosine",
    "Linear",
    "Cyclic",
    "CosineRestarts",
    "OneCycle",
    "Plateau",
    "WithWarmup",
    "FunctionSchedule",
    "TorchSchedule",
    "as_schedule",
]


@runtime_checkable
class Schedule(Protocol):
    """The learning-rate multiplier before optimizer update `step`, plus its resumable state."""

    def __call__(self, step: int) -> float: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


SCHEDULES: Registry[Callable[..., Schedule]] = Registry("schedule")

PERS = ("epoch", "step")
# Context keywords the caller supplies; a user may not set them in a spec.
CONTEXT = ("steps_per_epoch", "num_epochs", "total_steps", "base_lr")
WARMUP_KEYS = ("warmup_epochs", "warmup_steps", "warmup_start")
# Tolerance for counting whole periods: 0.1 epoch * 30 steps is 3.0000000000000004 steps.
_TICK = 1e-9


def schedule(
    spec: Any,
    *,
    steps_per_epoch: int,
    num_epochs: int,
    base_lr: float | None = None,
    source: str | None = None,
    optimizer: Any = None,
) -> Schedule:
    """Build the schedule a user described.

    Args:
        spec: None (constant), a name (``"cosine"``), a table ``{"name":
            "cosine", "alpha": 0.1, "warmup_epochs": 5}``, a `Schedule` object,
            a function ``step -> multiplier`` (wrapped so it has an empty state),
            or a `torch.optim.lr_scheduler` scheduler or factory (see `TorchSchedule`).
        steps_per_epoch: optimizer updates per epoch.
        num_epochs: epochs in the run; the run has steps_per_epoch * num_epochs updates.
        base_lr: the optimizer's lr; only needed by settings given as absolute
            learning rates (plateau's min_lr).
        source: where the spec came from, quoted in error messages.
        optimizer: the run's torch optimizer, for a torch scheduler factory.

    Warmup settings, accepted with every name (see the module docstring):
    ``warmup_epochs`` (may be fractional; rounded to the nearest step) or
    ``warmup_steps``, and ``warmup_start`` (the multiplier at step 0 as a
    fraction of the inner schedule's first value, default 0).

    Raises:
        InputError: unknown name or setting, invalid value, both warmup_epochs
            and warmup_steps given.

    Example:
        >>> s = schedule({"name": "step", "step_size": 2, "gamma": 0.5}, steps_per_epoch=10, num_epochs=6)
        >>> [s(step) for step in (0, 19, 20, 40)]
        [1.0, 1.0, 0.5, 0.25]
        >>> schedule({"name": "cosine", "alpha": 2}, steps_per_epoch=10, num_epochs=6)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        trainlab.errors.InputError: cosine: alpha must be in [0, 1], got 2. alpha is the final multiplier...
    """
    check.int_at_least("schedule: steps_per_epoch", steps_per_epoch, 1)
    check.int_at_least("schedule: num_epochs", num_epochs, 1)
    if spec is None:
        spec = "constant"
    if isinstance(spec, str):
        spec = {"name": spec}
    if isinstance(spec, Mapping):
        if "name" not in spec:
            raise InputError(
                f"a schedule given as a table needs a 'name' key{_from(source)}, got {dict(spec)!r}"
            )
        entry = SCHEDULES.entry(spec["name"], source=source)
        settings = {k: v for k, v in spec.items() if k != "name"}
        params = inspect.signature(entry.factory).parameters
        own = [n for n, p in params.items() if p.kind is p.KEYWORD_ONLY and n not in CONTEXT]
        allowed = own + [k for k in WARMUP_KEYS if k not in own]
        for key in settings:
            if key in CONTEXT:
                raise InputError(
                    f"{entry.name}: '{key}' is set by trainlab from the run (steps_per_epoch, num_epochs), "
                    f"not in the schedule's settings{_from(source)}. Remove it."
                )
            if key not in allowed:
                raise InputError(
                    f"schedule '{entry.name}' has no setting '{key}'{_from(source)}. "
                    f"Settings: {', '.join(allowed)}.{did_you_mean(key, allowed)}"
                )
        warmup = {k: settings.pop(k) for k in WARMUP_KEYS if k in settings and k not in own}
        total = steps_per_epoch * num_epochs
        warmup_steps = _warmup_steps(entry.name, warmup, steps_per_epoch)
        start = warmup.get("warmup_start")
        if start is not None:
            check.in_range(f"{entry.name}: warmup_start", start, 0, 1)
        if start is not None and not warmup_steps:
            raise InputError(
                f"{entry.name}: warmup_start={start} needs warmup_epochs or warmup_steps > 0; "
                f"add one, or remove warmup_start."
            )
        # The inner schedule runs for what is left after the warmup (at least one step, so a
        # warmup as long as the run is allowed: the inner schedule then only sets its target).
        inner: Schedule = SCHEDULES.build(
            {"name": entry.name, **settings}, source=source, steps_per_epoch=steps_per_epoch,
            num_epochs=num_epochs, total_steps=max(total - warmup_steps, 1), base_lr=base_lr,
        )
        if warmup_steps:
            return with_warmup(inner, warmup_steps=warmup_steps,
                               warmup_start=0.0 if start is None else start)
        return inner
    if is_torch_scheduler(spec) or is_scheduler_factory(spec):
        spec = TorchSchedule(spec, optimizer=optimizer)
    if isinstance(spec, TorchSchedule):
        if optimizer is not None:
            spec.optimizer_source = optimizer
        spec.base_lr = base_lr
        return spec
    if isinstance(spec, Schedule):
        return spec
    if callable(spec):
        return FunctionSchedule(spec)
    raise InputTypeError(
        f"schedule{_from(source)} must be a name (one of {', '.join(SCHEDULES.names())}), a table with a "
        f"'name' key, or a function step -> multiplier, got {type(spec).__name__} {spec!r}"
    )


def with_warmup(inner: Schedule, *, warmup_steps: int, warmup_start: float = 0.0) -> WithWarmup:
    """Precede `inner` with a linear warmup of `warmup_steps` updates.

    The multiplier rises linearly from ``warmup_start * inner(0)`` at step 0
    towards ``inner(0)``, which it reaches at step `warmup_steps`; from there
    on it is ``inner(step - warmup_steps)``: the inner schedule's clock starts
    when the warmup ends. Large-batch and adaptive-optimizer training use it
    because the first steps, taken with random weights and unreliable moment
    estimates, are the ones most likely to diverge (Goyal et al. 2017).

    Args:
        inner: the schedule that follows.
        warmup_steps: length of the warmup, in optimizer updates (>= 0).
        warmup_start: starting fraction in [0, 1]; 0 (the default, as in optax
            and Hugging Face) makes update 0 a no-op.

    Example:
        >>> s = with_warmup(Constant(), warmup_steps=4)
        >>> [s(step) for step in range(6)]
        [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    """
    check.int_at_least("with_warmup: warmup_steps", warmup_steps, 0)
    check.in_range("with_warmup: warmup_start", warmup_start, 0, 1)
    return WithWarmup(inner=inner, warmup_steps=warmup_steps, warmup_start=float(warmup_start))


# ---------------------------------------------------------------------------
# Schedule objects


@dataclass(frozen=True)
class Clock:
    """How a schedule reads time: whole epochs (``per="epoch"``) or updates (``per="step"``).

    Schedules keep their time settings in ticks of their clock: epochs for
    "epoch", updates for "step".

    Example:
        >>> Clock("epoch", 10)(25), Clock("step", 10)(25), Clock("step", 10).ticks(2.5)
        (2.0, 25.0, 25.0)
    """

    per: str
    steps_per_epoch: int

    def __call__(self, step: int) -> float:
        return float(step // self.steps_per_epoch) if self.per == "epoch" else float(step)

    def ticks(self, epochs: float) -> float:
        """A duration in epochs, in this clock's ticks."""
        return float(epochs) if self.per == "epoch" else float(epochs) * self.steps_per_epoch

    def ticks_from_steps(self, steps: float) -> float:
        """A duration in updates, in this clock's ticks."""
        return steps / self.steps_per_epoch if self.per == "epoch" else float(steps)


class _Stateless:
    """Base of the schedules whose value depends on the step alone."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state:
            raise InputError(
                f"{type(self).__name__} keeps no state, got a state with keys {sorted(state)}. "
                f"The checkpoint was written by a different schedule."
            )

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any]) -> None:
        """Nothing to do: the value depends on the step alone."""


@dataclass(frozen=True)
class Constant(_Stateless):
    """Multiplier 1 at every step."""

    def __call__(self, step: int) -> float:
        return 1.0


@dataclass(frozen=True)
class StepDecay(_Stateless):
    """gamma ** (number of whole `step_size` periods done); step_size in clock ticks."""

    step_size: float
    gamma: float
    clock: Clock

    def __call__(self, step: int) -> float:
        return float(self.gamma ** _whole(self.clock(step) / self.step_size))


@dataclass(frozen=True)
class MultiStep(_Stateless):
    """gamma ** (number of milestones reached); milestones in clock ticks, sorted."""

    milestones: tuple[float, ...]
    gamma: float
    clock: Clock

    def __call__(self, step: int) -> float:
        return float(self.gamma ** bisect.bisect_right(self.milestones, self.clock(step) + _TICK))


@dataclass(frozen=True)
class Exponential(_Stateless):
    """gamma ** epochs, with epochs whole (per="epoch") or fractional (per="step")."""

    gamma: float
    clock: Clock

    def __call__(self, step: int) -> float:
        return float(self.gamma ** (self.clock(step) / self.clock.ticks(1.0)))


@dataclass(frozen=True)
class Cosine(_Stateless):
    """alpha + (1 - alpha) * 0.5 * (1 + cos(pi * t / horizon)), t capped at the horizon."""

    alpha: float
    horizon: float
    clock: Clock

    def __call__(self, step: int) -> float:
        t = min(self.clock(step), self.horizon)
        return self.alpha + (1.0 - self.alpha) * 0.5 * (1.0 + math.cos(math.pi * t / self.horizon))


@dataclass(frozen=True)
class Linear(_Stateless):
    """1 + (end_factor - 1) * t / horizon, t capped at the horizon."""

    end_factor: float
    horizon: float
    clock: Clock

    def __call__(self, step: int) -> float:
        t = min(self.clock(step), self.horizon)
        return 1.0 + (self.end_factor - 1.0) * t / self.horizon


@dataclass(frozen=True)
class Cyclic(_Stateless):
    """Smith's cyclical learning rate (torch CyclicLR's formula); times in clock ticks."""

    min_factor: float
    max_factor: float
    up: float
    down: float
    mode: str
    gamma: float
    clock: Clock

    def __call__(self, step: int) -> float:
        t = self.clock(step)
        total = self.up + self.down
        ratio = self.up / total
        cycle = math.floor(1 + t / total)
        x = 1.0 + t / total - cycle
        scale = x / ratio if x <= ratio else (x - 1) / (ratio - 1)
        height = (self.max_factor - self.min_factor) * scale
        if self.mode == "triangular":
            amplitude = 1.0
        elif self.mode == "triangular2":
            amplitude = 1 / (2.0 ** (cycle - 1))
        else:  # exp_range: decays with every tick, as torch's "iterations" scale mode
            amplitude = self.gamma ** t
        return self.min_factor + height * amplitude


@dataclass(frozen=True)
class CosineRestarts(_Stateless):
    """SGDR: cosine from 1 to alpha over a period, then restart; period grows by period_mult."""

    period: float
    period_mult: float
    alpha: float
    clock: Clock

    def __call__(self, step: int) -> float:
        t, length = self.clock(step), self.period
        if self.period_mult == 1.0:
            t -= _whole(t / length) * length
        else:
            # t lies in period n, which starts at period * (mult^n - 1) / (mult - 1) (closed form).
            n = _whole(math.log(t / length * (self.period_mult - 1) + 1, self.period_mult))
            t -= self.period * (self.period_mult**n - 1) / (self.period_mult - 1)
            length = self.period * self.period_mult**n
        t = min(max(t, 0.0), length)  # float noise at a restart
        return self.alpha + (1.0 - self.alpha) * 0.5 * (1.0 + math.cos(math.pi * t / length))


@dataclass(frozen=True)
class OneCycle(_Stateless):
    """Smith's 1cycle policy, phase by phase as torch's OneCycleLR; multiplier 1 at the peak."""

    horizon: float
    pct_start: float
    div_factor: float
    final_div_factor: float
    anneal: str
    three_phase: bool
    clock: Clock

    @functools.cached_property
    def phases(self) -> list[tuple[float, float, float]]:
        """(end tick, start multiplier, end multiplier) of each phase, as torch lays them out."""
        initial = 1.0 / self.div_factor
        final = initial / self.final_div_factor
        peak_at = self.pct_start * self.horizon - 1
        if self.three_phase:
            return [(peak_at, initial, 1.0), (2 * self.pct_start * self.horizon - 2, 1.0, initial),
                    (self.horizon - 1, initial, final)]
        return [(peak_at, initial, 1.0), (self.horizon - 1, 1.0, final)]

    def __call__(self, step: int) -> float:
        phases = self.phases
        t = min(self.clock(step), self.horizon - 1)
        start = 0.0
        for i, (end, low, high) in enumerate(phases):
            if t <= end or i == len(phases) - 1:
                # A phase shorter than one tick is already over (torch divides by zero here).
                pct = (t - start) / (end - start) if end > start else 1.0
                if self.anneal == "cos":
                    return high + (low - high) / 2.0 * (math.cos(math.pi * pct) + 1)
                return (high - low) * pct + low
            start = end
        raise AssertionError("unreachable: the last phase always returns")


class Plateau:
    """Reduce the multiplier by `factor` when `monitor` stops improving (Keras 3's ReduceLROnPlateau).

    The decision is `trainlab.callbacks.lr.PlateauRule`, the one that
    ReduceLROnPlateau makes; this schedule applies it to an lr multiplier
    instead of the optimizer's lr. State: the current `multiplier`, and the
    rule's `best` value seen, `wait` (epochs without improvement) and
    `cooldown_counter`.
    """

    _STATE: ClassVar[tuple[str, ...]] = ("multiplier", "best", "wait", "cooldown_counter")

    def __init__(self, *, monitor: str, factor: float, patience: int, mode: str, min_delta: float, cooldown: int,
                 floor: float, multiplier: float = 1.0) -> None:
        from trainlab.callbacks.lr import PlateauRule

        self.monitor, self.factor, self.floor, self.multiplier = monitor, factor, floor, multiplier
        self.rule = PlateauRule(direction=mode, patience=patience, min_delta=min_delta, cooldown=cooldown)

    @property
    def mode(self) -> str:
        return self.rule.direction

    @property
    def patience(self) -> int:
        return self.rule.patience

    @property
    def min_delta(self) -> float:
        return self.rule.min_delta

    @property
    def cooldown(self) -> int:
        return self.rule.cooldown

    @property
    def best(self) -> float | None:
        return self.rule.best

    @property
    def wait(self) -> int:
        return self.rule.wait

    @property
    def cooldown_counter(self) -> int:
        return self.rule.cooldown_counter

    def __call__(self, step: int) -> float:
        return self.multiplier

    def __repr__(self) -> str:
        return (f"Plateau(monitor={self.monitor!r}, factor={self.factor}, patience={self.patience}, "
                f"mode={self.mode!r}, min_delta={self.min_delta}, cooldown={self.cooldown}, floor={self.floor}, "
                f"multiplier={self.multiplier})")

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any]) -> None:
        """Update from this epoch's `logs[monitor]`, in Keras 3's order."""
        if self.monitor not in logs:
            raise InputError(
                f"plateau: monitor '{self.monitor}' is not among this epoch's logs "
                f"({', '.join(sorted(logs)) or 'none'}).{did_you_mean(self.monitor, list(logs))} "
                f"Monitor one of them (val_* needs validation data)."
            )
        self.rule.update(float(logs[self.monitor]), self._reduce)

    def _reduce(self) -> bool:
        # Keras compares lr > min_lr in float32; a relative 1e-9 absorbs float64 rounding.
        if self.multiplier > self.floor * (1 + 1e-9):
            self.multiplier = max(self.multiplier * self.factor, self.floor)
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"multiplier": self.multiplier, **self.rule.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if set(state) != set(self._STATE):
            raise InputError(
                f"plateau: a saved state needs the keys {', '.join(self._STATE)}, got {sorted(state)}. "
                f"The checkpoint was written by a different schedule."
            )
        self.multiplier = float(state["multiplier"])
        self.rule.load_state_dict(state)


@dataclass(frozen=True)
class WithWarmup:
    """A linear warmup, then `inner` on a clock that starts when the warmup ends (see `with_warmup`)."""

    inner: Schedule
    warmup_steps: int
    warmup_start: float = 0.0

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            fraction = self.warmup_start + (1.0 - self.warmup_start) * step / self.warmup_steps
            return fraction * self.inner(0)
        return self.inner(step - self.warmup_steps)

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any]) -> None:
        hook = getattr(self.inner, "on_epoch_end", None)
        if hook is not None:
            hook(epoch, logs)

    def state_dict(self) -> dict[str, Any]:
        return {"inner": self.inner.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if set(state) != {"inner"}:
            raise InputError(f"warmup: a saved state needs the key 'inner', got {sorted(state)}")
        self.inner.load_state_dict(state["inner"])


@dataclass(frozen=True)
class FunctionSchedule(_Stateless):
    """A user's function ``step -> multiplier``, given an empty state so it resumes like the others."""

    function: Callable[[int], float]

    def __call__(self, step: int) -> float:
        return float(self.function(step))


class TorchSchedule:
    """A `torch.optim.lr_scheduler` scheduler (an object or a factory) driving the learning rate.

    PyTorch users write ``scheduler.step()`` after each batch (OneCycleLR,
    CyclicLR) or after each epoch (StepLR, CosineAnnealingLR,
    ReduceLROnPlateau). Here `interval` says which: ``"step"`` steps the
    scheduler once per optimizer update, ``"epoch"`` once per epoch after
    validation (ReduceLROnPlateau is given ``val_loss``, or ``loss`` without
    validation data). Left out, it is ``"step"`` for OneCycleLR and CyclicLR,
    whose lengths are counted in batches, and ``"epoch"`` for the others.

    As a trainlab `Schedule`, it returns the multiplier of the base lr that
    reproduces the scheduler's lr for the first parameter group, so a run
    takes the same steps as the hand-written PyTorch loop. Its resumable state
    is the scheduler's own `state_dict`. A scheduler that gives its parameter
    groups different multipliers is refused: the engine applies one
    multiplier to every group.

    Args:
        scheduler: a built scheduler, or a factory ``optimizer -> scheduler``
            (an LRScheduler class, a `functools.partial` of one, or a function),
            called with the run's optimizer at the start of every fit.
        interval: ``"step"``, ``"epoch"`` or None (the scheduler's usual one).
        optimizer: where the run's torch optimizer will be found (a
            `trainlab.optimizers.Optimizer`), needed by a factory.

    Example:
        >>> import torch
        >>> w = torch.nn.Parameter(torch.zeros(1))
        >>> opt = torch.optim.SGD([w], lr=1.0)
        >>> s = TorchSchedule(torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5))
        >>> s.interval, s(0)
        ('epoch', 1.0)
        >>> opt.step()  # an epoch of training
        >>> s.on_epoch_end(0, {"loss": 1.0}); s(4)
        0.5
    """

    def __init__(self, scheduler: Any, *, interval: str | None = None, optimizer: Any = None) -> None:
        if interval is not None:
            check.choice("schedule_interval", interval, ("step", "epoch"))
        if not (is_torch_scheduler(scheduler) or callable(scheduler)):
            raise InputTypeError(
                f"a torch schedule must be a torch.optim.lr_scheduler object or a factory "
                f"optimizer -> scheduler, got {type(scheduler).__name__}"
            )
        self.spec = scheduler
        self.optimizer_source = optimizer
        self._interval = interval
        self.scheduler: Any = scheduler if is_torch_scheduler(scheduler) else None
        self._built_for: Any = None
        self.base_lr: float | None = None  # the lr the engine multiplies; set by `schedule`
        self.steps = 0  # scheduler.step() calls made in this run

    @property
    def interval(self) -> str:
        if self._interval is not None:
            return self._interval
        kind = self.scheduler if self.scheduler is not None else self.spec
        kind = getattr(kind, "func", kind)
        cls = kind if isinstance(kind, type) else type(kind)
        per_batch = (torch.optim.lr_scheduler.OneCycleLR, torch.optim.lr_scheduler.CyclicLR)
        return "step" if isinstance(cls, type) and issubclass(cls, per_batch) else "epoch"

    def _optimizer(self) -> Any:
        source = self.optimizer_source
        return getattr(source, "torch_optimizer", source)

    def _ready(self) -> Any:
        optimizer = self._optimizer()
        if is_torch_scheduler(self.spec):
            if optimizer is not None and self.spec.optimizer is not optimizer:
                raise InputError(
                    f"the {type(self.spec).__name__} scheduler was built on another optimizer than the one "
                    "being trained. Build it on the optimizer you pass (`optimizer=opt`), or pass a factory "
                    f"`lambda opt: {type(self.spec).__name__}(opt, ...)`."
                )
            return self.spec
        if optimizer is None:
            raise InputError("a scheduler factory needs the run's optimizer; give the schedule to compile() "
                             "or trainlab.fit together with the optimizer")
        if self.scheduler is None or self._built_for is not optimizer:
            built = self.spec(optimizer)
            if not is_torch_scheduler(built):
                raise InputTypeError(
                    f"the schedule factory must return a torch.optim.lr_scheduler object, got "
                    f"{type(built).__name__}. A function step -> multiplier is a trainlab schedule: "
                    "leave schedule_interval out for it."
                )
            self.scheduler, self._built_for, self.steps = built, optimizer, 0
        return self.scheduler

    def __call__(self, step: int) -> float:
        scheduler = self._ready()
        if self.interval == "step":
            with warnings.catch_warnings():
                # Fast-forwarding (initial_epoch) steps the scheduler without optimizer steps in between.
                warnings.filterwarnings("ignore", message=".*lr_scheduler.step.*")
                while self.steps < step:
                    scheduler.step()
                    self.steps += 1
        return self._factor(scheduler)

    def _factor(self, scheduler: Any) -> float:
        groups = scheduler.optimizer.param_groups
        bases = [g.get("initial_lr", g["lr"]) for g in groups]
        factors = [g["lr"] / b if b else 0.0 for g, b in zip(groups, bases)]
        if any(not math.isclose(f, factors[0], rel_tol=1e-9, abs_tol=1e-15) for f in factors[1:]):
            raise InputError(
                f"the {type(scheduler).__name__} scheduler gives the parameter groups different lr multipliers "
                f"({', '.join(f'{f:.4g}' for f in factors)}); trainlab applies one multiplier to every group. "
                "Use one max_lr/base_lr for all groups."
            )
        # The multiplier of the lr the engine read when the run started (the group's lr then).
        start = self.base_lr if self.base_lr else bases[0]
        return float(groups[0]["lr"] / start) if start else 0.0

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any]) -> None:
        if self.interval != "epoch":
            return
        scheduler = self._ready()
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            monitor = "val_loss" if "val_loss" in logs else "loss"
            scheduler.step(logs[monitor])
        else:
            scheduler.step()
        self.steps += 1

    def state_dict(self) -> dict[str, Any]:
        scheduler = self._ready()
        return {"scheduler": scheduler.state_dict(), "steps": self.steps}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        scheduler = self._ready()
        scheduler.load_state_dict(dict(state["scheduler"]))
        self.steps = int(state["steps"])


def as_schedule(spec: Any, interval: str | None = None, optimizer: Any = None) -> Any:
    """What `compile`/`trainlab.fit` keep as the schedule: torch schedulers wrapped in `TorchSchedule`.

    `interval` (``schedule_interval``) applies to torch schedulers only; the
    trainlab schedules say their clock with their `per` setting.
    """
    if is_torch_scheduler(spec) or is_scheduler_factory(spec, interval=interval):
        return TorchSchedule(spec, interval=interval, optimizer=optimizer)
    if interval is not None:
        check.choice("schedule_interval", interval, ("step", "epoch"))
        raise InputError(
            f"schedule_interval='{interval}' applies to torch.optim.lr_scheduler schedulers; a trainlab schedule "
            "says its clock with its own setting, e.g. {'name': 'step', 'per': 'epoch'}. Remove schedule_interval."
        )
    return spec


def is_torch_scheduler(value: Any) -> bool:
    """Whether `value` is a built `torch.optim.lr_scheduler` scheduler (ReduceLROnPlateau included)."""
    return isinstance(value, (torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.ReduceLROnPlateau))


def is_scheduler_factory(value: Any, *, interval: str | None = None) -> bool:
    """Whether a callable schedule is a factory ``optimizer -> torch scheduler``, not ``step -> multiplier``.

    It is when it is a scheduler class (or a `functools.partial` of one), when
    `schedule_interval` was given (only torch schedulers take one), or when its
    first parameter is called ``optimizer``, ``optim`` or ``opt``.
    """
    if is_torch_scheduler(value) or not callable(value):
        return False
    kind = getattr(value, "func", value)
    if isinstance(kind, type) and issubclass(
            kind, (torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)):
        return True
    if interval is not None:
        return True
    try:
        first = next(iter(inspect.signature(value).parameters), None)
    except (TypeError, ValueError):
        return False
    return first in ("optimizer", "optim", "opt")


# ---------------------------------------------------------------------------
# Registered schedules. Each factory takes its settings and the context keywords
# steps_per_epoch, num_epochs (and total_steps: the updates it will run for,
# steps_per_epoch * num_epochs unless a warmup comes first).


@SCHEDULES.register("constant", claim="A fixed learning rate is the baseline every schedule must beat.")
def constant() -> Constant:
    """Multiplier 1 throughout: the optimizer's lr as given.

    Example:
        >>> constant()(1000)
        1.0
    """
    return Constant()


@SCHEDULES.register(
    "step",
    claim="Dropping the lr by a factor every few epochs lets training settle into the minimum it has "
    "found (the ResNet recipe: x0.1 at fixed epochs).",
)
def step_decay(
    *,
    step_size: float | None = None,
    gamma: float = 0.1,
    per: str = "epoch",
    steps_per_epoch: int,
    num_epochs: int,
    total_steps: int | None = None,
) -> StepDecay:
    """Step decay: gamma ** floor(epoch / step_size).

    Registered as "step" (the function is named step_decay because `step`
    means the update counter everywhere else).

    Args:
        step_size: epochs between decays (may be fractional); None (the
            default) is a third of the run, so the lr drops twice.
        gamma: factor per decay, in (0, 1].
        per: "epoch" (default): constant within an epoch; "step": the same
            decay times, read every update (differs only for fractional step_size).

    Example:
        >>> s = step_decay(step_size=2, steps_per_epoch=10, num_epochs=6)
        >>> [s(step) for step in (0, 19, 20, 39, 40)]
        [1.0, 1.0, 0.1, 0.1, 0.010000000000000002]
    """
    name = "step"
    clock = _clock(name, per, steps_per_epoch)
    if step_size is None:
        step_size = _run_epochs(steps_per_epoch, num_epochs, total_steps) / 3
    check.positive(f"{name}: step_size", step_size, hint="step_size counts epochs between decays.")
    _gamma(name, gamma)
    return StepDecay(step_size=clock.ticks(step_size), gamma=float(gamma), clock=clock)


@SCHEDULES.register(
    "multistep",
    claim="Dropping the lr by a factor at chosen epochs settles training into the minimum it has found "
    "(He et al. 2016: x0.1 at epochs 30, 60, 90).",
)
def multistep(
    *,
    milestones: Sequence[float] | None = None,
    gamma: float = 0.1,
    per: str = "epoch",
    steps_per_epoch: int,
    num_epochs: int,
    total_steps: int | None = None,
) -> MultiStep:
    """Multi-step decay: gamma ** (number of milestones reached), as torch's MultiStepLR.

    Args:
        milestones: increasing epochs at which the lr is multiplied by gamma;
            None (the default) is 50% and 75% of the run (the usual CIFAR
            schedule; with per="epoch" a fractional milestone takes effect
            at the next whole epoch).
        gamma: factor per milestone, in (0, 1].
        per: "epoch" (default) or "step", as for `step`.

    Example:
        >>> s = multistep(milestones=[1, 3], steps_per_epoch=2, num_epochs=4)
        >>> [round(s(step), 4) for step in range(8)]
        [1.0, 1.0, 0.1, 0.1, 0.1, 0.1, 0.01, 0.01]
    """
    name = "multistep"
    clock = _clock(name, per, steps_per_epoch)
    if milestones is None:
        epochs = _run_epochs(steps_per_epoch, num_epochs, total_steps)
        milestones = [0.5 * epochs, 0.75 * epochs]
    if isinstance(milestones, (str, bytes)) or not isinstance(milestones, Sequence) or not milestones:
        raise InputTypeError(f"{name}: milestones must be a non-empty list of epochs, got {milestones!r}")
    values = [check.at_least(f"{name}: milestones[{i}]", m, 0) for i, m in enumerate(milestones)]
    if any(b <= a for a, b in zip(values, values[1:])):
        raise InputError(
            f"{name}: milestones must be strictly increasing, got {list(milestones)}. Sort them."
        )
    _gamma(name, gamma)
    return MultiStep(milestones=tuple(clock.ticks(m) for m in values), gamma=float(gamma), clock=clock)


@SCHEDULES.register(
    "exponential",
    claim="Multiplying the lr by gamma each epoch anneals it smoothly, trading early speed for late "
    "precision.",
)
def exponential(
    *,
    gamma: float = 0.95,
    per: str = "epoch",
    steps_per_epoch: int,
) -> Exponential:
    """Exponential decay: gamma ** epoch.

    Args:
        gamma: factor per epoch, in (0, 1]; the default 0.95 keeps about 21% of
            the lr after 30 epochs and 0.6% after 100.
        per: "epoch" (default): whole epochs, constant within an epoch (Keras's
            staircase=True); "step": fractional epochs, decaying every update.

    Example:
        >>> s = exponential(gamma=0.5, steps_per_epoch=2)
        >>> [s(step) for step in range(5)]
        [1.0, 1.0, 0.5, 0.5, 0.25]
        >>> exponential(gamma=0.5, per="step", steps_per_epoch=2)(1)
        0.7071067811865476
    """
    name = "exponential"
    clock = _clock(name, per, steps_per_epoch)
    _gamma(name, gamma)
    return Exponential(gamma=float(gamma), clock=clock)


@SCHEDULES.register(
    "cosine",
    claim="Annealing the lr along a half cosine spends long at high lr then settles smoothly, typically "
    "beating step decay with no milestones to tune (Loshchilov & Hutter 2017).",
)
def cosine(
    *,
    alpha: float = 0.0,
    per: str = "step",
    steps_per_epoch: int,
    num_epochs: int,
    total_steps: int | None = None,
) -> Cosine:
    """Cosine decay over the run, as Keras's CosineDecay: alpha + (1 - alpha) * 0.5 * (1 + cos(pi t / T)).

    T is the run's length (after any warmup); the multiplier is 1 at the first
    update and reaches alpha after the last.

    Args:
        alpha: final multiplier (the floor), in [0, 1].
        per: "step" (default): t counts updates; "epoch": t counts whole epochs
            (torch's CosineAnnealingLR stepped once per epoch).

    Example:
        >>> s = cosine(alpha=0.1, steps_per_epoch=5, num_epochs=2)
        >>> [round(s(step), 3) for step in (0, 5, 10)]
        [1.0, 0.55, 0.1]
    """
    name = "cosine"
    clock = _clock(name, per, steps_per_epoch)
    check.in_range(f"{name}: alpha", alpha, 0, 1,
                   hint="alpha is the final multiplier (the floor); 0 decays to zero.")
    horizon = clock.ticks_from_steps(_total(steps_per_epoch, num_epochs, total_steps))
    return Cosine(alpha=float(alpha), horizon=horizon, clock=clock)


@SCHEDULES.register(
    "warmup_cosine",
    claim="A linear warmup before cosine decay avoids the early divergence of large lrs with random "
    "weights and fresh adaptive moments (Goyal et al. 2017).",
)
def warmup_cosine(
    *,
    alpha: float = 0.0,
    warmup_epochs: float | None = None,
    warmup_steps: int | None = None,
    warmup_start: float = 0.0,
    per: str = "step",
    steps_per_epoch: int,
    num_epochs: int,
    total_steps: int | None = None,
) -> WithWarmup:
    """Linear warmup, then cosine decay to alpha over the rest of the run.

    Args:
        alpha: final multiplier of the cosine, in [0, 1].
        warmup_epochs: warmup length in epochs (rounded to the nearest step).
        warmup_steps: warmup length in updates (instead of warmup_epochs).
            With neither, the warmup is 10% of the run: it scales with run
            length, where a fixed 5 epochs (Goyal et al.) would swallow a short run.
        warmup_start: multiplier at step 0, in [0, 1].
        per: the cosine's clock, as for `cosine`.

    Example:
        >>> s = warmup_cosine(steps_per_epoch=10, num_epochs=2)
        >>> [round(s(step), 3) for step in (0, 1, 2, 3, 19)]
        [0.0, 0.5, 1.0, 0.992, 0.008]
    """
    name = "warmup_cosine"
    total = _total(steps_per_epoch, num_epochs, total_steps)
    settings = {k: v for k, v in (("warmup_epochs", warmup_epochs), ("warmup_steps", warmup_steps))
                if v is not None}
    warm = _warmup_steps(name, settings, steps_per_epoch) if settings else round(0.1 * total)
    inner = cosine(alpha=alpha, per=per, steps_per_epoch=steps_per_epoch, num_epochs=num_epochs,
                   total_steps=max(total - warm, 1))
    check.in_range(f"{name}: warmup_start", warmup_start, 0, 1)
    return WithWarmup(inner=inner, warmup_steps=warm, warmup_start=float(warmup_start))


@SCHEDULES.register(
    "linear",
    claim="Decaying the lr linearly to a final value over the run anneals as well as cosine in many "
    "settings, with one fewer shape to choose.",
)
def linear(
    *,
    end_factor: float = 0.0,
    per: str = "step",
    steps_per_epoch: int,
    num_epochs: int,
    total_steps: int | None = None,
) -> Linear:
    """Linear decay from 1 to `end_factor` over the run (torch's LinearLR from 1).

    Args:
        end_factor: final multiplier, >= 0; the default 0 decays to zero.
        per: "step" (default) or "epoch" (constant within an epoch).

    Example:
        >>> s = linear(end_factor=0.5, steps_per_epoch=2, num_epochs=2)
        >>> [s(step) for step in range(5)]
        [1.0, 0.875, 0.75, 0.625, 0.5]
    """
    name = "linear"
    clock = _clock(name, per, steps_per_epoch)
    check.at_least(f"{name}: end_factor", end_factor, 0, hint="end_factor is the final multiplier.")
    horizon = clock.ticks_from_steps(_total(steps_per_epoch, num_epochs, total_steps))
    return Linear(end_factor=float(end_factor), horizon=horizon, clock=clock)


@SCHEDULES.register(
    "cyclic",
    claim="Cycling the lr between bounds reaches good accuracy in fewer iterations than a fixed lr, with "
    "no decay to tune (Smith 2017).",
)
def cyclic(
    *,
    min_factor: float = 0.25,
    max_factor: float = 1.0,
    step_size_up: float = 4.0,
    step_size_down: float | None = None,
    mode: str = "triangular",
    gamma: float = 1.0,
    per: str = "step",
    steps_per_epoch: int,
) -> Cyclic:
    """Cyclical learning rate (Smith 2017), with torch CyclicLR's formula.

    The multiplier climbs linearly from min_factor to max_factor over
    step_size_up epochs, falls back over step_size_down, and repeats.

    Args:
        min_factor: bottom of the cycle, >= 0; 0.25, because Smith suggests a
            base lr 3 to 4 times below the maximum.
        max_factor: top of the cycle, >= min_factor; 1 makes the optimizer's lr the peak.
        step_size_up: epochs of the rising half (may be fractional); Smith
            advises 2 to 10 epochs' worth of updates, hence 4.
        step_size_down: epochs of the falling half; None = step_size_up.
        mode: "triangular" (constant amplitude), "triangular2" (amplitude
            halves each cycle), "exp_range" (amplitude times gamma ** tick).
        gamma: exp_range's decay per clock tick (per update with per="step",
            torch's meaning), in (0, 1].
        per: "step" (default) or "epoch" (constant within an epoch).

    Example:
        >>> s = cyclic(min_factor=0.0, step_size_up=1, steps_per_epoch=2)
        >>> [s(step) for step in range(6)]
        [0.0, 0.5, 1.0, 0.5, 0.0, 0.5]
    """
    name = "cyclic"
    clock = _clock(name, per, steps_per_epoch)
    check.at_least(f"{name}: min_factor", min_factor, 0)
    check.at_least(f"{name}: max_factor", max_factor, min_factor,
                   hint="max_factor is the top of the cycle; it must not be below min_factor.")
    check.positive(f"{name}: step_size_up", step_size_up,
                   hint="step_size_up counts epochs of the rising half.")
    down = step_size_up if step_size_down is None else step_size_down
    check.positive(f"{name}: step_size_down", down,
                   hint="step_size_down counts epochs of the falling half.")
    check.choice(f"{name}: mode", mode, ("triangular", "triangular2", "exp_range"))
    _gamma(name, gamma)
    return Cyclic(min_factor=float(min_factor), max_factor=float(max_factor), up=clock.ticks(step_size_up),
                  down=clock.ticks(down), mode=mode, gamma=float(gamma), clock=clock)


@SCHEDULES.register(
    "cosine_restarts",
    claim="Warm restarts of a cosine decay (SGDR) reach good solutions quickly and yield a usable model "
    "at the end of every period (Loshchilov & Hutter 2017).",
)
def cosine_restarts(
    *,
    period: float = 10.0,
    period_mult: float = 2.0,
    alpha: float = 0.0,
    per: str = "step",
    steps_per_epoch: int,
) -> CosineRestarts:
    """SGDR: cosine decay from 1 to alpha over `period` epochs, then restart at 1.

    Each period is `period_mult` times the previous one (torch's T_mult,
    Keras's t_mul). Defaults are SGDR's CIFAR setting (T_0=10, T_mult=2):
    restarts after epochs 10, 30, 70, 150.

    Args:
        period: epochs of the first period (may be fractional).
        period_mult: growth of each period, >= 1.
        alpha: floor of each decay, in [0, 1] (torch's eta_min / base lr).
        per: "step" (default; the paper updates every batch) or "epoch".

    Example:
        >>> s = cosine_restarts(period=1, period_mult=2, steps_per_epoch=2)
        >>> [s(step) for step in range(7)]
        [1.0, 0.5, 1.0, 0.8535533905932737, 0.5, 0.14644660940672627, 1.0]
    """
    name = "cosine_restarts"
    clock = _clock(name, per, steps_per_epoch)
    check.positive(f"{name}: period", period, hint="period counts epochs of the first cosine decay.")
    check.at_least(f"{name}: period_mult", period_mult, 1,
                   hint="Each period is period_mult times the previous one; 1 keeps them equal.")
    check.in_range(f"{name}: alpha", alpha, 0, 1, hint="alpha is the floor of each decay.")
    return CosineRestarts(period=clock.ticks(period), period_mult=float(period_mult), alpha=float(alpha),
                          clock=clock)


@SCHEDULES.register(
    "one_cycle",
    claim="One cycle up to a large lr and down far below the start trains in fewer epochs "
    "(super-convergence, Smith & Topin 2019).",
)
def one_cycle(
    *,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    anneal: str = "cos",
    three_phase: bool = False,
    per: str = "step",
    steps_per_epoch: int,
    num_epochs: int,
    total_steps: int | None = None,
) -> OneCycle:
    """The 1cycle policy over the run, as torch's OneCycleLR; the optimizer's lr is the peak.

    Rises from 1/div_factor to 1 over the first pct_start of the run, then
    anneals to 1/(div_factor * final_div_factor). three_phase=True goes back
    down to 1/div_factor symmetrically before the final anneal (fastai's
    original form). Only the lr is scheduled; torch's momentum cycling is not.

    Args:
        pct_start: fraction of the run spent rising, in (0, 1).
        div_factor: peak / initial multiplier, >= 1.
        final_div_factor: initial / final multiplier, >= 1.
        anneal: "cos" or "linear" interpolation within each phase.
        three_phase: use the three-phase form.
        per: "step" (default) or "epoch".

    Example:
        >>> s = one_cycle(pct_start=0.3, div_factor=10, final_div_factor=10, steps_per_epoch=5, num_epochs=2)
        >>> [round(s(step), 3) for step in range(10)]
        [0.1, 0.55, 1.0, 0.951, 0.814, 0.615, 0.395, 0.196, 0.059, 0.01]
    """
    name = "one_cycle"
    clock = _clock(name, per, steps_per_epoch)
    check.in_range(f"{name}: pct_start", pct_start, 0, 1, open_low=True, open_high=True)
    check.at_least(f"{name}: div_factor", div_factor, 1, hint="div_factor is peak lr / initial lr.")
    check.at_least(f"{name}: final_div_factor", final_div_factor, 1,
                   hint="final_div_factor is initial lr / final lr.")
    check.choice(f"{name}: anneal", anneal, ("cos", "linear"))
    if not isinstance(three_phase, bool):
        raise InputTypeError(f"{name}: three_phase must be true or false, got {three_phase!r}")
    horizon = clock.ticks_from_steps(_total(steps_per_epoch, num_epochs, total_steps))
    return OneCycle(horizon=horizon, pct_start=float(pct_start), div_factor=float(div_factor),
                    final_div_factor=float(final_div_factor), anneal=anneal, three_phase=three_phase,
                    clock=clock)


@SCHEDULES.register(
    "plateau",
    claim="Cutting the lr when the monitored metric stops improving adapts the decay times to the run "
    "(Keras's ReduceLROnPlateau).",
)
def plateau(
    *,
    monitor: str = "val_loss",
    factor: float = 0.1,
    patience: int = 10,
    mode: str = "auto",
    min_delta: float = 1e-4,
    cooldown: int = 0,
    min_lr: float = 0.0,
    base_lr: float | None = None,
) -> Plateau:
    """Reduce on plateau, epoch for epoch as Keras 3's ReduceLROnPlateau.

    After each epoch (``on_epoch_end``): during cooldown the counter counts
    down and wait is reset; an improvement (current < best - min_delta in
    "min" mode, > best + min_delta in "max") records the best and resets wait;
    otherwise, out of cooldown, wait grows, and when wait >= patience the
    multiplier becomes max(multiplier * factor, floor), then wait = 0 and the
    cooldown starts. The new multiplier applies from the next epoch.

    Args:
        monitor: key of the epoch's logs to watch.
        factor: multiplier per reduction, in [0, 1).
        patience: epochs without improvement before a reduction, >= 0.
        mode: "min", "max", or "auto" (the metric's own direction,
            `trainlab.metrics.direction_of`, as the callbacks decide it; "min"
            for a name it cannot tell).
        min_delta: smallest change that counts as an improvement, >= 0.
        cooldown: epochs after a reduction during which no new one is counted, >= 0.
        min_lr: the lowest learning rate, absolute as in Keras (not a
            multiplier); needs the base lr (``base_lr``, supplied by the caller).

    Example:
        >>> s = plateau(patience=1)
        >>> for epoch, loss in enumerate([1.0, 0.5, 0.6, 0.7]):
        ...     s.on_epoch_end(epoch, {"val_loss": loss})
        ...     print(epoch, s(0))
        0 1.0
        1 1.0
        2 0.1
        3 0.010000000000000002
    """
    name = "plateau"
    if not isinstance(monitor, str) or not monitor:
        raise InputTypeError(f"{name}: monitor must be the name of a logged metric, got {monitor!r}")
    check.in_range(f"{name}: factor", factor, 0, 1, open_high=True,
                   hint="The lr is multiplied by factor at each reduction; 0.1 or 0.5 are usual.")
    check.int_at_least(f"{name}: patience", patience, 0)
    check.choice(f"{name}: mode", mode, ("auto", "min", "max"))
    check.at_least(f"{name}: min_delta", min_delta, 0)
    check.int_at_least(f"{name}: cooldown", cooldown, 0)
    check.at_least(f"{name}: min_lr", min_lr, 0)
    floor = 0.0
    if min_lr > 0:
        if base_lr is None:
            raise InputError(
                f"{name}: min_lr={min_lr} is an absolute learning rate, so the schedule needs the "
                f"optimizer's base lr: build it with schedule(..., base_lr=lr). Or use min_lr=0."
            )
        base = check.positive(f"{name}: base_lr", base_lr)
        floor = min_lr / base
        if floor >= 1:
            warnings.warn(f"{name}: min_lr={min_lr} is not below the base lr {base_lr}, so the lr is "
                          f"never reduced", stacklevel=2)
    if mode == "auto":
        from trainlab.metrics import direction_of

        mode = direction_of(monitor.lower()) or "min"
    return Plateau(monitor=monitor, factor=float(factor), patience=patience, mode=mode,
                   min_delta=float(min_delta), cooldown=cooldown, floor=floor)


# ---------------------------------------------------------------------------
# Plot


def plot_schedule(spec: Any, path: str | Path, *, steps_per_epoch: int = 100, num_epochs: int = 30) -> Path:
    """Draw a schedule's multiplier over a run to a PNG file and return its path.

    Uses matplotlib's Agg canvas directly (no pyplot, no global backend change),
    imported only here so that the rest of trainlab does not need it.

    Example:
        >>> import tempfile, os
        >>> out = plot_schedule("warmup_cosine", os.path.join(tempfile.mkdtemp(), "lr.png"), num_epochs=3)
        >>> out.stat().st_size > 0
        True
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    built = schedule(spec, steps_per_epoch=steps_per_epoch, num_epochs=num_epochs, source="plot_schedule")
    total = steps_per_epoch * num_epochs
    epochs = [step / steps_per_epoch for step in range(total)]
    values = [built(step) for step in range(total)]
    figure = Figure(figsize=(6, 3.5))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.plot(epochs, values)
    axes.set_xlabel("epoch")
    axes.set_ylabel("lr multiplier")
    label = spec if isinstance(spec, str) else spec.get("name", "") if isinstance(spec, Mapping) else ""
    axes.set_title(f"schedule {label}".strip())
    axes.grid(alpha=0.3)
    figure.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, format="png", dpi=100)
    return out


# ---------------------------------------------------------------------------
# Helpers


def _clock(name: str, per: Any, steps_per_epoch: int) -> Clock:
    check.choice(f"{name}: per", per, PERS,
                 hint="'epoch' keeps the multiplier constant within an epoch; 'step' updates it every step.")
    check.int_at_least(f"{name}: steps_per_epoch", steps_per_epoch, 1)
    return Clock(per=per, steps_per_epoch=steps_per_epoch)


def _gamma(name: str, gamma: Any) -> None:
    check.in_range(f"{name}: gamma", gamma, 0, 1, open_low=True,
                   hint="gamma is the decay factor; values below 1 shrink the lr.")


def _total(steps_per_epoch: int, num_epochs: int, total_steps: int | None) -> int:
    if total_steps is None:
        check.int_at_least("schedule: num_epochs", num_epochs, 1)
        total_steps = steps_per_epoch * num_epochs
    return check.int_at_least("schedule: total_steps", total_steps, 1)


def _run_epochs(steps_per_epoch: int, num_epochs: int, total_steps: int | None) -> float:
    return _total(steps_per_epoch, num_epochs, total_steps) / steps_per_epoch


def _whole(x: float) -> int:
    """floor(x), forgiving float noise just below an integer."""
    return math.floor(x + _TICK)


def _warmup_steps(name: str, warmup: Mapping[str, Any], steps_per_epoch: int) -> int:
    epochs, steps = warmup.get("warmup_epochs"), warmup.get("warmup_steps")
    if epochs is not None and steps is not None:
        raise InputError(
            f"{name}: give warmup_epochs or warmup_steps, not both (got {epochs} and {steps})."
        )
    if steps is not None:
        return check.int_at_least(f"{name}: warmup_steps", steps, 0)
    if epochs is not None:
        return math.floor(check.at_least(f"{name}: warmup_epochs", epochs, 0) * steps_per_epoch + 0.5)
    return 0


def _from(source: str | None) -> str:
    return f" (from {source})" if source else ""
