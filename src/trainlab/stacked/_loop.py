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
it takes no further update while the others go on. A diverged member gets the
weights it had at the start of the epoch back, as the single engine does. When
half the stack has stopped, the rest is re-stacked without them.

Logs. The training loss of a member is computed at the end of the epoch from
its outputs of the epoch (the size-weighted mean of its batch losses, as the
engine logs it, for losses that are means over samples), and its metrics are
fed those outputs at once (batch by batch for metrics that are not sums over
samples), so the step itself does no per-member work.
"""

from __future__ import annotations

import math
import time
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
from trainlab.metrics import (
    AUC,
    Accuracy,
    ConfusionMatrix,
    Metric,
    PrecisionRecallF1,
    RegressionMetric,
    TopKAccuracy,
)
from trainlab.stacked._forward import (
    LayerStackForward,
    StackedForward,
    VmapForward,
    strengths,
)
from trainlab.stacked._optim import MemberUpdate, StackedOptimizer, stack_order

#: Losses that are a mean of per-sample terms: the sum of K members' batch means is
#: K times the loss of the K * B samples together, so one call serves all members.
SAMPLE_MEAN_LOSSES = (MeanSquaredError, MeanAbsoluteError, Huber, KLDivergence, BinaryCrossentropy,
                      CategoricalCrossentropy, SparseCategoricalCrossentropy)

#: A member whose epoch loss exceeds this many times its first epoch's has diverged (the engine's default).
DIVERGENCE_FACTOR = 100.0

#: Metrics whose value over an epoch is the same whether fed batch by batch or all at once.
EPOCH_METRICS = (Accuracy, TopKAccuracy, PrecisionRecallF1, ConfusionMatrix, AUC, RegressionMetric)


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
    validates: bool  # whether the member has validation data
    val_rows: Tensor | None  # its rows of the validation set; None: all of it
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
    first_loss: float | None = None

    @property
    def steps(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def size_at(self, step: int) -> int:
        """The member's batch size at `step` of its pass (0 once the pass is over)."""
        if self.stopped or step >= self.steps:
            return 0
        return self.batch_size if step < self.steps - 1 else self.n - (self.steps - 1) * self.batch_size


