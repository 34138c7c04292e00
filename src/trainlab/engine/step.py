"""The Step protocol: what runs one optimizer step for the members that take it.

A step executor owns the forward pass, the loss (per member), the backward pass
and the update; the driver (`trainlab.engine.driver`) owns everything around it.
`backward` is the one place trainlab calls autograd's backward; `functional_step`
is the optimizer update both executors make after their first step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import Tensor

if TYPE_CHECKING:
    from trainlab.engine.state import MemberState


class FunctionalStep(Protocol):
    """An optimizer's update with its lists bound (`functional_step`)."""

    def __call__(self, lr: float | None = None, grads: Sequence[Tensor] | None = None) -> None: ...


def backward(objective: Tensor) -> None:
    """Gradients of `objective` into the leaves' ``.grad`` (the only backward call in trainlab's loop)."""
    objective.backward()  # type: ignore[no-untyped-call]


def functional_step(optimizer: torch.optim.Optimizer, targets: Sequence[Tensor] | None = None
                     ) -> FunctionalStep | None:
    """`optimizer.step()` as torch's functional form (`StackedForm.functional`), its lists bound once.

    ``step()`` rebuilds the lists of parameters, gradients and state tensors on
    every call, which costs more than the update itself for small models; once
    the state exists (after the first step) the lists do not change, so the same
    functional call torch makes (`torch.optim.adam.adam`, `torch.optim.sgd.sgd`)
    is made with them directly. None for other optimizers or before the first step.

    With `targets` (tensors shaped like the parameters) the update is written into
    them instead, from the parameters' gradients and state. The returned function
    takes the lr to use (None: the group's) and, optionally, the gradients to use
    in place of the parameters' ``.grad`` (tensors shaped like the parameters).
    """
    group = optimizer.param_groups[0]
    params = group["params"]
    written = list(targets) if targets is not None else params
    states = [optimizer.state.get(p) for p in params]
    if len(optimizer.param_groups) != 1 or not all(states) or group.get("differentiable"):
        return None
    from trainlab.optimizers import stacked_form  # the registry: imported when first needed

    form = stacked_form(optimizer)
    functional = form.functional if form is not None else None
    if functional == "adam":
        from torch.optim.adam import adam

        exp_avgs = [s["exp_avg"] for s in states]  # type: ignore[index]
        exp_avg_sqs = [s["exp_avg_sq"] for s in states]  # type: ignore[index]
        maxima = [s["max_exp_avg_sq"] for s in states] if group["amsgrad"] else []  # type: ignore[index]
        steps = [s["step"] for s in states]  # type: ignore[index]
        beta1, beta2 = group["betas"]
        kinds = {(t.device, t.dtype) for t in [*written, *params, *exp_avgs, *exp_avg_sqs, *maxima]}
        if group["fused"] and len(kinds) == 1 and not isinstance(group["lr"], Tensor):
            # The two calls torch's `_fused_adam` makes for one device and dtype, without its grouping.
            kernel = torch._fused_adamw_ if group["decoupled_weight_decay"] else torch._fused_adam_
            settings = {"amsgrad": group["amsgrad"], "beta1": float(beta1), "beta2": float(beta2),
                        "weight_decay": group["weight_decay"], "eps": group["eps"], "maximize": group["maximize"],
                        "grad_scale": None, "found_inf": None}

            # A CPU step count is raised by a 1 wrapped once (as torch's foreach Adam does), not on every call.
            one = torch.tensor(1.0) if steps[0].is_cpu else None

            def fused_step(lr: float | None = None, grads: Sequence[Tensor] | None = None) -> None:
                if one is not None:
                    torch._foreach_add_(steps, one, alpha=1.0)
                else:
                    torch._foreach_add_(steps, 1)
                kernel(written, [p.grad for p in params] if grads is None else list(grads), exp_avgs, exp_avg_sqs,
                       maxima, steps, lr=group["lr"] if lr is None else lr, **settings)

            return fused_step

        def adam_step(lr: float | None = None, grads: Sequence[Tensor] | None = None) -> None:
            adam(written, [p.grad for p in params] if grads is None else list(grads), exp_avgs, exp_avg_sqs, maxima,
                 steps, amsgrad=group["amsgrad"],
                 has_complex=False, beta1=beta1, beta2=beta2, lr=group["lr"] if lr is None else lr,
                 weight_decay=group["weight_decay"],
                 eps=group["eps"], maximize=group["maximize"], foreach=group["foreach"],
                 capturable=group["capturable"], differentiable=False, fused=group["fused"], grad_scale=None,
                 found_inf=None, decoupled_weight_decay=group["decoupled_weight_decay"])

        return adam_step
    if functional == "sgd":
        from torch.optim.sgd import sgd

        buffers = [s.get("momentum_buffer") for s in states]  # type: ignore[union-attr]
        if group["momentum"] != 0 and any(b is None for b in buffers):
            return None

        def sgd_step(lr: float | None = None, grads: Sequence[Tensor] | None = None) -> None:
            sgd(written, [p.grad for p in params] if grads is None else list(grads), buffers,
                weight_decay=group["weight_decay"],
                momentum=group["momentum"], lr=group["lr"] if lr is None else lr, dampening=group["dampening"],
                nesterov=group["nesterov"],
                maximize=group["maximize"], has_sparse_grad=False, foreach=group["foreach"], fused=group["fused"],
                grad_scale=None, found_inf=None)

        return sgd_step
    return None


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
