"""Evaluation and prediction for one model or K members, in eval mode, batch by batch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn

from trainlab.errors import InputError
from trainlab.losses import Loss
from trainlab.metrics import Metric
from trainlab.metrics import metric as make_metric


def targets(y: Tensor, loss_fn: Loss, num_outputs: int, part: str, device: torch.device) -> Tensor:
    """`y` on the device in the loss's target dtype, after the loss checked that it fits the model."""
    y = y.to(device)
    try:
        loss_fn.check_target(y, num_outputs)
    except InputError as error:
        raise InputError(f"{part} targets: {error}") from error
    return y.to(loss_fn.target_dtype)


def make_metrics(specs: Sequence[Any], loss_fn: Loss, num_outputs: int) -> list[Metric]:
    """The metrics of a run, built for its loss and output width."""
    return [make_metric(s, loss=loss_fn, num_outputs=num_outputs, source="metrics") for s in specs]


def metric_logs(metrics: Sequence[Metric], prefix: str = "") -> dict[str, float]:
    """The scalar metrics' values, keyed ``<prefix><name>``."""
    return {f"{prefix}{m.name}": float(cast(float, m.compute())) for m in metrics if getattr(m, "scalar", True)}


def evaluate_tensors(model: nn.Module, forward: Callable[[Tensor], Tensor], loss_fn: Loss,
                     metrics: list[Metric], x: Tensor, y: Tensor, *, batch_size: int,
                     from_logits: bool, prefix: str = "", sample_weight: Tensor | None = None) -> dict[str, float]:
    """Loss and metrics over all of (x, y) in eval mode, batch by batch, exact over the set.

    With `sample_weight`, the loss is sum_i w_i * loss_i / N, as Keras weighs an evaluation.
    """
    was_training = model.training
    model.eval()
    total = torch.zeros((), device=x.device)
    for m in metrics:
        m.reset()
    try:
        with torch.no_grad():
            for start in range(0, x.shape[0], batch_size):
                xb, yb = x[start:start + batch_size], y[start:start + batch_size]
                out = forward(xb)
                if sample_weight is None:
                    total.add_(loss_fn(out, yb), alpha=xb.shape[0])
                else:
                    total.add_(loss_fn.weighted(out, yb, sample_weight[start:start + batch_size]),
                               alpha=xb.shape[0])
                for m in metrics:
                    m.update(out, yb, from_logits=from_logits)
    finally:
        model.train(was_training)
    logs = {f"{prefix}loss": total.item() / x.shape[0]}
    logs.update(metric_logs(metrics, prefix))
    return logs


def predict_tensors(model: nn.Module, x: Tensor, *, batch_size: int = 1024) -> Tensor:
    """The model's outputs on x, in eval mode, concatenated (on the device of x)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            parts = [model(x[s:s + batch_size]) for s in range(0, x.shape[0], batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(parts) if parts else x.new_empty((0,))


def predict_members(models: Sequence[nn.Module], x: Tensor, *, batch_size: int = 1024) -> Tensor:
    """Every member's outputs on the same inputs, stacked: shape (K, N, ...).

    Members of one architecture (trainlab Sequentials of Dense, BatchNormalization and per-sample
    layers, the stacked fast path) run as one batched forward; any others run
    one after another. Eval mode, no gradients; the models are left as they were.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> models = [nn.Linear(3, 2), nn.Linear(3, 2)]
        >>> predict_members(models, torch.zeros(5, 3)).shape
        torch.Size([2, 5, 2])
    """
    if not models:
        raise InputError("predict_members needs at least one model")
    device = next((p.device for p in models[0].parameters()), x.device)
    x = x.to(device)
    stacked = _stacked_predict(models, x, batch_size)
    if stacked is not None:
        return stacked
    return torch.stack([predict_tensors(m, x, batch_size=batch_size) for m in models])


def _stacked_predict(models: Sequence[nn.Module], x: Tensor, batch_size: int) -> Tensor | None:
    from trainlab.stacked._forward import LayerStackForward, layer_stack_supported

    first = models[0]
    if len(models) < 2 or not layer_stack_supported(first):
        return None
    layout = [(n, p.shape) for n, p in first.named_parameters()]
    if any([(n, p.shape) for n, p in m.named_parameters()] != layout or type(m) is not type(first)
           or _signature(m) != _signature(first) or not layer_stack_supported(m) for m in models[1:]):
        return None
    params = {n: torch.stack([dict(m.named_parameters())[n].detach() for m in models]) for n, _ in layout}
    buffers = {n: torch.stack([dict(m.named_buffers())[n] for m in models]) for n, _ in first.named_buffers()}
    forward = LayerStackForward(first, fused=False)  # type: ignore[arg-type]
    with torch.no_grad():
        parts = [forward(params, buffers, x[s:s + batch_size], training=False, shared=True)[0]
                 for s in range(0, x.shape[0], batch_size)]
    return torch.cat(parts, dim=1)


def _signature(model: nn.Module) -> list[tuple[str, str]]:
    """Each layer's type and activation: what the batched forward takes from the first model."""
    return [(type(layer).__name__, type(getattr(layer, "activation", None)).__name__)
            for layer in model.modules()]