class ThreadChoice:
    """Intra-op threads for a stacked run on the CPU: torch's setting or one, whichever runs faster.

    A stack runs many short kernels, and torch splits even small batched
    products across its threads; whether that pays depends on the sizes and on
    whether other processes keep the cores busy (then every kernel can wait
    milliseconds for a descheduled thread). So the first steps are timed both
    ways (after one warm-up step, two steps each, interleaved) and the faster
    setting is kept for the rest of the run. A tiny stack, whose kernels are
    far too small to gain from threads, runs single-threaded without trying.
    The caller restores torch's setting when the run ends.
    """

    def __init__(self, *, default: int, tiny: bool) -> None:
        self.default = default
        self.choice: int | None = 1 if tiny or default == 1 else None
        self.trials: dict[int, list[float]] = {default: [], 1: []}
        self.count = 0
        if self.choice is not None:
            torch.set_num_threads(self.choice)

    def before_step(self) -> float:
        if self.choice is None:
            torch.set_num_threads(self.default if self.count % 4 in (0, 1) else 1)
        return time.perf_counter()

    def after_step(self, started: float) -> None:
        if self.choice is not None:
            return
        self.count += 1
        if self.count > 1:  # the first step pays for warm-up
            self.trials[torch.get_num_threads()].append(time.perf_counter() - started)
        if all(len(t) >= 2 for t in self.trials.values()):
            self.choice = min(self.trials, key=lambda n: min(self.trials[n]))
            torch.set_num_threads(self.choice)


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
    layer_stack: bool  # LayerStackForward (else vmap)
    threads: ThreadChoice | None = None  # None: leave torch's thread setting alone (not on the CPU)


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
    """K members' parameters and buffers stacked as (K, ...) tensors, and one optimizer step for all.

    Building a stack points each member module's parameters and buffers at its
    slice (so callbacks that read or load a member's weights see the stack);
    `release` gives them their own copies again.
    """

    def __init__(self, members: Sequence[MemberRun], shared: Shared) -> None:
        order = stack_order([m.update for m in members], [m.n for m in members])
        self.members = [members[i] for i in order]
        self.shared = shared
        modules = [m.module for m in self.members]
        first = modules[0]
        k = len(modules)
        trainable, constant = _names(first)
        self.trainable = trainable
        shapes = {n: p.shape for n, p in first.named_parameters()}
        total = k * sum(shapes[n].numel() for n in trainable)
        self.dtype = next(p for n, p in first.named_parameters() if n in trainable).dtype
        self.device = device = shared.x.device
        # One buffer, parameter by parameter: each stacked parameter (K, ...) is a contiguous leaf,
        # so the backward pass hands over a fresh gradient of the same layout with no copy.
        self.storage = torch.empty(total, dtype=self.dtype, device=device)
        self.params: dict[str, Tensor] = {}
        blocks: list[Tensor] = []
        offset = 0
        per_member = [dict(m.named_parameters()) for m in modules]
        for name in trainable:
            shape, size = shapes[name], k * shapes[name].numel()
            block = self.storage[offset:offset + size].view(k, -1)
            block.copy_(torch.stack([p[name].detach().reshape(-1) for p in per_member]))
            leaf = torch.empty(0, dtype=self.dtype, device=device).set_(
                self.storage.untyped_storage(), offset, (k, *shape), _contiguous_strides(torch.Size((k, *shape))))
            self.params[name] = leaf.requires_grad_(True)
            blocks.append(block)
            for i, params in enumerate(per_member):
                params[name].data = block[i].view(shape)
                params[name].grad = None
            offset += size
        self.leaves = [self.params[n] for n in trainable]
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
        # Running statistics (BatchNorm) change in every training forward, so a member that
        # sits a step out must be left out of that forward, not given a stand-in batch.
        self.has_running_state = bool(self.buffers)
        for name in shared.dropout_layers:
            rates = [_dropout_rate(m.get_submodule(name)) for m in modules]
            self.buffers[f"{name}.rate"] = torch.tensor(rates, dtype=self.dtype, device=device)
        self.optimizer = StackedOptimizer(blocks, self.leaves, [m.update for m in self.members],
                                          [m.n for m in self.members])
        self.forward = self._forward()
        self.penalties = self._penalties(modules, self.dtype, device)
        smoothing = [m.smoothing for m in self.members]
        self.smoothing = (torch.tensor(smoothing, dtype=self.dtype, device=device)
                          if shared.soft is not None else None)

    def _forward(self) -> StackedForward:
        shared = self.shared
        if shared.layer_stack:
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

    def snapshot(self) -> tuple[Tensor, dict[str, Tensor]]:
        """A copy of every member's weights and buffers (the last good state, for divergence)."""
        return self.storage.clone(), {n: b.clone() for n, b in self.buffers.items()}

    def restore(self, member: MemberRun, snapshot: tuple[Tensor, dict[str, Tensor]]) -> None:
        """Put `member`'s weights and buffers back as they were in `snapshot` (it has been released)."""
        row = self.members.index(member)
        storage, buffers = snapshot
        k, offset = len(self.members), 0
        named = dict(member.module.named_parameters())
        for name in self.trainable:
            size = k * named[name].numel()
            named[name].data.copy_(storage[offset:offset + size].view(k, -1)[row].view(named[name].shape))
            offset += size
        for name, buffer in member.module.named_buffers():
            if name in buffers:
                buffer.copy_(buffers[name][row])

    def grads_of(self, member: MemberRun) -> list[Tensor]:
        """`member`'s parameters with their gradient of the last step attached (for diagnostics)."""
        row = self.members.index(member)
        named = dict(member.module.named_parameters())
        params: list[Tensor] = []
        for name, leaf in zip(self.trainable, self.leaves):
            param = named[name]
            if leaf.grad is not None:
                param.grad = leaf.grad[row].view(param.shape)
            params.append(param)
        return params

    def release(self, member: MemberRun) -> None:
        """Give `member`'s module its own copy of its weights and buffers (it leaves the stack)."""
        for p in member.module.parameters():
            p.data = p.data.clone()
            p.grad = None
        for name, buffer in list(member.module.named_buffers()):
            owner, attr = _owner(member.module, name)
            owner._buffers[attr] = buffer.clone()

    def release_all(self) -> None:
        """Every member that is still training leaves the stack (with its optimizer state)."""
        self.optimizer.save_states()
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
        for leaf in self.leaves:
            leaf.grad = None
        # In a full-stack forward, members that sit this step out ride along on stand-in rows:
        # their gradients are never applied, and their sums must not count the step.
        mask = (torch.tensor(active, dtype=self.dtype, device=self.device)
                if active is not None and any(m is None for _, m in groups) else None)
        for size, members in groups:
            weight = mask if members is None else None
            idx = table[:, start:start + size] if members is None else table[members, start:start + size]
            params = self.params if members is None else {n: t.index_select(0, members) for n, t in self.params.items()}
            buffers = self.buffers if members is None else {n: t.index_select(0, members) for n, t in self.buffers.items()}
            out, penalty = self.forward(params, buffers, shared.x[idx], training=True)
            if members is not None:
                for name, buffer in buffers.items():
                    if not name.endswith(".rate"):
                        self.buffers[name].index_copy_(0, members, buffer)
            yb = shared.y[idx]
            term = self._loss(out, yb, members, sums, size, weight)
            extra = self._outside_penalty(params, members)
            if penalty is not None:
                extra = penalty if extra is None else extra + penalty
            if extra is not None:
                term = term + extra.sum()
                _accumulate(sums, "penalty", members, extra.detach() * size, weight)
            objective = term if objective is None else objective + term
            records.append((members, out.detach()))
        if objective is None:
            return records
        objective.backward()  # type: ignore[no-untyped-call]
        self.optimizer.step(lr, active)
        return records

    def _loss(self, out: Tensor, yb: Tensor, members: Tensor | None, sums: dict[str, Tensor], size: int,
              weight: Tensor | None) -> Tensor:
        shared = self.shared
        m = out.shape[0]
        if isinstance(shared.loss, SAMPLE_MEAN_LOSSES):
            flat_out = out.flatten(0, 1)
            if shared.soft is not None and self.smoothing is not None:
                smoothing = self.smoothing if members is None else self.smoothing[members]
                targets = soft_targets(shared.loss, yb, smoothing, out.shape[-1])
                return m * shared.soft(flat_out, targets.flatten(0, 1))
            return m * shared.loss(flat_out, yb.flatten(0, 1))
        per_member = vmap(shared.loss)(out, yb)
        _accumulate(sums, "loss", members, per_member.detach() * size, weight)
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


