"""Sharpness measures: Hessian-vector products against the dense Hessian, Hutchinson, epsilon-sharpness."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from trainlab.errors import InputError
from trainlab.generalize.sharpness import (
    HessianProbe,
    epsilon_sharpness,
    hessian_trace,
    run_sharpness,
    top_eigenvalue,
)


def _small_net() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))  # 51 weights; logits out
    x = torch.randn(80, 4, generator=generator)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    return model, x, y


def _dense_hessian(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The full Hessian of the mean cross-entropy, by torch.autograd.functional.hessian (the oracle)."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).double()

    def loss(w: torch.Tensor) -> torch.Tensor:
        parts = torch.split(w, [math.prod(s) for s in shapes])
        params = {n: p.reshape(s) for n, p, s in zip(names, parts, shapes)}
        return F.cross_entropy(torch.func.functional_call(model.double(), params, (x.double(),)), y)

    hessian = torch.autograd.functional.hessian(loss, flat)
    model.float()
    return hessian


@pytest.fixture(scope="module")
def dense() -> torch.Tensor:
    return _dense_hessian(*_small_net())


def test_top_eigenvalue_matches_the_dense_hessians_within_one_percent(dense: torch.Tensor) -> None:
    model, x, y = _small_net()
    dense = torch.linalg.eigvalsh(dense)
    ours = top_eigenvalue(model, x, y, loss="sparse_categorical_crossentropy")
    assert ours == pytest.approx(dense.max().item(), rel=0.01)


def test_power_iteration_matches_the_dense_top_eigenvalue_on_a_convex_loss() -> None:
    # Least squares has a positive semi-definite Hessian 2/N X^T X, so the eigenvalue of largest
    # magnitude that power iteration finds is the top one.
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(50, 5, generator=generator) * torch.tensor([3.0, 1.0, 1.0, 0.5, 0.2])
    y = torch.randn(50, 1, generator=generator)
    design = torch.cat([x, torch.ones(50, 1)], dim=1).double()
    dense = torch.linalg.eigvalsh(2 * design.T @ design / 50).max().item()
    value = top_eigenvalue(nn.Linear(5, 1), x, y, loss="mse", method="power", max_iterations=500, tol=1e-7)
    assert value == pytest.approx(dense, rel=0.01)


def test_hvp_in_chunks_equals_the_hvp_over_all_rows() -> None:
    model, x, y = _small_net()
    v = torch.randn(51, generator=torch.Generator().manual_seed(3))
    whole = HessianProbe(model, x, y, loss="sparse_categorical_crossentropy").hvp(v)
    chunked = HessianProbe(model, x, y, loss="sparse_categorical_crossentropy", batch_size=7).hvp(v)
    torch.testing.assert_close(chunked, whole, rtol=1e-4, atol=1e-6)


def test_hutchinson_trace_matches_the_dense_trace_within_its_standard_error(dense: torch.Tensor) -> None:
    model, x, y = _small_net()
    trace = torch.trace(dense).item()
    estimate, error = hessian_trace(model, x, y, loss="sparse_categorical_crossentropy", num_samples=300, seed=0)
    assert error > 0
    assert abs(estimate - trace) < 4 * error  # n = 300 Rademacher probes
    assert estimate == pytest.approx(trace, rel=0.1)


def test_epsilon_sharpness_finds_the_far_corner_of_the_box_on_a_quadratic() -> None:
    model = nn.Linear(1, 1, bias=False)  # loss (w * 1 - 0)^2 = w^2, largest at w0 + eps (|w0| + 1)
    with torch.no_grad():
        model.weight.fill_(-0.8)
    value = epsilon_sharpness(model, torch.ones(1, 1), torch.zeros(1, 1), loss="mse", epsilon=1e-2)
    corner = (0.8 + 1e-2 * 1.8) ** 2
    assert value == pytest.approx(100 * (corner - 0.64) / 1.64, rel=1e-4)


def test_epsilon_sharpness_is_at_least_the_rise_at_any_point_of_the_box() -> None:
    model, x, y = _small_net()
    epsilon = 1e-2
    probe = HessianProbe(model, x, y, loss="sparse_categorical_crossentropy")
    value = epsilon_sharpness(probe, epsilon=epsilon)
    base = probe.loss()
    radius = epsilon * (probe.weights.abs() + 1)
    generator = torch.Generator().manual_seed(5)
    for _ in range(5):
        z = (torch.rand(probe.num_params, generator=generator) * 2 - 1) * radius
        assert value >= 100 * (probe.loss(probe.weights + z) - base) / (1 + base) - 1e-6
    assert value > 0


def test_sharpness_of_a_run_folder_comes_with_its_generalization_gap(tmp_path) -> None:
    from trainlab.api import run_spec
    from trainlab.spec import parse_spec

    spec = parse_spec({"name": "tiny", "data": {"name": "iris"},
                       "model": {"layers": [{"type": "Dense", "units": 8, "activation": "relu"},
                                            {"type": "Dense", "units": 3, "activation": "softmax"}]},
                       "recipe": {"num_epochs": 3, "seed": 0, "batch_size": 16}})
    result = run_spec(spec, runs_dir=tmp_path, verbose=0)
    measured = run_sharpness(result.run_dir, rows=50, trace_samples=4)
    assert measured.sharpness.rows == 50
    assert measured.sharpness.num_params == 4 * 8 + 8 + 8 * 3 + 3
    assert measured.sharpness.top_eigenvalue > 0
    assert measured.gap["loss"] == pytest.approx(measured.val["loss"] - measured.train["loss"])
    assert measured.gap["accuracy"] == pytest.approx(measured.train["accuracy"] - measured.val["accuracy"])
    assert measured.val["loss"] == pytest.approx(result.history.history["val_loss"][-1], rel=1e-4)


def test_a_folder_without_a_model_is_refused_in_one_paragraph(tmp_path) -> None:
    (tmp_path / "spec.toml").write_text("name = 'x'\n")
    with pytest.raises(InputError, match=r"holds no trained model to measure: model.safetensors, model.json are "
                                         r"missing.*finish it first"):
        run_sharpness(tmp_path)
