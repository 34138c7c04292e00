"""Stacked members: train K runs of one small model in one pass, each as if it ran alone.

Comparing techniques means training the same small model many times (learning
rates, seeds, folds, bootstrap samples). For a small model each step of a solo
run is mostly fixed per-step cost (Python, kernel launches, the optimizer's
bookkeeping), so trainlab runs K such runs as K members of one stacked model:
one forward over inputs (K, B, ...), one backward, one optimizer step for all.
`fit_members` is the entry point; studies, cross-validation and bagging call
it and get one `History` per member, as from `trainlab.engine.train`.

What a member may change (`MemberConfig`): optimizer and all its settings (lr,
momentum, betas, weight decay, ...), schedule (plateau included), seed (initial
weights and data order), its rows of the training data (folds, bootstrap
samples) and of the validation data, early stopping, L1/L2 kernel penalties,
label smoothing, dropout rate, kernel initializer, and its own epoch callbacks.

Parity. Member k equals `trainlab.engine.train` on the same model with seed
s_k, on rows ``train_indices`` of the data, with the member's optimizer,
schedule and callbacks (and the model changed as `MemberConfig` says): the same
initial weights (its copy of the model is built under ``torch.manual_seed(s_k)``
as the engine builds it), the same batches in the same order (a
``torch.Generator`` seeded with s_k draws one permutation of its rows per
epoch), and the same update from the same kind of torch optimizer. The
weights agree to float32 rounding (batched matrix products add in another
order): within 1e-5 relative over the first 20 steps, checked in the tests for
sgd, momentum, nesterov, adam, adamw, rmsprop, adagrad, with weight decay,
schedules, penalties, label smoothing and unequal subsets. Dropout is the one
exception by design: a stacked run draws all members' dropout masks from one
random stream (seeded from the members' seeds, so a stacked run repeats
exactly), not from each member's solo stream; with dropout, members match
their solo runs in distribution, not step by step.

Unequal subsets. Each member passes over its own rows in ceil(n_k / batch_size)
steps per epoch, exactly like its solo run; members with fewer rows sit out
the last steps of the stack's epoch (no update, no state change). At a step
where batch sizes differ (the last, partial batch) members are grouped by
batch size.

Early stopping and other stops freeze a member: its weights, buffers and
optimizer state stop changing, its `on_train_end` runs at once (restoring the
best weights where asked), and the others go on. A member whose loss turns
NaN/inf or grows past 100 times its first epoch's stops with the engine's
diagnosis and keeps its last good epoch's weights, as a solo run does.

Which models stack. Any module whose forward works under ``torch.func.vmap``:
trainlab's Dense, Conv1D/Conv2D, pooling, Flatten, Reshape, Activation,
Dropout, BatchNormalization (each member keeps its own running statistics)
and Embedding, and plain torch modules made of such layers. A Sequential of
Dense, Activation, Dropout, Flatten, Reshape and pooling layers runs on a
faster path without vmap. The recurrent layers (SimpleRNN, LSTM, GRU) do not
stack (torch has no batching rule for them): ``stack="auto"`` then trains the
members one after another with the single-run engine, which gives the same
results; so do members whose models differ in shape, members with
batch-level callbacks, and models with tied weights.

``stack``: "auto" stacks when the model stacks, there are at least two
members, and a short timed probe (a few steps of one member alone and of a
small stack, interleaved, on copies) finds the stacked member-step cheaper;
"on" stacks or raises InputError saying why it cannot; "off" runs one member
at a time.

Threads. On the CPU a stacked run picks its intra-op threads by timing its
first steps with torch's setting and with one thread (a tiny stack, such as
32 iris MLPs, runs on one thread outright): torch splits even small batched
products across threads, which loses badly when other processes keep the
cores busy. torch's setting is restored when the run ends.

Not stacked (yet): gradient clipping, checkpoints and resume, and mixup are
single-engine features that `MemberConfig` does not carry.

Memory. A member costs about, in bytes (float32: 4 bytes per number)::

    4 * (P * (3 + S)                     parameters, gradients, update buffer, S optimizer state slots
         + A * (3 * batch_size + V)      activations: forward, backward, validation batch V
         + n_k * outputs)                this epoch's training outputs (for its logs)

with P the trainable parameters, S = 2 for Adam/AdamW/NAdam/Adadelta (3 with
amsgrad), 1 for momentum SGD, Adagrad and RMSprop, A the activations per
sample (every layer's output size, summed) and V = max(batch_size, 1024).
Members are trained in chunks of as many as fit in half the available memory
(CPU: MemAvailable; CUDA: 80% of the free memory). For example the digits MLP
64-256-256-10 with Adam (P = 85,002, A ~ 1,300, batch 32) needs about 8 MB a
member, so some 4,000 members fit in 64 GB; the iris MLP 4-16-3 about 0.2 MB.

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
import functools
import math
import os
import secrets
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from trainlab import check
from trainlab.callbacks import CallbackList, History, RunState
from trainlab.engine import (
    LoopConfig,
    Technique,
    TrainData,
    _metrics,
    _targets,
    auto_loss,
    probe_outputs,
    resolve_device,
    resolve_loss,
    train,
)
from trainlab.errors import InputError, InputTypeError
from trainlab.layers import Dropout, Layer
from trainlab.losses import Loss
from trainlab.losses import loss as make_loss
from trainlab.optimizers import optimizer as make_optimizer
from trainlab.schedules import schedule as make_schedule
from trainlab.stacked._forward import MemberDropout, layer_stack_supported, strengths
from trainlab.stacked._loop import (
    MemberRun,
    Shared,
    Stack,
    ThreadChoice,
    soft_loss,
    train_stacked,
    with_smoothing,
)
from trainlab.stacked._members import MemberConfig, member_model
from trainlab.stacked._optim import MemberUpdate

__all__ = ["MemberConfig", "STACK_MODES", "fit_members", "member_bytes"]

#: The values of `fit_members(stack=...)`.
STACK_MODES = ("auto", "on", "off")

_PROBE_MEMBERS = 8

#: On the CPU, a stack whose largest tensors hold fewer numbers than this runs single-threaded
#: (see `trainlab.stacked._loop.ThreadChoice`); larger ones time both settings.
SMALL_STACK = 2**20


def fit_members(model: nn.Module | Sequence[Any], members: Sequence[MemberConfig], data: Any, *,
                loss: Any = "auto", metrics: Sequence[Any] = (), task: str | None = None,
                batch_size: int = 32, num_epochs: int = 1, device: str = "auto", stack: str = "auto",
                chunk_size: int | None = None) -> list[History]:
    """Train one run per member of `model` on `data`, stacked when they can be; one History each.

    Args:
        model: the base model (a trainlab Sequential, built or not, any
            nn.Module, or a list of layers); it is copied, never trained itself.
        members: one `MemberConfig` per run.
        data: a `trainlab.engine.TrainData`, or a tuple (x, y) or (x, y, x_val, y_val),
            already scaled. Members train on rows of x (all, or their train_indices).
        loss: loss spec, or "auto" to choose it from `task` and the targets.
        metrics: metric specs, computed per member as in a solo run.
        task: "classification" or "regression", for loss="auto".
        batch_size: shared by all members.
        num_epochs: the most epochs a member trains.
        device: "auto", "cpu" or "cuda[:N]".
        stack: "auto", "on" or "off" (see the module docstring).
        chunk_size: the most members per stack; None chooses from the memory
            estimate (see `member_bytes`). Smaller chunks give the same results.

    Returns:
        One History per member, in order, as `trainlab.engine.train` returns it:
        ``.history`` (loss, metrics, val_loss, val_<metric>, lr per epoch),
        ``.epoch``, ``.seed``, ``.stop_reason``, ``.params`` (with ``stacked``
        and ``stack_reason`` added) and ``.model``, the member's trained model.

    Raises:
        InputError: bad members, settings or data, or stack="on" for runs that cannot stack.
    """
    configs = _check_members(members)
    check.choice("stack", stack, STACK_MODES, "'auto' stacks when it is faster, 'on' always, 'off' never.")
    check.int_at_least("batch_size", batch_size, 1)
    check.int_at_least("num_epochs", num_epochs, 1)
    if chunk_size is not None:
        check.int_at_least("chunk_size", chunk_size, 1)
    from trainlab.api import as_model

    template = as_model(model)
    x, y, x_val, y_val = _data(data)
    n = x.shape[0]
    train_rows = [_rows(c.train_indices, n, f"members[{k}].train_indices") for k, c in enumerate(configs)]
    val_rows = [_rows(c.val_indices, n, f"members[{k}].val_indices") for k, c in enumerate(configs)]
    target = resolve_device(device)
    seeds = [c.seed if c.seed is not None else secrets.randbits(31) for c in configs]
    job = _Job(template=template, configs=configs, seeds=seeds, x=x, y=y, x_val=x_val, y_val=y_val,
               train_rows=train_rows, val_rows=val_rows, loss=loss, metrics=list(metrics), task=task,
               batch_size=batch_size, num_epochs=num_epochs, device=target)
    if stack == "off" or (len(configs) == 1 and stack == "auto"):
        job.resolve_losses()
        return job.one_at_a_time("stack='off'" if stack == "off" else "a single member: nothing to stack")
    built = job.build()
    job.resolve_losses(built[0])
    reason = job.unstackable(built)
    if reason is not None:
        if stack == "on":
            raise InputError(f"stack='on' but these runs cannot be stacked: {reason}. Use stack='auto' to "
                             "train them one after another instead, with the same results.")
        return job.one_at_a_time(reason)
    chunk = min(len(configs), chunk_size or job.auto_chunk(built))
    if stack == "auto":
        stacked_cost, solo_cost = job.probe(built, min(chunk, _PROBE_MEMBERS))
        if stacked_cost >= solo_cost:
            return job.one_at_a_time(f"the timed probe found a stacked member-step ({stacked_cost * 1e3:.3g} ms) "
                                     f"no cheaper than a solo step ({solo_cost * 1e3:.3g} ms)")
        why = (f"stacked in chunks of {chunk}: a member-step took {stacked_cost * 1e3:.3g} ms stacked, "
               f"{solo_cost * 1e3:.3g} ms alone")
    else:
        why = f"stack='on', chunks of {chunk}"
    return job.stacked(built, chunk, why)


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
    if optimizer is None:
        return 2
    group = optimizer.param_groups[0]
    if isinstance(optimizer, torch.optim.SGD):
        return 1 if group.get("momentum", 0) else 0
    if isinstance(optimizer, (torch.optim.Adam, torch.optim.NAdam)):
        return 3 if group.get("amsgrad") else 2
    if isinstance(optimizer, torch.optim.Adadelta):
        return 2
    if isinstance(optimizer, torch.optim.RMSprop):
        return 1 + bool(group.get("momentum")) + bool(group.get("centered"))
    if isinstance(optimizer, torch.optim.Adagrad):
        return 1
    return 2


def _memory_budget(device: torch.device) -> int:
    """Bytes a stacked run may use: half the available RAM, or 80% of the free GPU memory."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(0.8 * free)
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 2
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):
        return 4 * 1024**3


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


