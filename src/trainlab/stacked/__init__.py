"""Stacked members: train K runs of one small model in one pass, each as if it ran alone.

Comparing techniques means training the same small model many times (learning
rates, seeds, folds, bootstrap samples, regularization strengths). For a small
model each step of a solo run is mostly fixed per-step cost (Python, kernel
launches, the optimizer's bookkeeping), so trainlab runs K such runs as K
members of one stacked model: one forward over inputs (K, B, ...), one
backward, one optimizer step for all. `fit_members` is the entry point;
studies, cross-validation and bagging call it and get one `History` per
member. It is a thin client of the one driver (`trainlab.engine.driver`):
members train through `StackedStep`, or one after another through `SoloStep`,
with every loop feature of a plain run (batch and epoch callbacks, per-step
schedules, clipping and other gradient hooks, batch transforms, divergence,
checkpoints and exact resume, shuffle on or off, sample weights).

What a member may change (`MemberConfig`): optimizer and all its settings (lr,
momentum, betas, weight decay, ...), schedule (plateau included), seed (initial
weights and data order), its rows of the training data (folds, bootstrap
samples) and of the validation data, its sample weights, early stopping, L1/L2
kernel penalties, label smoothing, dropout rate, kernel initializer, its own
model of the same architecture (layers that differ in strengths only), and its
own callbacks.

Parity. Member k equals `trainlab.engine.train` on the same model with seed
s_k, on rows ``train_indices`` of the data, with the member's optimizer,
schedule and callbacks (and the model changed as `MemberConfig` says): the same
initial weights (its copy of the model is built under its seed as the engine
builds it), the same batches in the same order (a ``torch.Generator`` seeded
with s_k draws one permutation of its rows per epoch), the same dropout masks
(trainlab's Dropout draws from a counter-based stream keyed by the member's
seed and step, `trainlab.engine.streams`), and the same update from the same
kind of torch optimizer. The weights agree to float32 rounding (batched matrix
products add in another order): within 1e-5 relative over the first 20 steps,
checked in the tests for sgd, momentum, nesterov, adam, adamw, rmsprop,
adagrad, with weight decay, schedules, penalties, label smoothing, unequal
subsets, dropout, clipping, shuffle=False, sample weights and a resumed stack.
torch's own random layers (``nn.Dropout`` in a plain torch module) draw from
torch's global stream under vmap, so those members match their solo runs in
distribution only. One kind of weight cannot agree: a bias that feeds a
BatchNormalization directly (Dense without activation, then the normalization)
has a gradient that is zero but for rounding, and Adam-type optimizers scale
that rounding up to steps of size lr. Such a bias, and the running mean that
follows it, wander by chance and differently on each path (and on each thread
count); the training outputs do not depend on it, but the inference ones do
through the running mean. ``use_bias=False`` before a BatchNormalization (as
Keras advises) removes it.

Unequal subsets. Each member passes over its own rows in ceil(n_k / batch_size)
steps per epoch, exactly like its solo run; members with fewer steps sit out
the last steps of the stack's epoch (no update, no state change: their
optimizer's moments and step count stay as they are).

Stops freeze a member: its weights, buffers and optimizer state stop changing,
its `on_train_end` runs at once (restoring the best weights where asked), and
the others go on. A member whose loss turns NaN/inf or grows past
`divergence_factor` times its first epoch's stops with the engine's diagnosis
and keeps its last good epoch's weights, as a solo run does.

Which models stack. Any module whose forward works under ``torch.func.vmap``:
trainlab's Dense, Conv1D/Conv2D, pooling, Flatten, Reshape, Activation,
Dropout, BatchNormalization (each member keeps its own running statistics)
and Embedding, and plain torch modules made of such layers. A Sequential of
Dense, BatchNormalization, Activation, Dropout, Flatten, Reshape and pooling
layers runs on a faster path without vmap. The recurrent layers (SimpleRNN, LSTM, GRU) do not
stack (torch has no batching rule for them): ``stack="auto"`` then trains the
members one after another with the solo executor, which gives the same
results; so do members whose models differ in shape, and models with tied
weights.

``stack``: "auto" follows the deterministic plan (`trainlab.engine.plan`: from
the model, the members and the device, never from timing or free memory);
"on" stacks or raises InputError saying why it cannot; "off" runs one member
at a time. The decision and its reason are in each History's ``params``.

Threads. trainlab never changes torch's thread setting; a member's result does
not depend on it.

Memory. A member costs about, in bytes (float32: 4 bytes per number)::

    4 * (P * (3 + S)                     parameters, gradients, update buffer, S optimizer state slots
         + A * (3 * batch_size + V)      activations: forward, backward, validation batch V
         + n_k * outputs)                this epoch's training outputs (for its logs)

with P the trainable parameters, S = 2 for Adam/AdamW/NAdam/Adadelta (3 with
amsgrad), 1 for momentum SGD, Adagrad and RMSprop, A the activations per
sample (every layer's output size, summed) and V = max(batch_size, 1024).
Members are trained in chunks of as many as fit in a fixed budget of the
device (2 GiB on the CPU, half the device's memory on CUDA). For example the
digits MLP 64-256-256-10 with Adam (P = 85,002, A ~ 1,300, batch 32) needs
about 8 MB a member; the iris MLP 4-16-3 about 0.2 MB.

Example:
    >>> import trainlab
    >>> from trainlab.engine import TrainData
    >>> from trainlab.layers import Dense
    >>> iris = trainlab.datasets.load("iris")
    >>> model = trainlab.Sequential([Dense(8, activation="relu"), Dense(3, activation="softmax")])
    >>> members = [MemberConfig(seed=0, optimizer={"name": "adam", "lr": lr}) for lr in (0.001, 0.01)]
    >>> histories = fit_members(model, members, TrainData(iris.x, iris.y), num_epochs=2, batch_size=16)
    >>> [h.history["lr"] for h in histories], histories[0].params["stacked"]
    ([[0.001, 0.001], [0.01, 0.01]], True)
"""

