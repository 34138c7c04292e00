"""The LR range test: the sweep's formula, zones and suggestion on known curves, weak suggestions, and
that the model and optimizer are left as they were."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import trainlab
from trainlab.diagnose import LRFinder, lr_find
from trainlab.errors import InputError
from trainlab.layers import Dense


def test_the_sweep_is_exponential_from_start_to_end():
    finder = LRFinder(start_lr=1e-5, end_lr=1.0, num_steps=11)
    lrs = finder.sweep()
    assert lrs[0] == pytest.approx(1e-5) and lrs[-1] == pytest.approx(1.0)
    np.testing.assert_allclose(lrs[1:] / lrs[:-1], 10 ** 0.5)  # 5 decades in 10 equal ratios


def valley(lrs):
    """A range-test curve: flat at 2.0 below 1e-4, falling fastest at 1e-3, lowest near 3e-2, then blowing up."""
    x = np.log10(lrs)
    curve = 0.2 + 1.8 / (1 + np.exp(3.0 * (x + 3.0)))
    return np.where(x > -1.5, curve + 5.0 * (x + 1.5) ** 2, curve)


def test_zones_and_suggestion_on_a_known_curve():
    finder = LRFinder(start_lr=1e-6, end_lr=10.0, num_steps=200)
    lrs = finder.sweep()
    losses = np.stack([valley(lrs) + 0.002 * np.random.default_rng(s).standard_normal(lrs.size) for s in range(3)])
    result = finder.analyse("synthetic", lrs, losses, [0, 1, 2])
    # steepest descent against log10(lr) is at 1e-3 (the logistic's centre); the minimum near 10^-1.5
    assert 5e-4 < result.suggestion < 2e-3
    assert 10 ** -1.8 < result.min_lr < 10 ** -1.3
    low_end = result.zones["too low"][1]
    assert 1e-5 < low_end < 5e-4 and result.zones["good"] == (low_end, result.min_lr)
    too_high = result.zones["too high"][0]
    assert result.min_lr < too_high < result.divergence_lr < 10.0
    # the divergence point is where the (smoothed) curve passes 4 times its minimum
    assert valley(np.array([result.divergence_lr]))[0] > 4 * 0.2 * 0.95
    assert not result.weak and "per decade" in result.reasoning


def test_a_flat_curve_gives_a_weak_suggestion():
    finder = LRFinder(num_steps=100)
    lrs = finder.sweep()
    losses = np.full((3, 100), 2.3) + 0.01 * np.random.default_rng(0).standard_normal((3, 100))
    result = finder.analyse("flat", lrs, losses, [0, 1, 2])
    assert result.weak and any("flat" in reason for reason in result.weak_reasons)
    assert "weak" in result.reasoning


def test_seeds_that_disagree_give_a_weak_suggestion():
    finder = LRFinder(num_steps=200)
    lrs = finder.sweep()
    shifted = [valley(lrs * 10 ** shift) for shift in (-1.5, 0.0, 1.5)]  # the same valley at 3 places
    result = finder.analyse("noisy", lrs, np.stack(shifted), [0, 1, 2])
    assert result.weak and any("disagree" in reason for reason in result.weak_reasons)


@pytest.fixture(scope="module")
def iris_result():
    model = trainlab.Sequential([Dense(16, activation="relu"), Dense(3, activation="softmax")])
    model.build((4,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.123, momentum=0.5)
    state = optimizer.state_dict()
    result = lr_find(model, "iris", optimizer, start_lr=1e-4, end_lr=100.0, num_steps=80, num_seeds=2,
                     batch_size=8)
    return model, before, optimizer, state, result


def test_lr_find_leaves_the_model_and_optimizer_as_they_were(iris_result):
    model, before, optimizer, state, result = iris_result
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert optimizer.state_dict() == state and optimizer.param_groups[0]["lr"] == 0.123
    assert result.optimizer == "SGD"


def test_lr_find_on_real_data_finds_a_minimum_and_a_divergence(iris_result):
    *_, result = iris_result
    assert result.losses.shape == (2, 80) and len(result.seeds) == 2
    assert np.isfinite(result.losses[:, :10]).all()
    assert result.suggestion is not None and 1e-4 < result.suggestion < result.min_lr
    assert result.divergence_lr is not None and result.divergence_lr > result.min_lr
    # where the curve diverged the band stops: NaN past the divergence point of every seed
    assert math.isnan(result.median[-1])
    payload = result.to_dict()
    assert payload["suggestion"] == result.suggestion and set(payload["zones"]) <= {"too low", "good", "too high"}


def test_the_plot_has_the_band_the_zones_and_the_suggestion(iris_result, tmp_path):
    *_, result = iris_result
    path = result.plot(tmp_path / "lr.png")
    import matplotlib.image

    pixels = matplotlib.image.imread(str(path))
    assert pixels.shape[0] > 200 and pixels[..., :3].std() > 0.05


def test_bad_sweeps_are_input_errors():
    with pytest.raises(InputError, match="end_lr"):
        LRFinder(start_lr=1.0, end_lr=0.1)
    with pytest.raises(InputError, match="num_steps"):
        LRFinder(num_steps=3)
    with pytest.raises(InputError, match="optimizer"):
        lr_find(trainlab.Sequential([Dense(3, activation="softmax")]), "iris", 3.5, num_steps=10)
