"""The cost of batched augmentation: its share of a small CNN's training step, and against a per-sample loop.

A training step of a small CNN (two 3x3 conv layers with max pooling, a
128-unit dense layer, Adam) at batch 256 on 28x28 grey images, with and without
the augmentation transform: random translation and rotation (fused into one
affine_grid/grid_sample call), a horizontal flip and random erasing, as
`trainlab.augment.batch_transforms` builds them from a recipe. The same
transforms are also run sample by sample in a Python loop (what a
per-sample Dataset.__getitem__ pipeline does), on the same batch.

Everything is measured interleaved in one process (step, transform, loop,
step, ...) and the figures are medians over rounds of the per-round ratios, so
machine noise hits every side alike. Goal: the transform costs at most 20% of
a training step.

    python benchmarks/augment.py [--rounds 7] [--device cpu|cuda] [--batch-size 256]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from trainlab.augment import batch_transforms

RECIPE = {"augment": [
    {"name": "random_translation", "height_factor": 0.1, "width_factor": 0.1, "fill_mode": "constant",
     "layout": "nchw"},
    {"name": "random_rotation", "factor": 0.03, "fill_mode": "constant", "layout": "nchw"},
    {"name": "horizontal_flip", "layout": "nchw"},
    {"name": "random_erasing", "probability": 0.5, "layout": "nchw"},
]}


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: object, device: torch.device, repeats: int) -> float:
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()  # type: ignore[operator]
    sync(device)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=5, help="steps timed per round")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = small_cnn().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(args.batch_size, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (args.batch_size,), device=device)
    transforms = batch_transforms(RECIPE)
    generator = torch.Generator(device=device).manual_seed(0)

    def augment(xb: torch.Tensor) -> torch.Tensor:
        for t in transforms:
            xb, _ = t(xb, y[: xb.shape[0]], generator=generator)
        return xb

    def step(xb: torch.Tensor) -> None:
        loss = F.cross_entropy(model(xb), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def per_sample_loop() -> torch.Tensor:
        return torch.cat([augment(x[i:i + 1]) for i in range(x.shape[0])])

    for _ in range(2):  # warm-up: kernels, allocator, autotuning
        step(augment(x))
        per_sample_loop()
    shares, vs_loop, step_ms, aug_ms, loop_ms = [], [], [], [], []
    for _ in range(args.rounds):
        t_step = timed(lambda: step(x), device, args.repeats)
        t_aug = timed(lambda: augment(x), device, args.repeats)
        t_loop = timed(per_sample_loop, device, 1)
        shares.append(t_aug / t_step)
        vs_loop.append(t_loop / t_aug)
        step_ms.append(t_step * 1e3)
        aug_ms.append(t_aug * 1e3)
        loop_ms.append(t_loop * 1e3)
    share = statistics.median(shares)
    print(f"device {device}, batch {args.batch_size} x 1 x 28 x 28, {args.rounds} rounds x {args.repeats} steps, "
          f"torch threads {torch.get_num_threads()}")
    print(f"transforms: {', '.join(repr(t) for t in transforms)}")
    print("| what | median ms |")
    print("|---|---|")
    print(f"| training step (forward, backward, Adam) | {statistics.median(step_ms):.2f} |")
    print(f"| batched augmentation | {statistics.median(aug_ms):.2f} |")
    print(f"| per-sample Python loop, same transforms | {statistics.median(loop_ms):.2f} |")
    print(f"augmentation / training step: {share:.1%} (goal <= 20%: {'met' if share <= 0.2 else 'NOT met'}); "
          f"per-sample loop / batched: {statistics.median(vs_loop):.1f}x")


if __name__ == "__main__":
    main()