from __future__ import annotations

import contextlib
import copy
import math
import secrets
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from trainlab import check
from trainlab.callbacks import CallbackList, History, RunState
from trainlab.checkpoint import STATE_FILE
from trainlab.engine import (
    LoopConfig,
    Technique,
    TrainData,
    auto_loss,
    make_metrics,
    probe_outputs,
    resolve_device,
    resolve_loss,
    targets,
    train,
)
from trainlab.engine import stacked as stacked_step  # a module: engine.stacked imports this package's layers
from trainlab.engine.config import check_weights
from trainlab.engine.driver import Loop as DriverLoop
from trainlab.engine.driver import drive, resume_state, seeded, uses_global_rng
from trainlab.engine.plan import plan_members
from trainlab.engine.state import MemberState
from trainlab.errors import InputError, InputTypeError
from trainlab.layers import Dropout, Layer
from trainlab.losses import Loss
from trainlab.losses import loss as make_loss
from trainlab.models import Sequential
from trainlab.optimizers import optimizer as make_optimizer
from trainlab.optimizers import stacked_form
from trainlab.schedules import schedule as make_schedule
from trainlab.stacked._forward import MemberDropout, layer_stack_supported, strengths
from trainlab.stacked._members import MemberConfig, member_model
from trainlab.stacked._optim import MemberUpdate

__all__ = ["MemberConfig", "STACK_MODES", "fit_members", "member_bytes"]

#: The values of `fit_members(stack=...)`.
STACK_MODES = ("auto", "on", "off")

_PROBE_MEMBERS = 8

