"""Boosting with networks: SAMME's member weights and sample weights, gradient boosting's residuals."""

import math

import numpy as np
import pytest
import torch

import trainlab
from trainlab.errors import InputError
from trainlab.generalize import boost
from trainlab.generalize.boosting import samme_error, samme_weight
from trainlab.layers import Dense


def test_samme_member_weight_on_a_hand_computed_case():
    # 5 rows of equal weight, one of them wrong, 3 classes: err = 0.2, alpha = log(0.8 / 0.2) + log(2) = log 8.
    wrong = [False, True, False, False, False]
    error = samme_error(wrong, [0.2] * 5)
    assert error == pytest.approx(0.2)
    assert samme_weight(error, num_classes=3) == pytest.approx(math.log(8.0))
    assert samme_weight(error, num_classes=2) == pytest.approx(math.log(4.0))  # AdaBoost.M1 for two classes
    assert samme_weight(error, num_classes=3, learning_rate=0.5) == pytest.approx(0.5 * math.log(8.0))
    # A member at chance level (err = 1 - 1/K) gets no weight.
    assert samme_weight(2 / 3, num_classes=3) == pytest.approx(0.0, abs=1e-12)


@pytest.fixture(scope="module")
def adaboosted():
    """A linear softmax trained two epochs underfits the digits; five rounds boost it."""
    digits = trainlab.datasets.load("digits")
    x, y = digits.x[:300], digits.y[:300]
    recipe = {"num_epochs": 2, "seed": 0, "batch_size": 32, "optimizer": {"name": "adam", "lr": 0.01}}
    result = boost([Dense(10, activation="softmax")], (x, y), recipe, method="adaboost", rounds=5,
                   validation_split=None)
    return result, x, y


def test_adaboost_training_error_falls_round_by_round_where_one_weak_net_underfits(adaboosted):
    result, _, _ = adaboosted
    errors = [r["train_error"] for r in result.rounds]
    assert len(errors) == 5 and result.stop_reason is None
    assert errors[0] > 0.1  # one member alone underfits
    assert all(later <= earlier for earlier, later in zip(errors, errors[1:]))
    assert errors[-1] < errors[0] - 0.03


def test_adaboost_reweighs_the_rows_each_member_got_wrong(adaboosted):
    """Replay SAMME from the members' own predictions: the recorded errors and weights follow."""
    result, x, y = adaboosted
    labels = y.numpy()
    w = np.full(len(labels), 1.0 / len(labels))
    for member, entry in zip(result.ensemble.members, result.rounds):
        wrong = member.predict(x).argmax(1) != labels
        error = samme_error(wrong, w)
        assert entry["member_error"] == pytest.approx(error, abs=1e-9)
        assert entry["weight"] == pytest.approx(samme_weight(error, num_classes=10), abs=1e-9)
        w = w * np.exp(entry["weight"] * wrong)
        w = w / w.sum()
    votes = sum(a * np.eye(10)[m.predict(x).argmax(1)] for a, m in zip(result.weights, result.ensemble.members))
    assert result.rounds[-1]["train_error"] == pytest.approx(float((votes.argmax(1) != labels).mean()))


@pytest.fixture(scope="module")
def gradient_boosted():
    rng = np.random.default_rng(0)
    x = np.sort(rng.uniform(-3, 3, size=(120, 1)).astype(np.float32), axis=0)
    y = (np.sin(2 * x[:, 0]) + 0.1 * rng.normal(size=120)).astype(np.float32)
    recipe = {"num_epochs": 20, "seed": 0, "batch_size": 32, "optimizer": {"name": "adam", "lr": 0.05}}
    result = boost([Dense(4, activation="relu"), Dense(1)], (x, y), recipe, method="gradient", rounds=6,
                   shrinkage=0.3, validation_split=None)
    return result, x, y


def test_gradient_boosting_fits_each_member_to_the_residuals_of_the_rounds_before(gradient_boosted):
    result, x, y = gradient_boosted
    ensemble = result.ensemble
    current = np.full_like(y, y.mean())
    assert ensemble.init == pytest.approx([float(y.mean())], rel=1e-6)
    for member, residual in zip(ensemble.members, result.residuals):
        np.testing.assert_allclose(residual.numpy(), y - current, rtol=1e-5, atol=1e-5)
        current = current + 0.3 * member.predict(x)[:, 0]
    np.testing.assert_allclose(ensemble.predict(x)[:, 0], current, rtol=1e-5, atol=1e-5)


def test_gradient_boosting_training_error_falls_round_by_round(gradient_boosted):
    result, _, y = gradient_boosted
    errors = [r["train_mse"] for r in result.rounds]
    assert errors[0] > 0.3  # a member of four ReLUs after 20 epochs, shrunk by 0.3, underfits the sine
    assert all(later < earlier for earlier, later in zip(errors, errors[1:]))
    assert errors[-1] < 0.6 * errors[0]
    assert result.weights == [0.3] * 6


def test_boosting_refuses_a_loss_that_cannot_take_sample_weights():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 2)).astype(np.float32), np.arange(30) % 2
    with pytest.raises(InputError, match="'rmse' cannot take sample weights.*mean of per-sample terms"):
        boost([Dense(2, activation="softmax")], (x, y), {"loss": "rmse", "num_epochs": 1}, method="adaboost")


def test_boosting_methods_are_refused_on_the_other_kind_of_target():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 2)).astype(np.float32)
    with pytest.raises(InputError, match="regression target.*--method gradient"):
        boost([Dense(1)], (x, x[:, 0].copy()), {"num_epochs": 1}, method="adaboost")
    with pytest.raises(InputError, match="holds classes.*--method adaboost"):
        boost([Dense(2, activation="softmax")], (x, np.arange(30) % 2), {"num_epochs": 1}, method="gradient")


def test_a_saved_boosted_ensemble_reloads_with_its_member_weights(adaboosted, tmp_path):
    result, x, _ = adaboosted
    loaded = trainlab.load(result.save(tmp_path / "boosted"))
    assert loaded.combine == "adaboost" and loaded.weights == pytest.approx(result.weights)
    torch.testing.assert_close(torch.as_tensor(loaded.predict(x)), torch.as_tensor(result.ensemble.predict(x)))


def test_the_boosting_report_draws_the_error_by_round(adaboosted, tmp_path):
    from trainlab.generalize.report import ensemble_report

    result, _, _ = adaboosted
    page = ensemble_report(result, tmp_path / "report.html").read_text()
    assert "<h2>Error by round</h2>" in page and "data:image/png;base64," in page
    assert page.count("<tr><td class=case>member") == len(result.rounds)
