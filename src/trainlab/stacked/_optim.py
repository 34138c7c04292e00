"""One optimizer step for K stacked members, each taking exactly its own optimizer's update.

Each stacked parameter is a (K, ...) tensor whose row k is member k's
parameter; the backward pass leaves its gradient in the same layout. Each
member's optimizer is first built the ordinary way, on the member's own module
(`trainlab.optimizers.optimizer`, so the settings are validated and the kernel
chosen exactly as for a solo run); then the member is stepped in one of two
ways.

Direction members (an optimizer whose registry entry has a stacked form,
`trainlab.optimizers.StackedForm`: torch's SGD, Adam, AdamW, Adagrad, Adadelta,
RMSprop and NAdam, with one parameter group). Every one of these updates a parameter by
``p <- p - lr * D``, where the direction D depends on the gradients and the
optimizer's state but not on lr (nor on p, once weight decay is taken out). So
torch's own optimizer, built with ``lr=1`` and ``weight_decay=0`` over the rows
of a zeroed buffer U (shaped like the parameters), writes ``U = -D`` for every
member in one fused call, each member's rows keeping their own state (moments,
step count). Then

    g <- g + wd_k * p                 coupled weight decay (L2 in the gradient)
    p <- p * (1 - lr_k * wd_k)        decoupled decay (AdamW), before the step
    p <- p + lr_k * U                 one multiply-add per stacked parameter

with per-member lr_k and wd_k as (K, 1) tensors. At a step where every member
has the same lr and none has weight decay (cross-validation folds, bagging
members), the same functional call writes ``p - lr * D`` into the parameters
directly, as a solo run's optimizer does, and U is skipped. Members that share an
optimizer type and its other settings (betas, eps, momentum, ...) share one
torch optimizer. Those that also take their steps together (the same number of
steps per epoch, whatever the size of their last batch) form a block: the stack
puts them in consecutive rows and hands torch their rows as one (m, ...) tensor
per parameter, so the step costs one kernel call whatever m is. A block steps as
a whole or not at all, so its rows keep one step count; members with other
numbers of steps per epoch are in other blocks.

Own-optimizer members (an optimizer with a stacked form whose settings do not
fit it: several parameter groups, maximize with weight decay, a tensor lr).
An optimizer with no stacked form never reaches a stack: the plan trains its
members solo (`trainlab.stacked.fit_members`). Their module's
parameters are views of their rows of the stacked parameters, their gradients
views of their rows of the stacked gradients, and their own optimizer is
stepped as in a solo run.

After the first step, the forms with a functional step (Adam, AdamW, SGD) are stepped through torch's
functional form with their lists bound once (`trainlab.engine.step.functional_step`): the same
call ``step()`` makes, without rebuilding its lists, which for a small model
costs more than the update.

A block whose members are not active at a step (they sit out the end of a
longer member's epoch) is left out of the direction step (its rows of U keep no
gradient, so torch skips them and their state does not change) and gets lr 0,
so its parameters do not change either. A member that stops mid-epoch while the
rest of its block goes on is first given a block of its own (the blocks' states
are read back and the optimizers rebuilt), and then sits the epoch's last steps
out the same way; at the epoch's end the stack is rebuilt without it.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from trainlab.engine.step import FunctionalStep, functional_step
from trainlab.optimizers import StackedForm, stacked_form

_PER_MEMBER = ("params", "lr", "weight_decay", "initial_lr", "decoupled_weight_decay")


@dataclass
class MemberUpdate:
    """How one member is stepped; lives as long as the member, across re-stacking.

    Attributes:
        optimizer: the member's optimizer, built on its own module as in a solo run.
        params: the member's trainable parameters in stacked order.
        direction_key: the settings shared by members that can use one direction
            optimizer, or None for an own-optimizer member.
        state: the direction optimizer's state for this member's slice of each
            stacked parameter (moments, step count); empty until its first step.
    """

    optimizer: torch.optim.Optimizer
    params: list[Tensor]
    direction_key: tuple[Any, ...] | None = None
    form: StackedForm | None = None
    direction_settings: dict[str, Any] = field(default_factory=dict)
    coupled_decay: float = 0.0
    decoupled_decay: float = 0.0
    state: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, optimizer: torch.optim.Optimizer, params: Sequence[Tensor]) -> MemberUpdate:
        """Classify `optimizer` (direction or own) and read its per-member settings.

        The optimizer registry says which optimizers have a direction form (the
        capability ``"stacked"``, `trainlab.optimizers.StackedForm`).
        """
        update = cls(optimizer=optimizer, params=list(params))
        form = stacked_form(optimizer)
        groups = optimizer.param_groups
        if form is None or len(groups) != 1:
            return update
        group = groups[0]
        if {id(p) for p in group["params"]} != {id(p) for p in params} or len(group["params"]) != len(params):
            return update
        decay = float(group.get("weight_decay", 0.0))
        if group.get("differentiable") or (group.get("maximize") and decay) or isinstance(group["lr"], Tensor):
            return update
        kind = form.torch_class
        accepted = inspect.signature(kind).parameters
        settings = {k: v for k, v in group.items() if k in accepted and k not in _PER_MEMBER}
        update.direction_settings, update.form = settings, form
        update.direction_key = (kind.__name__, tuple(sorted((k, _hashable(v)) for k, v in settings.items())))
        if form.weight_decay == "decoupled" or group.get("decoupled_weight_decay", False):
            update.decoupled_decay = decay
        else:
            update.coupled_decay = decay
        return update

    @property
    def lr(self) -> float:
        """The lr of the member's (first) parameter group, as a solo run's History logs it."""
        return float(self.optimizer.param_groups[0]["lr"])


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def stack_order(updates: Sequence[MemberUpdate], steps: Sequence[int]) -> list[int]:
    """An order of the members that puts each block (same direction settings and steps per epoch) in
    consecutive rows."""
    def key(i: int) -> tuple[Any, ...]:
        update = updates[i]
        if update.direction_key is None:
            return (1, "", 0, i)
        return (0, repr(update.direction_key), steps[i], i)

    return sorted(range(len(updates)), key=key)


class StackedOptimizer:
    """Steps the members of one stack (see the module docstring).

    Args:
        params: each stacked parameter's data as a (K, n) view (row k: member k's).
        leaves: the stacked parameters themselves, (K, ...), whose ``.grad`` the
            backward pass fills.
        members: each row's `MemberUpdate`, in stack order (see `stack_order`).
        steps: each row's steps per epoch (rows with as many steps take every step together, whatever
            the size of their last batch).
    """

    def __init__(self, params: Sequence[Tensor], leaves: Sequence[Tensor], members: Sequence[MemberUpdate],
                 steps: Sequence[int]) -> None:
        self.params, self.leaves = list(params), list(leaves)
        self.members = list(members)
        k = len(self.members)
        self.direction_rows = [i for i, m in enumerate(self.members) if m.direction_key is not None]
        self.own_rows = [i for i in range(k) if i not in set(self.direction_rows)]
        self._own_fast: dict[int, FunctionalStep | None] = {i: None for i in self.own_rows}
        total = sum(p.numel() for p in self.params)
        first = self.params[0]
        self.buffer = first.new_zeros(total) if self.direction_rows else None
        self.updates: list[Tensor] = []
        offset = 0
        for p in self.params:
            if self.buffer is not None:
                self.updates.append(self.buffer[offset:offset + p.numel()].view(k, -1))
            offset += p.numel()
        self.steps = list(steps)
        self.apart: frozenset[int] = frozenset()  # rows kept out of blocks (see `_keep_apart`)
        self._blocks()
        dtype, device = first.dtype, first.device
        coupled = [m.coupled_decay for m in self.members]
        decoupled = [m.decoupled_decay for m in self.members]
        self.coupled = torch.tensor(coupled, dtype=dtype, device=device).unsqueeze(1) if any(coupled) else None
        self.decoupled = (torch.tensor(decoupled, dtype=dtype, device=device).unsqueeze(1)
                          if any(decoupled) else None)

    def _blocks(self) -> None:
        """Hand the direction members' rows to torch optimizers: one optimizer per direction key,
        one block per run of rows that take their steps together (see the module docstring)."""
        # (first row, last row + 1, one tensor per stacked parameter) handed to torch as parameters.
        self.pieces: list[tuple[int, int, list[Tensor]]] = []
        self.direction: list[torch.optim.Optimizer] = []
        self._targets: list[list[Tensor]] = []  # each direction optimizer's rows of the parameters themselves
        self._spans: list[list[tuple[int, int]]] = []  # each direction optimizer's (first row, last row + 1)
        groups: dict[Any, list[int]] = {}
        for i in self.direction_rows:
            groups.setdefault(self.members[i].direction_key, []).append(i)
        for rows in groups.values():
            spans: list[tuple[int, int]] = []
            for start, stop in _spans(rows, self.steps, self.apart):
                if stop - start > 1 and not _same_state([self.members[i] for i in range(start, stop)]):
                    spans.extend((i, i + 1) for i in range(start, stop))
                else:
                    spans.append((start, stop))
            handed = []
            for start, stop in spans:
                tensors = [u[start] if stop - start == 1 else u[start:stop] for u in self.updates]
                self.pieces.append((start, stop, tensors))
                handed.append((start, stop, tensors))
            settings = {**self.members[rows[0]].direction_settings, "lr": 1.0, "weight_decay": 0.0}
            form = self.members[rows[0]].form
            assert form is not None  # a direction member has a form
            optimizer = form.torch_class([t for _, _, ts in handed for t in ts], **settings)
            for start, stop, tensors in handed:
                states = [self.members[i].state for i in range(start, stop)]
                for index, tensor in enumerate(tensors):
                    state = _join([s[index] for s in states]) if all(states) else {}
                    if state:
                        optimizer.state[tensor] = state
            self.direction.append(optimizer)
            self._spans.append([(start, stop) for start, stop, _ in handed])
            self._targets.append([p[start] if stop - start == 1 else p[start:stop]
                                  for start, stop, _ in handed for p in self.params])
        self._fast: list[FunctionalStep | None] = [functional_step(o) for o in self.direction]
        # The same update written straight into the parameters, for steps where every member has one lr.
        self._direct: list[FunctionalStep | None] = [None] * len(self.direction)

    def _keep_apart(self, rows: set[int]) -> None:
        """Give each of `rows` a block of its own from now on: a member that stopped mid-epoch sits
        the epoch's last steps out, and its state (moments, step count) must not move with its
        block's. The blocks' states are read back into the members and the optimizers rebuilt."""
        self.save_states()
        self.apart = self.apart | frozenset(rows)
        self._blocks()

    def step(self, lr: Tensor, active: Sequence[bool] | None = None, common_lr: float | None = None) -> None:
        """One update from the leaves' gradients; `lr` (K, 1) holds each member's lr, 0 where inactive.

        `common_lr`, when every member takes this step with that one lr and no member has
        weight decay: the direction optimizers then write ``p - lr * D`` into the parameters
        directly (the update a solo run's optimizer makes), which saves zeroing the buffer U
        and the multiply-add per parameter.

        `params`, `updates` and the gradients are plain tensors outside autograd,
        so the in-place arithmetic here records nothing.
        """
        k = len(self.members)
        if active is not None:
            # A block steps as a whole or not at all: its rows that sit this step out while others
            # of the block take it (they stopped mid-epoch) get blocks of their own first.
            out = {i for start, stop, _ in self.pieces if stop - start > 1 and any(active[start:stop])
                   for i in range(start, stop) if not active[i]}
            if out:
                self._keep_apart(out)
        grads = [leaf.grad.view(k, -1) if leaf.grad is not None else torch.zeros_like(p)
                 for leaf, p in zip(self.leaves, self.params)]
        if self.buffer is not None:
            direct = (common_lr is not None and active is None and self.coupled is None and self.decoupled is None
                      and all(fast is not None for fast in self._fast))
            if not direct:
                if self.coupled is not None:
                    for grad, param in zip(grads, self.params):
                        grad.addcmul_(param, self.coupled)
                if self.decoupled is not None:
                    factor = 1.0 - lr * self.decoupled
                    for param in self.params:
                        param.mul_(factor)
                self.buffer.zero_()
                for start, stop, tensors in self.pieces:
                    if active is not None and not any(active[start:stop]):
                        for tensor in tensors:
                            tensor.grad = None  # torch skips a parameter without a gradient: no step, no change
                        continue
                    for tensor, grad in zip(tensors, grads):
                        tensor.grad = grad[start] if stop - start == 1 else grad[start:stop]
            if direct:
                # Every row steps: the gradients go to the functional call as they are (row blocks of them).
                for index, optimizer in enumerate(self.direction):
                    step = self._direct[index]
                    if step is None:
                        step = self._direct[index] = functional_step(optimizer, self._targets[index])
                    assert step is not None  # the optimizer has a functional form (its `_fast` exists)
                    step(common_lr, grads if k > 1 and self._spans[index] == [(0, k)] else
                         [grad[start] if stop - start == 1 else grad[start:stop]
                          for start, stop in self._spans[index] for grad in grads])
            else:
                for index, optimizer in enumerate(self.direction):
                    fast = self._fast[index] if active is None else None
                    if fast is not None:
                        fast(None)
                    else:
                        optimizer.step()
                        if active is None and self._fast[index] is None:
                            self._fast[index] = functional_step(optimizer)
                torch._foreach_addcmul_(self.params, self.updates, [lr] * len(self.params))
        for i in self.own_rows:
            if active is None or active[i]:
                member = self.members[i]
                for p, grad in zip(member.params, grads):
                    p.grad = grad[i].view(p.shape)
                fast = self._own_fast[i]
                if fast is not None:
                    fast(None)
                else:
                    member.optimizer.step()
                    self._own_fast[i] = functional_step(member.optimizer)

    def save_states(self) -> None:
        """Copy each direction member's optimizer state back to its `MemberUpdate` (before re-stacking)."""
        for optimizer in self.direction:
            for start, stop, tensors in self.pieces:
                states = [optimizer.state.get(t) for t in tensors]
                if not all(states):
                    continue
                for i in range(start, stop):
                    self.members[i].state = [_row(s, i - start, stop - start) for s in states if s is not None]


def _spans(rows: list[int], steps: Sequence[int], apart: frozenset[int] = frozenset()) -> list[tuple[int, int]]:
    """Consecutive runs of `rows` with as many steps per epoch: each run takes its steps together.
    Each of `apart` is a run of its own."""
    spans: list[tuple[int, int]] = []
    for i in rows:
        if (spans and spans[-1][1] == i and steps[spans[-1][0]] == steps[i] and i not in apart
                and spans[-1][0] not in apart):
            spans[-1] = (spans[-1][0], i + 1)
        else:
            spans.append((i, i + 1))
    return spans


def _same_state(members: Sequence[MemberUpdate]) -> bool:
    """Whether members can share one block: no state yet, or the same step count in every member."""
    if not any(m.state for m in members):
        return True
    if not all(m.state for m in members):
        return False
    states = [m.state[0] for m in members]
    for key, value in states[0].items():
        if isinstance(value, Tensor) and value.dim() == 0:
            if any(not torch.equal(s[key], value) for s in states[1:]):
                return False
        elif not isinstance(value, Tensor) and any(s[key] != value for s in states[1:]):
            return False
    return True


def _join(states: list[dict[str, Any]]) -> dict[str, Any]:
    """One block's state from its members' row states (per-element tensors stacked, counters shared)."""
    if not states[0]:
        return {}
    if len(states) == 1:
        return states[0]
    joined: dict[str, Any] = {}
    for key, value in states[0].items():
        if isinstance(value, Tensor) and value.dim() > 0:
            joined[key] = torch.stack([s[key] for s in states])
        else:
            joined[key] = value.clone() if isinstance(value, Tensor) else value
    return joined


def _row(state: dict[str, Any], index: int, rows: int) -> dict[str, Any]:
    """Member `index`'s row of a block state (`rows` == 1: the state is the member's own)."""
    if rows == 1:
        return state
    return {key: (value[index].clone() if isinstance(value, Tensor) and value.dim() > 0
                  else value.clone() if isinstance(value, Tensor) else value)
            for key, value in state.items()}