def fit_members(model: nn.Module | Sequence[Any], members: Sequence[MemberConfig], data: Any, *,
                loss: Any = "auto", metrics: Sequence[Any] = (), task: str | None = None,
                batch_size: int = 32, num_epochs: int = 1, device: str = "auto", stack: str = "auto",
                chunk_size: int | None = None, shuffle: bool = True, clip_grad_norm: float | None = None,
                clip_grad_value: float | None = None, divergence_factor: float | None = 100.0,
                checkpoint_dir: str | Path | None = None, resume: bool = False,
                batch_transforms: Sequence[Any] = (), gradient_hooks: Sequence[Any] = (),
                record_steps: bool = False, validation_batch_size: int | None = None,
                scaling: Any = None) -> list[History]:
    """Train one run per member of `model` on `data`, stacked when they can be; one History each.

    Args:
        model: the base model (a trainlab Sequential, built or not, any
            nn.Module, or a list of layers); it is copied, never trained itself.
        members: one `MemberConfig` per run.
        data: a `trainlab.engine.TrainData`, or a tuple (x, y) or (x, y, x_val, y_val),
            already scaled. Members train on rows of x (all, or their train_indices).
            `TrainData.sample_weight` weighs every member's samples (a member's own
            `sample_weight` replaces it).
        loss: loss spec, or "auto" to choose it from `task` and the targets.
        metrics: metric specs, computed per member as in a solo run.
        task: "classification" or "regression", for loss="auto".
        batch_size: shared by all members.
        num_epochs: the most epochs a member trains.
        device: "auto", "cpu" or "cuda[:N]".
        stack: "auto", "on" or "off" (see the module docstring).
        chunk_size: the most members per stack; None chooses from the memory
            estimate (see `member_bytes`). Smaller chunks give the same results.
        shuffle, clip_grad_norm, clip_grad_value, divergence_factor, batch_transforms,
            gradient_hooks, record_steps, validation_batch_size: as in `trainlab.engine.LoopConfig`,
            for every member.
        checkpoint_dir: each member's resumable state is saved in ``member-<k>/`` under it
            after every epoch; `resume` continues from there, stacked or not.
        scaling: per-member preprocessing ("standardize", "minmax", a scaler): each
            member's scaler is fitted on its own training rows only (no held-out fold
            leaks into it) and applied to all of x and x_val for that member; it is
            kept as the member model's ``scaler`` and ``History.scaler``.

    Returns:
        One History per member, in order, as `trainlab.engine.train` returns it:
        ``.history`` (loss, metrics, val_loss, val_<metric>, lr per epoch),
        ``.epoch``, ``.seed``, ``.stop_reason``, ``.params`` (with ``stacked``,
        ``stack_reason``, ``executor`` and ``plan_reason``) and ``.model``, the member's trained model.

    Raises:
        InputError: bad members, settings or data, or stack="on" for runs that cannot stack.
    """
    configs = _check_members(members)
    check.choice("stack", stack, STACK_MODES, "'auto' stacks when the plan says it pays, 'on' always, 'off' never.")
    if chunk_size is not None:
        check.int_at_least("chunk_size", chunk_size, 1)
    loop = LoopConfig(batch_size=batch_size, num_epochs=num_epochs, shuffle=shuffle, device=device,
                      clip_grad_norm=clip_grad_norm, clip_grad_value=clip_grad_value,
                      divergence_factor=divergence_factor, checkpoint_dir=checkpoint_dir, resume=resume,
                      batch_transforms=batch_transforms, gradient_hooks=gradient_hooks, record_steps=record_steps,
                      validation_batch_size=validation_batch_size)
    from trainlab.api import as_model

    template = as_model(model)
    x, y, x_val, y_val, weights = _data(data)
    n = x.shape[0]
    train_rows = [_rows(c.train_indices, n, f"members[{k}].train_indices") for k, c in enumerate(configs)]
    val_rows = [_rows(c.val_indices, n, f"members[{k}].val_indices") for k, c in enumerate(configs)]
    member_weights = [check_weights(c.sample_weight, n, f"members[{k}].sample_weight")
                      if c.sample_weight is not None else weights for k, c in enumerate(configs)]
    target = resolve_device(device)
    seeds = [c.seed if c.seed is not None else secrets.randbits(31) for c in configs]
    job = _Job(template=template, configs=configs, seeds=seeds, x=x, y=y, x_val=x_val, y_val=y_val,
               train_rows=train_rows, val_rows=val_rows, weights=member_weights, loss=loss, metrics=list(metrics),
               task=task, loop=loop, device=target)
    job.scale(scaling)
    if stack == "off" or (len(configs) == 1 and stack == "auto"):
        job.resolve_losses()
        return job.one_at_a_time("stack='off'" if stack == "off" else "a single member: nothing to stack")
    built = job.build()
    job.resolve_losses(built[0])
    plan = plan_members(built[0], job.unstackable(built), num_members=len(configs), device=target, mode=stack,
                        chunk_size=chunk_size, member_bytes=job.member_bytes(built))
    if not plan.stacked:
        return job.one_at_a_time(plan.reason)
    reason = plan.reason
    if any(_batch_hooks(c) for config in configs for c in config.callbacks):
        reason += "; batch hooks are called for each member"
    return job.stacked(built, plan.chunk_size, reason)


def member_bytes(model: nn.Module, x: Tensor, *, batch_size: int, num_samples: int,
                 optimizer: torch.optim.Optimizer | None = None) -> int:
    """Estimated bytes one member of a stacked run needs (the formula in the module docstring).

    Args:
        model: the member's model, built.
        x: a few input samples (to measure the activations per sample).
        batch_size: the run's batch size.
        num_samples: the member's training rows.
        optimizer: its optimizer (for the number of state slots); None counts 2 (Adam).

    Example:
        >>> import torch
        >>> from trainlab.layers import Dense
        >>> import trainlab
        >>> model = trainlab.Sequential([Dense(16, activation="relu"), Dense(3)])
        >>> x = torch.zeros(2, 4)
        >>> _ = model(x)
        >>> member_bytes(model, x, batch_size=16, num_samples=120) < 1_000_000
        True
    """
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    buffers = sum(b.numel() for b in model.buffers())
    sizes: list[int] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: sizes.append(out.numel() if isinstance(out, Tensor) else 0))
             for m in model.modules() if not list(m.children())]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x[:2])
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    per_sample = sum(sizes) / max(min(2, x.shape[0]), 1)
    outputs = out[0].numel() if out.dim() > 1 else 1
    element = next((p.element_size() for p in model.parameters()), 4)
    numbers = (params * (3 + _state_slots(optimizer)) + buffers
               + per_sample * (3 * batch_size + max(batch_size, 1024)) + num_samples * outputs)
    return int(element * numbers)


def _state_slots(optimizer: torch.optim.Optimizer | None) -> int:
    """Numbers of optimizer state per parameter, as the registry's stacked form says (2 when unknown)."""
    form = stacked_form(optimizer)
    return form.state_slots(optimizer.param_groups[0]) if form is not None and optimizer is not None else 2


