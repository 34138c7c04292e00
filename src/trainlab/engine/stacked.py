"""StackedStep: K members of one architecture, one forward, one backward and one update per step.

Each stacked parameter is a (K, ...) tensor whose row k is member k's; each
member's module points its parameters and buffers at its rows (so callbacks
that read or load a member's weights see the stack). The forward pass is
`trainlab.stacked._forward` (batched Dense layers, or torch.func.vmap over the
module) and the update `trainlab.stacked._optim.StackedOptimizer`, which gives
every member exactly its own torch optimizer's update.

Unequal training sets. Member k's epoch is its own pass over its n_k rows in
ceil(n_k / batch_size) steps, exactly as a solo run on those rows. At a step
where members' batches differ in size (the last, smaller batch of some members)
the members are grouped by batch size and each group runs its own forward on
its slice of the stacked parameters; a member whose pass is over, or that
stopped mid-epoch, sits the remaining steps out (no update, no state change).

Random layers. trainlab's Dropout draws its mask from the member's
counter-based stream (`trainlab.engine.streams`) keyed by (member seed, member
step, layer position, element), exactly the numbers its solo run draws.

Logs. A member's training loss is computed at the end of the epoch from its
outputs of the epoch, for losses that are means over samples (the size-weighted
mean of its batch losses, as the solo executor logs it); with sample weights,
batch transforms or per-member batch losses wanted (batch callbacks,
record_steps) the per-member batch losses are computed at each step instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from trainlab.engine import streams
from trainlab.engine.config import BatchTransform, ClipGradNorm, ClipGradValue, GradientHook
from trainlab.engine.evaluate import metric_logs
from trainlab.engine.solo import _metric_targets, transform_generator
from trainlab.engine.state import MemberState
from trainlab.engine.step import backward
from trainlab.losses import BinaryCrossentropy, CategoricalCrossentropy, Loss, SparseCategoricalCrossentropy
from trainlab.metrics import Metric
from trainlab.stacked._forward import LayerStackForward, StackedForward, VmapForward, strengths
from trainlab.stacked._optim import MemberUpdate, StackedOptimizer, stack_order


@dataclass(frozen=True)
class Shared:
    """What every member of a stacked run shares: the skeleton, the loss, the data, the extension points."""

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
    dropout_layers: tuple[str, ...]  # trainlab Dropout layers (their masks come from the members' streams)
    penalty_inside: bool
    layer_stack: bool  # LayerStackForward (else vmap)
    transforms: tuple[BatchTransform, ...] = ()
    hooks: tuple[GradientHook, ...] = ()
    member_losses: bool = False  # compute each member's batch loss at every step
    per_member_x: bool = False  # x (K, N, ...) and x_val (K, N_val, ...): each member's own scaling


@dataclass
class Slot:
    """A member as the stack sees it: its state, its update rule, its label smoothing, its val rows."""

    member: MemberState
    update: MemberUpdate
    smoothing: float
    validates: bool
    val_rows: Tensor | None

    @property
    def n(self) -> int:
        return self.member.n

    @property
    def module(self) -> nn.Module:
        return self.member.module


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


def _contiguous_strides(shape: torch.Size) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


class Stack:
    """K members' parameters and buffers stacked as (K, ...) tensors, and one optimizer step for all."""

    def __init__(self, slots: Sequence[Slot], shared: Shared) -> None:
        order = stack_order([s.update for s in slots], [s.member.steps for s in slots])
        self.slots = [slots[i] for i in order]
        self.shared = shared
        # Each member's own preprocessed inputs, in stack order (per-member scaling), else None.
        in_order = torch.tensor(order, device=shared.x.device)
        self.member_x = shared.x.index_select(0, in_order) if shared.per_member_x else None
        self.member_starts = (torch.arange(len(order), device=shared.x.device).unsqueeze(1) * shared.x.shape[1]
                              if shared.per_member_x else torch.zeros(0, dtype=torch.long))
        self.member_x_val = (shared.x_val.index_select(0, in_order)
                             if shared.per_member_x and shared.x_val is not None else None)
        modules = [s.module for s in self.slots]
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
        positions = streams.layer_positions(first)
        self.dropouts: list[tuple[str, int]] = []
        for name in shared.dropout_layers:
            rates = [_dropout_rate(m.get_submodule(name)) for m in modules]
            self.buffers[f"{name}.rate"] = torch.tensor(rates, dtype=self.dtype, device=device)
            self.buffers[f"{name}.key"] = torch.zeros(k, dtype=torch.int64, device=device)
            self.dropouts.append((name, positions[id(first.get_submodule(name))]))
        self.optimizer = StackedOptimizer(blocks, self.leaves, [s.update for s in self.slots],
                                          [s.member.steps for s in self.slots])
        self.forward = self._forward()
        self.penalties = self._penalties(modules, self.dtype, device)
        smoothing = [s.smoothing for s in self.slots]
        self.smoothing = (torch.tensor(smoothing, dtype=self.dtype, device=device)
                          if shared.soft is not None else None)
        self.row = {id(s.member): i for i, s in enumerate(self.slots)}
        self.same_rows = len({s.n for s in self.slots}) == 1  # every member takes the same steps
        weights = [s.member.sample_weight for s in self.slots]
        self.weights = (None if all(w is None for w in weights) else
                        torch.stack([w if w is not None else torch.ones(shared.x.shape[0], device=device)
                                     for w in weights]).to(self.dtype))

    def _forward(self) -> StackedForward:
        shared = self.shared
        if shared.layer_stack:
            return LayerStackForward(shared.skeleton, fused=shared.fused)  # type: ignore[arg-type]
        names = [*self.trainable, *[n for n in self.params if n not in self.trainable], *self.buffers]
        return VmapForward(shared.skeleton, names, fused=shared.fused, penalty=shared.penalty_inside)

    def _penalties(self, modules: list[nn.Module], dtype: torch.dtype, device: torch.device) -> list[Penalty]:
        """One `Penalty` per parameter and kind (L1, L2), over the rows that have it."""
        terms = []
        for name in self.shared.outside:
            values = []
            for module in modules:
                owner, attr = _owner(module, name)
                reg = owner.kernel_regularizer if attr == "weight" else owner.bias_regularizer
                values.append(strengths(reg))
            for kind in ("l1", "l2"):
                per_row = [v[0 if kind == "l1" else 1] for v in values]  # type: ignore[index]
                rows = [i for i, strength in enumerate(per_row) if strength]
                if not rows:
                    continue
                taken = _rows(rows, len(modules), device)
                chosen = [per_row[i] for i in rows]
                common = chosen[0] if all(c == chosen[0] for c in chosen) else None
                terms.append(Penalty(name, kind, _take(torch.tensor(per_row, dtype=dtype, device=device), taken),
                                     common, taken))
        return terms

    def snapshot(self) -> tuple[Tensor, dict[str, Tensor]]:
        """A copy of every member's weights and buffers (the last good state, for divergence)."""
        return self.storage.clone(), {n: b.clone() for n, b in self.buffers.items()}

    def restore(self, slot: Slot, snapshot: tuple[Tensor, dict[str, Tensor]]) -> None:
        """Put `slot`'s weights and buffers back as they were in `snapshot` (it has been released)."""
        row = self.slots.index(slot)
        storage, buffers = snapshot
        k, offset = len(self.slots), 0
        named = dict(slot.module.named_parameters())
        for name in self.trainable:
            size = k * named[name].numel()
            named[name].data.copy_(storage[offset:offset + size].view(k, -1)[row].view(named[name].shape))
            offset += size
        for name, buffer in slot.module.named_buffers():
            if name in buffers:
                buffer.copy_(buffers[name][row])

    def grads_of(self, slot: Slot) -> list[Tensor]:
        """`slot`'s parameters with views of their rows of the stacked gradients attached."""
        row = self.slots.index(slot)
        named = dict(slot.module.named_parameters())
        params: list[Tensor] = []
        for name, leaf in zip(self.trainable, self.leaves):
            param = named[name]
            if leaf.grad is not None:
                param.grad = leaf.grad[row].view(param.shape)
            params.append(param)
        return params

    def release(self, slot: Slot) -> None:
        """Give `slot`'s module its own copy of its weights and buffers (it leaves the stack)."""
        for p in slot.module.parameters():
            p.data = p.data.clone()
            p.grad = None
        for name, buffer in list(slot.module.named_buffers()):
            owner, attr = _owner(slot.module, name)
            owner._buffers[attr] = buffer.clone()

    def release_all(self) -> None:
        """Every member that is still training leaves the stack (with its optimizer state)."""
        self.optimizer.save_states()
        for slot in self.slots:
            if not slot.member.ended:
                self.release(slot)

    # -- one step -------------------------------------------------------------------------------
    def run_step(self, groups: Sequence[tuple[int, Tensor | None]], table: Tensor, start: int,
                 lr: Tensor, active: list[bool] | None, sums: dict[str, Tensor], common_lr: float | None = None
                 ) -> tuple[list[tuple[Tensor | None, Tensor, Tensor]], Tensor | None]:
        """Forward, loss, backward, gradient hooks and update for one step (`common_lr`: every member's
        lr, when they share one; see `StackedOptimizer.step`).

        Returns (members, outputs, targets) per group, and each row's batch loss (K,) when asked for.
        """
        shared = self.shared
        objective: Tensor | None = None
        records = []
        for leaf in self.leaves:
            leaf.grad = None
        # In a full-stack forward, members that sit this step out ride along on stand-in rows:
        # their gradients are never applied, and their sums must not count the step.
        mask = (torch.tensor(active, dtype=self.dtype, device=self.device)
                if active is not None and any(m is None for _, m in groups) else None)
        batch_losses: Tensor | None = None
        whole = len(groups) == 1 and groups[0][1] is None  # one forward of the whole stack
        penalties = self._outside_penalty() if self.penalties else None
        if shared.member_losses and not whole:
            batch_losses = torch.zeros(len(self.slots), dtype=self.dtype, device=self.device)
        for size, members in groups:
            weight = mask if members is None else None
            rows = (list(range(len(self.slots))) if members is None else members.tolist()
                    ) if shared.transforms or self.dropouts else []
            idx = table[:, start:start + size] if members is None else table[members, start:start + size]
            params = self.params if members is None else {n: t.index_select(0, members) for n, t in self.params.items()}
            buffers = self.buffers if members is None else {n: t.index_select(0, members)
                                                            for n, t in self.buffers.items()}
            if self.member_x is not None:
                # Row r of member k is row k * n + r of the (K * n, ...) view: one index_select.
                starts = self.member_starts if members is None else self.member_starts.index_select(0, members)
                flat = self.member_x.view(-1, *self.member_x.shape[2:])
                xb = flat.index_select(0, (idx + starts).view(-1)).view(*idx.shape, *self.member_x.shape[2:])
            else:
                xb = shared.x[idx]
            yb = shared.y[idx]
            if shared.transforms:
                xb, yb = self._transform(xb, yb, rows)
            if self.dropouts:
                buffers = {**buffers, **self._keys(rows)}
            out, penalty = self.forward(params, buffers, xb, training=True)
            if members is not None:
                for name, buffer in buffers.items():
                    if name in self.buffers and not name.endswith((".rate", ".key")):
                        self.buffers[name].index_copy_(0, members, buffer)
            term, per_member = self._loss(out, yb, idx, members, sums, size, weight)
            if whole and shared.member_losses and per_member is not None:
                batch_losses = per_member.detach()
            elif batch_losses is not None and per_member is not None:
                if members is None:
                    batch_losses += per_member.detach()
                else:
                    batch_losses.index_add_(0, members, per_member.detach())
            if penalty is not None:
                term = term + penalty.sum()
            outside = (penalties if members is None else penalties.index_select(0, members)
                       ) if penalties is not None else None
            extra = outside
            if penalty is not None:
                extra = penalty.detach() if extra is None else extra + penalty.detach()
            if extra is not None:
                _accumulate(sums, "penalty", members, extra * size, weight)
            objective = term if objective is None else objective + term
            records.append((members, out.detach(), yb))
        if objective is None:
            return records, batch_losses
        backward(objective)
        if self.penalties:
            self._add_penalty_gradients()
        if shared.hooks:
            self._hooks(active)
        self.optimizer.step(lr, active, common_lr)
        return records, batch_losses

    def _transform(self, xb: Tensor, yb: Tensor, rows: list[int]) -> tuple[Tensor, Tensor]:
        xs, ys = [], []
        for position, row in enumerate(rows):
            member = self.slots[row].member
            x_one, y_one = xb[position], yb[position]
            generator = transform_generator(member.seed, member.step, x_one.device)
            for transform in self.shared.transforms:
                x_one, y_one = transform(x_one, y_one, generator=generator)
            xs.append(x_one)
            ys.append(y_one)
        return torch.stack(xs), torch.stack(ys)

    def _keys(self, rows: list[int]) -> dict[str, Tensor]:
        members = [self.slots[row].member for row in rows]
        return {f"{name}.key": torch.tensor([streams.key_of(m.seed, m.step, position) for m in members],
                                            dtype=torch.int64, device=self.device)
                for name, position in self.dropouts}

    def _hooks(self, active: list[bool] | None) -> None:
        rows = [i for i in range(len(self.slots)) if active is None or active[i]]
        hooks = list(self.shared.hooks)
        while hooks and isinstance(hooks[0], (ClipGradValue, ClipGradNorm)):
            hook = hooks.pop(0)
            grads = [leaf.grad for leaf in self.leaves if leaf.grad is not None]
            if isinstance(hook, ClipGradValue):
                torch._foreach_clamp_min_(grads, -hook.value)
                torch._foreach_clamp_max_(grads, hook.value)
            elif isinstance(hook, ClipGradNorm):
                k = len(self.slots)
                squares = torch.stack([g.reshape(k, -1).square().sum(1) for g in grads]).sum(0)
                coefficient = (hook.max_norm / (squares.sqrt() + 1e-6)).clamp(max=1.0)
                for g in grads:
                    g.mul_(coefficient.view(-1, *([1] * (g.dim() - 1))))
        for row in rows if hooks else []:
            slot = self.slots[row]
            params = self.grads_of(slot)
            for hook in hooks:
                hook(params, slot.member.run)

    def _loss(self, out: Tensor, yb: Tensor, idx: Tensor, members: Tensor | None, sums: dict[str, Tensor],
              size: int, weight: Tensor | None) -> tuple[Tensor, Tensor | None]:
        shared = self.shared
        m = out.shape[0]
        sample_weight = self.weights
        loss = shared.loss
        targets = yb
        if shared.soft is not None and self.smoothing is not None:
            smoothing = self.smoothing if members is None else self.smoothing[members]
            loss, targets = shared.soft, soft_targets(shared.loss, yb, smoothing, out.shape[-1])
        if loss.sample_mean and sample_weight is None and not shared.member_losses:
            return m * loss(out.flatten(0, 1), targets.flatten(0, 1)), None
        if loss.sample_mean:
            terms = loss.member_terms(out, targets)
            if sample_weight is not None:
                rows = sample_weight if members is None else sample_weight[members]
                terms = terms * rows.gather(1, idx)
            # The sum of the members' batch means: each term's gradient is 1 / size, as in its solo run.
            objective = terms.sum() / size
            totals = terms.detach().sum(1)  # detached: recorded nowhere
            _accumulate(sums, "loss", members, totals, weight)
            return objective, totals / size
        per_member = torch.func.vmap(loss)(out, targets)
        _accumulate(sums, "loss", members, per_member.detach() * size, weight)
        return per_member.sum(), per_member

    def _outside_penalty(self) -> Tensor | None:
        """Each row's L1/L2 penalty (K,), outside autograd: its gradient is `_add_penalty_gradients`'s.

        Only the rows with a penalty are computed (a stack often mixes members with and without one).
        """
        total: Tensor | None = None
        with torch.no_grad():
            for term in self.penalties:
                w = _take(self.params[term.name].detach().flatten(1), term.rows)
                value = (w.abs().sum(1) if term.kind == "l1" else w.square().sum(1)) * term.strength
                if term.rows is not None:
                    value = _put(torch.zeros(len(self.slots), dtype=value.dtype, device=value.device), term.rows, value)
                total = value if total is None else total + value
        return total

    def _add_penalty_gradients(self) -> None:
        """Add d(penalty)/dw to the rows' gradients, the terms autograd would add for
        ``l1 * |w|.sum()`` and ``l2 * (w ** 2).sum()``: l1 * sign(w) and l2 * (2 w)."""
        with torch.no_grad():
            for term in self.penalties:
                leaf = self.params[term.name]
                if leaf.grad is None:
                    continue
                w = _take(leaf.detach(), term.rows)
                if term.common is not None:  # one strength: a fused multiply-add
                    part, alpha = (w.sign(), term.common) if term.kind == "l1" else (w, 2.0 * term.common)
                    _put(leaf.grad, term.rows, part, alpha=alpha)
                    continue
                shape = (-1,) + (1,) * (w.dim() - 1)
                part = w.sign() if term.kind == "l1" else 2 * w
                _put(leaf.grad, term.rows, part * term.strength.view(shape))