def _data(data: Any) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    if isinstance(data, TrainData):
        parts = [data.x, data.y, data.x_val, data.y_val]
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
    return x, y, x_val, y_val


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
    """One call of `fit_members`: the members, their data, and the two ways to train them."""

    def __init__(self, *, template: nn.Module, configs: list[MemberConfig], seeds: list[int], x: Tensor,
                 y: Tensor, x_val: Tensor | None, y_val: Tensor | None, train_rows: list[Tensor | None],
                 val_rows: list[Tensor | None], loss: Any, metrics: list[Any], task: str | None, batch_size: int,
                 num_epochs: int, device: torch.device) -> None:
        self.template, self.configs, self.seeds = template, configs, seeds
        self.models = [member_model(template, c, f"members[{k}]") for k, c in enumerate(configs)]
        self.built = False
        self.x, self.y, self.x_val, self.y_val = x, y, x_val, y_val
        self.train_rows, self.val_rows = train_rows, val_rows
        self.loss, self.metrics, self.task = loss, metrics, task
        self.batch_size, self.num_epochs, self.device = batch_size, num_epochs, device
        self.member_losses: list[Any] = []
        self.smoothing: list[float] = []
        self.num_outputs = 0

    # -- what every path needs -------------------------------------------------------------------
    def _sample(self, k: int) -> Tensor:
        rows = self.train_rows[k]
        return self.x[rows[:2]] if rows is not None else self.x[:2]

    def resolve_losses(self, built: nn.Module | None = None) -> None:
        """Each member's loss spec: the run's, or it with the member's label smoothing."""
        probe = built if built is not None else copy.deepcopy(self.models[0]).to(self.device)
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
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
        rows, val = self.train_rows[k], self.val_rows[k]
        x, y = (self.x, self.y) if rows is None else (self.x[rows], self.y[rows])
        if val is not None:
            return TrainData(x, y, self.x[val], self.y[val])
        return TrainData(x, y, self.x_val, self.y_val)

    # -- one at a time ------------------------------------------------------------------------------
    def one_at_a_time(self, reason: str) -> list[History]:
        """Each member through `trainlab.engine.train`, as a solo run."""
        if self.built:  # the engine builds an unbuilt model itself, under the run's seed
            self.models = [member_model(self.template, c, f"members[{k}]") for k, c in enumerate(self.configs)]
        histories = []
        for k, config in enumerate(self.configs):
            technique = Technique(loss=self.member_losses[k], optimizer=config.optimizer, metrics=list(self.metrics),
                                  schedule=config.schedule, task=self.task)
            loop = LoopConfig(batch_size=self.batch_size, num_epochs=self.num_epochs, seed=self.seeds[k],
                              device=str(self.device))
            history = train(self.models[k], self.member_data(k), technique, loop,
                            callbacks=[*config.early_stopping_callback(), *config.callbacks])
            history.params.update(stacked=False, stack_reason=reason)
            histories.append(history)
        return histories

    # -- stacked --------------------------------------------------------------------------------------
    def build(self) -> list[nn.Module]:
        """Copies of the members' models built as the engine builds them: under each member's seed."""
        self.built = True
        built = []
        fork = [self.device] if self.device.type == "cuda" else []
        for k, module in enumerate(self.models):
            with torch.random.fork_rng(devices=fork):
                _seed(self.seeds[k], self.device)
                module.to(self.device)
                probe_outputs(module, self._sample(k).to(self.device))
                module.to(self.device)
            built.append(module)
        return built

    def unstackable(self, built: list[nn.Module]) -> str | None:
        """Why these members cannot be trained as one stack, or None if they can."""
        first = built[0]
        for k, config in enumerate(self.configs):
            hooked = [type(c).__name__ for c in config.callbacks if _batch_hooks(c)]
            if hooked:
                return f"members[{k}] has a callback with batch hooks ({', '.join(hooked)}), which a stacked run does not call"
        layout = _layout(first)
        if not any(p.requires_grad for p in first.parameters()):
            return "the model has no trainable parameters"
        if len(list(first.named_parameters(remove_duplicate=False))) != len(list(first.named_parameters())):
            return "the model shares (ties) parameters between layers"
        for k, module in enumerate(built[1:], start=1):
            if _layout(module) != layout:
                return f"members[{k}]'s model differs in shape from members[0]'s"
        problem = _penalty_problem(built, self.configs)
        if problem is not None:
            return problem
        if layer_stack_supported(first):
            return None  # the layer path runs any such model
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("error", message=".*performance drop.*")
                count = min(2, len(built))
                probe = [copy.deepcopy(m) for m in built[:count]]
                runs = self._runs(probe, range(count), with_callbacks=False)
                shared = self._shared(probe, runs)
                with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                    stack = Stack(runs, shared)
                    table = torch.stack([self._rows_for_probe(0)] * count)
                    stack.run_step([(table.shape[1], None)], table, 0,
                                   torch.zeros(count, 1, device=self.device), None, _sums(count, self.device))
        except InputError:
            raise
        except (RuntimeError, NotImplementedError, TypeError, ValueError, IndexError, UserWarning) as error:
            return f"the model does not run stacked ({type(error).__name__}: {str(error).splitlines()[0]})"
        return None

    def auto_chunk(self, built: list[nn.Module]) -> int:
        largest = max(len(r) if r is not None else self.x.shape[0] for r in self.train_rows)
        sample = self._sample(0).to(self.device)
        optimizer = make_optimizer(self.configs[0].optimizer, [nn.Parameter(torch.zeros(1, device=self.device))],
                                   source="members[0].optimizer")
        need = member_bytes(built[0], sample, batch_size=self.batch_size, num_samples=largest, optimizer=optimizer)
        return max(1, _memory_budget(self.device) // max(need, 1))

    def _rows_for_probe(self, k: int) -> Tensor:
        rows = self.train_rows[k]
        size = min(self.batch_size, rows.numel() if rows is not None else self.x.shape[0])
        return (rows[:size] if rows is not None else torch.arange(size)).to(self.device)

    def probe(self, built: list[nn.Module], count: int) -> tuple[float, float]:
        """Seconds per member-step stacked (`count` members) and alone, timed on copies, interleaved."""
        fork = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=fork):
            copies = [copy.deepcopy(m) for m in built[:count]]
            runs = self._runs(copies, range(count), with_callbacks=False)
            shared = self._shared(copies, runs)
            stack = Stack(runs, shared)
            table = torch.stack([self._rows_for_probe(0)] * count)
            lr = torch.zeros(count, 1, device=self.device)
            sums = _sums(count, self.device)
            solo = copy.deepcopy(built[0])
            params = [p for p in solo.parameters() if p.requires_grad]
            optimizer = make_optimizer(self.configs[0].optimizer, params, source="members[0].optimizer")
            loss_fn, forward, _ = resolve_loss(solo, Technique(loss=self.member_losses[0], task=self.task),
                                               self.y, self.num_outputs)
            rows = self._rows_for_probe(0)
            xb = self.x.to(self.device)[rows]
            yb = _targets(self.y, loss_fn, self.num_outputs, "training", self.device)[rows]
            has_penalties = getattr(solo, "has_penalties", None)
            penalty = (cast(Callable[[], Tensor | None], solo.penalty)
                       if callable(has_penalties) and has_penalties() else None)

            def solo_step() -> None:
                objective = loss_fn(forward(xb), yb)
                if penalty is not None:
                    extra = penalty()
                    if extra is not None:
                        objective = objective + extra
                optimizer.zero_grad(set_to_none=True)
                objective.backward()  # type: ignore[no-untyped-call]
                optimizer.step()

            settings = [None] if self.device.type != "cpu" else [None, 1]

            def stacked_step(threads: int | None) -> None:
                with _threads(threads):
                    stack.run_step([(table.shape[1], None)], table, 0, lr, None, sums)

            stacked_times: dict[int | None, list[float]] = {n: [] for n in settings}
            solo_times = []
            for _ in range(3):
                for threads in settings:
                    stacked_times[threads].append(_timed(functools.partial(stacked_step, threads), self.device))
                solo_times.append(_timed(solo_step, self.device))
        best = min(min(times[1:]) for times in stacked_times.values())
        return best / count, min(solo_times[1:])

    def tiny(self, modules: list[nn.Module]) -> bool:
        """Whether a stack of `modules` is too small for intra-op threads to pay (see `ThreadChoice`)."""
        module = modules[0]
        params = sum(p.numel() for p in module.parameters())
        sizes: list[int] = []
        hooks = [m.register_forward_hook(lambda _m, _i, out: sizes.append(out[0].numel()
                                                                         if isinstance(out, Tensor) else 0))
                 for m in module.modules() if not list(m.children())]
        try:
            with torch.no_grad():
                was_training = module.training
                module.eval()
                module(self._sample(0).to(self.device))
                module.train(was_training)
        finally:
            for hook in hooks:
                hook.remove()
        largest = len(modules) * max(params, self.batch_size * max(sizes, default=0))
        return largest < SMALL_STACK

    def _shared(self, built: list[nn.Module], runs: list[MemberRun]) -> Shared:
        first = built[0]
        technique = Technique(loss=self.member_losses[0], task=self.task)
        loss_fn, forward, from_logits = resolve_loss(first, technique, self.y, self.num_outputs)
        fused = forward is not first
        losses = [resolve_loss(first, Technique(loss=spec, task=self.task), self.y, self.num_outputs)[0]
                  for spec in self.member_losses]
        for run, member_loss in zip(runs, losses):
            run.loss = member_loss
        soft = soft_loss(loss_fn) if len({run.smoothing for run in runs}) > 1 else None
        y = _targets(self.y, loss_fn, self.num_outputs, "training", self.device)
        x_val, y_val = self._validation_source(loss_fn)
        skeleton = copy.deepcopy(first)
        outside = _outside_penalties(skeleton, built)
        dropout_layers = _varying_dropout(built)
        layer_stack = layer_stack_supported(first)
        if not layer_stack:
            for name in dropout_layers:
                _replace(skeleton, name, MemberDropout(0.0))
        has = getattr(skeleton, "has_penalties", None)
        return Shared(skeleton=skeleton, fused=fused, loss=runs[0].loss, soft=soft, num_outputs=self.num_outputs,
                      x=self.x.to(self.device), y=y, x_val=x_val, y_val=y_val, from_logits=from_logits,
                      val_batch=max(self.batch_size, 1024), outside=tuple(outside),
                      dropout_layers=tuple(dropout_layers), penalty_inside=bool(callable(has) and has()),
                      layer_stack=layer_stack)

    def _validation_source(self, loss_fn: Loss) -> tuple[Tensor | None, Tensor | None]:
        """The validation rows of every member in one tensor: x_val, x itself (for val_indices), or both."""
        own = any(r is not None for r in self.val_rows)
        y_val = (_targets(self.y_val, loss_fn, self.num_outputs, "validation", self.device)
                 if self.y_val is not None else None)
        x_val = self.x_val.to(self.device) if self.x_val is not None else None
        if not own:
            return x_val, y_val
        y = _targets(self.y, loss_fn, self.num_outputs, "training", self.device)
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

    def _runs(self, modules: list[nn.Module], indices: Sequence[int], *, with_callbacks: bool) -> list[MemberRun]:
        """The members' run state: optimizer, schedule, History, callbacks, data order."""
        runs = []
        for module, k in zip(modules, indices):
            config = self.configs[k]
            params = [p for p in module.parameters() if p.requires_grad]
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
            validates, val_rows = self._member_val_rows(k)
            placeholder = make_loss("mse")  # set by _shared, which resolves the fused form
            runs.append(MemberRun(
                index=k, seed=self.seeds[k], module=module, rows=rows.to(self.device) if rows is not None else None,
                n=n, batch_size=self.batch_size, loss=placeholder, smoothing=self.smoothing[k],
                update=MemberUpdate.of(optimizer, params), schedule=schedule, validates=validates,
                val_rows=val_rows, train_metrics=[], val_metrics=[], history=history,
                callbacks=CallbackList([*callbacks, history], model=module, run=run, params=params_info),
                run=run, has_penalty=bool(callable(has) and has()), base_lrs=base_lrs,
                generator=torch.Generator(device=self.device).manual_seed(self.seeds[k]),
            ))
        return runs

    def stacked(self, built: list[nn.Module], chunk: int, why: str) -> list[History]:
        histories: list[History] = []
        fork = [self.device] if self.device.type == "cuda" else []
        for start in range(0, len(built), chunk):
            indices = list(range(start, min(start + chunk, len(built))))
            modules = [built[k] for k in indices]
            runs = self._runs(modules, indices, with_callbacks=True)
            shared = self._shared(modules, runs)
            for run in runs:
                run.train_metrics = _metrics(self.metrics, run.loss, self.num_outputs)
                run.val_metrics = _metrics(self.metrics, run.loss, self.num_outputs)
            with torch.random.fork_rng(devices=fork), _kept_threads():
                if self.device.type == "cpu":
                    shared = replace(shared, threads=ThreadChoice(default=torch.get_num_threads(),
                                                                  tiny=self.tiny(modules)))
                # Dropout masks come from one stream for the whole stack, seeded from its members' seeds.
                _seed(_stream_seed([self.seeds[k] for k in indices]), self.device)
                train_stacked(runs, shared, num_epochs=self.num_epochs)
            for run in runs:
                run.history.params = {"epochs": self.num_epochs, "steps": run.steps, "batch_size": self.batch_size,
                                      "seed": run.seed, "device": str(self.device), "fused_loss": shared.fused,
                                      "from_logits": shared.from_logits, "resumed_from_epoch": None,
                                      "stacked": True, "stack_reason": why}
                histories.append(run.history)
        return histories