def _memory_budget(device: torch.device) -> int:
    """Bytes a stack may use: a fixed 2 GiB on the CPU, half the device's total memory on CUDA.

    A property of the device, never its free memory at the moment, so that the chunks (and
    the plan recorded in History.params) are the same on a busy machine as on an idle one.
    """
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory) // 2
    return 2 * 1024**3


# ------------------------------------------------------------------------------------------ checks


def _check_members(members: Any) -> list[MemberConfig]:
    if isinstance(members, MemberConfig) or not isinstance(members, Sequence) or isinstance(members, str):
        raise InputTypeError(f"members must be a list of MemberConfig, got {type(members).__name__}. "
                             "Wrap a single member in a list.")
    if not members:
        raise InputError("members is empty: give at least one MemberConfig.")
    seen: dict[int, int] = {}
    for k, member in enumerate(members):
        if not isinstance(member, MemberConfig):
            raise InputTypeError(f"members[{k}] must be a MemberConfig, got {type(member).__name__} {member!r}. "
                                 "Build it with trainlab.stacked.MemberConfig(seed=..., optimizer=...).")
        for callback in member.callbacks:
            if id(callback) in seen:
                raise InputError(
                    f"members[{k}] and members[{seen[id(callback)]}] share the callback object "
                    f"{type(callback).__name__}; a callback keeps one run's state, so give each member its own.")
            seen[id(callback)] = k
    return list(members)


def with_smoothing(loss: Loss, smoothing: float) -> Loss:
    """`loss` with its label smoothing set (cross-entropies only)."""
    return replace(loss, label_smoothing=smoothing)  # type: ignore[call-arg]


def _data(data: Any) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None, Tensor | None]:
    weights = None
    if isinstance(data, TrainData):
        parts = [data.x, data.y, data.x_val, data.y_val]
        weights = data.sample_weight
    elif isinstance(data, (tuple, list)) and len(data) in (2, 4):
        parts = [*data, None, None][:4]
    else:
        raise InputTypeError(f"data must be a trainlab.engine.TrainData or a tuple (x, y) or (x, y, x_val, y_val), "
                             f"got {type(data).__name__}")
    tensors = [None if p is None else p if isinstance(p, Tensor) else torch.as_tensor(np.asarray(p)) for p in parts]
    x, y, x_val, y_val = tensors
    if (x_val is None) != (y_val is None):
        raise InputError("data has x_val without y_val or the other way round; give both or neither.")
    if x is None or y is None or x.shape[0] == 0:
        raise InputError("the training set is empty: there are no samples to train on")
    if x.shape[0] != y.shape[0]:
        raise InputError(f"x has {x.shape[0]} rows but y has {y.shape[0]}; they must match.")
    if x_val is not None and y_val is not None and x_val.shape[0] != y_val.shape[0]:
        raise InputError(f"x_val has {x_val.shape[0]} rows but y_val has {y_val.shape[0]}; they must match.")
    if x_val is not None and x_val.shape[0] == 0:
        raise InputError("the validation set is empty; give more samples or no validation set")
    return x, y, x_val, y_val, check_weights(weights, x.shape[0], "data.sample_weight")


def _rows(indices: Tensor | None, n: int, where: str) -> Tensor | None:
    if indices is None:
        return None
    low, high = int(indices.min()), int(indices.max())
    if low < 0 or high >= n:
        raise InputError(f"{where} must be row numbers in [0, {n - 1}] (the training data has {n} rows), "
                         f"got values from {low} to {high}.")
    return indices


def _batch_hooks(callback: Any) -> bool:
    from trainlab.callbacks import Callback

    return any(getattr(type(callback), hook) is not getattr(Callback, hook)
               for hook in ("on_batch_begin", "on_batch_end", "on_train_batch_begin", "on_train_batch_end"))


# --------------------------------------------------------------------------------------- the job


