"""Keras preprocessing and noise layers: augmentation inside a model, identity in evaluation.

``RandomFlip``, ``RandomTranslation``, ``RandomRotation``, ``RandomZoom``,
``RandomCrop``, ``RandomContrast``, ``RandomBrightness``, ``GaussianNoise``
and ``GaussianDropout`` with Keras's arguments and semantics, on images in
Keras layout (N, H, W, C). They act only while the model trains (like
Dropout) and draw from torch's random stream, which the engine seeds from the
run's seed. They are registered in the layers registry, so a TOML model takes
them:

    [[model.layers]]
    type = "RandomTranslation"
    height_factor = 0.1
    width_factor = 0.1

Example:
    >>> import torch
    >>> layer = GaussianNoise(0.1)
    >>> x = torch.ones(2, 3)
    >>> _ = layer.eval(); bool((layer(x) == x).all())
    True
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from trainlab import check
from trainlab.augment import image
from trainlab.errors import InputError
from trainlab.layers import LAYERS, Layer

__all__ = [
    "GaussianDropout",
    "GaussianNoise",
    "RandomBrightness",
    "RandomContrast",
    "RandomCrop",
    "RandomFlip",
    "RandomRotation",
    "RandomTranslation",
    "RandomZoom",
]


class _TrainingOnly(Layer):
    """A layer without weights that changes its input in training and passes it through in evaluation."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.built = True

    def forward(self, x: Tensor) -> Tensor:
        out = self.call(x) if self.training else self.inference(x)
        if self.output_shape is None:
            self.input_shape, self.output_shape = tuple(x.shape[1:]), tuple(out.shape[1:])
        return out

    def inference(self, x: Tensor) -> Tensor:
        return x


def _check_image(layer: Layer, shape: tuple[int, ...]) -> None:
    if len(shape) != 3:
        raise InputError(
            f"layer '{layer.display_name}' ({type(layer).__name__}) expects images (batch, height, width, "
            f"channels), got inputs of shape (batch, {', '.join(map(str, shape))}). Put it first in the "
            "model, on image data (data option layout = \"nhwc\"), or add a Reshape before it."
        )


class _ImageLayer(_TrainingOnly):
    """Wraps one of `trainlab.augment.image`'s batch augmentations, in Keras layout."""

    augmentation: image.ImageAugmentation

    def call(self, x: Tensor) -> Tensor:
        _check_image(self, tuple(x.shape[1:]))
        img = image.to_nchw(x, "nhwc")
        params = self.augmentation.draw(img.shape[0], img.shape[-2], img.shape[-1], None, img.device)
        return image.from_nchw(self.augmentation.apply_nchw(img, params), x, "nhwc")


@LAYERS.register("RandomFlip", claim="Flipping images at random in training teaches mirror invariance; "
                 "identity at inference.")
class RandomFlip(_ImageLayer):
    """Keras's RandomFlip: flip each image with probability 1/2 along the axes `mode` names."""

    def __init__(self, mode: str = "horizontal_and_vertical", **kwargs: Any) -> None:
        super().__init__(mode=mode, **kwargs)
        self.augmentation = image.RandomFlip(mode=mode)


@LAYERS.register("RandomTranslation", claim="Shifting images at random in training teaches translation "
                 "invariance; identity at inference.")
class RandomTranslation(_ImageLayer):
    """Keras's RandomTranslation: shift by up to height_factor x H and width_factor x W pixels."""

    def __init__(self, height_factor: Any, width_factor: Any, fill_mode: str = "reflect",
                 interpolation: str = "bilinear", fill_value: float = 0.0, **kwargs: Any) -> None:
        super().__init__(height_factor=height_factor, width_factor=width_factor, fill_mode=fill_mode,
                         interpolation=interpolation, fill_value=fill_value, **kwargs)
        self.augmentation = image.RandomTranslation(
            height_factor=height_factor, width_factor=width_factor, fill_mode=fill_mode,
            interpolation=interpolation, fill_value=fill_value)


@LAYERS.register("RandomRotation", claim="Rotating images at random in training teaches rotation "
                 "invariance; identity at inference.")
class RandomRotation(_ImageLayer):
    """Keras's RandomRotation: rotate by an angle in [-factor, factor] x 2 pi."""

    def __init__(self, factor: Any, fill_mode: str = "reflect", interpolation: str = "bilinear",
                 fill_value: float = 0.0, **kwargs: Any) -> None:
        super().__init__(factor=factor, fill_mode=fill_mode, interpolation=interpolation,
                         fill_value=fill_value, **kwargs)
        self.augmentation = image.RandomRotation(factor=factor, fill_mode=fill_mode,
                                                 interpolation=interpolation, fill_value=fill_value)


@LAYERS.register("RandomZoom", claim="Zooming images at random in training teaches scale invariance; "
                 "identity at inference.")
