"""One optimizer step for K stacked members, each taking exactly its own optimizer's update.

The members' parameters live in one flat buffer ``flat`` of shape (K, P) (row
k holds member k's P parameters) and their gradients in ``flat_grad``. Each
member's optimizer is first built the ordinary way, on the member's own module
(`trainlab.optimizers.optimizer`, so the settings are validated and the kernel
chosen exactly as for a solo run); then the member is stepped in one of two
ways.

Direction members (torch's SGD, Adam, AdamW, Adagrad, Adadelta, RMSprop and
NAdam with one parameter group). Every one of these updates a parameter by
``p <- p - lr * D``, where the direction D depends on the gradients and the
optimizer's state but not on lr (nor on p, once weight decay is taken out). So
torch's own optimizer, built with ``lr=1`` and ``weight_decay=0`` over the rows
of a zeroed buffer U, writes ``U = -D`` for every member in one fused call,
with each member's row keeping its own state (moments, step count). Then

    g <- g + wd_k * p                 coupled weight decay (L2 in the gradient)
    p <- p * (1 - lr_k * wd_k)        decoupled decay (AdamW), before the step
    p <- p + lr_k * U                 one multiply-add over all members

with per-member lr_k and wd_k as (K, 1) tensors. Members that share an
optimizer type and its other settings (betas, eps, momentum, ...) share one
torch optimizer; each distinct setting adds one more.

Own-optimizer members (anything else: another optimizer class, a factory
with several parameter groups, maximize with weight decay). Their module's
parameters are views into ``flat`` and their gradients views into
``flat_grad``, and their own optimizer is stepped as in a solo run.

A member that is not active at a step (it has stopped, or has no batch left in
this pass) is left out of the direction step (its row of U keeps no gradient,
so torch skips it and its state does not change) and gets lr 0, so its
parameters do not change either.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

#: torch optimizers whose update is lr times a direction that does not depend on lr.
DIRECTION_OPTIMIZERS: tuple[type[torch.optim.Optimizer], ...] = (
    torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW, torch.optim.Adagrad, torch.optim.Adadelta,
    torch.optim.RMSprop, torch.optim.NAdam,
)

_PER_MEMBER = ("params", "lr", "weight_decay", "initial_lr", "decoupled_weight_decay")


@dataclass
class MemberUpdate:
    """How one member is stepped; lives as long as the member, across re-stacking.

    Attributes:
        optimizer: the member's optimizer, built on its own module as in a solo run.
        params: the member's trainable parameters in stacked order.
        direction_key: the settings shared by members that can use one direction
            optimizer, or None for an own-optimizer member.
        state: the direction optimizer's state for this member's row (moments,
            step count); empty until its first step.
    """

    optimizer: torch.optim.Optimizer
    params: list[Tensor]
    direction_key: tuple[Any, ...] | None = None
    direction_settings: dict[str, Any] = field(default_factory=dict)
    coupled_decay: float = 0.0
    decoupled_decay: float = 0.0
    state: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, optimizer: torch.optim.Optimizer, params: list[Tensor]) -> MemberUpdate:
        """Classify `optimizer` (direction or own) and read its per-member settings."""
        update = cls(optimizer=optimizer, params=params)
        kind = type(optimizer)
        groups = optimizer.param_groups
        if kind not in DIRECTION_OPTIMIZERS or len(groups) != 1:
            return update
        group = groups[0]
        if {id(p) for p in group["params"]} != {id(p) for p in params} or len(group["params"]) != len(params):
            return update
        decay = float(group.get("weight_decay", 0.0))
        if group.get("differentiable") or (group.get("maximize") and decay) or isinstance(group["lr"], Tensor):
            return update
        accepted = inspect.signature(kind).parameters
        settings = {k: v for k, v in group.items() if k in accepted and k not in _PER_MEMBER}
        update.direction_settings = settings
        update.direction_key = (kind, tuple(sorted((k, _hashable(v)) for k, v in settings.items())))
        if kind is torch.optim.AdamW or group.get("decoupled_weight_decay", False):
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


class StackedOptimizer:
    """Steps the members of one stack (see the module docstring)."""

    def __init__(self, flat: Tensor, flat_grad: Tensor, members: Sequence[MemberUpdate]) -> None:
        self.flat, self.flat_grad = flat, flat_grad
        self.members = list(members)
        k = len(self.members)
        self.direction_rows = [i for i, m in enumerate(self.members) if m.direction_key is not None]
        self.own_rows = [i for i, m in enumerate(self.members) if m.direction_key is None]
        self.direction: list[torch.optim.Optimizer] = []
        self.rows: list[Tensor | None] = [None] * k
        self.update = torch.zeros_like(flat) if self.direction_rows else None
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i in self.direction_rows:
            groups.setdefault(self.members[i].direction_key, []).append(i)  # type: ignore[arg-type]
        for key, indices in groups.items():
            assert self.update is not None
            rows = [self.update[i] for i in indices]
            for i, row in zip(indices, rows):
                row.grad = flat_grad[i]
                self.rows[i] = row
            settings = {**self.members[indices[0]].direction_settings, "lr": 1.0, "weight_decay": 0.0}
            optimizer = key[0](rows, **settings)
            for i, row in zip(indices, rows):
                optimizer.state[row] = self.members[i].state
            self.direction.append(optimizer)
        dtype, device = flat.dtype, flat.device
        coupled = [m.coupled_decay for m in self.members]
        decoupled = [m.decoupled_decay for m in self.members]
        self.coupled = torch.tensor(coupled, dtype=dtype, device=device).unsqueeze(1) if any(coupled) else None
        self.decoupled = (torch.tensor(decoupled, dtype=dtype, device=device).unsqueeze(1)
                          if any(decoupled) else None)

    def step(self, lr: Tensor, active: Sequence[bool] | None = None) -> None:
        """One update; `lr` (K, 1) holds each member's lr for this step, 0 where inactive."""
        if self.update is not None:
            if self.coupled is not None:
                self.flat_grad.addcmul_(self.flat, self.coupled)
            if self.decoupled is not None:
                self.flat.mul_(1.0 - lr * self.decoupled)
            self.update.zero_()
            skipped = [] if active is None else [i for i in self.direction_rows if not active[i]]
            for i in skipped:
                self.rows[i].grad = None  # type: ignore[union-attr]
            try:
                for optimizer in self.direction:
                    optimizer.step()
            finally:
                for i in skipped:
                    self.rows[i].grad = self.flat_grad[i]  # type: ignore[union-attr]
            self.flat.addcmul_(self.update, lr)
        for i in self.own_rows:
            if active is None or active[i]:
                self.members[i].optimizer.step()