class _Job:
    """One call of `fit_members`: the members, their data, and the two executors that can train them."""

    def __init__(self, *, template: nn.Module, configs: list[MemberConfig], seeds: list[int], x: Tensor,
                 y: Tensor, x_val: Tensor | None, y_val: Tensor | None, train_rows: list[Tensor | None],
                 val_rows: list[Tensor | None], weights: list[Tensor | None], loss: Any, metrics: list[Any],
                 task: str | None, loop: LoopConfig, device: torch.device) -> None:
        self.template, self.configs, self.seeds = template, configs, seeds
        self.models = [member_model(template, c, f"members[{k}]") for k, c in enumerate(configs)]
        self.built = False
        self.x, self.y, self.x_val, self.y_val = x, y, x_val, y_val
        self.train_rows, self.val_rows, self.weights = train_rows, val_rows, weights
        self.loss, self.metrics, self.task = loss, metrics, task
        self.loop, self.device = loop, device
        self.batch_size, self.num_epochs = loop.batch_size, loop.num_epochs
        self.member_losses: list[Any] = []
        self.smoothing: list[float] = []
        self.num_outputs = 0
        self.scalers: list[Any] = [None] * len(configs)
        self.member_x: list[Tensor] | None = None
        self.member_x_val: list[Tensor | None] = [None] * len(configs)

    def scale(self, scaling: Any) -> None:
        """Fit each member's scaler on its own training rows and scale its copy of the inputs."""
        if scaling is None:
            return
        from trainlab.datasets import scaler as make_scaler

        self.member_x = []
        for k, rows in enumerate(self.train_rows):
            fitted = make_scaler(scaling, source="scaling")
            fitted.fit(self.x if rows is None else self.x[rows])
            self.scalers[k] = fitted
            self.member_x.append(fitted.transform(self.x))
            self.member_x_val[k] = fitted.transform(self.x_val) if self.x_val is not None else None
        self.models = [_with_scaler(m, s) for m, s in zip(self.models, self.scalers)]

    def _x(self, k: int) -> Tensor:
        return self.member_x[k] if self.member_x is not None else self.x

    # -- what every path needs -------------------------------------------------------------------
    def _sample(self, k: int) -> Tensor:
        rows = self.train_rows[k]
        x = self._x(k)
        return x[rows[:2]] if rows is not None else x[:2]

    def resolve_losses(self, built: nn.Module | None = None) -> None:
        """Each member's loss spec: the run's, or it with the member's label smoothing."""
        probe = built if built is not None else copy.deepcopy(self.models[0]).to(self.device)
        with seeded(0, self.device):
            out = probe_outputs(probe, self._sample(0).to(self.device))
        self.num_outputs = out.shape[-1] if out.dim() > 1 else 1
        spec = auto_loss(self.task, self.y, self.num_outputs) if self.loss == "auto" else self.loss
        base = make_loss(spec, source="loss")
        for k, config in enumerate(self.configs):
            if config.label_smoothing is None:
                self.member_losses.append(self.loss)
                self.smoothing.append(float(getattr(base, "label_smoothing", 0.0)))
                continue
            if not hasattr(base, "label_smoothing"):
                raise InputError(
                    f"members[{k}].label_smoothing={config.label_smoothing} needs a cross-entropy loss, but the "
                    f"loss is '{base.name}'. Label smoothing softens class targets; leave it None for this loss.")
            self.member_losses.append(with_smoothing(base, config.label_smoothing))
            self.smoothing.append(float(config.label_smoothing))

    def member_data(self, k: int) -> TrainData:
        rows, val, weights = self.train_rows[k], self.val_rows[k], self.weights[k]
        source = self._x(k)
        x, y = (source, self.y) if rows is None else (source[rows], self.y[rows])
        w = weights if weights is None or rows is None else weights[rows]
        if val is not None:
            return TrainData(x, y, source[val], self.y[val], sample_weight=w)
        x_val = self.member_x_val[k] if self.member_x is not None else self.x_val
        return TrainData(x, y, x_val, self.y_val, sample_weight=w)

    def member_dir(self, k: int) -> Path | None:
        root = self.loop.checkpoint_dir
        return Path(root) / f"member-{k}" if root is not None else None

    # -- one at a time ------------------------------------------------------------------------------
    def one_at_a_time(self, reason: str) -> list[History]:
        """Each member through the driver with the solo executor (`trainlab.engine.train`)."""
        if self.built:  # the engine builds an unbuilt model itself, under the run's seed
            self.models = [_with_scaler(member_model(self.template, c, f"members[{k}]"), self.scalers[k])
                           for k, c in enumerate(self.configs)]
        histories = []
        for k, config in enumerate(self.configs):
            technique = Technique(loss=self.member_losses[k], optimizer=config.optimizer, metrics=list(self.metrics),
                                  schedule=config.schedule, task=self.task)
            loop = replace(self.loop, seed=self.seeds[k], device=str(self.device), checkpoint_dir=self.member_dir(k))
            history = train(self.models[k], self.member_data(k), technique, loop,
                            callbacks=[*config.early_stopping_callback(), *config.callbacks])
            history.params.update(stacked=False, stack_reason=reason, plan_reason=reason)
            history.scaler = self.scalers[k]
            histories.append(history)
        return histories

    # -- stacked --------------------------------------------------------------------------------------
    def build(self) -> list[nn.Module]:
        """The members' models built as the engine builds them: under each member's seed."""
        self.built = True
        built = []
        for k, module in enumerate(self.models):
            with seeded(self.seeds[k], self.device):
                module.to(self.device)
                probe_outputs(module, self._sample(k).to(self.device))
                module.to(self.device)
            built.append(module)
        return built

    def unstackable(self, built: list[nn.Module]) -> str | None:
        """Why these members cannot be trained as one stack, or None if they can."""
        first = built[0]
        layout = _layout(first)
        if not any(p.requires_grad for p in first.parameters()):
            return "the model has no trainable parameters"
        if len(list(first.named_parameters(remove_duplicate=False))) != len(list(first.named_parameters())):
            return "the model shares (ties) parameters between layers"
        for k, module in enumerate(built[1:], start=1):
            if _layout(module) != layout:
                return f"members[{k}]'s model differs in shape from members[0]'s"
        problem = (_settings_problem(built) or _penalty_problem(built, self.configs)
                   or self._optimizer_problem(built))
        if problem is not None:
            return problem
        if layer_stack_supported(first):
            return None  # the layer path runs any such model
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("error", message=".*performance drop.*")
                count = min(2, len(built))
                probe = [copy.deepcopy(m) for m in built[:count]]
                with seeded(0, self.device):
                    step = self._step(probe, range(count), with_callbacks=False, checkpoints=False)[1]
                    rows = self._rows_for_probe(0)
                    step.table = torch.stack([rows] * count)
                    step.run(0, [s.member for s in step.stack.slots])
        except InputError:
            raise
        except (RuntimeError, NotImplementedError, TypeError, ValueError, IndexError, UserWarning) as error:
            return f"the model does not run stacked ({type(error).__name__}: {str(error).splitlines()[0]})"
        return None

    def _optimizer_problem(self, built: list[nn.Module]) -> str | None:
        """Why a member's optimizer cannot step in a stack: the registry gives its class no stacked form."""
        for k, (config, module) in enumerate(zip(self.configs, built)):
            params = [p for p in module.parameters() if p.requires_grad]
            optimizer = make_optimizer(config.optimizer, params, source=f"members[{k}].optimizer")
            if stacked_form(optimizer) is None:
                return (f"members[{k}]'s optimizer {type(optimizer).__name__} has no stacked form in the optimizer "
                        "registry (capability 'stacked'), so each member trains as a solo run")
        return None

    def member_bytes(self, built: list[nn.Module]) -> int:
        largest = max(len(r) if r is not None else self.x.shape[0] for r in self.train_rows)
        sample = self._sample(0).to(self.device)
        optimizer = make_optimizer(self.configs[0].optimizer, [nn.Parameter(torch.zeros(1, device=self.device))],
                                   source="members[0].optimizer")
        return member_bytes(built[0], sample, batch_size=self.batch_size, num_samples=largest, optimizer=optimizer)

    def _rows_for_probe(self, k: int) -> Tensor:
        rows = self.train_rows[k]
        size = min(self.batch_size, rows.numel() if rows is not None else self.x.shape[0])
        return (rows[:size] if rows is not None else torch.arange(size)).to(self.device)

    def _shared(self, built: list[nn.Module], slots: list[stacked_step.Slot]) -> stacked_step.Shared:
        first = built[0]
        technique = Technique(loss=self.member_losses[0], task=self.task)
        loss_fn, forward, from_logits = resolve_loss(first, technique, self.y, self.num_outputs)
        fused = forward is not first
        soft = stacked_step.soft_loss(loss_fn) if len({slot.smoothing for slot in slots}) > 1 else None
        y = targets(self.y, loss_fn, self.num_outputs, "training", self.device)
        x_val, y_val = self._validation_source(loss_fn)
        skeleton = copy.deepcopy(first)
        outside = _outside_penalties(skeleton, built)
        dropout_layers = _dropout_layers(built)
        layer_stack = layer_stack_supported(first)
        if not layer_stack:
            for name in dropout_layers:
                _replace(skeleton, name, MemberDropout(0.0))
        has = getattr(skeleton, "has_penalties", None)
        # Each member's batch loss at every step: the driver checks it for a blow-up within the epoch (as a
        # solo run does), and batch hooks and record_steps read it.
        member_losses = True
        x = self.x.to(self.device)
        if self.member_x is not None:
            indices = [slot.member.index for slot in slots]
            x = torch.stack([self.member_x[k] for k in indices]).to(self.device)
            if x_val is not None:
                x_val = torch.stack([self._member_validation(k) for k in indices]).to(self.device)
        return stacked_step.Shared(skeleton=skeleton, fused=fused, loss=loss_fn, soft=soft, num_outputs=self.num_outputs,
                      x=x, y=y, x_val=x_val, y_val=y_val, from_logits=from_logits,
                      val_batch=self.loop.validation_batch_size or max(self.batch_size, 1024),
                      outside=tuple(outside), dropout_layers=tuple(dropout_layers),
                      penalty_inside=bool(callable(has) and has()), layer_stack=layer_stack,
                      transforms=tuple(self.loop.batch_transforms), hooks=self.loop.all_gradient_hooks(),
                      member_losses=member_losses, per_member_x=self.member_x is not None)

    def _member_validation(self, k: int) -> Tensor:
        """Member k's scaled validation source, laid out as `_validation_source` lays out the shared one."""
        own = any(r is not None for r in self.val_rows)
        x_val = self.member_x_val[k]
        if not own:
            assert x_val is not None
            return x_val
        x = self._x(k)
        return x if x_val is None else torch.cat([x, x_val])

    def _validation_source(self, loss_fn: Loss) -> tuple[Tensor | None, Tensor | None]:
        """The validation rows of every member in one tensor: x_val, x itself (for val_indices), or both."""
        own = any(r is not None for r in self.val_rows)
        y_val = (targets(self.y_val, loss_fn, self.num_outputs, "validation", self.device)
                 if self.y_val is not None else None)
        x_val = self.x_val.to(self.device) if self.x_val is not None else None
        if not own:
            return x_val, y_val
        y = targets(self.y, loss_fn, self.num_outputs, "training", self.device)
        if x_val is None or y_val is None:
            return self.x.to(self.device), y
        return torch.cat([self.x.to(self.device), x_val]), torch.cat([y, y_val])

    def _member_val_rows(self, k: int) -> tuple[bool, Tensor | None]:
        own = any(r is not None for r in self.val_rows)
        rows = self.val_rows[k]
        if rows is not None:
            return True, rows.to(self.device)
        if self.x_val is None:
            return False, None
        if own:
            n = self.x.shape[0]
            return True, torch.arange(n, n + self.x_val.shape[0], device=self.device)
        return True, None

    def _step(self, modules: list[nn.Module], indices: Sequence[int], *, with_callbacks: bool,
              checkpoints: bool = True) -> tuple[list[MemberState], stacked_step.StackedStep, dict[int, dict[str, Any]]]:
        """The members' run state (optimizer, schedule, History, callbacks, data order) and their executor."""
        states: list[MemberState] = []
        slots: list[stacked_step.Slot] = []
        saved: dict[int, dict[str, Any]] = {}
        for module, k in zip(modules, indices):
            config = self.configs[k]
            params: list[Tensor] = [p for p in module.parameters() if p.requires_grad]
            optimizer = make_optimizer(config.optimizer, params, source=f"members[{k}].optimizer")
            rows = self.train_rows[k]
            n = rows.numel() if rows is not None else self.x.shape[0]
            steps = math.ceil(n / self.batch_size)
            base_lrs = [group["lr"] for group in optimizer.param_groups]
            schedule = (make_schedule(config.schedule, steps_per_epoch=steps, num_epochs=self.num_epochs,
                                      base_lr=base_lrs[0], source=f"members[{k}].schedule")
                        if config.schedule is not None else None)
            history = History()
            history.seed = self.seeds[k]
            run = RunState(model=module, num_epochs=self.num_epochs, steps_per_epoch=steps, lr=base_lrs[0],
                           history=history.history, optimizer=optimizer)
            callbacks = [*config.early_stopping_callback(), *config.callbacks] if with_callbacks else []
            params_info = {"epochs": self.num_epochs, "steps": steps, "batch_size": self.batch_size,
                           "seed": self.seeds[k]}
            has = getattr(module, "has_penalties", None)
            weights = self.weights[k]
            member_dir = self.member_dir(k) if checkpoints else None
            state = MemberState(
                index=k, seed=self.seeds[k], module=module, loss=make_loss("mse"), optimizer=optimizer,
                params=params, schedule=schedule, base_lrs=base_lrs, history=history,
                callbacks=CallbackList([*callbacks, history], model=module, run=run, params=params_info), run=run,
                generator=torch.Generator(device=self.device).manual_seed(self.seeds[k]), n=n,
                batch_size=self.batch_size, rows=rows.to(self.device) if rows is not None else None,
                sample_weight=weights.to(self.device) if weights is not None else None,
                has_penalty=bool(callable(has) and has()),
                state_file=member_dir / STATE_FILE if member_dir is not None else None,
                start_epoch=self.loop.initial_epoch)
            resumed = resume_state(state, self.loop.resume, self.device) if checkpoints else None
            if resumed is not None:
                saved[k] = resumed
            validates, val_rows = self._member_val_rows(k)
            slots.append(stacked_step.Slot(member=state, update=MemberUpdate.of(optimizer, params), smoothing=self.smoothing[k],
                              validates=validates, val_rows=val_rows))
            states.append(state)
        shared = self._shared(modules, slots)
        losses = [resolve_loss(modules[0], Technique(loss=self.member_losses[k], task=self.task), self.y,
                               self.num_outputs)[0] for k in indices]
        for state, member_loss in zip(states, losses):
            state.loss = member_loss
            state.train_metrics = make_metrics(self.metrics, member_loss, self.num_outputs)
            state.val_metrics = make_metrics(self.metrics, member_loss, self.num_outputs)
        return states, stacked_step.StackedStep(slots, shared), saved

    def stacked(self, built: list[nn.Module], chunk: int, why: str) -> list[History]:
        histories: list[History] = []
        global_rng = uses_global_rng(built[0])
        for start in range(0, len(built), chunk):
            indices = list(range(start, min(start + chunk, len(built))))
            modules = [built[k] for k in indices]
            # Only torch's own random layers (vmap, randomness="different") draw from the global
            # stream; it is seeded from the members' seeds, so a stacked run repeats exactly.
            scope = (seeded(_stream_seed([self.seeds[k] for k in indices]), self.device) if global_rng
                     else contextlib.nullcontext())
            with scope:
                states, step, saved = self._step(modules, indices, with_callbacks=True)
                drive(states, step, DriverLoop.of(self.loop, self.device), saved=saved)
            for state in states:
                state.history.scaler = self.scalers[state.index]
                state.history.params = {
                    "epochs": self.num_epochs, "steps": state.steps, "batch_size": self.batch_size,
                    "seed": state.seed, "device": str(self.device), "fused_loss": step.shared.fused,
                    "from_logits": step.shared.from_logits,
                    "resumed_from_epoch": state.start_epoch if state.index in saved else None,
                    "stacked": True, "stack_reason": why, "executor": "stacked", "plan_reason": why}
                histories.append(state.history)
        return histories