@dataclass(frozen=True)
class Penalty:
    """An L1 or L2 weight penalty of some rows of a stacked parameter.

    `strength` holds the rows' strengths (one per row of `rows`), `common` the one strength
    they share (None when they differ).
    """

    name: str
    kind: str  # "l1" or "l2"
    strength: Tensor
    common: float | None
    rows: Rows


#: Some rows of a stack: None (all), a slice (consecutive rows) or an index tensor.
Rows = slice | Tensor | None


def _rows(rows: list[int], k: int, device: torch.device) -> Rows:
    if len(rows) == k:
        return None
    if rows == list(range(rows[0], rows[-1] + 1)):
        return slice(rows[0], rows[-1] + 1)
    return torch.tensor(rows, device=device)


def _take(t: Tensor, rows: Rows) -> Tensor:
    """`t`'s rows (a view for a slice)."""
    if rows is None:
        return t
    return t[rows] if isinstance(rows, slice) else t.index_select(0, rows)


def _put(target: Tensor, rows: Rows, values: Tensor, *, alpha: float = 1.0) -> Tensor:
    """Add `alpha * values` to `target`'s rows, in place."""
    if rows is None:
        return target.add_(values, alpha=alpha)
    if isinstance(rows, slice):
        target[rows].add_(values, alpha=alpha)
        return target
    return target.index_add_(0, rows, values, alpha=alpha)


