"""Generated regression data with known noise: Friedman #1 and a noisy sine.

Both are the noise-free target f(x) plus Gaussian noise of a known standard
deviation (the ``noise`` setting), so the noise term of the bias-variance
decomposition is known exactly rather than estimated
(`trainlab.generalize.bias_variance`). Each registry entry carries that
knowledge as capabilities: ``noise_free`` (a function x -> f(x) of the raw
inputs) and ``noise_setting`` (the setting that holds the noise's standard
deviation).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from trainlab import check
from trainlab.data.bundled import DATASETS, check_memory
from trainlab.data.dataset import Dataset, _check_seed


def friedman1_target(x: Tensor) -> Tensor:
    """Friedman #1's noise-free target: 10 sin(pi x0 x1) + 20 (x2 - 0.5)^2 + 10 x3 + 5 x4."""
    return (10 * torch.sin(math.pi * x[:, 0] * x[:, 1]) + 20 * (x[:, 2] - 0.5) ** 2 + 10 * x[:, 3]
            + 5 * x[:, 4])


def sine_target(x: Tensor) -> Tensor:
    """The noisy sine's noise-free target: sin(x)."""
    return torch.sin(x[:, 0])


@DATASETS.register(
    "friedman1",
    summary="Friedman #1 (scikit-learn make_friedman1): num_samples x num_features uniform on [0, 1], default "
    "1000 x 10, regression with Gaussian noise of known std (default 1).",
    claim="Only 5 of the features matter, through a sine, a square and two linear terms; the noise is "
    "known, so a bias-variance decomposition can be checked against it.",
    capabilities={"noise_free": friedman1_target, "noise_setting": "noise"},
)
def friedman1(*, num_samples: int = 1000, num_features: int = 10, noise: float = 1.0, seed: int = 0) -> Dataset:
    """`sklearn.datasets.make_friedman1`: y = f(x) + N(0, noise^2), with f in `friedman1_target`.

    Example:
        >>> data = friedman1(num_samples=200, noise=0.0)
        >>> data, round(float((data.y - friedman1_target(data.x)).abs().max()), 4)
        (Dataset('friedman1': 200 samples x 10 features, regression), 0.0)
    """
    check.int_at_least("friedman1: num_samples", num_samples, 1)
    check.int_at_least("friedman1: num_features", num_features, 5, "Friedman #1's target reads the first 5.")
    check.at_least("friedman1: noise", noise, 0.0, "It is the standard deviation of the Gaussian noise.")
    _check_seed("friedman1", seed)
    check_memory("friedman1", num_samples * (num_features + 1) * 12, f"num_samples={num_samples}")
    from sklearn.datasets import make_friedman1

    x, y = make_friedman1(n_samples=num_samples, n_features=num_features, noise=noise, random_state=seed)
    return Dataset(x=torch.from_numpy(x.astype(np.float32)), y=torch.from_numpy(y.astype(np.float32)),
                   task="regression", num_classes=None, name="friedman1")


@DATASETS.register(
    "noisy_sine",
    summary="Noisy sine: num_samples x 1 feature uniform on [-pi, pi], default 200 x 1, regression "
    "y = sin(x) + Gaussian noise of known std (default 0.3).",
    claim="One input and a smooth target: too few hidden units underfit the curve, too many chase the "
    "noise, so the bias-variance U curve shows in seconds.",
    capabilities={"noise_free": sine_target, "noise_setting": "noise"},
)
def noisy_sine(*, num_samples: int = 200, noise: float = 0.3, seed: int = 0) -> Dataset:
    """x ~ U(-pi, pi), y = sin(x) + N(0, noise^2), drawn from a numpy generator seeded with `seed`.

    Example:
        >>> noisy_sine(num_samples=50)
        Dataset('noisy_sine': 50 samples x 1 features, regression)
    """
    check.int_at_least("noisy_sine: num_samples", num_samples, 1)
    check.at_least("noisy_sine: noise", noise, 0.0, "It is the standard deviation of the Gaussian noise.")
    _check_seed("noisy_sine", seed)
    check_memory("noisy_sine", num_samples * 24, f"num_samples={num_samples}")
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.uniform(-math.pi, math.pi, size=(num_samples, 1)).astype(np.float32))
    y = sine_target(x) + torch.from_numpy(rng.normal(0.0, noise, size=num_samples).astype(np.float32))
    return Dataset(x=x, y=y, task="regression", num_classes=None, name="noisy_sine")