def _accumulate(sums: dict[str, Tensor], key: str, members: Tensor | None, values: Tensor,
                weight: Tensor | None) -> None:
    if weight is not None:
        values = values * weight
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


# ----------------------------------------------------------------------------------- the epochs


def train_stacked(members: Sequence[MemberRun], shared: Shared, *, num_epochs: int) -> None:
    """Train `members` together for up to `num_epochs` epochs.

    Fills each member's History (its logs, stop reason and params) and leaves
    its final weights in its own module, as `trainlab.engine.train` does for one.
    """
    stack = Stack(members, shared)
    try:
        for member in members:
            member.module.stop_training = False  # type: ignore[assignment]
            member.callbacks.on_train_begin({})
        for epoch in range(num_epochs):
            live = [m for m in stack.members if not m.stopped]
            if not live:
                break
            for member in live:
                member.run.epoch = epoch
                member.callbacks.on_epoch_begin(epoch, {})
            _epoch(stack, epoch, stack.snapshot())
            remaining = [m for m in stack.members if not m.stopped]
            if remaining and len(remaining) <= len(stack.members) // 2:
                stack.release_all()
                stack = Stack(remaining, shared)
    finally:
        stack.release_all()
        for member in members:
            if not member.ended:
                _end(member)


def _end(member: MemberRun) -> None:
    member.ended = True
    member.callbacks.on_train_end({})
    history = member.history
    history.stop_reason = member.run.stop_reason
    history.model = member.module


def _epoch(stack: Stack, epoch: int, last_good: tuple[Tensor, dict[str, Tensor]]) -> None:
    members, shared = stack.members, stack.shared
    k = len(members)
    device = shared.x.device
    batch = members[0].batch_size
    live = [i for i, m in enumerate(members) if not m.stopped]
    max_steps = max(members[i].steps for i in live)
    table = torch.zeros((k, max_steps * batch), dtype=torch.long, device=device)
    for i in live:
        m = members[i]
        order = torch.randperm(m.n, generator=m.generator, device=device)
        table[i, :m.n] = order if m.rows is None else m.rows[order]
    lr_rows, own_factors = _learning_rates(members, live, max_steps, set(stack.optimizer.direction_rows))
    lrs = torch.tensor(lr_rows, dtype=stack.dtype, device=device).unsqueeze(-1)
    sums = {"loss": torch.zeros(k, dtype=stack.dtype, device=device),
            "penalty": torch.zeros(k, dtype=stack.dtype, device=device)}
    steps: list[tuple[list[bool] | None, list[tuple[Tensor | None, Tensor]]]] = []
    for s, (groups, active) in enumerate(_plan(stack, max_steps)):
        for i, factors in own_factors.items():
            if active is None or active[i]:
                optimizer = members[i].update.optimizer
                for group, base in zip(optimizer.param_groups, members[i].base_lrs):
                    group["lr"] = base * factors[s]
        started = shared.threads.before_step() if shared.threads is not None else 0.0
        records = stack.run_step(groups, table, s * batch, lrs[s], active, sums)
        if shared.threads is not None:
            shared.threads.after_step(started)
        steps.append((active, records))
    for i in live:
        m = members[i]
        m.step += m.steps
        m.run.step = m.step
        if m.schedule is not None and i in stack.optimizer.direction_rows:
            m.update.optimizer.param_groups[0]["lr"] = lr_rows[m.steps - 1][i]
    outputs = _member_outputs(steps, live, k)
    targets = {i: shared.y[table[i, :members[i].n]] for i in live}
    logs = _train_logs(stack, live, outputs, targets, sums)
    _validate(stack, live, logs)
    for i in live:
        _epoch_end(stack, members[i], epoch, logs[i], last_good)