# ----------------------------------------------------------------------------------------- helpers


def _with_scaler(model: nn.Module, fitted: Any) -> nn.Module:
    """`model` carrying its member's fitted scaler (as trainlab.fit keeps one), when there is one."""
    if fitted is not None:
        model.scaler = fitted
    return model


def _stream_seed(seeds: list[int]) -> int:
    value = 0
    for seed in seeds:
        value = (value * 1_000_003 + seed) % (2**63 - 1)
    return value


def _layout(module: nn.Module) -> list[tuple[str, tuple[int, ...], torch.dtype, bool]]:
    return ([(n, tuple(p.shape), p.dtype, p.requires_grad) for n, p in module.named_parameters()]
            + [(n, tuple(b.shape), b.dtype, False) for n, b in module.named_buffers()])


#: Layer settings members of one stack may differ in (each member's own is applied to its rows).
_MEMBER_SETTINGS = ("name", "rate", "kernel_initializer", "bias_initializer", "kernel_regularizer",
                    "bias_regularizer")


def _settings_problem(built: list[nn.Module]) -> str | None:
    """A stack runs members[0]'s layers: members whose layers differ in another setting (an activation,
    a BatchNormalization's momentum) cannot share it. Only trainlab Sequentials describe their settings."""
    if not all(type(m) is Sequential and all(isinstance(layer, Layer) for layer in m.layers) for m in built):
        return None

    def settings(module: nn.Module) -> list[dict[str, Any]]:
        layers = module.get_config()["layers"]  # type: ignore[operator]
        return [{k: v for k, v in layer.items() if k not in _MEMBER_SETTINGS} for layer in layers]

    first = settings(built[0])
    for k, module in enumerate(built[1:], start=1):
        mine = settings(module)
        for position, (a, b) in enumerate(zip(first, mine)):
            differing = sorted(key for key in {*a, *b} if a.get(key) != b.get(key))
            if differing:
                return (f"members[{k}]'s layer {position + 1} differs from members[0]'s in "
                        f"{', '.join(differing)}")
    return None


