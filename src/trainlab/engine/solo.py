"""SoloStep: one member, any nn.Module, any torch.optim optimizer (recurrent layers included)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from trainlab.engine import streams
from trainlab.engine.config import BatchTransform, GradientHook
from trainlab.engine.evaluate import evaluate_tensors, metric_logs
from trainlab.engine.state import MemberState, copy_state
from trainlab.engine.step import FunctionalStep, backward, functional_step
from trainlab.losses import Loss


def penalty_fn(model: nn.Module) -> Callable[[], Tensor | None] | None:
    """The model's regularization penalty, when it has one (trainlab layers' regularizers)."""
    has = getattr(model, "has_penalties", None)
    penalty = getattr(model, "penalty", None)
    if callable(has) and has() and callable(penalty):
        return penalty  # type: ignore[no-any-return]
    return None


def transform_generator(seed: int, step: int, device: torch.device) -> torch.Generator:
    """The generator a batch transform draws from at `step`: a function of (seed, step) alone."""
    return torch.Generator(device=device).manual_seed(streams.mix(seed, step, 0x5EED))


def apply_transforms(transforms: Sequence[BatchTransform], xb: Tensor, yb: Tensor, seed: int, step: int
                     ) -> tuple[Tensor, Tensor]:
    generator = transform_generator(seed, step, xb.device)
    for transform in transforms:
        xb, yb = transform(xb, yb, generator=generator)
    return xb, yb


class SoloStep:
    """Forward, loss, backward, hooks and update of one module, exactly as a plain PyTorch loop does it.

    The training loss is accumulated on the device (no sync per batch) and the
    metrics are fed batch by batch.
    """

    def __init__(self, member: MemberState, *, x: Tensor, y: Tensor, forward: Callable[[Tensor], Tensor],
                 from_logits: bool, x_val: Tensor | None, y_val: Tensor | None, val_weight: Tensor | None,
                 val_batch: int, transforms: Sequence[BatchTransform], hooks: Sequence[GradientHook]) -> None:
        self.member = member
        self.x, self.y = x, y
        self.forward, self.from_logits = forward, from_logits
        self.x_val, self.y_val, self.val_weight, self.val_batch = x_val, y_val, val_weight, val_batch
        self.transforms, self.hooks = tuple(transforms), tuple(hooks)
        self.penalty = penalty_fn(member.module)
        device = x.device
        self.loss_sum = torch.zeros((), device=device)
        self.penalty_sum = torch.zeros((), device=device)
        self.order: Tensor | None = None
        self.seen = 0  # training rows of this epoch so far (fewer than n after a stop mid-epoch)
        random = [m for m in member.module.modules() if getattr(m, "counter_random", False)]
        self.layers = streams.layer_positions(member.module) if random else None
        self._fast: FunctionalStep | None = None  # see `_step`
        self._bound: tuple[object, object] | None = None

    def _step(self, optimizer: torch.optim.Optimizer) -> None:
        """``optimizer.step()``; from the second step on, for torch's Adam, AdamW and SGD, the same
        functional call ``step()`` makes with its lists bound once (`functional_step`), which
        for a small model costs less than ``step()``'s own bookkeeping. ``step()`` is used whenever
        anything could make the two differ: hooks, a patched ``step``, a parameter without a
        gradient, a state or groups replaced since binding (``load_state_dict``)."""
        fast = self._fast
        bound = self._bound
        if (fast is not None and bound is not None and bound[0] is optimizer.state
                and bound[1] is optimizer.param_groups[0]
                and _plain(optimizer) and all(p.grad is not None for p in optimizer.param_groups[0]["params"])):
            with torch.no_grad():
                fast(None)
            return
        optimizer.step()
        self._fast = None
        if _plain(optimizer) and len(optimizer.param_groups) == 1:
            params = optimizer.param_groups[0]["params"]
            if all(p.dtype in (torch.float32, torch.float64) and p.grad is not None for p in params):
                self._fast = functional_step(optimizer)
                self._bound = (optimizer.state, optimizer.param_groups[0])

    def begin_epoch(self, live: Sequence[MemberState], orders: dict[int, Tensor | None]) -> None:
        self.order = orders[self.member.index]
        self.seen = 0
        self.loss_sum = torch.zeros((), device=self.x.device)
        self.penalty_sum = torch.zeros((), device=self.x.device)
        for m in self.member.train_metrics:
            m.reset()

    def run(self, batch: int, active: Sequence[MemberState]) -> dict[int, tuple[Tensor, int]]:
        member = self.member
        batch_size = member.batch_size
        start = batch * batch_size
        weights = member.sample_weight
        wb: Tensor | None = None
        if self.order is not None:
            index = self.order[start:start + batch_size]
            xb, yb = self.x[index], self.y[index]
            if weights is not None:
                wb = weights[index]
        else:
            xb, yb = self.x[start:start + batch_size], self.y[start:start + batch_size]
            if weights is not None:
                wb = weights[start:start + batch_size]
        return self.train_batch(xb, yb, wb)

    def train_batch(self, xb: Tensor, yb: Tensor, wb: Tensor | None) -> dict[int, tuple[Tensor, int]]:
        """Transforms, forward, loss, backward, gradient hooks and update on one batch already on the device."""
        member = self.member
        metric_y = yb
        if self.transforms:
            xb, yb = apply_transforms(self.transforms, xb, yb, member.seed, member.step)
            metric_y = _metric_targets(yb, metric_y)
        scope = (streams.stream_scope(member.seed, member.step, self.layers) if self.layers is not None
                 else contextlib.nullcontext())
        with scope:
            output = self.forward(xb)
        loss_fn: Loss = member.loss
        batch_loss = loss_fn(output, yb) if wb is None else loss_fn.weighted(output, yb, wb)
        objective = batch_loss
        if self.penalty is not None:
            extra_loss = self.penalty()
            if extra_loss is not None:
                objective = batch_loss + extra_loss
                self.penalty_sum.add_(extra_loss.detach(), alpha=xb.shape[0])
        member.optimizer.zero_grad(set_to_none=True)
        backward(objective)
        for hook in self.hooks:
            hook(member.params, member.run)
        self._step(member.optimizer)
        self.loss_sum.add_(batch_loss.detach(), alpha=xb.shape[0])
        self.seen += xb.shape[0]
        if member.train_metrics:
            detached = output.detach()
            for m in member.train_metrics:
                m.update(detached, metric_y, from_logits=self.from_logits)
        return {member.index: (batch_loss.detach(), xb.shape[0])}

    def epoch_logs(self, live: Sequence[MemberState]) -> dict[int, dict[str, Any]]:
        member = self.member
        n = max(self.seen, 1)
        data_loss = self.loss_sum.item() / n
        logs: dict[str, Any] = {}
        if self.penalty is not None:
            pen = self.penalty_sum.item() / n
            # As in Keras, the training loss includes the regularization penalty; it is also shown apart.
            logs["loss"] = data_loss + pen
            logs["penalty"] = pen
        else:
            logs["loss"] = data_loss
        logs.update(metric_logs(member.train_metrics))
        return {member.index: logs}

    def validate(self, live: Sequence[MemberState], logs: dict[int, dict[str, Any]]) -> None:
        if self.x_val is None or self.y_val is None or not live:
            return
        member = self.member
        logs[member.index].update(evaluate_tensors(
            member.module, self.forward, member.loss, member.val_metrics, self.x_val, self.y_val,
            batch_size=self.val_batch, from_logits=self.from_logits, prefix="val_", sample_weight=self.val_weight))

    def remember(self, live: Sequence[MemberState]) -> None:
        for member in live:
            if not member.stopped:
                member.last_good = copy_state(member.module)

    def restore_good(self, member: MemberState) -> None:
        if member.last_good is not None:
            member.module.load_state_dict(member.last_good)

    def grads(self, member: MemberState) -> Sequence[Tensor]:
        return member.params

    def optimizer_state(self, member: MemberState) -> dict[str, Any]:
        return member.optimizer.state_dict()

    def leave(self, member: MemberState) -> None:
        pass

    def sync(self) -> None:
        pass

    def finish(self) -> None:
        pass


def _plain(optimizer: torch.optim.Optimizer) -> bool:
    """No step hooks (its own or global) and no patched ``step`` on the instance."""
    from torch.optim import optimizer as base

    return not (optimizer._optimizer_step_pre_hooks or optimizer._optimizer_step_post_hooks
                or base._global_optimizer_pre_hooks or base._global_optimizer_post_hooks
                or "step" in vars(optimizer))


def _metric_targets(transformed: Tensor, original: Tensor) -> Tensor:
    """Targets the metrics understand: soft probability rows (mixup) count as their argmax class."""
    if transformed.is_floating_point() and not original.is_floating_point() and transformed.dim() > original.dim():
        return transformed.argmax(-1)
    return transformed