#: Rows (members x samples) of one eval-mode forward part: 2048 x 256 float32 activations are 2 MiB.
_EVAL_ROWS = 2048


def _accumulate(sums: dict[str, Tensor], key: str, members: Tensor | None, values: Tensor,
                weight: Tensor | None) -> None:
    if weight is not None:
        values = values * weight
    if members is None:
        sums[key].add_(values)
    else:
        sums[key].index_add_(0, members, values)


def soft_targets(loss: Loss, y: Tensor, smoothing: Tensor, classes: int) -> Tensor:
    """Per-member label-smoothed probability targets (m, b, C) for a cross-entropy.

    Label smoothing ls moves ls of the target's mass to the uniform distribution
    (1/C over C classes; 1/2 for each binary output), as Keras and torch define
    it, so a member's smoothing becomes part of its targets and one call of the
    probability-target loss serves members with different smoothing.
    """
    sparse = isinstance(loss, SparseCategoricalCrossentropy) and not y.is_floating_point()
    shape = (-1,) + (1,) * (y.dim() if sparse else y.dim() - 1)
    ls = smoothing.view(shape)
    if sparse:
        labels = y.squeeze(-1) if y.dim() == 3 else y
        one_hot = torch.nn.functional.one_hot(labels, classes).to(smoothing.dtype)
        return one_hot * (1.0 - ls) + ls / classes
    if isinstance(loss, (CategoricalCrossentropy, SparseCategoricalCrossentropy)):
        return y * (1.0 - ls) + ls / classes
    return y * (1.0 - ls) + 0.5 * ls


