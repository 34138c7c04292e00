"""Mixup and cutmix: train on blends of two samples, with the labels blended by the same amount.

Both draw lambda ~ Beta(alpha, alpha) once per batch and a random partner for
every sample (a permutation of the batch), as in the papers' reference code.
Mixup blends the inputs, ``lambda x_i + (1 - lambda) x_j``; cutmix pastes a
box of the partner image covering a fraction 1 - lambda of the image (lambda is
then set to the box's exact share). The targets become soft targets,
``lambda onehot(y_i) + (1 - lambda) onehot(y_j)``, shape (N, num_classes);
the cross-entropy losses take such probability rows. For a single sigmoid
output (float 0/1 targets) the targets are blended as they are.

Metrics on mixed batches: the training accuracy (and every other metric the
engine updates on training batches) is measured against the *dominant label*,
the argmax of the soft target: the label of the sample that holds more than
half of the blend. Validation metrics see unmixed data, as always.

lambda is drawn on the CPU with numpy's Beta sampler, seeded from `generator`
(torch has no Beta sampler that takes a generator); that reads one number from
the device per batch.

Example:
    >>> import torch
    >>> mixup = Mixup(alpha=0.4, num_classes=3)
    >>> x, y = torch.eye(4), torch.tensor([0, 1, 2, 1])
    >>> xm, ym = mixup(x, y, generator=torch.Generator().manual_seed(0))
    >>> ym.shape, bool(torch.allclose(ym.sum(-1), torch.ones(4)))
    (torch.Size([4, 3]), True)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from trainlab import check
from trainlab.augment import AUGMENTATIONS
from trainlab.augment.image import LAYOUTS, from_nchw, to_nchw
from trainlab.errors import InputError

__all__ = ["CutMix", "Mixup", "soft_targets"]


def soft_targets(y: Tensor, num_classes: int | None, *, name: str = "mixup") -> Tensor:
    """Float targets to blend: one-hot rows for integer labels; float targets as they are."""
    if y.is_floating_point():
        return y
    if num_classes is None:
        raise InputError(
            f"{name}: the targets are integer class labels, so {name} needs num_classes to make soft "
            "targets. Pass num_classes (trainlab.fit does this from the data set), or give one-hot targets."
        )
    labels = y.squeeze(-1) if y.ndim == 2 and y.shape[-1] == 1 else y
    return F.one_hot(labels.long(), num_classes).float()


def beta_sample(alpha: float, generator: torch.Generator) -> float:
    """lambda ~ Beta(alpha, alpha), a deterministic function of the generator's state."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
    return float(np.random.default_rng(seed).beta(alpha, alpha))


class _Mixing:
    name = "mixing"

    def __init__(self, *, alpha: float = 0.2, num_classes: int | None = None) -> None:
        self.alpha = check.positive(f"{self.name}: alpha", alpha,
                                    "It is the Beta(alpha, alpha) parameter; 0.2 to 1.0 is typical.")
        self.num_classes = (None if num_classes is None
                            else check.int_at_least(f"{self.name}: num_classes", num_classes, 2))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(alpha={self.alpha})"


@AUGMENTATIONS.register(
    "mixup",
    claim="Training on convex blends of sample pairs with labels blended by the same lambda makes "
    "the model behave linearly between samples, which regularizes and improves calibration.",
)
class Mixup(_Mixing):
    """Blend each sample with a random partner: lambda x_i + (1 - lambda) x_j, same lambda on the targets.

    References:
        Zhang et al., "mixup: Beyond Empirical Risk Minimization", 2018.
    """

    name = "mixup"

    def draw(self, n: int, generator: torch.Generator, device: torch.device) -> dict[str, Any]:
        lam = beta_sample(self.alpha, generator)
        partner = torch.randperm(n, generator=generator, device=device)
        return {"lambda": lam, "partner": partner}

    def apply(self, x: Tensor, y: Tensor, params: dict[str, Any]) -> tuple[Tensor, Tensor]:
        lam, partner = params["lambda"], params["partner"]
        soft = soft_targets(y, self.num_classes, name=self.name)
        mixed_x = x * lam + x[partner] * (1.0 - lam)
        return mixed_x, soft * lam + soft[partner] * (1.0 - lam)

    def __call__(self, x: Tensor, y: Tensor, *, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        return self.apply(x, y, self.draw(x.shape[0], generator, x.device))


@AUGMENTATIONS.register(
    "cutmix",
    claim="Pasting a box of another image and mixing the labels by the box's area keeps every "
    "pixel natural (unlike mixup) while regularizing like it.",
)
class CutMix(_Mixing):
    """Paste a random box of a partner image into each image; the targets mix by the box's share.

    The box covers a fraction 1 - lambda of the image (side ratio sqrt(1 - lambda)),
    centred uniformly and clipped at the border; lambda is then recomputed from
    the clipped box, so inputs and targets use the same share.

    References:
        Yun et al., "CutMix: Regularization Strategy to Train Strong Classifiers", 2019.
    """

    name = "cutmix"

    def __init__(self, *, alpha: float = 1.0, num_classes: int | None = None, layout: str = "nhwc") -> None:
        super().__init__(alpha=alpha, num_classes=num_classes)
        self.layout = check.choice(f"{self.name}: layout", layout, LAYOUTS)

    def draw(self, n: int, height: int, width: int, generator: torch.Generator,
             device: torch.device) -> dict[str, Any]:
        lam = beta_sample(self.alpha, generator)
        partner = torch.randperm(n, generator=generator, device=device)
        ratio = math.sqrt(1.0 - lam)
        cut_h, cut_w = int(height * ratio), int(width * ratio)
        cy = torch.randint(0, height, (), generator=generator, device=device)
        cx = torch.randint(0, width, (), generator=generator, device=device)
        top, bottom = (cy - cut_h // 2).clamp(0, height), (cy + cut_h // 2).clamp(0, height)
        left, right = (cx - cut_w // 2).clamp(0, width), (cx + cut_w // 2).clamp(0, width)
        share = 1.0 - ((bottom - top) * (right - left)).float() / (height * width)
        return {"lambda": share, "partner": partner, "top": top, "bottom": bottom, "left": left, "right": right}

    def apply(self, x: Tensor, y: Tensor, params: dict[str, Any]) -> tuple[Tensor, Tensor]:
        img = to_nchw(x, self.layout, self.name)
        height, width = img.shape[-2:]
        rows = torch.arange(height, device=x.device).view(height, 1)
        cols = torch.arange(width, device=x.device).view(1, width)
        box = ((rows >= params["top"]) & (rows < params["bottom"])
               & (cols >= params["left"]) & (cols < params["right"]))
        partner = params["partner"]
        mixed = from_nchw(torch.where(box, img[partner], img), x, self.layout)
        lam = params["lambda"].to(x.dtype if x.is_floating_point() else torch.float32)
        soft = soft_targets(y, self.num_classes, name=self.name)
        return mixed, soft * lam + soft[partner] * (1.0 - lam)

    def __call__(self, x: Tensor, y: Tensor, *, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        img = to_nchw(x, self.layout, self.name)
        params = self.draw(img.shape[0], img.shape[-2], img.shape[-1], generator, x.device)
        return self.apply(x, y, params)
