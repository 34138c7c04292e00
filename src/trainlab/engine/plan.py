"""Which executor trains which members: decided from the model, the members and the device.

Never from timing or free memory, so the same spec and seeds take the same path
on a busy machine as on an idle one (and the results do not depend on the path
anyway). The decision and its reason are recorded in ``History.params``
(``stacked``, ``stack_reason``, ``executor``, ``plan_reason``).

Rules, in order:

1. ``stack="off"``, or one member with ``stack="auto"``: the solo executor.
2. Members that cannot stack (recurrent layers, tied weights, shapes that
   differ, ...): the solo executor, one member after another; ``stack="on"``
   raises InputError saying why.
3. ``stack="auto"`` on the CPU with more than `LARGE_MODEL` parameters per member:
   the solo executor (one member's matrix products already keep the cores busy,
   so stacking gains nothing and costs memory).
4. Otherwise the stacked executor, in chunks of ``budget // bytes per member``
   members (`trainlab.stacked.member_bytes`; the budget is a fixed property of
   the device), or `chunk_size` when given.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from trainlab.errors import InputError

#: Parameters per member above which stack="auto" trains CPU members one at a time.
LARGE_MODEL = 2_000_000


@dataclass(frozen=True)
class Plan:
    """The executor for a group of members, the chunk size and why."""

    stacked: bool
    chunk_size: int
    reason: str


def plan_members(model: nn.Module, unstackable: str | None, *, num_members: int, device: torch.device,
                 mode: str, chunk_size: int | None, member_bytes: int) -> Plan:
    """The plan for `num_members` members of `model` (built) on `device` (see the module docstring)."""
    if unstackable is not None:
        if mode == "on":
            raise InputError(f"stack='on' but these runs cannot be stacked: {unstackable}. Use stack='auto' to "
                             "train them one after another instead, with the same results.")
        return Plan(stacked=False, chunk_size=1, reason=unstackable)
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if mode == "auto" and device.type == "cpu" and params > LARGE_MODEL:
        return Plan(stacked=False, chunk_size=1,
                    reason=f"the model has {params:,} parameters per member, more than {LARGE_MODEL:,}: on the "
                           "CPU one member's products already keep the cores busy")
    from trainlab.stacked import _memory_budget

    chunk = min(num_members, chunk_size or max(1, _memory_budget(device) // max(member_bytes, 1)))
    if mode == "on":
        return Plan(stacked=True, chunk_size=chunk, reason=f"stack='on', chunks of {chunk}")
    return Plan(stacked=True, chunk_size=chunk,
                reason=f"stacked in chunks of {chunk}: {params:,} parameters per member on {device.type}, small "
                       "enough that one stacked member-step costs a fraction of a solo step")
