"""Image augmentations, batched on the device: translation, rotation, zoom, flip, crop, erasing, color.

Images are (N, H, W, C) (Keras layout, ``layout="nhwc"``, the default) or
(N, C, H, W) (``layout="nchw"``, for plain torch modules); (N, H, W) is one
channel. Each augmentation draws its parameters for the whole batch from the
generator (`draw`), then applies them with a few tensor operations (`apply`):
no per-sample Python work. Translation, rotation and zoom are affine maps,
each one affine grid + `grid_sample` call per batch; consecutive ones in a
recipe are fused into a single call (`fuse_affine`), so the image is
resampled once.

Factors follow Keras: ``height_factor=0.1`` is a shift of up to 10% of the
height either way (a pair ``(lower, upper)`` gives an asymmetric range); a
rotation factor is a fraction of a full turn; a positive zoom zooms out.
``fill_mode`` is Keras's: "constant" (pad with `fill_value`), "nearest" (repeat
the edge) or "reflect" (mirror at the edge, the Keras default). The labels are
returned unchanged.

Example:
    >>> import torch
    >>> shift = RandomTranslation(height_factor=0.25, width_factor=0.0, fill_mode="constant")
    >>> x = torch.zeros(1, 8, 8, 1); x[0, 3, 3, 0] = 1.0
    >>> params = shift.draw(1, 8, 8, torch.Generator().manual_seed(0), x.device)
    >>> out = shift.apply(x, params)
    >>> rows = torch.arange(8.0).view(1, 8, 1, 1)
    >>> moved = float((out * rows).sum() - (x * rows).sum())   # centre of mass moved by the drawn shift
    >>> abs(moved - float(params["offset"][0, 1])) < 1e-5
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from trainlab import check
from trainlab.augment import AUGMENTATIONS, BatchTransform
from trainlab.errors import InputError

__all__ = [
    "Cutout",
    "RandomAffine",
    "RandomBrightness",
    "RandomContrast",
    "RandomErasing",
    "RandomFlip",
    "RandomPadCrop",
    "RandomRotation",
    "RandomTranslation",
    "RandomZoom",
    "fuse_affine",
]

LAYOUTS = ("nhwc", "nchw")
FILL_MODES = {"constant": "zeros", "nearest": "border", "reflect": "reflection"}
INTERPOLATIONS = ("bilinear", "nearest")
Params = dict[str, Tensor]


# --------------------------------------------------------------------------- layout


def to_nchw(x: Tensor, layout: str, what: str = "augmentation") -> Tensor:
    """A (N, C, H, W) view of a batch of images given in `layout`; (N, H, W) gets one channel."""
    if x.ndim == 3:
        return x.unsqueeze(1)
    if x.ndim != 4:
        raise InputError(
            f"{what}: expects a batch of images (N, H, W, C) or (N, C, H, W), got shape {tuple(x.shape)}. "
            "Load the data as images (e.g. data options layout = \"nhwc\"), or use a signal augmentation "
            "(signal_shift, signal_scale, signal_jitter) for 1-D data."
        )
    return x.permute(0, 3, 1, 2) if layout == "nhwc" else x


def from_nchw(out: Tensor, like: Tensor, layout: str) -> Tensor:
    """`out` (N, C, H, W) back in the layout (and rank) of `like`."""
    if like.ndim == 3:
        return out.squeeze(1)
    return out.permute(0, 2, 3, 1) if layout == "nhwc" else out


def _factor_range(field: str, factor: Any, *, low: float = -1.0, high: float = 1.0) -> tuple[float, float]:
    """Keras's factor: a number f means [-f, f]; a pair means [lower, upper]."""
    if isinstance(factor, (list, tuple)):
        if len(factor) != 2:
            raise InputError(f"{field} must be a number or a pair (lower, upper), got {factor!r}")
        lower = check.in_range(field, factor[0], low, high)
        upper = check.in_range(field, factor[1], low, high)
        if lower > upper:
            raise InputError(f"{field}: lower {lower} is above upper {upper}; give (lower, upper).")
        return lower, upper
    value = check.in_range(field, factor, 0.0, high)
    return -value, value


def _uniform(n: int, low: float, high: float, generator: torch.Generator | None, device: torch.device) -> Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, device=device)