def _plan(stack: Stack, max_steps: int) -> list[tuple[list[tuple[int, Tensor | None]], list[bool] | None]]:
    """Per step of this pass: the groups of members by batch size, and who is active (None: all)."""
    members = stack.members
    first = members[0]
    if all(not m.stopped and m.n == first.n for m in members):
        return [([(first.size_at(s), None)], None) for s in range(max_steps)]
    device = stack.device
    plan: list[tuple[list[tuple[int, Tensor | None]], list[bool] | None]] = []
    for s in range(max_steps):
        sizes = [m.size_at(s) for m in members]
        active = [size > 0 for size in sizes]
        distinct = sorted({size for size in sizes if size > 0}, reverse=True)
        sitting_out = any(not m.stopped and not a for m, a in zip(members, active))
        if len(distinct) == 1 and not (sitting_out and stack.has_running_state):
            groups: list[tuple[int, Tensor | None]] = [(distinct[0], None)]
        else:
            groups = [(size, torch.tensor([i for i, n in enumerate(sizes) if n == size], device=device))
                      for size in distinct]
        plan.append((groups, None if all(active) else active))
    return plan


def _learning_rates(members: Sequence[MemberRun], live: list[int], max_steps: int, direction: set[int]
                    ) -> tuple[list[list[float]], dict[int, list[float]]]:
    """lr of every direction member at every step of this pass (0 where it takes no step),
    and the schedule factors of own-optimizer members (set on their param groups step by step)."""
    rows = [[0.0] * len(members) for _ in range(max_steps)]
    own: dict[int, list[float]] = {}
    for i in live:
        m = members[i]
        factors = ([float(m.schedule(m.step + s)) for s in range(m.steps)] if m.schedule is not None
                   else None)
        if i not in direction:
            if factors is not None:
                own[i] = factors
            continue
        for s in range(m.steps):
            rows[s][i] = m.base_lrs[0] * factors[s] if factors is not None else m.update.lr
    return rows, own


def _member_outputs(steps: list[tuple[list[bool] | None, list[tuple[Tensor | None, Tensor]]]],
                    live: list[int], k: int) -> dict[int, Tensor]:
    """Each live member's training outputs of this pass, in its batch order."""
    if all(active is None and all(members is None for members, _ in records) for active, records in steps):
        together = torch.cat([records[0][1] for _, records in steps], dim=1)
        return {i: together[i] for i in live}
    pieces: dict[int, list[Tensor]] = {i: [] for i in live}
    for active, records in steps:
        for members, out in records:
            if members is None:
                for i in live:
                    if active is None or active[i]:
                        pieces[i].append(out[i])
            else:
                for position, i in enumerate(members.tolist()):
                    if i in pieces:
                        pieces[i].append(out[position])
    return {i: torch.cat(p) for i, p in pieces.items()}


def _train_logs(stack: Stack, live: list[int], outputs: dict[int, Tensor], targets: dict[int, Tensor],
                sums: dict[str, Tensor]) -> dict[int, dict[str, Any]]:
    members, shared = stack.members, stack.shared
    with torch.no_grad():
        if isinstance(shared.loss, SAMPLE_MEAN_LOSSES):
            # A mean of per-sample terms over the whole pass is the engine's size-weighted mean of batch means.
            data = torch.stack([members[i].loss(outputs[i], targets[i]) for i in live]).tolist()
        else:
            data = [(sums["loss"][i] / members[i].n).item() for i in live]
        penalties = (sums["penalty"][live] / torch.tensor([members[i].n for i in live],
                                                          dtype=sums["penalty"].dtype,
                                                          device=sums["penalty"].device)).tolist()
    logs: dict[int, dict[str, Any]] = {}
    for position, i in enumerate(live):
        m = members[i]
        entry: dict[str, Any] = {}
        if m.has_penalty:
            entry["loss"] = data[position] + penalties[position]
            entry["penalty"] = penalties[position]
        else:
            entry["loss"] = data[position]
        if m.train_metrics:
            _score(m.train_metrics, outputs[i], targets[i], shared.from_logits, m.batch_size)
            for metric in m.train_metrics:
                if getattr(metric, "scalar", True):
                    entry[metric.name] = float(metric.compute())  # type: ignore[arg-type]
        logs[i] = entry
    return logs