def _weight_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, layer) for name, layer in module.named_modules()
            if isinstance(layer, Layer) and hasattr(layer, "kernel_regularizer")
            and isinstance(getattr(layer, "weight", None), nn.Parameter)]


def _penalty_problem(built: list[nn.Module], configs: list[MemberConfig]) -> str | None:
    """Kernel/bias regularizers must be L1/L2 (applied by the loop per member) or the same for all members."""
    overridden = any(c.l1 is not None or c.l2 is not None for c in configs)
    for name, layer in _weight_layers(built[0]):
        for attr in ("kernel_regularizer", "bias_regularizer"):
            if strengths(getattr(layer, attr)) is None and overridden:
                return (f"layer '{name}' has a {attr} that is not L1/L2 while some members set l1/l2, "
                        "so the members' penalties differ in form")
    return None


def _outside_penalties(skeleton: nn.Module, built: list[nn.Module]) -> list[str]:
    """Weights whose L1/L2 penalties the loop applies per member; removed from the skeleton's penalty()."""
    names = []
    for name, layer in _weight_layers(skeleton):
        prefix = f"{name}." if name else ""
        for attr, param in (("kernel_regularizer", "weight"), ("bias_regularizer", "bias")):
            if getattr(layer, param, None) is None:
                continue
            values = [strengths(getattr(m.get_submodule(name), attr)) for m in built]
            if all(v is not None for v in values):
                setattr(layer, attr, None)
                names.append(prefix + param)
    return names


def _dropout_layers(built: list[nn.Module]) -> list[str]:
    """trainlab Dropout layers: their masks come from each member's own counter-based stream."""
    return [name for name, layer in built[0].named_modules() if isinstance(layer, Dropout)]


def _replace(module: nn.Module, name: str, new: nn.Module) -> None:
    *path, attr = name.split(".")
    owner = module.get_submodule(".".join(path)) if path else module
    if isinstance(owner, (nn.ModuleList, nn.Sequential)):
        owner[int(attr)] = new
    else:
        setattr(owner, attr, new)