class ImageAugmentation:
    """Base of the image augmentations: `draw` the batch's parameters, then `apply` them.

    Subclasses implement `draw(n, height, width, generator, device)` and
    `apply_nchw(x, params)`; calling the object does both and keeps `y`.
    """

    name = "image_augmentation"

    def __init__(self, *, layout: str = "nhwc") -> None:
        self.layout = check.choice(f"{self.name}: layout", layout, LAYOUTS,
                                   "nhwc is Keras's (N, H, W, C); nchw is torch's (N, C, H, W).")

    def draw(self, n: int, height: int, width: int, generator: torch.Generator | None,
             device: torch.device) -> Params:
        raise NotImplementedError

    def apply_nchw(self, x: Tensor, params: Params) -> Tensor:
        raise NotImplementedError

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Apply drawn `params` to images `x` in this augmentation's layout."""
        return from_nchw(self.apply_nchw(to_nchw(x, self.layout, self.name), params), x, self.layout)

    def __call__(self, x: Tensor, y: Tensor, *, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        img = to_nchw(x, self.layout, self.name)
        params = self.draw(img.shape[0], img.shape[-2], img.shape[-1], generator, img.device)
        return from_nchw(self.apply_nchw(img, params), x, self.layout), y

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


# --------------------------------------------------------------------------- affine


class _AffineBase(ImageAugmentation):
    """An affine resampling: output pixel p reads the input at M p + t (pixel units, image centre 0)."""

    def __init__(self, *, fill_mode: str = "reflect", interpolation: str = "bilinear",
                 fill_value: float = 0.0, layout: str = "nhwc") -> None:
        super().__init__(layout=layout)
        self.fill_mode = check.choice(f"{self.name}: fill_mode", fill_mode, tuple(FILL_MODES))
        self.interpolation = check.choice(f"{self.name}: interpolation", interpolation, INTERPOLATIONS)
        self.fill_value = check.number(f"{self.name}: fill_value", fill_value)

    def matrices(self, n: int, height: int, width: int, generator: torch.Generator | None,
                 device: torch.device) -> tuple[Tensor, Tensor]:
        """(M, t): (n, 2, 2) and (n, 2) in pixel units, x (width) first; output p reads input M p + t."""
        raise NotImplementedError

    def draw(self, n: int, height: int, width: int, generator: torch.Generator | None,
             device: torch.device) -> Params:
        matrix, offset = self.matrices(n, height, width, generator, device)
        return {"matrix": matrix, "offset": -offset}

    def apply_nchw(self, x: Tensor, params: Params) -> Tensor:
        return _resample(x, params["matrix"], -params["offset"], fill_mode=self.fill_mode,
                         interpolation=self.interpolation, fill_value=self.fill_value)


def _resample(x: Tensor, matrix: Tensor, offset: Tensor, *, fill_mode: str, interpolation: str,
              fill_value: float) -> Tensor:
    """One affine grid + grid_sample for the whole batch."""
    n, _, height, width = x.shape
    # Pixel units -> grid_sample's normalized units ([-1, 1] across each side, align_corners=False).
    scale = torch.tensor([width / 2.0, height / 2.0], dtype=x.dtype, device=x.device)
    # Built without in-place writes, so that it also runs under torch.func.vmap (stacked members).
    linear = matrix.to(x.dtype) * scale[None, None, :] / scale[None, :, None]
    theta = torch.cat([linear, (offset.to(x.dtype) / scale).unsqueeze(-1)], dim=-1)
    grid = affine_grid(theta, height, width)
    source = x - fill_value if fill_mode == "constant" and fill_value else x
    out = F.grid_sample(source, grid, mode=interpolation, padding_mode=FILL_MODES[fill_mode],
                        align_corners=False)
    return out + fill_value if fill_mode == "constant" and fill_value else out


def affine_grid(theta: Tensor, height: int, width: int) -> Tensor:
    """``F.affine_grid(theta, (N, C, height, width), align_corners=False)`` as one batched matmul.

    The same grid (to float rounding); written out because torch has no vmap
    rule for affine_grid (stacked members would fall back to a slow loop), and
    the matmul is also faster on the CPU.
    """
    xs = (torch.arange(width, dtype=theta.dtype, device=theta.device) * 2 + 1) / width - 1
    ys = (torch.arange(height, dtype=theta.dtype, device=theta.device) * 2 + 1) / height - 1
    base = torch.stack([xs.view(1, width).expand(height, width), ys.view(height, 1).expand(height, width)], -1)
    grid = base.view(1, height * width, 2) @ theta[..., :2].transpose(-1, -2) + theta[..., 2].unsqueeze(-2)
    return grid.view(*theta.shape[:-2], height, width, 2)


def _identity(n: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    return torch.eye(2, dtype=dtype, device=device).expand(n, 2, 2).clone()


@AUGMENTATIONS.register(
    "random_translation",
    claim="Shifting each image by a few pixels teaches the model that a class does not depend on "
    "where the object sits; the label is kept.",
)
class RandomTranslation(_AffineBase):
    """Shift each image by a random fraction of its height and width (Keras's RandomTranslation).

    The drawn shift, in pixels, is ``params["offset"]`` = (dx, dy): the content
    moves dx to the right and dy down; uncovered pixels are filled by `fill_mode`.
    """

    name = "random_translation"

    def __init__(self, *, height_factor: Any = 0.1, width_factor: Any = 0.1, fill_mode: str = "reflect",
                 interpolation: str = "bilinear", fill_value: float = 0.0, layout: str = "nhwc") -> None:
        super().__init__(fill_mode=fill_mode, interpolation=interpolation, fill_value=fill_value, layout=layout)
        self.height_range = _factor_range(f"{self.name}: height_factor", height_factor)
        self.width_range = _factor_range(f"{self.name}: width_factor", width_factor)

    def matrices(self, n: int, height: int, width: int, generator: torch.Generator | None,
                 device: torch.device) -> tuple[Tensor, Tensor]:
        dy = _uniform(n, *self.height_range, generator, device) * height
        dx = _uniform(n, *self.width_range, generator, device) * width
        return _identity(n, dx.dtype, device), -torch.stack([dx, dy], dim=1)


@AUGMENTATIONS.register(
    "random_rotation",
    claim="Small rotations make the model invariant to the tilt of the object; the label is kept.",
)
class RandomRotation(_AffineBase):
    """Rotate each image by a random angle in [-factor, factor] x 2 pi (Keras's RandomRotation).

    A positive angle turns the content counter-clockwise, as in Keras.
    """

    name = "random_rotation"

    def __init__(self, *, factor: Any = 0.05, fill_mode: str = "reflect", interpolation: str = "bilinear",
                 fill_value: float = 0.0, layout: str = "nhwc") -> None:
        super().__init__(fill_mode=fill_mode, interpolation=interpolation, fill_value=fill_value, layout=layout)
        self.range = _factor_range(f"{self.name}: factor", factor)

    def matrices(self, n: int, height: int, width: int, generator: torch.Generator | None,
                 device: torch.device) -> tuple[Tensor, Tensor]:
        angle = _uniform(n, *self.range, generator, device) * (2.0 * math.pi)
        cos, sin = angle.cos(), angle.sin()
        # Image axes are x right, y down: output p reads the input at R p, which turns the content
        # counter-clockwise for a positive angle (Keras's convention).
        matrix = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], dim=1)
        return matrix, torch.zeros(n, 2, dtype=angle.dtype, device=device)


