"""Activations: each function's defining values and derivative facts, the registry contract, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from trainlab.activations import ACTIVATIONS, FunctionActivation, PReLU, activation
from trainlab.errors import InputError, InputTypeError
from trainlab.initializers import initializer


def grid(low: float = -6.0, high: float = 6.0, n: int = 1201) -> torch.Tensor:
    return torch.linspace(low, high, n, dtype=torch.float64)


def derivative(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(module(x).sum(), x)
    return grad


# ----------------------------------------------------------------------------- contract over the registry


@pytest.mark.parametrize("name", ACTIVATIONS.names())
def test_every_activation_is_a_fresh_named_shape_preserving_module(name: str) -> None:
    entry = ACTIVATIONS.entry(name)
    assert entry.summary and entry.claim, f"{name} needs a summary and a claim"
    first, second = activation(name), activation(name.upper())
    assert isinstance(first, nn.Module)
    assert first is not second, "each build must give a fresh module (PReLU slopes must not be shared)"
    assert first.name == name and second.name == name
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), requires_grad=True)
    y = first(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()
    y.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


# ----------------------------------------------------------------------------- squashing functions


def test_sigmoid_derivative_peaks_at_one_quarter_at_zero() -> None:
    x = grid()
    slope = derivative(activation("sigmoid"), x)
    assert x[slope.argmax()].item() == pytest.approx(0.0, abs=1e-9)
    assert slope.max().item() == pytest.approx(0.25, abs=1e-12)
    assert (slope <= 0.25 + 1e-12).all()


def test_softplus_derivative_is_the_sigmoid() -> None:
    x = grid(-10.0, 10.0)
    torch.testing.assert_close(derivative(activation("softplus"), x), torch.sigmoid(x))


def test_softplus_is_log_one_plus_exp() -> None:
    x = grid()
    torch.testing.assert_close(activation("softplus")(x), torch.log1p(torch.exp(x)))


def test_tanh_is_a_rescaled_sigmoid() -> None:
    x = grid()
    torch.testing.assert_close(activation("tanh")(x), 2 * activation("sigmoid")(2 * x) - 1)


# ----------------------------------------------------------------------------- rectifiers


def test_relu_values_on_known_points() -> None:
    x = torch.tensor([-2.0, -0.5, 0.0, 0.5, 3.0])
    assert activation("relu")(x).tolist() == [0.0, 0.0, 0.0, 0.5, 3.0]


def test_leaky_relu_default_slope_is_keras_layer_0_3() -> None:
    x = torch.tensor([-2.0, 0.0, 3.0])
    torch.testing.assert_close(activation("leaky_relu")(x), torch.tensor([-0.6, 0.0, 3.0]))
    torch.testing.assert_close(
        activation({"name": "leaky_relu", "alpha": 0.1})(x), torch.tensor([-0.2, 0.0, 3.0])
    )


def test_leaky_relu_passes_gradient_for_negative_inputs() -> None:
    slope = derivative(activation({"name": "leaky_relu", "alpha": 0.1}), torch.tensor([-3.0, -1.0, 2.0]))
    torch.testing.assert_close(slope, torch.tensor([0.1, 0.1, 1.0]))


def test_thresholded_relu_passes_only_values_above_theta() -> None:
    x = torch.tensor([-1.0, 0.5, 1.0, 1.01, 2.0])
    assert activation("thresholded_relu")(x).tolist() == pytest.approx([0.0, 0.0, 0.0, 1.01, 2.0])
    custom = activation({"name": "thresholded_relu", "theta": 0.25})(x)
    assert custom.tolist() == pytest.approx([0.0, 0.5, 1.0, 1.01, 2.0])


def test_prelu_learns_its_slope() -> None:
    # Negative inputs whose target uses slope 0.8; the slope starts at 0.25 and must move toward 0.8.
    act = activation("prelu")
    assert isinstance(act, PReLU) and act.weight.tolist() == [0.25]
    x = -torch.rand(32, 1, generator=torch.Generator().manual_seed(0)) - 0.1
    target = 0.8 * x
    optimizer = torch.optim.SGD(act.parameters(), lr=0.5)
    loss = nn.functional.mse_loss(act(x), target)
    loss.backward()
    assert act.weight.grad is not None and act.weight.grad.abs().item() > 0
    optimizer.step()
    assert 0.25 < act.weight.item() <= 0.8
    for _ in range(200):
        optimizer.zero_grad()
        nn.functional.mse_loss(act(x), target).backward()
        optimizer.step()
    assert act.weight.item() == pytest.approx(0.8, abs=1e-3)


@pytest.mark.parametrize(
    "shape, channels", [((8, 5), 5), ((2, 3, 4, 4), 3), ((2, 6, 7), 6), ((7,), 1)]
)
def test_per_channel_prelu_reads_channels_from_dim_1(shape: tuple[int, ...], channels: int) -> None:
    act = activation({"name": "prelu", "per_channel": True, "init": 0.1})
    y = act(torch.full(shape, -1.0))
    assert isinstance(act, PReLU) and act.name == "prelu"
    assert tuple(act.weight.shape) == (channels,)
    torch.testing.assert_close(y, torch.full(shape, -0.1))


def test_per_channel_prelu_learns_one_slope_per_channel() -> None:
    act = activation({"name": "prelu", "per_channel": True})
    x = -torch.rand(64, 2, generator=torch.Generator().manual_seed(1)) - 0.1
    act(x)  # infer the channel count before building the optimizer
    target = x * torch.tensor([0.0, 1.0])
    optimizer = torch.optim.SGD(act.parameters(), lr=0.5)
    for _ in range(300):
        optimizer.zero_grad()
        nn.functional.mse_loss(act(x), target).backward()
        optimizer.step()
    torch.testing.assert_close(act.weight.detach(), torch.tensor([0.0, 1.0]), atol=1e-3, rtol=0)


# ----------------------------------------------------------------------------- smooth units


def test_elu_matches_its_formula() -> None:
    x = grid()
    expected = torch.where(x > 0, x, 0.5 * (torch.exp(x) - 1))
    torch.testing.assert_close(activation({"name": "elu", "alpha": 0.5})(x), expected)
    assert activation("elu")(torch.tensor(-50.0)).item() == pytest.approx(-1.0)


def test_gelu_is_x_times_the_normal_cdf() -> None:
    x = grid()
    expected = x * 0.5 * (1 + torch.erf(x / math.sqrt(2)))
    torch.testing.assert_close(activation("gelu")(x), expected)


def test_approximate_gelu_is_the_tanh_formula() -> None:
    x = grid()
    expected = 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    torch.testing.assert_close(activation({"name": "gelu", "approximate": True})(x), expected)


@pytest.mark.parametrize("name", ["swish", "silu"])
def test_swish_and_silu_are_x_times_sigmoid(name: str) -> None:
    x = grid()
    torch.testing.assert_close(activation(name)(x), x * torch.sigmoid(x))


def test_selu_with_lecun_normal_weights_self_normalizes() -> None:
    generator = torch.Generator().manual_seed(0)
    width, depth = 256, 8
    h = torch.randn(1024, width, generator=generator)
    act, init = activation("selu"), initializer("lecun_normal")
    with torch.no_grad():
        for _ in range(depth):
            weight = init(torch.empty(width, width), generator=generator)
            h = act(h @ weight.T)
    assert abs(h.mean().item()) < 0.1
    assert h.std().item() == pytest.approx(1.0, abs=0.1)


def test_relu_with_the_same_weights_does_not_self_normalize() -> None:
    # Control for the SELU test: ReLU loses about half the variance per layer,
    # so the SELU result is not automatic.
    generator = torch.Generator().manual_seed(0)
    h = torch.randn(1024, 256, generator=generator)
    init = initializer("lecun_normal")
    with torch.no_grad():
        for _ in range(8):
            h = torch.relu(h @ init(torch.empty(256, 256), generator=generator).T)
    assert h.std().item() < 0.2


# ----------------------------------------------------------------------------- outputs


def test_softmax_rows_are_probability_distributions() -> None:
    x = 10 * torch.randn(5, 7, generator=torch.Generator().manual_seed(0))
    p = activation("softmax")(x)
    assert (p > 0).all()
    torch.testing.assert_close(p.sum(dim=-1), torch.ones(5))


def test_softmax_axis_picks_the_normalized_dim() -> None:
    x = torch.randn(5, 7, generator=torch.Generator().manual_seed(0))
    p = activation({"name": "softmax", "axis": 0})(x)
    torch.testing.assert_close(p.sum(dim=0), torch.ones(7))
    assert not torch.allclose(p.sum(dim=1), torch.ones(5))


def test_softmax_is_shift_invariant_and_does_not_overflow() -> None:
    x = torch.tensor([[1.0, 2.0, 3.0]])
    act = activation("softmax")
    torch.testing.assert_close(act(x + 1000.0), act(x))


def test_log_softmax_is_the_log_of_softmax_and_stable() -> None:
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(activation("log_softmax")(x), torch.log(torch.softmax(x, dim=-1)))
    big = activation("log_softmax")(torch.tensor([[0.0, 1000.0]]))
    torch.testing.assert_close(big, torch.tensor([[-1000.0, 0.0]]))


@pytest.mark.parametrize("spec", [None, "linear", "LINEAR"])
def test_none_and_linear_are_the_identity(spec: str | None) -> None:
    act = activation(spec)
    assert isinstance(act, nn.Identity) and act.name == "linear"
    x = torch.randn(3, 2)
    assert torch.equal(act(x), x)


# ----------------------------------------------------------------------------- activation(): other specs


def test_a_module_is_returned_as_is() -> None:
    module = nn.Hardtanh()
    assert activation(module) is module


def test_a_function_is_wrapped_and_never_taken_for_a_registry_activation() -> None:
    act = activation(torch.sigmoid)
    assert isinstance(act, FunctionActivation)
    x = torch.randn(3)
    torch.testing.assert_close(act(x), torch.sigmoid(x))
    assert act.name not in ACTIVATIONS.names()  # so the model never fuses/drops a user's function
    assert act.name == "function:sigmoid"


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "spec, error, match",
    [
        ({"name": "leaky_relu", "alpha": -0.1}, InputError, r"leaky_relu: alpha must be >= 0, got -0.1"),
        ({"name": "leaky_relu", "alpha": "big"}, InputTypeError, r"leaky_relu: alpha must be a number"),
        ({"name": "elu", "alpha": 0}, InputError, r"elu: alpha must be > 0, got 0.*use 'relu'"),
        ({"name": "thresholded_relu", "theta": -1}, InputError, r"thresholded_relu: theta must be >= 0"),
        ({"name": "prelu", "init": float("nan")}, InputError, r"prelu: init must be finite"),
        ({"name": "prelu", "per_channel": "yes"}, InputTypeError, r"prelu: per_channel must be true or"),
        ({"name": "gelu", "approximate": "tanh"}, InputTypeError, r"gelu: approximate must be true or false"),
        ({"name": "softmax", "axis": 1.5}, InputTypeError, r"softmax: axis must be an int.*got float 1.5"),
        ({"name": "leaky_relu", "alpah": 0.1}, InputError, r"no setting 'alpah'.*Did you mean 'alpha'"),
        ({"name": "relu", "alpha": 0.1}, InputError, r"activation 'relu' has no setting 'alpha'"),
        ("rleu", InputError, r"unknown activation 'rleu'.*Did you mean 'relu'"),
        ({"alpha": 0.1}, InputError, r"needs a 'name' key"),
        (3, InputTypeError, r"activation must be a name.*got int 3"),
        (nn.ReLU, InputTypeError, r"got the class ReLU. Pass an instance, e.g. ReLU\(\)"),
    ],
)
def test_bad_activation_specs_are_rejected_with_a_clear_message(
    spec: object, error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        activation(spec)  # type: ignore[arg-type]


def test_errors_name_the_source() -> None:
    with pytest.raises(InputError, match=r"\(from layers\[1\].activation\)"):
        activation("sigmod", source="layers[1].activation")