# ----------------------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def _kept_threads() -> Iterator[None]:
    """Restore torch's intra-op thread setting after the block, whatever the block set."""
    before = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


@contextlib.contextmanager
def _threads(count: int | None) -> Iterator[None]:
    """Run the block with `count` intra-op threads (None: leave torch's setting), then restore it."""
    before = torch.get_num_threads()
    if count is None or count == before:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _sums(k: int, device: torch.device) -> dict[str, Tensor]:
    return {"loss": torch.zeros(k, device=device), "penalty": torch.zeros(k, device=device)}


def _timed(step: Callable[[], None], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def _seed(seed: int, device: torch.device) -> None:
    """Seed the global RNG as the single engine does (`torch.manual_seed`).

    On the CPU only the CPU generator matters, and seeding it alone gives the
    same stream without the lazy CUDA seeding that makes `torch.manual_seed`
    cost half a millisecond per call.
    """
    if device.type == "cpu":
        torch.default_generator.manual_seed(seed)
    else:
        torch.manual_seed(seed)


def _stream_seed(seeds: list[int]) -> int:
    value = 0
    for seed in seeds:
        value = (value * 1_000_003 + seed) % (2**63 - 1)
    return value


def _layout(module: nn.Module) -> list[tuple[str, tuple[int, ...], torch.dtype, bool]]:
    return ([(n, tuple(p.shape), p.dtype, p.requires_grad) for n, p in module.named_parameters()]
            + [(n, tuple(b.shape), b.dtype, False) for n, b in module.named_buffers()])


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


def _varying_dropout(built: list[nn.Module]) -> list[str]:
    """Dropout layers whose rate is not the same in every member."""
    names = []
    for name, layer in built[0].named_modules():
        if isinstance(layer, (Dropout, nn.Dropout)):
            rates = {float(getattr(m.get_submodule(name), "rate", getattr(m.get_submodule(name), "p", 0.0)))
                     for m in built}
            if len(rates) > 1:
                names.append(name)
    return names


def _replace(module: nn.Module, name: str, new: nn.Module) -> None:
    *path, attr = name.split(".")
    owner = module.get_submodule(".".join(path)) if path else module
    if isinstance(owner, (nn.ModuleList, nn.Sequential)):
        owner[int(attr)] = new
    else:
        setattr(owner, attr, new)