@AUGMENTATIONS.register(
    "random_zoom",
    claim="Zooming in and out by a few percent makes the model invariant to the object's size; "
    "the label is kept.",
)
class RandomZoom(_AffineBase):
    """Zoom each image by a random factor 1 + z, z in [-height_factor, height_factor] (Keras's RandomZoom).

    A positive z zooms out (the content shrinks), a negative one zooms in.
    `width_factor=None` uses the height's zoom for the width (keeps the aspect).
    """

    name = "random_zoom"

    def __init__(self, *, height_factor: Any = 0.1, width_factor: Any = None, fill_mode: str = "reflect",
                 interpolation: str = "bilinear", fill_value: float = 0.0, layout: str = "nhwc") -> None:
        super().__init__(fill_mode=fill_mode, interpolation=interpolation, fill_value=fill_value, layout=layout)
        self.height_range = _factor_range(f"{self.name}: height_factor", height_factor, high=0.99)
        self.width_range = (None if width_factor is None
                            else _factor_range(f"{self.name}: width_factor", width_factor, high=0.99))

    def matrices(self, n: int, height: int, width: int, generator: torch.Generator | None,
                 device: torch.device) -> tuple[Tensor, Tensor]:
        zoom_y = 1.0 + _uniform(n, *self.height_range, generator, device)
        zoom_x = zoom_y if self.width_range is None else 1.0 + _uniform(n, *self.width_range, generator, device)
        return torch.diag_embed(torch.stack([zoom_x, zoom_y], dim=1)), torch.zeros(n, 2, device=device)


