"""Data techniques that act on the batch, not on the weights: augmentation, noise, mixup, cutmix.

Each technique is a *batch transform*: an object called as
``transform(x, y, *, generator=g) -> (x, y)`` on one training batch, on the
training device, after the batch is sliced and before the forward pass; the
engine never applies it in evaluation. All the random draws of a batch come
from `generator`, so a batch transform is deterministic for a seed, and every
operation acts on the whole batch at once (no per-sample Python loop).

`AUGMENTATIONS` is the registry a recipe selects them from by name:

    [recipe]
    augment = [{name = "random_translation", height_factor = 0.1, width_factor = 0.1},
               {name = "random_flip"}]
    mixup = {alpha = 0.2}

`batch_transforms(recipe_fields, num_classes=...)` turns those fields into the
list of transforms the engine applies in order (`LoopConfig(batch_transforms=...)`).
Keras preprocessing and noise layers (``RandomFlip``, ``GaussianNoise``, ...)
that sit inside a model live in `trainlab.augment.layers`.

Example:
    >>> import torch
    >>> flip = AUGMENTATIONS.build({"name": "random_flip"})
    >>> x, y = torch.arange(8.0).reshape(2, 2, 2, 1), torch.tensor([0, 1])
    >>> x2, y2 = flip(x, y, generator=torch.Generator().manual_seed(0))
    >>> x2.shape, bool((y2 == y).all())
    (torch.Size([2, 2, 2, 1]), True)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from trainlab.errors import InputError, InputTypeError
from trainlab.registry import Registry

__all__ = [
    "AUGMENTATIONS",
    "BatchTransform",
    "augmentation",
    "batch_transforms",
    "weight_noise",
]


@runtime_checkable
class BatchTransform(Protocol):
    """Replaces a training batch (x, y); draws its randomness from `generator` only.

    The same signature as `trainlab.engine.BatchTransform`. `y` may come back as
    float soft targets of shape (N, num_classes) (mixup, cutmix).
    """

    def __call__(self, x: Tensor, y: Tensor, *, generator: torch.Generator) -> tuple[Tensor, Tensor]: ...


AUGMENTATIONS: Registry[Callable[..., BatchTransform]] = Registry("augmentation")


def augmentation(spec: Any, *, source: str | None = None, **context: Any) -> BatchTransform:
    """Build one batch transform from a name, a ``{"name": ..., **settings}`` table or an object."""
    built = AUGMENTATIONS.build(spec, source=source, **context)
    if not callable(built):
        raise InputTypeError(
            f"an augmentation{f' (from {source})' if source else ''} must be a name, a table with a "
            f"'name' key, or a callable (x, y, *, generator) -> (x, y); got {type(built).__name__}"
        )
    return built  # type: ignore[no-any-return]


def batch_transforms(recipe_fields: Mapping[str, Any] | Any, *,
                     num_classes: int | None = None) -> list[BatchTransform]:
    """The recipe's data techniques as the ordered list of batch transforms the engine applies.

    Reads ``augment`` (a list of augmentations, applied in order), ``input_noise``
    (a stddev, or ``{stddev = ...}``; added after the augmentations) and then
    ``mixup`` or ``cutmix`` (``{alpha = ...}``; last, since they mix the already
    augmented samples and turn the labels into soft targets). Consecutive
    geometric augmentations (translation, rotation, zoom) are fused into one
    `affine_grid`/`grid_sample` call per batch.

    Args:
        recipe_fields: a RecipeSpec or a mapping with any of those keys; other
            keys are ignored.
        num_classes: the number of classes, needed by mixup/cutmix to make soft
            targets from integer labels.

    Example:
        >>> [type(t).__name__ for t in batch_transforms({"augment": ["random_flip"],
        ...                                              "mixup": {"alpha": 0.2}}, num_classes=10)]
        ['RandomFlip', 'Mixup']
    """
    from trainlab.augment.image import fuse_affine

    fields = _fields(recipe_fields)
    transforms: list[BatchTransform] = []
    augment = fields.get("augment") or []
    if isinstance(augment, (str, Mapping)) or not isinstance(augment, Sequence):
        augment = [augment]
    for i, spec in enumerate(augment):
        transforms.append(augmentation(spec, source=f"recipe.augment[{i}]"))
    transforms = fuse_affine(transforms)
    input_noise = fields.get("input_noise")
    if input_noise is not None:
        settings = {"stddev": input_noise} if not isinstance(input_noise, Mapping) else dict(input_noise)
        transforms.append(augmentation({"name": "gaussian_noise", **settings}, source="recipe.input_noise"))
    mixing = [key for key in ("mixup", "cutmix") if fields.get(key) is not None]
    if len(mixing) > 1:
        raise InputError("recipe: give at most one of mixup and cutmix; both mix the same batch pairs. "
                         "Remove one of them.")
    for key in mixing:
        settings = fields[key]
        settings = {"alpha": settings} if not isinstance(settings, Mapping) else dict(settings)
        transforms.append(augmentation({"name": key, **settings}, source=f"recipe.{key}",
                                       num_classes=num_classes))
    return transforms


def weight_noise(recipe_fields: Mapping[str, Any] | Any) -> Any:
    """The recipe's ``weight_noise`` (a stddev or ``{stddev = ...}``) as a WeightNoise callback, or None."""
    from trainlab.augment.noise import WeightNoise

    setting = _fields(recipe_fields).get("weight_noise")
    if setting is None:
        return None
    settings = {"stddev": setting} if not isinstance(setting, Mapping) else dict(setting)
    unknown = sorted(set(settings) - {"stddev"})
    if unknown:
        raise InputError(f"recipe.weight_noise has no setting {unknown[0]!r}. Settings: stddev.")
    return WeightNoise(stddev=settings["stddev"])


def _fields(recipe_fields: Mapping[str, Any] | Any) -> dict[str, Any]:
    if isinstance(recipe_fields, Mapping):
        return dict(recipe_fields)
    dump = getattr(recipe_fields, "model_dump", None)
    if callable(dump):
        return dict(dump())
    raise InputTypeError(f"batch_transforms: recipe_fields must be a mapping or a RecipeSpec, "
                         f"got {type(recipe_fields).__name__}")


# Registering the techniques: importing the modules fills AUGMENTATIONS.
from trainlab.augment import image, mix, noise, signal  # noqa: E402,F401
