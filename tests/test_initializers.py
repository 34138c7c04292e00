"""Initializers: each one's variance formula, orthogonality, reproducibility, He's claim, bad input."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from trainlab.errors import InputError, InputTypeError
from trainlab.initializers import INITIALIZERS, TRUNCATED_NORMAL_STD, fans, initializer

RANDOM = ["normal", "uniform", "xavier", "glorot_normal", "glorot_uniform", "he_normal", "he_uniform",
          "lecun_normal", "lecun_uniform", "orthogonal"]
FAN_BASED = ["xavier", "glorot_normal", "glorot_uniform", "he_normal", "he_uniform", "lecun_normal",
             "lecun_uniform", "orthogonal"]


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- contract over the registry


@pytest.mark.parametrize("name", INITIALIZERS.names())
def test_every_initializer_fills_in_place_without_autograd_history(name: str) -> None:
    entry = INITIALIZERS.entry(name)
    assert entry.summary and entry.claim, f"{name} needs a summary and a claim"
    weight = torch.nn.Parameter(torch.full((8, 6), float("nan")))
    out = initializer(name)(weight, generator=seeded())
    assert out is weight
    assert torch.isfinite(weight).all(), "every entry must be overwritten"
    assert weight.grad_fn is None and weight.requires_grad
    assert initializer(name.upper())(torch.empty(3, 4)).shape == (3, 4)  # generator is optional


@pytest.mark.parametrize("name", INITIALIZERS.names())
def test_same_seed_gives_the_same_tensor(name: str) -> None:
    init = initializer(name)
    first = init(torch.empty(16, 8, 3), generator=seeded(7))
    second = init(torch.empty(16, 8, 3), generator=seeded(7))
    assert torch.equal(first, second)


@pytest.mark.parametrize("name", RANDOM)
def test_different_seeds_give_different_tensors(name: str) -> None:
    init = initializer(name)
    first = init(torch.empty(16, 8), generator=seeded(1))
    assert not torch.equal(first, init(torch.empty(16, 8), generator=seeded(2)))


# ----------------------------------------------------------------------------- variance formulas

FAN_OUT, FAN_IN = 512, 1024  # weight shape (out_features, in_features)

EXPECTED_STD: dict[str, float] = {
    "normal": 1.0,
    "uniform": 0.1 / math.sqrt(12),  # U(-0.05, 0.05)
    "xavier": math.sqrt(1 / FAN_IN),
    "glorot_normal": math.sqrt(2 / (FAN_IN + FAN_OUT)),
    "glorot_uniform": math.sqrt(2 / (FAN_IN + FAN_OUT)),
    "he_normal": math.sqrt(2 / FAN_IN),
    "he_uniform": math.sqrt(2 / FAN_IN),
    "lecun_normal": math.sqrt(1 / FAN_IN),
    "lecun_uniform": math.sqrt(1 / FAN_IN),
    "orthogonal": math.sqrt(1 / FAN_IN),  # rows of a wide orthogonal matrix have unit norm
}


def test_every_random_initializer_has_a_variance_check() -> None:
    assert sorted(EXPECTED_STD) == sorted(RANDOM)
    assert sorted(set(INITIALIZERS.names()) - set(RANDOM)) == ["constant", "ones", "zeros"]


@pytest.mark.parametrize("name", sorted(EXPECTED_STD))
def test_empirical_std_matches_the_formula_on_a_large_layer(name: str) -> None:
    weight = initializer(name)(torch.empty(FAN_OUT, FAN_IN), generator=seeded())
    assert weight.std().item() == pytest.approx(EXPECTED_STD[name], rel=0.02)
    assert abs(weight.mean().item()) < 0.05 * EXPECTED_STD[name]


@pytest.mark.parametrize(
    "name, variance",
    [("glorot_normal", 2 / (FAN_IN + FAN_OUT)), ("he_normal", 2 / FAN_IN), ("lecun_normal", 1 / FAN_IN)],
)
def test_keras_normals_are_truncated_at_two_stds(name: str, variance: float) -> None:
    weight = initializer(name)(torch.empty(FAN_OUT, FAN_IN), generator=seeded())
    bound = 2 * math.sqrt(variance) / TRUNCATED_NORMAL_STD
    assert weight.abs().max().item() <= bound
    assert weight.abs().max().item() > 0.99 * bound  # truncated, not a narrower distribution


def test_xavier_is_an_untruncated_normal() -> None:
    # The course notes' "Xavier" is N(0, 1/fan_in): unlike the Keras normals, it has tails beyond 2 std.
    weight = initializer("xavier")(torch.empty(FAN_OUT, FAN_IN), generator=seeded())
    assert weight.abs().max().item() > 4 * math.sqrt(1 / FAN_IN)


@pytest.mark.parametrize(
    "name, limit",
    [("glorot_uniform", math.sqrt(6 / (FAN_IN + FAN_OUT))), ("he_uniform", math.sqrt(6 / FAN_IN)),
     ("lecun_uniform", math.sqrt(3 / FAN_IN)), ("uniform", 0.05)],
)
def test_uniforms_fill_their_whole_range_and_no_more(name: str, limit: float) -> None:
    weight = initializer(name)(torch.empty(FAN_OUT, FAN_IN), generator=seeded())
    assert weight.abs().max().item() <= limit
    assert weight.max().item() > 0.999 * limit and weight.min().item() < -0.999 * limit


def test_fans_of_a_conv_kernel_count_the_receptive_field() -> None:
    assert fans(torch.empty(64, 32, 3, 3)) == (32 * 9, 64 * 9)
    weight = initializer("he_normal")(torch.empty(64, 32, 3, 3), generator=seeded())
    assert weight.std().item() == pytest.approx(math.sqrt(2 / (32 * 9)), rel=0.03)


def test_normal_and_uniform_settings_are_used() -> None:
    init = initializer({"name": "normal", "mean": 3.0, "std": 0.5})
    weight = init(torch.empty(200, 200), generator=seeded())
    assert weight.mean().item() == pytest.approx(3.0, abs=0.01)
    assert weight.std().item() == pytest.approx(0.5, rel=0.02)
    init = initializer({"name": "uniform", "low": 1.0, "high": 2.0})
    weight = init(torch.empty(200, 200), generator=seeded())
    assert weight.min().item() >= 1.0 and weight.max().item() <= 2.0
    assert weight.mean().item() == pytest.approx(1.5, abs=0.01)


# ----------------------------------------------------------------------------- orthogonal


@pytest.mark.parametrize("shape", [(64, 32), (32, 32)])
def test_orthogonal_tall_or_square_has_orthonormal_columns(shape: tuple[int, int]) -> None:
    weight = initializer("orthogonal")(torch.empty(*shape), generator=seeded())
    torch.testing.assert_close(weight.T @ weight, torch.eye(shape[1]), atol=1e-5, rtol=0)


def test_orthogonal_wide_has_orthonormal_rows() -> None:
    weight = initializer("orthogonal")(torch.empty(32, 64), generator=seeded())
    torch.testing.assert_close(weight @ weight.T, torch.eye(32), atol=1e-5, rtol=0)


def test_orthogonal_gain_scales_the_matrix() -> None:
    weight = initializer({"name": "orthogonal", "gain": 2.0})(torch.empty(20, 10), generator=seeded())
    torch.testing.assert_close(weight.T @ weight, 4 * torch.eye(10), atol=1e-4, rtol=0)


def test_orthogonal_preserves_norms_through_many_linear_layers() -> None:
    generator, init = seeded(), initializer("orthogonal")
    x = torch.randn(8, 64, generator=generator)
    h = x
    for _ in range(50):
        h = h @ init(torch.empty(64, 64), generator=generator).T
    torch.testing.assert_close(h.norm(dim=1), x.norm(dim=1), rtol=1e-3, atol=0)


# ----------------------------------------------------------------------------- constants


def test_zeros_ones_and_constant_are_exact_on_any_shape() -> None:
    for shape in [(5,), (3, 4), (2, 3, 2, 2)]:
        assert torch.equal(initializer("zeros")(torch.empty(shape)), torch.zeros(shape))
        assert torch.equal(initializer("ones")(torch.empty(shape)), torch.ones(shape))
        filled = initializer({"name": "constant", "value": 0.1})(torch.empty(shape))
        assert torch.equal(filled, torch.full(shape, 0.1))
    assert torch.equal(initializer("constant")(torch.ones(3)), torch.zeros(3))  # Keras's default value 0.0


def test_constants_also_fill_integer_tensors() -> None:
    assert torch.equal(initializer("ones")(torch.empty(3, dtype=torch.long)), torch.ones(3, dtype=torch.long))


@pytest.mark.parametrize("name", ["normal", "uniform"])
def test_plain_random_initializers_fill_biases(name: str) -> None:
    bias = initializer(name)(torch.full((10,), float("nan")), generator=seeded())
    assert torch.isfinite(bias).all() and bias.unique().numel() == 10


# ----------------------------------------------------------------------------- the claim of He initialization


def layer_variances(init: Callable[..., torch.Tensor], *, depth: int = 10, width: int = 256) -> list[float]:
    generator = seeded(0)
    h = torch.randn(512, width, generator=generator)
    variances = []
    with torch.no_grad():
        for _ in range(depth):
            h = torch.relu(h @ init(torch.empty(width, width), generator=generator).T)
            variances.append(h.var().item())
    return variances


def test_he_normal_keeps_relu_activation_variance_constant_across_layers() -> None:
    variances = layer_variances(initializer("he_normal"))
    assert 0.5 < variances[-1] / variances[0] < 2


def test_lecun_variance_halves_relu_activation_variance_every_layer() -> None:
    # Without He's factor 2, each ReLU layer halves the variance: 9 halvings between layer 1 and layer 10.
    variances = layer_variances(initializer("lecun_normal"))
    assert variances[-1] / variances[0] < 0.01


def test_small_normal_init_collapses_relu_activation_variance() -> None:
    variances = layer_variances(initializer({"name": "normal", "std": 0.01}))
    assert variances[-1] / variances[0] < 1e-12


def test_naive_std_one_normal_explodes_relu_activation_variance() -> None:
    variances = layer_variances(initializer("normal"))
    assert variances[-1] / variances[0] > 1e12


# ----------------------------------------------------------------------------- initializer(): other specs


def test_a_callable_is_returned_as_is() -> None:
    assert initializer(torch.nn.init.xavier_normal_) is torch.nn.init.xavier_normal_


def test_built_initializers_show_their_settings() -> None:
    assert repr(initializer({"name": "normal", "std": 0.01})) == "normal(mean=0.0, std=0.01)"
    assert repr(initializer("he_normal")) == "he_normal()"


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("name", FAN_BASED)
def test_fan_based_initializers_reject_1d_tensors(name: str) -> None:
    match = rf"{name}: needs a tensor with at least 2 dims.*got shape \(10,\).*'zeros'"
    with pytest.raises(InputError, match=match):
        initializer(name)(torch.empty(10))


@pytest.mark.parametrize(
    "spec, error, match",
    [
        ({"name": "normal", "std": 0}, InputError, r"normal: std must be > 0, got 0"),
        ({"name": "normal", "std": -1.0}, InputError, r"normal: std must be > 0, got -1.0"),
        ({"name": "normal", "mean": "0"}, InputTypeError, r"normal: mean must be a number, got str"),
        ({"name": "uniform", "low": 0.1, "high": -0.1}, InputError,
         r"uniform: low must be < high, got low=0.1, high=-0.1"),
        ({"name": "uniform", "low": 0.1, "high": 0.1}, InputError, r"uniform: low must be < high"),
        ({"name": "constant", "value": None}, InputTypeError, r"constant: value must be a number"),
        ({"name": "orthogonal", "gain": -1}, InputError, r"orthogonal: gain must be > 0, got -1"),
        ({"name": "normal", "sdt": 0.1}, InputError,
         r"initializer 'normal' has no setting 'sdt'.*Did you mean 'std'"),
        ({"name": "he_normal", "gain": 2}, InputError, r"initializer 'he_normal' has no setting 'gain'"),
        ("he_norm", InputError, r"unknown initializer 'he_norm'.*Did you mean 'he_normal'"),
        (0.01, InputTypeError, r"initializer must be a name.*got float 0.01"),
    ],
)
def test_bad_initializer_specs_are_rejected_with_a_clear_message(
    spec: object, error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        initializer(spec)  # type: ignore[arg-type]


def test_random_initializers_reject_integer_tensors() -> None:
    with pytest.raises(InputTypeError, match=r"he_normal: needs a floating-point tensor.*torch.int64"):
        initializer("he_normal")(torch.empty(4, 4, dtype=torch.long))


def test_a_seed_passed_as_the_generator_is_rejected() -> None:
    with pytest.raises(InputTypeError, match=r"generator must be a torch.Generator or None, got int 0"):
        initializer("normal")(torch.empty(3), generator=0)  # type: ignore[arg-type]


def test_filling_something_other_than_a_tensor_is_rejected() -> None:
    with pytest.raises(InputTypeError, match=r"zeros: expected a torch.Tensor to fill, got list"):
        initializer("zeros")([0.0, 1.0])  # type: ignore[arg-type]


def test_errors_name_the_source() -> None:
    with pytest.raises(InputError, match=r"\(from layers\[0\].kernel_initializer\)"):
        initializer("glorot", source="layers[0].kernel_initializer")