class RandomZoom(_ImageLayer):
    """Keras's RandomZoom: zoom by 1 + z, z in [-height_factor, height_factor]; positive zooms out."""

    def __init__(self, height_factor: Any, width_factor: Any = None, fill_mode: str = "reflect",
                 interpolation: str = "bilinear", fill_value: float = 0.0, **kwargs: Any) -> None:
        super().__init__(height_factor=height_factor, width_factor=width_factor, fill_mode=fill_mode,
                         interpolation=interpolation, fill_value=fill_value, **kwargs)
        self.augmentation = image.RandomZoom(height_factor=height_factor, width_factor=width_factor,
                                             fill_mode=fill_mode, interpolation=interpolation,
                                             fill_value=fill_value)


@LAYERS.register("RandomContrast", claim="Changing image contrast at random in training teaches "
                 "contrast invariance; identity at inference.")
class RandomContrast(_ImageLayer):
    """Keras's RandomContrast: (x - mean) * c + mean per image and channel, c in [1 - factor, 1 + factor].

    Unlike Keras, values are not clipped to a value range (trainlab's image data is standardized).
    """

    def __init__(self, factor: Any, **kwargs: Any) -> None:
        super().__init__(factor=factor, **kwargs)
        self.augmentation = image.RandomContrast(factor=factor)


@LAYERS.register("RandomBrightness", claim="Shifting image brightness at random in training teaches "
                 "lighting invariance; identity at inference.")
class RandomBrightness(_ImageLayer):
    """Add a random delta in [-factor, factor] (data units) to each image; not clipped."""

    def __init__(self, factor: Any, **kwargs: Any) -> None:
        super().__init__(factor=factor, **kwargs)
        self.augmentation = image.RandomBrightness(factor=factor)


@LAYERS.register("RandomCrop", claim="Cropping a random window in training and the centre at inference "
                 "teaches translation invariance at the model's input size.")
class RandomCrop(_TrainingOnly):
    """Keras's RandomCrop: crop images to (height, width).

    In training, one random window for the whole batch (as Keras). At inference,
    and in training when the input is smaller than the target, the largest
    centred window with the target's aspect ratio, resized to (height, width)
    (bilinear), as Keras does. So unlike the other layers the output size
    changes, and it is the same in training and evaluation.
    """

    def __init__(self, height: int, width: int, **kwargs: Any) -> None:
        check.int_at_least("RandomCrop.height", height, 1)
        check.int_at_least("RandomCrop.width", width, 1)
        super().__init__(height=height, width=width, **kwargs)
        self.height, self.width = height, width

    def call(self, x: Tensor) -> Tensor:
        _check_image(self, tuple(x.shape[1:]))
        rows, cols = x.shape[1], x.shape[2]
        if rows < self.height or cols < self.width:
            return self.inference(x)
        top = int(torch.randint(0, rows - self.height + 1, ()).item())
        left = int(torch.randint(0, cols - self.width + 1, ()).item())
        return x[:, top:top + self.height, left:left + self.width]

    def inference(self, x: Tensor) -> Tensor:
        _check_image(self, tuple(x.shape[1:]))
        rows, cols = x.shape[1], x.shape[2]
        crop_rows = min(rows, round(cols * self.height / self.width))
        crop_cols = min(cols, round(rows * self.width / self.height))
        top, left = (rows - crop_rows) // 2, (cols - crop_cols) // 2
        window = x[:, top:top + crop_rows, left:left + crop_cols]
        if (crop_rows, crop_cols) == (self.height, self.width):
            return window
        resized = F.interpolate(window.permute(0, 3, 1, 2), size=(self.height, self.width), mode="bilinear",
                                align_corners=False)
        return resized.permute(0, 2, 3, 1)


@LAYERS.register("GaussianNoise", claim="Additive zero-mean Gaussian noise in training regularizes like a "
                 "penalty on the input gradient; identity at inference.")
class GaussianNoise(_TrainingOnly):
    """Keras's GaussianNoise: add N(0, stddev^2) noise in training, nothing at inference."""

    def __init__(self, stddev: float, **kwargs: Any) -> None:
        check.at_least("GaussianNoise.stddev", stddev, 0.0)
        super().__init__(stddev=stddev, **kwargs)
        self.stddev = float(stddev)

    def call(self, x: Tensor) -> Tensor:
        return x + self.stddev * torch.randn_like(x) if self.stddev else x


@LAYERS.register("GaussianDropout", claim="Multiplicative N(1, rate / (1 - rate)) noise has dropout's mean "
                 "and variance without zeroing units; identity at inference.")
class GaussianDropout(_TrainingOnly):
    """Keras's GaussianDropout: multiply by N(1, rate / (1 - rate)) noise in training, nothing at inference."""

    def __init__(self, rate: float, **kwargs: Any) -> None:
        check.in_range("GaussianDropout.rate", rate, 0.0, 1.0, open_high=True,
                       hint="rate is the drop probability whose variance the noise matches.")
        super().__init__(rate=rate, **kwargs)
        self.rate = float(rate)

    def call(self, x: Tensor) -> Tensor:
        if not self.rate:
            return x
        return x * (1.0 + math.sqrt(self.rate / (1.0 - self.rate)) * torch.randn_like(x))
