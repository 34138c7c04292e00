"""The Step protocol: what runs one optimizer step for the members that take it.

A step executor owns the forward pass, the loss (per member), the backward pass
and the update; the driver (`trainlab.engine.driver`) owns everything around it.
`backward` is the one place trainlab calls autograd's backward.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from torch import Tensor

if TYPE_CHECKING:
    from trainlab.engine.state import MemberState


def backward(objective: Tensor) -> None:
    """Gradients of `objective` into the leaves' ``.grad`` (the only backward call in trainlab's loop)."""
    objective.backward()  # type: ignore[no-untyped-call]


class Step(Protocol):
    """One executor behind the driver: `SoloStep` (one module) or `StackedStep` (K members)."""

    def begin_epoch(self, live: Sequence[MemberState], orders: dict[int, Tensor | None]) -> None:
        """Start an epoch: `orders[i]` is member i's permutation of its rows (None: in order)."""

    def run(self, batch: int, active: Sequence[MemberState]) -> dict[int, tuple[Tensor, int]]:
        """Forward, loss, backward, gradient hooks and update of `active` at batch `batch` of the epoch;
        each member's batch loss (0-d tensor, not synced) and batch size."""
        ...

    def epoch_logs(self, live: Sequence[MemberState]) -> dict[int, dict[str, Any]]:
        """Each member's training logs of the epoch (loss, penalty, metrics)."""
        ...

    def validate(self, live: Sequence[MemberState], logs: dict[int, dict[str, Any]]) -> None:
        """Add val_loss and val_<metric> to the logs of members that have validation data."""

    def remember(self, live: Sequence[MemberState]) -> None:
        """Keep the live members' current weights as their last good ones (after a good epoch)."""

    def restore_good(self, member: MemberState) -> None:
        """Put back `member`'s last good weights (it diverged; it has left)."""

    def grads(self, member: MemberState) -> Sequence[Tensor]:
        """`member`'s trainable parameters with their last gradients attached (for diagnoses)."""
        ...

    def optimizer_state(self, member: MemberState) -> dict[str, Any]:
        """`member`'s optimizer ``state_dict()``, as its solo run's optimizer would hold it."""
        ...

    def leave(self, member: MemberState) -> None:
        """`member` stops: its module gets its own weights and takes no further update."""

    def sync(self) -> None:
        """Bring every member's module and optimizer state up to date (before a checkpoint)."""

    def finish(self) -> None:
        """Training is over: every member's module holds its own final weights."""