def _score(metrics: list[Metric], out: Tensor, y: Tensor, from_logits: bool, batch_size: int) -> None:
    for metric in metrics:
        metric.reset()
        if isinstance(metric, EPOCH_METRICS):
            metric.update(out, y, from_logits=from_logits)
        else:
            for out_batch, y_batch in zip(torch.split(out, batch_size), torch.split(y, batch_size)):
                metric.update(out_batch, y_batch, from_logits=from_logits)


def _validate(stack: Stack, live: list[int], logs: dict[int, dict[str, Any]]) -> None:
    """Loss and metrics of every live member on its validation rows, in one pass (eval mode).

    Members that all validate on the whole validation set share its batches
    (one (b, ...) input seen by every member); otherwise each member's rows are
    gathered into a (K, b, ...) batch, shorter row lists padded and the padding
    ignored.
    """
    members, shared = stack.members, stack.shared
    checked = [i for i in live if members[i].validates]
    if not checked or shared.x_val is None or shared.y_val is None:
        return
    x_val, y_val = shared.x_val, shared.y_val
    k = len(members)
    whole = torch.arange(x_val.shape[0], device=x_val.device)
    rows: dict[int, Tensor] = {}
    for i in checked:
        own = members[i].val_rows
        rows[i] = own if own is not None else whole
    counts = {i: int(r.numel()) for i, r in rows.items()}
    longest = max(counts.values())
    table = None
    if any(members[i].val_rows is not None for i in checked):
        table = torch.zeros((k, longest), dtype=torch.long, device=x_val.device)
        for i, r in rows.items():
            table[i, :r.numel()] = r
    totals = torch.zeros(k, dtype=stack.dtype, device=x_val.device)
    for i in checked:
        for metric in members[i].val_metrics:
            metric.reset()
    step = shared.val_batch
    with torch.no_grad():
        for start in range(0, longest, step):
            if table is None:
                out, _ = stack.forward(stack.params, stack.buffers, x_val[start:start + step],
                                       training=False, shared=True)
            else:
                out, _ = stack.forward(stack.params, stack.buffers, x_val[table[:, start:start + step]],
                                       training=False)
            for i in checked:
                size = min(counts[i] - start, step)
                if size <= 0:
                    continue
                yb = y_val[start:start + size] if table is None else y_val[table[i, start:start + size]]
                ob = out[i, :size]
                totals[i] += members[i].loss(ob, yb) * size
                for metric in members[i].val_metrics:
                    metric.update(ob, yb, from_logits=shared.from_logits)
    values = totals.tolist()
    for i in checked:
        logs[i]["val_loss"] = values[i] / counts[i]
        for metric in members[i].val_metrics:
            if getattr(metric, "scalar", True):
                logs[i][f"val_{metric.name}"] = float(metric.compute())  # type: ignore[arg-type]


def _epoch_end(stack: Stack, member: MemberRun, epoch: int, logs: dict[str, Any],
               last_good: tuple[Tensor, dict[str, Tensor]]) -> None:
    """The end of one member's epoch, in the single engine's order (see `trainlab.engine`)."""
    from trainlab.engine import _diverged, _divergence_reason

    run = member.run
    run.lr = member.update.lr
    logs["lr"] = run.lr
    if member.schedule is not None and hasattr(member.schedule, "on_epoch_end"):
        member.schedule.on_epoch_end(epoch, logs)
    if member.first_loss is None:
        member.first_loss = logs["loss"]
    diverged = _diverged(logs["loss"], member.first_loss, DIVERGENCE_FACTOR)
    if diverged:
        run.request_stop(_divergence_reason(logs, run.lr, member.history.history.get("loss"),
                                            stack.grads_of(member), restored=epoch > 0))
    member.callbacks.on_epoch_end(epoch, logs)
    if diverged or getattr(member.module, "stop_training", False):
        member.stopped = True
        stack.release(member)
        if diverged:
            # As the single engine: keep what was learned before it went wrong.
            stack.restore(member, last_good)
        else:
            run.stopped_epoch = epoch
        _end(member)