class RandomAffine(_AffineBase):
    """Several affine augmentations composed into one resampling (one grid_sample per batch).

    Applying `parts` one after another reads the input at M1 (M2 p + t2) + t1;
    this draws every part's parameters in order and applies the composed map once.
    """

    name = "random_affine"

    def __init__(self, parts: Sequence[_AffineBase]) -> None:
        first = parts[0]
        super().__init__(fill_mode=first.fill_mode, interpolation=first.interpolation,
                         fill_value=first.fill_value, layout=first.layout)
        self.parts = list(parts)

    def matrices(self, n: int, height: int, width: int, generator: torch.Generator | None,
                 device: torch.device) -> tuple[Tensor, Tensor]:
        matrix, offset = self.parts[0].matrices(n, height, width, generator, device)
        for part in self.parts[1:]:
            m2, t2 = part.matrices(n, height, width, generator, device)
            matrix, offset = matrix @ m2, (matrix @ t2.unsqueeze(-1)).squeeze(-1) + offset
        return matrix, offset

    def __repr__(self) -> str:
        return f"RandomAffine({', '.join(p.name for p in self.parts)})"


def fuse_affine(transforms: Sequence[BatchTransform]) -> list[BatchTransform]:
    """Runs of affine augmentations with the same fill, interpolation and layout -> one RandomAffine."""
    fused: list[BatchTransform] = []
    run: list[_AffineBase] = []

    def flush() -> None:
        if len(run) == 1:
            fused.append(run[0])
        elif run:
            fused.append(RandomAffine(run))
        run.clear()

    for t in transforms:
        if isinstance(t, _AffineBase) and (not run or _same_sampling(run[0], t)):
            run.append(t)
            continue
        flush()
        if isinstance(t, _AffineBase):
            run.append(t)
        else:
            fused.append(t)
    flush()
    return fused


def _same_sampling(a: _AffineBase, b: _AffineBase) -> bool:
    return (a.fill_mode, a.interpolation, a.fill_value, a.layout) == (
        b.fill_mode, b.interpolation, b.fill_value, b.layout)


# --------------------------------------------------------------------------- flips and crops


@AUGMENTATIONS.register(
    "random_flip",
    claim="A mirror image shows the same class (for most natural objects); flipping doubles the "
    "distinct views of each sample and keeps the label.",
)
class RandomFlip(ImageAugmentation):
    """Flip each image with probability 1/2 along the axes `mode` names (Keras's RandomFlip).

    `mode` is "horizontal", "vertical" or "horizontal_and_vertical" (Keras's
    default; each axis decided on its own). Flipping twice with the same draw
    gives the input back exactly.
    """

    name = "random_flip"
    MODES = ("horizontal", "vertical", "horizontal_and_vertical")

    def __init__(self, *, mode: str = "horizontal_and_vertical", layout: str = "nhwc") -> None:
        super().__init__(layout=layout)
        self.mode = check.choice(f"{self.name}: mode", mode, self.MODES)

    def draw(self, n: int, height: int, width: int, generator: torch.Generator | None,
             device: torch.device) -> Params:
        coins = torch.rand(n, 2, generator=generator, device=device) < 0.5
        horizontal = coins[:, 0] & (self.mode != "vertical")
        vertical = coins[:, 1] & (self.mode != "horizontal")
        return {"horizontal": horizontal, "vertical": vertical}

    def apply_nchw(self, x: Tensor, params: Params) -> Tensor:
        if self.mode != "vertical":
            x = torch.where(params["horizontal"].view(-1, 1, 1, 1), x.flip(-1), x)
        if self.mode != "horizontal":
            x = torch.where(params["vertical"].view(-1, 1, 1, 1), x.flip(-2), x)
        return x


@AUGMENTATIONS.register(
    "horizontal_flip",
    claim="A left-right mirror image shows the same class for most natural objects; the label is kept.",
)
def horizontal_flip(*, layout: str = "nhwc") -> RandomFlip:
    """Flip each image left-right with probability 1/2 (RandomFlip with mode="horizontal")."""
    return RandomFlip(mode="horizontal", layout=layout)


