"""Losses: each value equals its formula written out in numpy, the cross-entropies are stable on
logits, each technique's claim holds, and targets that do not fit fail with a helpful message."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trainlab.errors import InputError
from trainlab.losses import EPSILON, LOSSES, CustomLoss, Loss, loss

RNG_SEED = 0
N, C = 16, 4


def _rng() -> np.random.Generator:
    return np.random.default_rng(RNG_SEED)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float32)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _close(value: torch.Tensor, expected: float, tol: float = 1e-5) -> None:
    assert value.ndim == 0
    np.testing.assert_allclose(value.item(), expected, rtol=tol, atol=tol)


# --------------------------------------------------------------------------- values = numpy formulas


@pytest.mark.parametrize("shape", [(N, 3), (N, 1)])
def test_regression_losses_equal_their_formulas(shape):
    rng = _rng()
    pred, true = rng.normal(size=shape) * 2, rng.normal(size=shape) * 2
    err = pred - true
    delta = 0.7
    huber_np = np.where(np.abs(err) <= delta, 0.5 * err**2, delta * (np.abs(err) - 0.5 * delta))
    expected = {
        "mse": np.mean(err**2),
        "mean_squared_error": np.mean(err**2),
        "rmse": np.sqrt(np.mean(err**2)),
        "mae": np.mean(np.abs(err)),
        "mean_absolute_error": np.mean(np.abs(err)),
    }
    for name, value in expected.items():
        _close(loss(name)(_t(pred), _t(true)), value)
    _close(loss({"name": "huber", "delta": delta})(_t(pred), _t(true)), np.mean(huber_np))


def test_a_flat_target_against_one_output_is_reshaped_not_broadcast():
    rng = _rng()
    pred, true = rng.normal(size=(N, 1)), rng.normal(size=N)
    # Broadcasting (N, 1) against (N,) would silently average an N x N table of errors.
    _close(loss("mse")(_t(pred), _t(true)), np.mean((pred[:, 0] - true) ** 2))
    _close(loss(torch.nn.MSELoss())(_t(pred), _t(true)), np.mean((pred[:, 0] - true) ** 2))


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("from_logits", [False, True])
def test_binary_crossentropy_equals_its_formula(from_logits, label_smoothing):
    rng = _rng()
    logits = rng.normal(size=(N, 3)) * 2
    y = (rng.random((N, 3)) > 0.5).astype(float)
    p = np.clip(_sigmoid(logits), EPSILON, 1 - EPSILON)
    ys = y * (1 - label_smoothing) + 0.5 * label_smoothing
    expected = -np.mean(ys * np.log(p) + (1 - ys) * np.log(1 - p))
    settings = {"from_logits": from_logits, "label_smoothing": label_smoothing}
    bce = loss({"name": "binary_crossentropy", **settings})
    y_pred = _t(logits) if from_logits else torch.sigmoid(_t(logits))
    _close(bce(y_pred, _t(y)), expected)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("from_logits", [False, True])
def test_categorical_crossentropies_equal_their_formula(from_logits, label_smoothing):
    rng = _rng()
    logits = rng.normal(size=(N, C)) * 2
    labels = rng.integers(0, C, size=N)
    soft = _softmax(rng.normal(size=(N, C)))  # soft targets, e.g. from mixup or distillation
    p = np.clip(_softmax(logits), EPSILON, 1 - EPSILON)
    y_pred = _t(logits) if from_logits else torch.softmax(_t(logits), -1)
    settings = {"from_logits": from_logits, "label_smoothing": label_smoothing}
    for target_np in (np.eye(C)[labels], soft):
        ys = target_np * (1 - label_smoothing) + label_smoothing / C
        expected = -np.mean(np.sum(ys * np.log(p), -1))
        _close(loss({"name": "categorical_crossentropy", **settings})(y_pred, _t(target_np)), expected)
    ys = np.eye(C)[labels] * (1 - label_smoothing) + label_smoothing / C
    expected = -np.mean(np.sum(ys * np.log(p), -1))
    sparse = loss({"name": "sparse_categorical_crossentropy", **settings})
    _close(sparse(y_pred, torch.tensor(labels)), expected)
    _close(sparse(y_pred, torch.tensor(labels).unsqueeze(-1).float()), expected)  # (N, 1) float labels


def test_probabilities_are_renormalized_and_clamped_like_keras():
    probs = np.array([[0.0, 0.5, 1.5], [1.0, 1.0, 0.0]])  # rows not summing to 1, exact zeros
    y = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    p = np.clip(probs / probs.sum(-1, keepdims=True), EPSILON, 1 - EPSILON)
    expected = -np.mean(np.sum(y * np.log(p), -1))
    _close(loss("categorical_crossentropy")(_t(probs), _t(y)), expected)
    _close(loss("sparse_categorical_crossentropy")(_t(probs), torch.tensor([0, 1])), expected)


def test_kl_divergence_equals_its_formula():
    rng = _rng()
    p, q = _softmax(rng.normal(size=(N, C))), _softmax(rng.normal(size=(N, C)))
    q[0] = [1.0, 0.0, 0.0, 0.0]  # a zero in the target is clamped, as in Keras
    tc, pc = np.clip(q, EPSILON, 1), np.clip(p, EPSILON, 1)
    _close(loss("kl_divergence")(_t(p), _t(q)), np.mean(np.sum(tc * np.log(tc / pc), -1)))


# --------------------------------------------------------------------------- logits: equal and stable


def test_activation_then_loss_from_probabilities_equals_loss_from_logits():
    gen = torch.Generator().manual_seed(RNG_SEED)
    logits = torch.randn(N, C, generator=gen) * 3
    labels = torch.randint(0, C, (N,), generator=gen)
    one_hot = F.one_hot(labels, C).float()
    binary_logits = torch.randn(N, 1, generator=gen) * 3
    binary = (torch.rand(N, 1, generator=gen) > 0.5).float()
    for name, z, y, activate in [
        ("sparse_categorical_crossentropy", logits, labels, lambda z: z.softmax(-1)),
        ("categorical_crossentropy", logits, one_hot, lambda z: z.softmax(-1)),
        ("binary_crossentropy", binary_logits, binary, torch.sigmoid),
    ]:
        from_probs = loss(name)(activate(z), y)
        from_logits = loss(name).with_logits()(z, y)
        torch.testing.assert_close(from_probs, from_logits, rtol=1e-5, atol=1e-5)
        assert loss(name).with_logits() == loss({"name": name, "from_logits": True})


@pytest.mark.parametrize("name", ["binary_crossentropy", "categorical_crossentropy",
                                  "sparse_categorical_crossentropy"])
def test_huge_logits_give_finite_loss_and_gradient(name):
    logits = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, -1e4]], requires_grad=True)
    if name == "binary_crossentropy":
        target = torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0]])  # confidently wrong on 4 entries
    elif name == "categorical_crossentropy":
        target = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    else:
        target = torch.tensor([1, 0])
    for fn in (loss({"name": name, "from_logits": True}), loss(name).with_logits()):
        value = fn(logits, target)
        (grad,) = torch.autograd.grad(value, logits)
        assert torch.isfinite(value) and value > 1e3  # confidently wrong costs ~1e4, not inf/nan
        assert torch.isfinite(grad).all()


def test_probabilities_of_exactly_0_and_1_stay_finite_thanks_to_the_clamp():
    p = torch.tensor([[0.0], [1.0]], requires_grad=True)
    value = loss("binary_crossentropy")(p, torch.tensor([1.0, 0.0]))
    clamped_high = np.float32(1) - np.float32(1 - EPSILON)  # 1 - 1e-7 rounds in float32
    _close(value, -(np.log(np.float32(EPSILON)) + np.log(clamped_high)) / 2, tol=1e-4)
    assert torch.isfinite(torch.autograd.grad(value, p)[0]).all()


# --------------------------------------------------------------------------- claims


def _grad_at_constant(name: str, y: torch.Tensor, c: float) -> float:
    pred = torch.full_like(y, c, requires_grad=True)
    (grad,) = torch.autograd.grad(loss(name)(pred, y), pred)
    return float(grad.sum())


def test_mse_is_minimized_by_the_mean_and_mae_by_the_median():
    y = torch.tensor([0.0, 1.0, 2.0, 3.0, 100.0])  # an outlier pulls the mean, not the median
    mean, median = float(y.mean()), float(y.median())
    assert abs(_grad_at_constant("mse", y, mean)) < 1e-5
    assert abs(_grad_at_constant("mse", y, median)) > 1.0
    assert abs(_grad_at_constant("mae", y, median)) < 1e-6
    assert abs(_grad_at_constant("mae", y, mean)) > 0.5
    assert abs(_grad_at_constant("rmse", y, mean)) < 1e-5  # same minimizer as mse


def test_huber_gradient_is_bounded_by_delta_for_outliers_and_mse_like_inside():
    delta = 1.5
    pred = torch.tensor([0.3, -1.0, 50.0, -1e3], requires_grad=True)
    (grad,) = torch.autograd.grad(loss({"name": "huber", "delta": delta})(pred, torch.zeros(4)), pred)
    n = pred.numel()
    torch.testing.assert_close(grad[:2] * n, pred[:2].detach())  # quadratic: gradient = error
    torch.testing.assert_close(grad[2:] * n, torch.tensor([delta, -delta]))  # linear: bounded


def test_rmse_of_a_perfect_fit_has_a_zero_gradient_not_nan():
    pred = torch.ones(3, 1, requires_grad=True)
    value = loss("rmse")(pred, torch.ones(3))
    (grad,) = torch.autograd.grad(value, pred)
    assert value.item() < 1e-15
    assert torch.equal(grad, torch.zeros_like(grad))


@pytest.mark.parametrize("name", ["categorical_crossentropy", "sparse_categorical_crossentropy"])
def test_label_smoothing_moves_the_optimum_to_the_smoothed_distribution(name):
    ls = 0.2
    labels = torch.tensor([2, 0])
    target = F.one_hot(labels, C).float() if name.startswith("categorical") else labels
    smoothed = F.one_hot(labels, C).float() * (1 - ls) + ls / C
    logits = smoothed.log().requires_grad_(True)
    for from_logits in (True, False):
        fn = loss({"name": name, "label_smoothing": ls, "from_logits": from_logits})
        z = logits if from_logits else logits.softmax(-1)
        (grad,) = torch.autograd.grad(fn(z, target), logits)
        assert grad.abs().max() < 1e-6
    (plain_grad,) = torch.autograd.grad(loss({"name": name, "from_logits": True})(logits, target), logits)
    assert plain_grad.abs().max() > 0.05  # without smoothing these logits are not yet confident enough


def test_binary_label_smoothing_moves_the_optimum_to_the_smoothed_target():
    ls = 0.2
    y = torch.tensor([1.0, 0.0])
    smoothed = y * (1 - ls) + 0.5 * ls
    logits = torch.logit(smoothed).requires_grad_(True)
    fn = loss({"name": "binary_crossentropy", "label_smoothing": ls, "from_logits": True})
    (grad,) = torch.autograd.grad(fn(logits, y), logits)
    assert grad.abs().max() < 1e-6


def test_sparse_equals_categorical_on_the_one_hot_labels():
    gen = torch.Generator().manual_seed(RNG_SEED)
    logits = torch.randn(N, C, generator=gen)
    labels = torch.randint(0, C, (N,), generator=gen)
    for settings in ({}, {"label_smoothing": 0.1}, {"from_logits": True, "label_smoothing": 0.1}):
        z = logits if settings.get("from_logits") else logits.softmax(-1)
        sparse = loss({"name": "sparse_categorical_crossentropy", **settings})(z, labels)
        dense = loss({"name": "categorical_crossentropy", **settings})(z, F.one_hot(labels, C).float())
        torch.testing.assert_close(sparse, dense)


def test_kl_divergence_is_zero_only_for_equal_distributions_and_is_ce_minus_entropy():
    gen = torch.Generator().manual_seed(RNG_SEED)
    p = torch.randn(N, C, generator=gen).softmax(-1)
    q = torch.randn(N, C, generator=gen).softmax(-1)
    kl = loss("kl_divergence")
    assert abs(kl(p, p).item()) < 1e-6
    assert kl(q, p).item() > 1e-3
    entropy = -(p * p.log()).sum(-1).mean()
    torch.testing.assert_close(kl(q, p), loss("categorical_crossentropy")(q, p) - entropy)


# --------------------------------------------------------------------------- targets that do not fit


def test_sparse_labels_beyond_the_outputs_name_the_range_and_the_fix():
    message = r"\[0, 10\) for a model with 10 output.*range from 0 to 10.*Dense\(11"
    with pytest.raises(InputError, match=message):
        loss("sparse_categorical_crossentropy").check_target(torch.arange(11), 10)


@pytest.mark.parametrize(
    "y, outputs, message",
    [
        (torch.tensor([-1, 0, 1]), 3, r"range from -1 to 1.*start at 0"),
        (torch.tensor([0.0, 1.5, 2.0]), 3, r"non-integer"),
        (F.one_hot(torch.tensor([0, 2, 1]), 3).float(), 3, r"look one-hot.*'categorical_crossentropy'"),
        (torch.tensor([0, 1, 1]), 1, r"Dense\(2, activation='softmax'\).*binary_crossentropy"),
        (torch.tensor([0.0, float("nan")]), 3, r"1 NaN or infinite"),
    ],
)
def test_sparse_targets_that_do_not_fit_are_explained(y, outputs, message):
    with pytest.raises(InputError, match=message):
        loss("sparse_categorical_crossentropy").check_target(y, outputs)


@pytest.mark.parametrize(
    "name, y, outputs, message",
    [
        ("categorical_crossentropy", F.one_hot(torch.arange(4), 4).float(), 3,
         r"4 columns but the model has 3 outputs"),
        ("categorical_crossentropy", torch.tensor([0, 2, 1]), 3, r"'sparse_categorical_crossentropy'"),
        ("categorical_crossentropy", torch.tensor([[2.0, -1.0]]), 2, r"range from -1 to 2"),
        ("binary_crossentropy", torch.tensor([0.0, 3.0, 1.0]), 1,
         r"range from 0 to 3.*'sparse_categorical_crossentropy'.*Dense\(4"),
        ("binary_crossentropy", torch.tensor([0.0, 1.0]), 2, r"1 column\(s\).*2 output\(s\)"),
        ("mse", torch.zeros(5, 3), 1, r"mse: the targets have 3 column\(s\).*1 output\(s\).*Dense\(3\)"),
        ("mae", torch.tensor([0.0, 4.0, 2.0]), 5, r"look like class labels"),
        ("kl_divergence", torch.tensor([[0.5, -0.5]]), 2, r"smallest target is -0.5"),
    ],
)
def test_targets_that_do_not_fit_the_model_are_explained(name, y, outputs, message):
    with pytest.raises(InputError, match=message):
        loss(name).check_target(y, outputs)


@pytest.mark.parametrize(
    "name, y, outputs",
    [
        ("sparse_categorical_crossentropy", torch.tensor([0.0, 2.0, 1.0]), 3),  # float labels from a CSV
        ("sparse_categorical_crossentropy", torch.tensor([[0], [2]]), 3),
        ("categorical_crossentropy", torch.tensor([[0.2, 0.8], [1.0, 0.0]]), 2),
        ("binary_crossentropy", torch.tensor([0.0, 1.0, 0.3]), 1),
        ("binary_crossentropy", torch.tensor([[0.0, 1.0], [1.0, 1.0]]), 2),  # multi-label
        ("mse", torch.randn(5), 1),
        ("huber", torch.randn(5, 2), 2),
    ],
)
def test_targets_that_fit_pass_the_check(name, y, outputs):
    loss(name).check_target(y, outputs)  # no error


# --------------------------------------------------------------------------- bad settings and specs


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"name": "binary_crossentropy", "label_smoothing": 2},
         r"binary_crossentropy: label_smoothing must be in \[0.0, 1.0\], got 2"),
        ({"name": "categorical_crossentropy", "label_smoothing": -0.1}, r"label_smoothing must be in"),
        ({"name": "sparse_categorical_crossentropy", "from_logits": "yes"},
         r"sparse_categorical_crossentropy: from_logits must be true or false, got str 'yes'"),
        ({"name": "huber", "delta": 0}, r"huber: delta must be > 0, got 0"),
        ({"name": "huber", "delta": "big"}, r"huber: delta must be a number"),
        ({"name": "binary_crossentropy", "label_smothing": 0.1},
         r"has no setting 'label_smothing'.*Did you mean 'label_smoothing'"),
        ({"name": "mse", "from_logits": True}, r"loss 'mse' has no setting 'from_logits'"),
        ("categorical_cross_entropy", r"unknown loss 'categorical_cross_entropy'.*Did you mean"),
        (42, r"a loss must be a name.*got int 42"),
    ],
)
def test_bad_loss_specs_are_rejected_with_the_setting_named(spec, message):
    with pytest.raises(InputError, match=message):
        loss(spec)


def test_only_cross_entropies_have_a_logits_form():
    with pytest.raises(InputError, match=r"mse: this loss has no logits form"):
        loss("mse").with_logits()


def test_shape_mismatch_between_predictions_and_targets_is_an_error_not_a_broadcast():
    with pytest.raises(InputError, match=r"mse: predictions have shape \(4, 3\) but targets \(4,\)"):
        loss("mse")(torch.zeros(4, 3), torch.zeros(4))
    with pytest.raises(InputError, match=r"one integer label per sample"):
        loss("sparse_categorical_crossentropy")(torch.zeros(4, 3), torch.zeros(4, 3))


def test_a_custom_loss_must_return_the_batch_mean():
    per_sample = loss(lambda y_pred, y_true: (y_pred - y_true) ** 2)
    with pytest.raises(InputError, match=r"loss 'custom' must return the batch mean as a 0-d tensor"):
        per_sample(torch.zeros(3, 1), torch.zeros(3))


def test_torch_loss_modules_are_wrapped_with_the_right_target_dtype():
    ce = loss(torch.nn.CrossEntropyLoss())
    assert isinstance(ce, CustomLoss) and ce.name == "CrossEntropyLoss" and ce.target_dtype == torch.long
    logits, labels = torch.randn(5, 3), torch.tensor([0, 2, 1, 1, 0])
    torch.testing.assert_close(ce(logits, labels), loss("sparse_categorical_crossentropy").with_logits()(
        logits, labels))
    assert loss(torch.nn.L1Loss()).target_dtype == torch.float32


# --------------------------------------------------------------------------- contract over the registry


def _inputs_for(fn: Loss) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Logits, targets that fit, and the number of outputs, for any registered loss."""
    gen = torch.Generator().manual_seed(RNG_SEED)
    logits = torch.randn(N, C, generator=gen)
    if fn.target_dtype == torch.long:
        return logits, torch.randint(0, C, (N,), generator=gen), C
    if fn.fusable_activation == "softmax":
        return logits, torch.randn(N, C, generator=gen).softmax(-1), C
    if fn.fusable_activation == "sigmoid":
        return logits, (torch.rand(N, C, generator=gen) > 0.5).float(), C
    # Regression and divergence losses: distributions are valid targets for both.
    return logits, torch.randn(N, C, generator=gen).softmax(-1), C


