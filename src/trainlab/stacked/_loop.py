"""The stacked training loop: K members, one forward, one backward and one optimizer step per step.

Per epoch, for every member that has not stopped, in the single engine's order:

    on_epoch_begin
      steps: batches of every member at once -> forward (K, B, ...) -> loss -> backward -> step
      validation of all members in one pass (eval mode)
      logs -> plateau schedule -> on_epoch_end -> stop?

Unequal training sets. Member k's epoch is its own pass over its n_k rows in
ceil(n_k / batch_size) steps, exactly as a solo run on those rows; an epoch of
the stack ends when the longest member's pass does. At a step where members'
batches differ in size (the last, smaller batch of some members) the members
are grouped by batch size and each group runs its own forward on its slice of
the stacked parameters; a member whose pass is over sits the remaining steps
out (no forward when the model has running statistics, and never an update).

Stopping. A member that asks to stop (early stopping, divergence, any
callback) is frozen at once: its module gets its own copy of its weights and
buffers, its `on_train_end` runs (restoring its best weights where asked), and
it takes no further update while the others go on. When half the stack has
stopped, the rest is re-stacked without them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import vmap

from trainlab.callbacks import CallbackList, History, RunState
from trainlab.losses import (
    BinaryCrossentropy,
    CategoricalCrossentropy,
    Huber,
    KLDivergence,
    Loss,
    MeanAbsoluteError,
    MeanSquaredError,
    SparseCategoricalCrossentropy,
)
from trainlab.metrics import AUC, Accuracy, ConfusionMatrix, Metric, PrecisionRecallF1, RegressionMetric, TopKAccuracy
from trainlab.stacked._forward import (
    LayerStackForward,
    MemberDropout,
    StackedForward,
    VmapForward,
    layer_stack_supported,
    strengths,
)
from trainlab.stacked._optim import MemberUpdate, StackedOptimizer

#: Losses that are a mean of per-sample terms: the sum of K members' batch means is
#: K times the loss of the K * B samples together, so one call serves all members.
SAMPLE_MEAN_LOSSES = (MeanSquaredError, MeanAbsoluteError, Huber, KLDivergence, BinaryCrossentropy,
                      CategoricalCrossentropy, SparseCategoricalCrossentropy)

#: Metrics whose value over an epoch is the same whether fed batch by batch or all at once.
EPOCH_METRICS = (Accuracy, TopKAccuracy, PrecisionRecallF1, ConfusionMatrix, AUC, RegressionMetric)

_LAYOUT_WARNING = "grad and param do not obey the gradient layout contract"


@dataclass
class MemberRun:
    """One member's state in a stacked run; it outlives any one stack (see `Stack`)."""

    index: int
    seed: int
    module: nn.Module
    rows: Tensor | None  # training rows of x (on the device); None: all of them
    n: int
    batch_size: int
    loss: Loss  # this member's loss (its label smoothing), for logs and validation
    smoothing: float
    update: MemberUpdate
    schedule: Any
    val_rows: Tensor | None  # rows of the validation source; None: no validation
    train_metrics: list[Metric]
    val_metrics: list[Metric]
    history: History
    callbacks: CallbackList
    run: RunState
    has_penalty: bool
    base_lrs: list[float] = field(default_factory=list)
    generator: torch.Generator | None = None
    step: int = 0
    stopped: bool = False
    ended: bool = False

    @property
    def steps(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def size_at(self, step: int) -> int:
        """The member's batch size at `step` of its pass (0 once the pass is over)."""
        if self.stopped or step >= self.steps:
            return 0
        return self.batch_size if step < self.steps - 1 else self.n - (self.steps - 1) * self.batch_size


@dataclass(frozen=True)
class Shared:
    """What every member of a run shares: the skeleton, the loss, the data."""

    skeleton: nn.Module
    fused: bool
    loss: Loss  # the common loss (label smoothing of the first member; per-member smoothing via targets)
    soft: Loss | None  # a probability-target form of the loss, when members' label smoothing differs
    num_outputs: int
    x: Tensor
    y: Tensor
    x_val: Tensor | None
    y_val: Tensor | None
    from_logits: bool
    val_batch: int
    outside: tuple[str, ...]  # parameters whose L1/L2 penalties the loop computes
    dropout_layers: tuple[str, ...]  # Dropout layers whose rate differs between members
    penalty_inside: bool


def _names(module: nn.Module) -> tuple[list[str], list[str]]:
    trainable = [n for n, p in module.named_parameters() if p.requires_grad]
    constant = [n for n, p in module.named_parameters() if not p.requires_grad]
    return trainable, constant + [n for n, _ in module.named_buffers()]


def _owner(module: nn.Module, name: str) -> tuple[nn.Module, str]:
    *path, attr = name.split(".")
    owner = module
    for part in path:
        owner = getattr(owner, part)
    return owner, attr


def _dropout_rate(module: nn.Module) -> float:
    return float(module.rate if hasattr(module, "rate") else module.p)  # type: ignore[arg-type]


class Stack:
    """K members' parameters as one flat (K, P) buffer, their buffers stacked, one optimizer step.

    Building a stack points each member module's parameters and buffers at its
    slice (so callbacks that read or load a member's weights see the stack);
    `release` gives them their own copies again.
    """

    def __init__(self, members: Sequence[MemberRun], shared: Shared) -> None:
        self.members = list(members)
        self.shared = shared
        modules = [m.module for m in self.members]
        first = modules[0]
        k = len(modules)
        trainable, constant = _names(first)
        self.trainable = trainable
        shapes = {n: p.shape for n, p in first.named_parameters()}
        sizes = [shapes[n].numel() for n in trainable]
        total = sum(sizes)
        dtype = next(p for n, p in first.named_parameters() if n in trainable).dtype
        device = shared.x.device
        self.flat = torch.empty(k, total, dtype=dtype, device=device)
        self.flat_grad = torch.zeros(k, total, dtype=dtype, device=device)
        self.params: dict[str, Tensor] = {}
        offset = 0
        per_member = [dict(m.named_parameters()) for m in modules]
        for name, size in zip(trainable, sizes):
            shape = shapes[name]
            self.flat[:, offset:offset + size] = torch.stack([p[name].detach().reshape(-1) for p in per_member])
            stride = (total, *_contiguous_strides(shape))
            leaf = torch.empty(0, dtype=dtype, device=device).set_(
                self.flat.untyped_storage(), offset, (k, *shape), stride)
            leaf.requires_grad_(True)
            leaf.grad = torch.empty(0, dtype=dtype, device=device).set_(
                self.flat_grad.untyped_storage(), offset, (k, *shape), stride)
            self.params[name] = leaf
            for i, params in enumerate(per_member):
                params[name].data = leaf.detach()[i]
                params[name].grad = leaf.grad[i]
            offset += size
        self.buffers: dict[str, Tensor] = {}
        named_buffers = [dict(m.named_buffers()) for m in modules]
        for name in constant:
            if name in shapes:
                stacked = torch.stack([p[name].detach() for p in per_member])
                self.params[name] = stacked
                for i, params in enumerate(per_member):
                    params[name].data = stacked[i]
            else:
                stacked = torch.stack([b[name] for b in named_buffers])
                self.buffers[name] = stacked
                for i, module in enumerate(modules):
                    owner, attr = _owner(module, name)
                    owner._buffers[attr] = stacked[i]
        for name in shared.dropout_layers:
            rates = [_dropout_rate(_owner(m, name)[0].get_submodule(_owner(m, name)[1])) for m in modules]
            self.buffers[f"{name}.rate"] = torch.tensor(rates, dtype=dtype, device=device)
        self.has_running_state = any(b.is_floating_point() and b.dim() > 1 for b in self.buffers.values()) \
            or any(not n.endswith(".rate") for n in self.buffers)
        self.optimizer = StackedOptimizer(self.flat, self.flat_grad, [m.update for m in self.members])
        self.forward = self._forward()
        self.penalties = self._penalties(modules, dtype, device)
        smoothing = [m.smoothing for m in self.members]
        self.smoothing = torch.tensor(smoothing, dtype=dtype, device=device) if shared.soft is not None else None

    def _forward(self) -> StackedForward:
        shared = self.shared
        if layer_stack_supported(self.members[0].module) and type(shared.skeleton) is type(self.members[0].module):
            return LayerStackForward(shared.skeleton, fused=shared.fused)  # type: ignore[arg-type]
        names = [*self.trainable, *[n for n in self.params if n not in self.trainable], *self.buffers]
        return VmapForward(shared.skeleton, names, fused=shared.fused, penalty=shared.penalty_inside)

    def _penalties(self, modules: list[nn.Module], dtype: torch.dtype, device: torch.device
                   ) -> list[tuple[str, Tensor | None, Tensor | None]]:
        terms = []
        for name in self.shared.outside:
            values = []
            for module in modules:
                owner, attr = _owner(module, name)
                reg = owner.kernel_regularizer if attr == "weight" else owner.bias_regularizer
                values.append(strengths(reg))
            l1 = [v[0] for v in values]  # type: ignore[index]
            l2 = [v[1] for v in values]  # type: ignore[index]
            if any(l1) or any(l2):
                terms.append((name, torch.tensor(l1, dtype=dtype, device=device) if any(l1) else None,
                              torch.tensor(l2, dtype=dtype, device=device) if any(l2) else None))
        return terms

    def release(self, member: MemberRun) -> None:
        """Give `member`'s module its own copy of its weights and buffers (it leaves the stack)."""
        for p in member.module.parameters():
            p.data = p.data.clone()
            p.grad = None
        for name, buffer in list(member.module.named_buffers()):
            owner, attr = _owner(member.module, name)
            owner._buffers[attr] = buffer.clone()

    def release_all(self) -> None:
        for member in self.members:
            if not member.ended:
                self.release(member)

    # -- one step -------------------------------------------------------------------------------
    def run_step(self, groups: Sequence[tuple[int, Tensor | None]], table: Tensor, start: int,
                 lr: Tensor, active: list[bool] | None, sums: dict[str, Tensor]) -> list[tuple[Tensor | None, Tensor]]:
        """Forward, loss, backward and update for one step; returns (members, outputs) per group."""
        shared = self.shared
        objective: Tensor | None = None
        records = []
        self.flat_grad.zero_()
        for size, members in groups:
            idx = table[:, start:start + size] if members is None else table[members, start:start + size]
            params = self.params if members is None else {n: t.index_select(0, members) for n, t in self.params.items()}
            buffers = self.buffers if members is None else {n: t.index_select(0, members) for n, t in self.buffers.items()}
            out, penalty = self.forward(params, buffers, shared.x[idx], training=True)  # type: ignore[call-arg]
            if members is not None:
                for name, buffer in buffers.items():
                    if not name.endswith(".rate"):
                        self.buffers[name].index_copy_(0, members, buffer)
            yb = shared.y[idx]
            term = self._loss(out, yb, members, sums, size)
            extra = self._outside_penalty(params, members)
            if penalty is not None:
                extra = penalty if extra is None else extra + penalty
            if extra is not None:
                term = term + extra.sum()
                _accumulate(sums, "penalty", members, extra.detach() * size)
            objective = term if objective is None else objective + term
            records.append((members, out.detach()))
        if objective is None:
            return records
        with warnings.catch_warnings():
            # Each member's slice of a stacked parameter is a strided view; torch notes that the
            # gradient it accumulates in place there is not in its preferred layout. That is harmless.
            warnings.filterwarnings("ignore", message=_LAYOUT_WARNING)
            objective.backward()
        self.optimizer.step(lr, active)
        return records

    def _loss(self, out: Tensor, yb: Tensor, members: Tensor | None, sums: dict[str, Tensor], size: int) -> Tensor:
        shared = self.shared
        m = out.shape[0]
        if isinstance(shared.loss, SAMPLE_MEAN_LOSSES):
            flat_out = out.flatten(0, 1)
            if shared.soft is not None:
                smoothing = self.smoothing if members is None else self.smoothing[members]  # type: ignore[index]
                targets = soft_targets(shared.loss, yb, smoothing, out.shape[-1])
                return m * shared.soft(flat_out, targets.flatten(0, 1))
            return m * shared.loss(flat_out, yb.flatten(0, 1))
        per_member = vmap(shared.loss)(out, yb)
        _accumulate(sums, "loss", members, per_member.detach() * size)
        return per_member.sum()

    def _outside_penalty(self, params: dict[str, Tensor], members: Tensor | None) -> Tensor | None:
        total: Tensor | None = None
        for name, l1, l2 in self.penalties:
            w = params[name].flatten(1)
            for strength, value in ((l1, w.abs().sum(1) if l1 is not None else None),
                                    (l2, w.square().sum(1) if l2 is not None else None)):
                if strength is None or value is None:
                    continue
                term = (strength if members is None else strength[members]) * value
                total = term if total is None else total + term
        return total


def _accumulate(sums: dict[str, Tensor], key: str, members: Tensor | None, values: Tensor) -> None:
    if members is None:
        sums[key].add_(values)
    else:
        sums[key].index_add_(0, members, values)


def _contiguous_strides(shape: torch.Size) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


def soft_targets(loss: Loss, y: Tensor, smoothing: Tensor, classes: int) -> Tensor:
    """Per-member label-smoothed probability targets (m, b, C) for a cross-entropy.

    Label smoothing ls moves ls of the target's mass to the uniform distribution
    (1/C over C classes; 1/2 for each binary output), as Keras and torch define
    it, so a member's smoothing becomes part of its targets and one call of the
    probability-target loss serves members with different smoothing.
    """
    shape = (-1,) + (1,) * (y.dim() if isinstance(loss, SparseCategoricalCrossentropy) else y.dim() - 1)
    ls = smoothing.view(shape)
    if isinstance(loss, SparseCategoricalCrossentropy):
        labels = y.squeeze(-1) if y.dim() == 3 else y
        one_hot = torch.nn.functional.one_hot(labels, classes).to(smoothing.dtype)
        return one_hot * (1.0 - ls) + ls / classes
    if isinstance(loss, CategoricalCrossentropy):
        return y * (1.0 - ls) + ls / classes
    return y * (1.0 - ls) + 0.5 * ls


def soft_loss(loss: Loss) -> Loss:
    """The probability-target cross-entropy that `soft_targets` feeds (no smoothing of its own)."""
    if isinstance(loss, BinaryCrossentropy):
        return BinaryCrossentropy(from_logits=loss.from_logits)
    return CategoricalCrossentropy(from_logits=loss.from_logits)


def with_smoothing(loss: Loss, smoothing: float) -> Loss:
    """`loss` with its label smoothing set (cross-entropies only)."""
    return replace(loss, label_smoothing=smoothing)  # type: ignore[call-arg]