@AUGMENTATIONS.register(
    "random_crop",
    claim="Padding by a few pixels and cropping back at a random place shifts each image by whole "
    "pixels (the CIFAR recipe); the label is kept.",
)
class RandomPadCrop(ImageAugmentation):
    """Pad each image by `padding` pixels on every side, then crop it back to its size at a random place.

    The output has the input's size (so evaluation data needs no change); the
    drawn crop corner is ``params["top"]``, ``params["left"]`` in 0..2 padding.
    `fill_mode` is "constant" (zeros, the classic recipe), "nearest" or "reflect".
    For Keras's RandomCrop layer (which changes the size) see `trainlab.augment.layers`.
    """

    name = "random_crop"
    PADDING_MODES = {"constant": "constant", "nearest": "replicate", "reflect": "reflect"}

    def __init__(self, *, padding: int = 4, fill_mode: str = "constant", layout: str = "nhwc") -> None:
        super().__init__(layout=layout)
        self.padding = check.int_at_least(f"{self.name}: padding", padding, 1)
        self.fill_mode = check.choice(f"{self.name}: fill_mode", fill_mode, tuple(self.PADDING_MODES))

    def draw(self, n: int, height: int, width: int, generator: torch.Generator | None,
             device: torch.device) -> Params:
        corner = torch.randint(0, 2 * self.padding + 1, (n, 2), generator=generator, device=device)
        return {"top": corner[:, 0], "left": corner[:, 1]}

    def apply_nchw(self, x: Tensor, params: Params) -> Tensor:
        n, _, height, width = x.shape
        p = self.padding
        padded = F.pad(x, (p, p, p, p), mode=self.PADDING_MODES[self.fill_mode])
        rows = params["top"].view(n, 1, 1) + torch.arange(height, device=x.device).view(1, height, 1)
        cols = params["left"].view(n, 1, 1) + torch.arange(width, device=x.device).view(1, 1, width)
        batch = torch.arange(n, device=x.device).view(n, 1, 1)
        # Advanced indexing over (N, H, W) with the channel slice left in place gives (N, H, W, C).
        return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


# --------------------------------------------------------------------------- erasing


def _box_mask(top: Tensor, left: Tensor, box_h: Tensor, box_w: Tensor, height: int, width: int) -> Tensor:
    """(N, 1, H, W) True inside each image's box [top, top + box_h) x [left, left + box_w)."""
    rows = torch.arange(height, device=top.device).view(1, height, 1)
    cols = torch.arange(width, device=top.device).view(1, 1, width)
    # Rows and columns are tested apart ((N, H, 1) and (N, 1, W)) and combined once.
    in_rows = (rows >= top.view(-1, 1, 1)) & (rows < (top + box_h).view(-1, 1, 1))
    in_cols = (cols >= left.view(-1, 1, 1)) & (cols < (left + box_w).view(-1, 1, 1))
    return (in_rows & in_cols).unsqueeze(1)


@AUGMENTATIONS.register(
    "random_erasing",
    claim="Erasing a random rectangle forces the model to use more than one part of the object, "
    "which helps with occlusion; the label is kept.",
)
class RandomErasing(ImageAugmentation):
    """Erase a random rectangle of each image with probability `probability` (Zhong et al., 2017).

    The rectangle covers a fraction in `scale` of the image with aspect ratio in
    `ratio` (drawn log-uniformly), as torchvision's RandomErasing; erased pixels
    are set to `value` (0 is the mean of standardized data).
    """

    name = "random_erasing"

    def __init__(self, *, probability: float = 0.5, scale: Sequence[float] = (0.02, 0.33),
                 ratio: Sequence[float] = (0.3, 3.3), value: float = 0.0, layout: str = "nhwc") -> None:
        super().__init__(layout=layout)
        self.probability = check.in_range(f"{self.name}: probability", probability, 0.0, 1.0)
        self.scale = _ordered_pair(f"{self.name}: scale", scale, 0.0, 1.0)
        self.ratio = _ordered_pair(f"{self.name}: ratio", ratio, 1e-6, math.inf)
        self.value = check.number(f"{self.name}: value", value)

    def draw(self, n: int, height: int, width: int, generator: torch.Generator | None,
             device: torch.device) -> Params:
        u = torch.rand(n, 5, generator=generator, device=device)
        area = (self.scale[0] + (self.scale[1] - self.scale[0]) * u[:, 0]) * (height * width)
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = torch.exp(log_lo + (log_hi - log_lo) * u[:, 1])
        box_h = torch.sqrt(area * aspect).round().clamp(1, height).long()
        box_w = torch.sqrt(area / aspect).round().clamp(1, width).long()
        top = (u[:, 2] * (height - box_h + 1)).floor().long()
        left = (u[:, 3] * (width - box_w + 1)).floor().long()
        return {"top": top, "left": left, "height": box_h, "width": box_w,
                "erase": u[:, 4] < self.probability}

    def apply_nchw(self, x: Tensor, params: Params) -> Tensor:
        mask = _box_mask(params["top"], params["left"], params["height"], params["width"], x.shape[-2], x.shape[-1])
        mask = mask & params["erase"].view(-1, 1, 1, 1)
        return x.masked_fill(mask, self.value)