def _activate(fn: Loss, logits: torch.Tensor) -> torch.Tensor:
    if fn.fusable_activation == "sigmoid":
        return torch.sigmoid(logits)
    return logits.softmax(-1)


@pytest.mark.parametrize("name", LOSSES.names())
def test_every_loss_is_a_finite_scalar_batch_mean_with_a_gradient(name):
    entry = LOSSES.entry(name)
    assert entry.summary and entry.claim
    fn = loss(name)
    assert isinstance(fn, Loss) and fn.name in LOSSES and fn.from_logits is False
    assert fn.fusable_activation in (None, "softmax", "sigmoid")
    logits, y, outputs = _inputs_for(fn)
    fn.check_target(y, outputs)
    y = y.to(fn.target_dtype)
    z = logits.clone().requires_grad_(True)
    value = fn(_activate(fn, z), y)
    (grad,) = torch.autograd.grad(value, z)
    assert value.ndim == 0 and torch.isfinite(value)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    # The batch mean: the loss of a batch repeated twice is the same value.
    torch.testing.assert_close(fn(_activate(fn, logits).repeat(2, 1), torch.cat([y, y])),
                               value.detach())
    if fn.fusable_activation is not None:
        fused = fn.with_logits()
        assert fused.from_logits and fused.name == fn.name
        torch.testing.assert_close(fused(logits, y), value.detach(), rtol=1e-5, atol=1e-5)
    else:
        with pytest.raises(InputError):
            fn.with_logits()


@pytest.mark.parametrize("spec, logits", [
    ({"name": "sparse_categorical_crossentropy", "from_logits": True}, True),
    ({"name": "sparse_categorical_crossentropy", "from_logits": True, "label_smoothing": 0.1}, True),
    ("sparse_categorical_crossentropy", False),
    ("mse", None),
])
def test_member_terms_row_k_is_member_ks_per_sample_losses(spec, logits):
    g = torch.Generator().manual_seed(1)
    k, n, classes = 3, 7, 4
    if logits is None:
        y_pred, y_true = torch.randn(k, n, 2, generator=g), torch.randn(k, n, 2, generator=g)
    else:
        y_pred = torch.randn(k, n, classes, generator=g)
        if not logits:
            y_pred = y_pred.softmax(-1)
        y_true = torch.randint(0, classes, (k, n), generator=g)
    fn = loss(spec)
    terms = fn.member_terms(y_pred, y_true)
    assert terms.shape == (k, n)
    for row in range(k):
        torch.testing.assert_close(terms[row], fn.per_sample(y_pred[row], y_true[row]), rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(terms[row].mean(), fn(y_pred[row], y_true[row]), rtol=1e-6, atol=1e-7)
