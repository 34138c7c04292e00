"""Regularizers: penalty formulas, gradients, L1's sparsity and L2's shrinkage claims, bad input."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from trainlab.errors import InputError, InputTypeError
from trainlab.regularizers import L1, L1L2, L2, REGULARIZERS, Regularizer, regularizer


def random_tensor(seed: int = 0) -> torch.Tensor:
    return torch.randn(7, 5, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ----------------------------------------------------------------------------- contract over the registry


@pytest.mark.parametrize("name", REGULARIZERS.names())
def test_every_regularizer_gives_a_nonnegative_scalar_that_is_zero_at_zero(name: str) -> None:
    entry = REGULARIZERS.entry(name)
    assert entry.summary and entry.claim, f"{name} needs a summary and a claim"
    penalty = regularizer(name)
    assert penalty is not None and penalty.name == name
    value = penalty(random_tensor())
    assert value.shape == () and value.item() >= 0
    assert penalty(torch.zeros(3, 4)).item() == 0.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(penalty, "l1" if "l1" in name else "l2", 1.0)


@pytest.mark.parametrize(
    "spec, expected",
    [("l1", L1(l1=0.01)), ("L1", L1(l1=0.01)), ("l2", L2(l2=0.01)), ("L2", L2(l2=0.01)),
     ("L1L2", L1L2(l1=0.0, l2=0.0)), ({"name": "L2", "l2": 1e-4}, L2(1e-4)),
     ({"name": "l1l2", "l1": 0.1, "l2": 0.2}, L1L2(l1=0.1, l2=0.2))],
)
def test_names_are_case_insensitive_and_defaults_are_keras_3(spec: object, expected: Regularizer) -> None:
    assert regularizer(spec) == expected  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- formulas


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_penalties_equal_their_formulas(seed: int) -> None:
    x = random_tensor(seed)
    torch.testing.assert_close(L1(0.3)(x), 0.3 * x.abs().sum())
    torch.testing.assert_close(L2(0.3)(x), 0.3 * (x**2).sum())  # no 1/2 factor, as Keras
    torch.testing.assert_close(L1L2(l1=0.3, l2=0.7)(x), 0.3 * x.abs().sum() + 0.7 * (x**2).sum())
    torch.testing.assert_close(L1L2(l1=0.3)(x), L1(0.3)(x))
    torch.testing.assert_close(L1L2(l2=0.7)(x), L2(0.7)(x))


def test_l2_gradient_is_weight_decay_of_twice_its_strength() -> None:
    x = random_tensor().requires_grad_(True)
    L2(0.05)(x).backward()
    assert x.grad is not None
    torch.testing.assert_close(x.grad, 2 * 0.05 * x.detach())


def test_l1_gradient_is_a_constant_pull_toward_zero() -> None:
    x = random_tensor().requires_grad_(True)
    L1(0.05)(x).backward()
    assert x.grad is not None
    torch.testing.assert_close(x.grad, 0.05 * torch.sign(x.detach()))


# ----------------------------------------------------------------------------- claims, on a small regression

NUM_FEATURES, INFORMATIVE = 40, 4


def fit_linear_regression(penalty: Regularizer | None, *, steps: int = 500, lr: float = 0.01) -> torch.Tensor:
    """Full-batch SGD on y = x @ w_true + noise, where only the first 4 of 40 features matter."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(100, NUM_FEATURES, generator=generator)
    w_true = torch.zeros(NUM_FEATURES)
    w_true[:INFORMATIVE] = torch.tensor([3.0, -2.0, 1.5, 1.0])
    y = x @ w_true + 0.5 * torch.randn(100, generator=generator)
    w = torch.zeros(NUM_FEATURES, requires_grad=True)
    optimizer = torch.optim.SGD([w], lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = ((x @ w - y) ** 2).mean()
        if penalty is not None:
            loss = loss + penalty(w)
        loss.backward()
        optimizer.step()
    return w.detach()


def test_large_l1_penalty_drives_most_weights_to_zero() -> None:
    sparse = fit_linear_regression(L1(0.5))
    dense = fit_linear_regression(None)
    assert (sparse.abs() < 1e-2).float().mean().item() >= 0.8
    assert (dense.abs() < 1e-2).float().mean().item() < 0.5
    assert (sparse[:INFORMATIVE].abs() > 0.5).all(), "the informative weights must survive"


def test_l2_penalty_shrinks_the_weight_norm() -> None:
    shrunk = fit_linear_regression(L2(1.0))
    free = fit_linear_regression(None)
    assert shrunk.norm().item() < 0.6 * free.norm().item()
    assert (shrunk.abs() > 1e-2).float().mean().item() > 0.5, "L2 shrinks but does not zero weights"


def test_l2_penalty_reaches_the_ridge_solution() -> None:
    # Oracle: the minimum of mean((xw - y)^2) + l2 |w|^2 is (x^T x / n + l2 I)^-1 x^T y / n.
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(100, NUM_FEATURES, generator=generator)
    w_true = torch.zeros(NUM_FEATURES)
    w_true[:INFORMATIVE] = torch.tensor([3.0, -2.0, 1.5, 1.0])
    y = x @ w_true + 0.5 * torch.randn(100, generator=generator)
    ridge = torch.linalg.solve(x.T @ x / 100 + 1.0 * torch.eye(NUM_FEATURES), x.T @ y / 100)
    torch.testing.assert_close(fit_linear_regression(L2(1.0)), ridge, atol=1e-3, rtol=0)


# ----------------------------------------------------------------------------- regularizer(): other specs


def test_none_means_no_penalty() -> None:
    assert regularizer(None) is None


def test_a_callable_is_returned_as_is() -> None:
    def penalty(x: torch.Tensor) -> torch.Tensor:
        return x.abs().max()

    assert regularizer(penalty) is penalty
    instance = L2(1e-4)
    assert regularizer(instance) is instance


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: L1(-0.1), InputError, r"l1: l1 must be >= 0, got -0.1.*penalty strength"),
        (lambda: L2(-1), InputError, r"l2: l2 must be >= 0, got -1"),
        (lambda: L1L2(l1=-1e-3), InputError, r"l1l2: l1 must be >= 0, got -0.001"),
        (lambda: L1L2(l2=-1e-3), InputError, r"l1l2: l2 must be >= 0, got -0.001"),
        (lambda: L2("0.01"), InputTypeError, r"l2: l2 must be a number, got str"),
        (lambda: L2(float("inf")), InputError, r"l2: l2 must be finite"),
        (lambda: regularizer({"name": "l2", "l2": -0.5}), InputError, r"l2: l2 must be >= 0, got -0.5"),
        (lambda: regularizer({"name": "l2", "l1": 0.1}), InputError, r"regularizer 'l2' has no setting 'l1'"),
        (lambda: regularizer({"name": "l1l2", "l3": 0.1}), InputError, r"'l1l2' has no setting 'l3'"),
        (lambda: regularizer("l3"), InputError, r"unknown regularizer 'l3'. Known: l1, l1l2, l2"),
        (lambda: regularizer(0.01), InputTypeError, r"regularizer must be a name.*got float 0.01"),
        (lambda: regularizer("ridge", source="layers[0].kernel_regularizer"), InputError,
         r"\(from layers\[0\].kernel_regularizer\)"),
    ],
)
def test_bad_regularizers_are_rejected_with_a_clear_message(make: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        make()  # type: ignore[operator]


def test_l1l2_strengths_are_keyword_only() -> None:
    # Positional (0.1, 0.2) would be easy to swap; Python's own TypeError says so.
    with pytest.raises(TypeError):
        L1L2(0.1, 0.2)  # type: ignore[misc]