@AUGMENTATIONS.register(
    "cutout",
    claim="Masking a fixed-size square at a random place regularizes like dropout on the input "
    "pixels, in contiguous regions; the label is kept.",
)
class Cutout(ImageAugmentation):
    """Set a `size` x `size` square at a random centre of each image to `value` (DeVries & Taylor, 2017).

    The centre is uniform over the image; the part of the square outside is cut off.
    """

    name = "cutout"

    def __init__(self, *, size: int = 8, value: float = 0.0, layout: str = "nhwc") -> None:
        super().__init__(layout=layout)
        self.size = check.int_at_least(f"{self.name}: size", size, 1)
        self.value = check.number(f"{self.name}: value", value)

    def draw(self, n: int, height: int, width: int, generator: torch.Generator | None,
             device: torch.device) -> Params:
        cy = torch.randint(0, height, (n,), generator=generator, device=device)
        cx = torch.randint(0, width, (n,), generator=generator, device=device)
        top, left = cy - self.size // 2, cx - self.size // 2
        side = torch.full((n,), self.size, device=device)
        return {"top": top, "left": left, "height": side, "width": side}

    def apply_nchw(self, x: Tensor, params: Params) -> Tensor:
        mask = _box_mask(params["top"], params["left"], params["height"], params["width"], x.shape[-2], x.shape[-1])
        return x.masked_fill(mask, self.value)


def _ordered_pair(field: str, value: Any, low: float, high: float) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise InputError(f"{field} must be a pair (lower, upper), got {value!r}")
    a, b = (check.in_range(field, v, low, high) for v in value)
    if a > b:
        raise InputError(f"{field}: lower {a} is above upper {b}; give (lower, upper).")
    return a, b


# --------------------------------------------------------------------------- color


@AUGMENTATIONS.register(
    "random_brightness",
    claim="Adding a random offset to every pixel makes the model invariant to the overall "
    "lighting; the label is kept.",
)
class RandomBrightness(ImageAugmentation):
    """Add one random delta in [-factor, factor] (data units) to all pixels of each image.

    A pair ``(lower, upper)`` gives the range itself. Values are not clipped:
    trainlab's image data is usually standardized, not in [0, 255].
    """

    name = "random_brightness"

    def __init__(self, *, factor: Any = 0.2, layout: str = "nhwc") -> None:
        super().__init__(layout=layout)
        self.range = _factor_range(f"{self.name}: factor", factor, low=-math.inf, high=math.inf)

    def draw(self, n: int, height: int, width: int, generator: torch.Generator | None,
             device: torch.device) -> Params:
        return {"delta": _uniform(n, *self.range, generator, device)}

    def apply_nchw(self, x: Tensor, params: Params) -> Tensor:
        return x + params["delta"].to(x.dtype).view(-1, 1, 1, 1)


@AUGMENTATIONS.register(
    "random_contrast",
    claim="Scaling each image's deviations from its mean makes the model invariant to contrast; "
    "the label is kept.",
)
class RandomContrast(ImageAugmentation):
    """(x - mean) * c + mean per image and channel, c in [1 - factor, 1 + factor] (Keras's RandomContrast).

    Values are not clipped (Keras clips to its value_range, (0, 255) by default).
    """

    name = "random_contrast"

    def __init__(self, *, factor: Any = 0.2, layout: str = "nhwc") -> None:
        super().__init__(layout=layout)
        low, high = _factor_range(f"{self.name}: factor", factor, low=-1.0, high=math.inf)
        self.range = (max(0.0, 1.0 + low), 1.0 + high)

    def draw(self, n: int, height: int, width: int, generator: torch.Generator | None,
             device: torch.device) -> Params:
        return {"contrast": _uniform(n, *self.range, generator, device)}

    def apply_nchw(self, x: Tensor, params: Params) -> Tensor:
        mean = x.mean(dim=(-2, -1), keepdim=True)
        return (x - mean) * params["contrast"].to(x.dtype).view(-1, 1, 1, 1) + mean
