"""What the loop is told: the data, the technique, the loop settings, and the extension points."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from trainlab import check
from trainlab.errors import InputError

if TYPE_CHECKING:
    from trainlab.callbacks import RunState


@runtime_checkable
class BatchTransform(Protocol):
    """Replaces a training batch ``(x, y)`` on the device, before the forward pass; never in evaluation.

    `y` may come back as float probability rows (N, num_classes): the cross-entropies
    accept them (mixup, label noise). `generator` is seeded from (member seed, step),
    the same whether the member trains alone or stacked.
    """

    def __call__(self, x: Tensor, y: Tensor, *, generator: torch.Generator) -> tuple[Tensor, Tensor]: ...


@runtime_checkable
class GradientHook(Protocol):
    """Called between backward and the optimizer step with the member's trainable parameters
    (their ``.grad`` filled) and its run state; may change the gradients in place."""

    def __call__(self, params: Sequence[Tensor], run: RunState) -> None: ...


@dataclass(frozen=True)
class ClipGradValue:
    """Clamp every gradient entry to [-value, value] (``torch.nn.utils.clip_grad_value_``)."""

    value: float

    def __call__(self, params: Sequence[Tensor], run: RunState) -> None:
        torch.nn.utils.clip_grad_value_(params, self.value, foreach=True)


@dataclass(frozen=True)
class ClipGradNorm:
    """Scale the gradients so that their global 2-norm is at most `max_norm` (``clip_grad_norm_``)."""

    max_norm: float

    def __call__(self, params: Sequence[Tensor], run: RunState) -> None:
        torch.nn.utils.clip_grad_norm_(params, self.max_norm, foreach=True)


@dataclass(frozen=True, kw_only=True)
class LoopConfig:
    """How the loop runs, apart from what is trained: batch size, epochs, order, seed, device.

    Attributes:
        batch_transforms: applied in order to each training batch (see `BatchTransform`).
        gradient_hooks: called in order between backward and step (see `GradientHook`);
            `clip_grad_value` and `clip_grad_norm` become the first two hooks.
        record_steps: keep per-step "loss" and "lr" lists in ``History.steps``.
        initial_epoch: the epoch to start at (Keras's ``initial_epoch``).
    """

    batch_size: int = 32
    num_epochs: int = 1
    shuffle: bool = True
    seed: int | None = None
    device: str = "auto"
    validation_batch_size: int | None = None
    verbose: int = 0
    clip_grad_norm: float | None = None
    clip_grad_value: float | None = None
    divergence_factor: float | None = 100.0
    checkpoint_dir: str | Path | None = None
    resume: bool = False
    batch_transforms: Sequence[BatchTransform] = ()
    gradient_hooks: Sequence[GradientHook] = ()
    record_steps: bool = False
    initial_epoch: int = 0

    def __post_init__(self) -> None:
        check.int_at_least("batch_size", self.batch_size, 1)
        check.int_at_least("num_epochs", self.num_epochs, 1)
        check.int_at_least("initial_epoch", self.initial_epoch, 0)
        if self.clip_grad_norm is not None:
            check.positive("clip_grad_norm", self.clip_grad_norm)
        if self.clip_grad_value is not None:
            check.positive("clip_grad_value", self.clip_grad_value)
        if self.divergence_factor is not None:
            check.positive("divergence_factor", self.divergence_factor,
                           "It is how many times the first epoch's loss counts as diverged; None disables it.")
        if self.resume and self.checkpoint_dir is None:
            raise InputError("resume=True needs a checkpoint_dir to resume from")
        if self.seed is not None:
            check.int_at_least("seed", self.seed, 0)
        for name in ("batch_transforms", "gradient_hooks"):
            items = getattr(self, name)
            if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
                raise InputError(f"{name} must be a list of callables, got {type(items).__name__}")
            for k, item in enumerate(items):
                if not callable(item):
                    raise InputError(f"{name}[{k}] must be callable, got {type(item).__name__} {item!r}")
            object.__setattr__(self, name, tuple(items))

    def all_gradient_hooks(self) -> tuple[GradientHook, ...]:
        """Clipping (value, then norm) followed by the user's gradient hooks."""
        hooks: list[GradientHook] = []
        if self.clip_grad_value is not None:
            hooks.append(ClipGradValue(self.clip_grad_value))
        if self.clip_grad_norm is not None:
            hooks.append(ClipGradNorm(self.clip_grad_norm))
        return (*hooks, *self.gradient_hooks)


@dataclass(frozen=True)
class TrainData:
    """Training tensors and optional validation tensors (already scaled).

    `sample_weight` (one weight per training row) scales each sample's loss, as
    Keras's ``sample_weight``; `val_sample_weight` does the same for validation.
    """

    x: Tensor
    y: Tensor
    x_val: Tensor | None = None
    y_val: Tensor | None = None
    sample_weight: Tensor | None = None
    val_sample_weight: Tensor | None = None


@dataclass
class Technique:
    """What is trained with: loss, metrics, optimizer, schedule (names, tables or objects).

    `loss="auto"` picks the loss from `task` and the model's output width (see `auto_loss`).
    """

    loss: Any
    optimizer: Any = "adam"
    metrics: Sequence[Any] = field(default_factory=list)
    schedule: Any = None
    task: str | None = None


def check_weights(weights: Tensor | None, n: int, name: str) -> Tensor | None:
    """`weights` as a float 1-D tensor of n finite, non-negative numbers, or an InputError."""
    if weights is None:
        return None
    tensor = weights if isinstance(weights, Tensor) else torch.as_tensor(weights)
    if tensor.dim() == 2 and tensor.shape[1] == 1:
        tensor = tensor[:, 0]
    if tensor.dim() != 1 or tensor.shape[0] != n:
        raise InputError(f"{name} must hold one weight per sample ({n} samples), got shape {tuple(tensor.shape)}. "
                         "Pass a 1-D array with one non-negative number per row.")
    tensor = tensor.to(torch.float32)
    if not bool(torch.isfinite(tensor).all()) or bool((tensor < 0).any()):
        raise InputError(f"{name} must be finite and >= 0; it holds negative, NaN or infinite values.")
    return tensor


def class_weights_to_sample_weights(y: Tensor, class_weight: Any, sample_weight: Tensor | None = None) -> Tensor:
    """Keras's ``class_weight``: each sample weighs ``class_weight[its class]`` (1.0 for a class not
    listed), times its `sample_weight` when one is given. The class is the label, the argmax of a
    one-hot row, or the rounded 0/1 target of a single output.

    Example:
        >>> class_weights_to_sample_weights(torch.tensor([0, 1, 0, 2]), {0: 1.0, 1: 2.0, 2: 3.0}).tolist()
        [1.0, 2.0, 1.0, 3.0]
    """
    if not isinstance(class_weight, dict) or not all(isinstance(k, int) and not isinstance(k, bool)
                                                     for k in class_weight):
        raise InputError("class_weight must be a dict mapping class indices (int) to weights, e.g. "
                         f"{{0: 1.0, 1: 5.0}}; got {type(class_weight).__name__} {class_weight!r}")
    if y.dim() > 1 and y.shape[-1] > 1:
        labels = y.argmax(-1)
    else:
        labels = y.reshape(y.shape[0], -1)[:, 0]
        labels = labels.round().long() if labels.is_floating_point() else labels.long()
    table_size = max(int(labels.max().item()) + 1 if labels.numel() else 0, max(class_weight, default=-1) + 1)
    table = torch.ones(table_size, dtype=torch.float32)
    for label, weight in class_weight.items():
        check.at_least(f"class_weight[{label}]", weight, 0.0)
        if label < 0:
            raise InputError(f"class_weight has the class index {label}; class indices start at 0")
        table[label] = float(weight)
    weights = table[labels.cpu()]
    return weights if sample_weight is None else weights * sample_weight.to(torch.float32).cpu()