def soft_loss(loss: Loss) -> Loss:
    """The probability-target cross-entropy that `soft_targets` feeds (no smoothing of its own)."""
    if isinstance(loss, BinaryCrossentropy):
        return BinaryCrossentropy(from_logits=loss.from_logits)
    return CategoricalCrossentropy(from_logits=loss.from_logits)


def _score(metrics: list[Metric], out: Tensor, y: Tensor, from_logits: bool, batch_size: int,
           done: frozenset[int] = frozenset()) -> None:
    """Score an epoch's outputs; the metrics at positions in `done` already were."""
    for position, metric in enumerate(metrics):
        if position in done:
            continue
        metric.reset()
        if getattr(metric, "sums_over_batches", False):
            metric.update(out, y, from_logits=from_logits)
        else:
            for out_batch, y_batch in zip(torch.split(out, batch_size), torch.split(y, batch_size)):
                metric.update(out_batch, y_batch, from_logits=from_logits)


class StackedStep:
    """The Step executor for K members of one architecture (see the module docstring)."""

    def __init__(self, slots: Sequence[Slot], shared: Shared) -> None:
        self.shared = shared
        self.slots = {id(s.member): s for s in slots}
        for slot in slots:
            state = slot.member.optimizer.state
            if slot.update.direction_key is not None and state:
                slot.update.state = [{k: (v.reshape(-1) if isinstance(v, Tensor) and v.dim() > 0 else v)
                                      for k, v in state[p].items()} for p in slot.update.params]
        self.stack = Stack(slots, shared)
        self.good = self.stack.snapshot()
        self._lrs: list[float] = []
        self._lr = torch.zeros(0)
        self._reset_epoch([])

    def _reset_epoch(self, live: Sequence[MemberState]) -> None:
        k = len(self.stack.slots)
        dtype, device = self.stack.dtype, self.stack.device
        self.sums = {"loss": torch.zeros(k, dtype=dtype, device=device),
                     "penalty": torch.zeros(k, dtype=dtype, device=device)}
        self.records: list[tuple[list[bool] | None, list[tuple[Tensor | None, Tensor, Tensor]]]] = []
        self.seen = {id(m): 0 for m in live}

    def begin_epoch(self, live: Sequence[MemberState], orders: dict[int, Tensor | None]) -> None:
        stack = self.stack
        self._reset_epoch(live)
        device = stack.device
        longest = max(m.steps for m in live) * live[0].batch_size
        self.table = torch.zeros((len(stack.slots), longest), dtype=torch.long, device=device)
        for member in live:
            order = orders[member.index]
            row = stack.row[id(member)]
            self.table[row, :member.n] = (order if order is not None else
                                          torch.arange(member.n, device=device))

    def run(self, batch: int, active: Sequence[MemberState]) -> dict[int, tuple[Tensor, int]]:
        stack = self.stack
        slots = stack.slots
        if len(active) == len(slots) and stack.same_rows:
            # The common step: every member of the stack takes a batch of the same size.
            size = slots[0].member.size_at(batch)
            sizes = [size] * len(slots)
            flags = [True] * len(slots)
            distinct = [size]
        else:
            chosen = {id(m) for m in active}
            sizes = [s.member.size_at(batch) if id(s.member) in chosen else 0 for s in slots]
            flags = [size > 0 for size in sizes]
            distinct = sorted({size for size in sizes if size > 0}, reverse=True)
        everyone = all(flags)
        if len(distinct) == 1 and (everyone or not stack.has_running_state):
            groups: list[tuple[int, Tensor | None]] = [(distinct[0], None)]
        else:
            groups = [(size, torch.tensor([i for i, n in enumerate(sizes) if n == size], device=stack.device))
                      for size in distinct]
        lrs = [float(s.member.optimizer.param_groups[0]["lr"]) if flag else 0.0 for s, flag in zip(slots, flags)]
        if lrs != self._lrs:  # the lr tensor is only read by the step: reused while no lr changes
            self._lrs = lrs
            self._lr = torch.tensor(lrs, dtype=stack.dtype, device=stack.device).unsqueeze(-1)
        start = batch * slots[0].member.batch_size
        common = lrs[0] if everyone and all(value == lrs[0] for value in lrs) else None
        records, losses = stack.run_step(groups, self.table, start, self._lr, None if everyone else flags, self.sums,
                                         common)
        self.records.append((None if everyone else flags, records))
        rows = losses.unbind() if losses is not None else None
        results: dict[int, tuple[Tensor, int]] = {}
        seen = self.seen
        for member in active:
            row = stack.row[id(member)]
            seen[id(member)] = seen.get(id(member), 0) + sizes[row]
            results[member.index] = (rows[row] if rows is not None else _NO_LOSS, sizes[row])
        return results

    def _outputs(self, live: Sequence[MemberState]
                 ) -> tuple[dict[int, tuple[Tensor, Tensor]], tuple[Tensor, Tensor] | None]:
        """Each live member's training outputs and targets of this epoch, in its batch order; and,
        when every step ran the whole stack, all of them as (K, n, ...) tensors."""
        stack = self.stack
        rows = {stack.row[id(m)]: m.index for m in live}
        if all(flags is None and all(members is None for members, _, _ in records)
               for flags, records in self.records):
            outs = torch.cat([records[0][1] for _, records in self.records], dim=1)
            ys = torch.cat([records[0][2] for _, records in self.records], dim=1)
            return {index: (outs[row], ys[row]) for row, index in rows.items()}, (outs, ys)
        pieces: dict[int, tuple[list[Tensor], list[Tensor]]] = {row: ([], []) for row in rows}
        for flags, records in self.records:
            for members, out, yb in records:
                if members is None:
                    for row in rows:
                        if flags is None or flags[row]:
                            pieces[row][0].append(out[row])
                            pieces[row][1].append(yb[row])
                else:
                    for position, row in enumerate(members.tolist()):
                        if row in pieces:
                            pieces[row][0].append(out[position])
                            pieces[row][1].append(yb[position])
        return {rows[row]: (torch.cat(o), torch.cat(t)) for row, (o, t) in pieces.items() if o}, None

    def _score_together(self, live: Sequence[MemberState], outs: Tensor, ys: Tensor) -> frozenset[int]:
        """Score the training metrics that every live member has at the same position, one pass
        for all members (`Metric.update_members`); the positions scored."""
        scored = [m for m in live if m.train_metrics]
        if not scored or any(len(m.train_metrics) != len(scored[0].train_metrics) for m in scored):
            return frozenset()
        rows = [self.stack.row[id(m)] for m in scored]
        if rows != list(range(outs.shape[0])):
            picked = torch.tensor(rows, device=outs.device)
            outs, ys = outs.index_select(0, picked), ys.index_select(0, picked)
        done = set()
        for position in range(len(scored[0].train_metrics)):
            group = [m.train_metrics[position] for m in scored]
            if not all(getattr(metric, "sums_over_batches", False) for metric in group):
                continue
            for metric in group:
                metric.reset()
            if type(group[0]).update_members(group, outs, ys, [outs.shape[1]] * len(group),
                                             from_logits=self.shared.from_logits):
                done.add(position)
        return frozenset(done)

    def epoch_logs(self, live: Sequence[MemberState]) -> dict[int, dict[str, Any]]:
        stack, shared = self.stack, self.shared
        outputs, together = self._outputs(live)
        done = (self._score_together(live, *together) if together is not None and not shared.transforms
                else frozenset())
        per_step = not shared.loss.sample_mean or shared.member_losses or stack.weights is not None
        with torch.no_grad():
            data: list[float] = []
            loss_sums = self.sums["loss"].tolist()
            for member in live:
                seen = max(self.seen[id(member)], 1)
                if per_step or member.index not in outputs:
                    data.append(loss_sums[stack.row[id(member)]] / seen)
                else:
                    out, target = outputs[member.index]
                    data.append(float(member.loss(out, target)))
            penalty_sums = self.sums["penalty"].tolist()
            penalties = [penalty_sums[stack.row[id(m)]] / max(self.seen[id(m)], 1) for m in live]
        logs: dict[int, dict[str, Any]] = {}
        for position, member in enumerate(live):
            entry: dict[str, Any] = {}
            if member.has_penalty:
                entry["loss"] = data[position] + penalties[position]
                entry["penalty"] = penalties[position]
            else:
                entry["loss"] = data[position]
            if member.train_metrics and member.index in outputs:
                out, target = outputs[member.index]
                if shared.transforms:
                    target = _metric_targets(target, shared.y[:1])
                _score(member.train_metrics, out, target, shared.from_logits, member.batch_size, done)
                entry.update(metric_logs(member.train_metrics))
            logs[member.index] = entry
        return logs

    def validate(self, live: Sequence[MemberState], logs: dict[int, dict[str, Any]]) -> None:
        """Loss and metrics of every live member on its validation rows, in one pass (eval mode).

        Members that all validate on the whole validation set share its batches
        (one (b, ...) input seen by every member); otherwise each member's rows are
        gathered into a (K, b, ...) batch, shorter row lists padded and the padding
        ignored.
        """
        stack, shared = self.stack, self.shared
        slots = {stack.row[id(m)]: self.slots[id(m)] for m in live}
        checked = {row: slot for row, slot in slots.items() if slot.validates}
        if not checked or shared.x_val is None or shared.y_val is None:
            return
        x_val, y_val = shared.x_val, shared.y_val
        k = len(stack.slots)
        whole = torch.arange(x_val.shape[0], device=x_val.device)
        rows = {row: (slot.val_rows if slot.val_rows is not None else whole) for row, slot in checked.items()}
        counts = {row: int(r.numel()) for row, r in rows.items()}
        longest = max(counts.values())
        table = None
        if stack.member_x_val is not None or any(slot.val_rows is not None for slot in checked.values()):
            table = torch.zeros((k, longest), dtype=torch.long, device=x_val.device)
            for row, r in rows.items():
                table[row, :r.numel()] = r
        totals = torch.zeros(k, dtype=stack.dtype, device=x_val.device)
        for slot in checked.values():
            for metric in slot.member.val_metrics:
                metric.reset()
        order = list(checked)  # the stack rows that validate
        picked = None if order == list(range(k)) else torch.tensor(order, device=x_val.device)
        loss = checked[order[0]].member.loss
        # One loss for every member (its terms summed per row), when they all have the same one.
        together = loss.sample_mean and all(slot.member.loss == loss for slot in checked.values())
        metrics = [[slot.member.val_metrics[j] for slot in checked.values()]
                   for j in range(len(checked[order[0]].member.val_metrics))]
        if any(len(slot.member.val_metrics) != len(metrics) for slot in checked.values()):
            metrics = []
        step = shared.val_batch
        with torch.no_grad():
            for start in range(0, longest, step):
                if table is None:
                    out = self._evaluate(x_val[start:start + step], shared=True)
                elif stack.member_x_val is not None:
                    owners = torch.arange(k, device=x_val.device).unsqueeze(1)
                    out = self._evaluate(stack.member_x_val[owners, table[:, start:start + step]], shared=False)
                else:
                    out = self._evaluate(x_val[table[:, start:start + step]], shared=False)
                sizes = [max(0, min(counts[row] - start, step)) for row in order]
                width = max(sizes)
                ob = (out if picked is None else out.index_select(0, picked))[:, :width]
                if table is None:
                    part = y_val[start:start + width]
                    yb = part.expand(len(order), *part.shape)
                else:
                    yb = y_val[(table if picked is None else table.index_select(0, picked))[:, start:start + width]]
                if together:
                    terms = loss.member_terms(ob, yb)
                    if any(size != width for size in sizes):
                        kept = torch.arange(width, device=terms.device) < torch.tensor(sizes, device=terms.device
                                                                                      ).unsqueeze(1)
                        terms = terms.where(kept, 0.0)
                    sums = terms.sum(1)
                    if picked is None:
                        totals += sums
                    else:
                        totals.index_add_(0, picked, sums)
                alone = [j for j, group in enumerate(metrics)
                         if not type(group[0]).update_members(group, ob, yb, sizes, from_logits=shared.from_logits)]
                for position, (row, slot) in enumerate(checked.items()):
                    size = sizes[position]
                    if size <= 0 or (together and (metrics and not alone)):
                        continue
                    one, target = ob[position, :size], yb[position, :size]
                    if not together:
                        totals[row] += slot.member.loss(one, target) * size
                    for j, metric in enumerate(slot.member.val_metrics):
                        if not metrics or j in alone:
                            metric.update(one, target, from_logits=shared.from_logits)
        values = totals.tolist()
        for row, slot in checked.items():
            entry = logs[slot.member.index]
            entry["val_loss"] = values[row] / counts[row]
            entry.update(metric_logs(slot.member.val_metrics, "val_"))

    def _evaluate(self, x: Tensor, *, shared: bool) -> Tensor:
        """The members' eval-mode outputs on `x` ((b, ...) seen by all when `shared`, else (K, b, ...)).

        The forward runs on parts of about `_EVAL_ROWS` member-rows, so that its activations
        stay in the cache; an eval-mode forward treats each sample alone, so the parts give
        the outputs one pass would.
        """
        stack = self.stack
        part = max(1, _EVAL_ROWS // len(stack.slots))
        n = x.shape[0] if shared else x.shape[1]
        if n <= part:
            return stack.forward(stack.params, stack.buffers, x, training=False, shared=shared)[0]
        return torch.cat([stack.forward(stack.params, stack.buffers, x[s:s + part] if shared else x[:, s:s + part],
                                        training=False, shared=shared)[0] for s in range(0, n, part)], dim=1)

    def remember(self, live: Sequence[MemberState]) -> None:
        remaining = [s for s in self.stack.slots if not s.member.stopped]
        if remaining and len(remaining) < len(self.stack.slots):
            # Members that stopped this epoch leave: the rest is re-stacked without them (a stopped
            # member would otherwise ride along in every product of the epochs left).
            self.stack.release_all()
            self.stack = Stack(remaining, self.shared)
        self.good = self.stack.snapshot()

    def restore_good(self, member: MemberState) -> None:
        self.stack.restore(self.slots[id(member)], self.good)

    def grads(self, member: MemberState) -> Sequence[Tensor]:
        return self.stack.grads_of(self.slots[id(member)])

    def optimizer_state(self, member: MemberState) -> dict[str, Any]:
        slot = self.slots[id(member)]
        state = member.optimizer.state_dict()
        if slot.update.direction_key is not None:
            state["state"] = {i: {k: (v.reshape(p.shape).clone() if isinstance(v, Tensor) and v.dim() > 0
                                      else v.clone() if isinstance(v, Tensor) else v)
                                  for k, v in row.items()}
                              for i, (p, row) in enumerate(zip(slot.update.params, slot.update.state)) if row}
        return state

    def sync(self) -> None:
        self.stack.optimizer.save_states()

    def leave(self, member: MemberState) -> None:
        slot = self.slots[id(member)]
        if slot in self.stack.slots:
            self.stack.release(slot)

    def finish(self) -> None:
        self.stack.release_all()


_NO_LOSS = torch.full((), float("nan"))
