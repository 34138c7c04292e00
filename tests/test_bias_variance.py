"""Bias-variance decomposition: the parts add up to the test loss; mlxtend agrees on the same predictions."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from mlxtend.evaluate import bias_variance_decomp

from trainlab.cli import main
from trainlab.errors import InputError
from trainlab.generalize.bias_variance import (
    bias_variance,
    bootstrap_predictions,
    decompose_squared,
    decompose_zero_one,
    parse_bias_variance,
)
from trainlab.layers import Dense

_FAST = {"optimizer": {"name": "adam", "lr": 0.02}, "num_epochs": 4, "batch_size": 128, "seed": 0}


class _Replay:
    """An estimator that 'fits' by returning the next round's stored predictions (for mlxtend)."""

    def __init__(self, predictions: np.ndarray) -> None:
        self.predictions, self.round = predictions, -1

    def fit(self, x: np.ndarray, y: np.ndarray) -> _Replay:
        self.round += 1
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.predictions[self.round]


def _mlxtend(predictions: np.ndarray, y_test: np.ndarray, loss: str) -> tuple[float, float, float]:
    dummy = np.zeros((len(y_test), 1))
    return bias_variance_decomp(_Replay(predictions), dummy, y_test, dummy, y_test, loss=loss,
                                num_rounds=predictions.shape[0], random_seed=0)


def test_bias2_plus_variance_plus_known_noise_is_the_expected_test_mse_on_a_noisy_sine() -> None:
    sigma = 0.3
    model = [Dense(8, activation="tanh"), Dense(1)]
    d = bias_variance(model, {"name": "noisy_sine", "num_samples": 2400, "noise": sigma}, _FAST, rounds=3,
                      test_fraction=0.8, noise_free=lambda x: torch.sin(x[:, 0]), noise_variance=sigma**2)
    assert d.noise == pytest.approx(0.09) and d.test_rows == 1920 and d.rounds == 3
    assert d.bias > 0 and d.variance > 0
    # The sum differs from the measured MSE only by the test noise's sampling error:
    # (mean eps^2 - sigma^2) - 2 mean((hbar - f) eps), whose std is sqrt((2 sigma^4 + 4 sigma^2 bias^2) / N).
    standard_error = math.sqrt((2 * sigma**4 + 4 * sigma**2 * d.bias) / d.test_rows)
    assert abs(d.expected_loss - (d.bias + d.variance + d.noise)) < 4 * standard_error
    assert d.residual == pytest.approx(d.expected_loss - (d.bias + d.variance + d.noise))


def test_the_noise_of_a_bundled_generated_set_is_read_from_its_registry_entry() -> None:
    d = bias_variance([Dense(4, activation="tanh"), Dense(1)], "friedman1", {**_FAST, "num_epochs": 1}, rounds=2)
    assert d.noise == 1.0  # friedman1's default noise std is 1


def test_squared_decomposition_agrees_with_mlxtend_on_the_same_predictions() -> None:
    made = bootstrap_predictions([Dense(8, activation="relu"), Dense(1)], "diabetes", _FAST, rounds=4)
    ours = made.decompose()  # noise unknown: bias^2 against the observed y, as mlxtend
    predictions = made.predictions.reshape(4, -1).double().numpy()
    expected, bias, variance = _mlxtend(predictions, made.y_test.double().numpy(), "mse")
    assert ours.noise is None
    assert ours.expected_loss == pytest.approx(expected, rel=1e-9)
    assert ours.bias == pytest.approx(bias, rel=1e-9)
    assert ours.variance == pytest.approx(variance, rel=1e-9)
    assert ours.expected_loss == pytest.approx(ours.bias + ours.variance, rel=1e-9)


def test_domingos_zero_one_decomposition_is_exact_and_agrees_with_mlxtend() -> None:
    made = bootstrap_predictions([Dense(4, activation="relu"), Dense(3, activation="softmax")], "iris",
                                 {**_FAST, "num_epochs": 2, "batch_size": 16}, rounds=5)
    ours = made.decompose()
    labels = made.labels.numpy()
    assert labels.shape == (5, 45)
    expected, bias, variance = _mlxtend(labels, made.y_test.numpy(), "0-1_loss")
    assert (ours.expected_loss, ours.bias) == pytest.approx((expected, bias), rel=1e-12)
    assert ours.variance == pytest.approx(variance, rel=1e-12)
    assert ours.expected_loss == pytest.approx(ours.bias + ours.net_variance, abs=1e-12)


def test_domingos_variance_subtracts_on_biased_points() -> None:
    # Point 0: main prediction 0 = y (unbiased), variance 1/4 adds. Point 1: main 1 != y = 0 (biased);
    # P(h = y) = 1/4 subtracts. Loss = (1/4 + 3/4) / 2 = 0.5 = bias 0.5 + net (1/4 - 1/4) / 2 = 0.
    d = decompose_zero_one(torch.tensor([[0, 1], [0, 1], [0, 1], [2, 0]]), torch.tensor([0, 0]))
    assert (d.expected_loss, d.bias, d.net_variance, d.variance) == pytest.approx((0.5, 0.5, 0.0, 0.25))


def test_squared_decomposition_by_hand() -> None:
    d = decompose_squared(torch.tensor([[1.0, 4.0], [3.0, 2.0]]), torch.tensor([2.0, 2.0]))
    # main [2, 3]; bias^2 = (0 + 1) / 2; variance = (1 + 1 + 1 + 1) / 4; loss = (1 + 4 + 1 + 0) / 4
    assert (d.bias, d.variance, d.expected_loss, d.residual) == pytest.approx((0.5, 1.0, 1.5, 0.0))


# --------------------------------------------------------------------------- spec, command, bad input


def _raw(**settings: object) -> dict:
    return {"name": "bv", "data": {"name": "noisy_sine", "options": {"num_samples": 120}},
            "model": {"layers": [{"type": "Dense", "units": 4, "activation": "tanh"}, {"type": "Dense", "units": 1}]},
            "recipe": {**_FAST, "num_epochs": 1}, "bias_variance": settings}


def test_the_command_writes_one_point_per_capacity_value_and_a_report(tmp_path, capsys) -> None:
    spec = tmp_path / "bv.toml"
    import tomli_w

    spec.write_text(tomli_w.dumps(_raw(rounds=5, capacity="units", values=[1, 16])))
    main(["bias-variance", str(spec), "--rounds", "2", "--runs-dir", str(tmp_path / "runs"), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert [p["value"] for p in result["points"]] == [1, 16]
    assert all(p["rounds"] == 2 and p["noise"] == pytest.approx(0.09) for p in result["points"])
    assert result["noise_known"] is True
    stored = json.loads((tmp_path / "runs" / "bv" / "bias_variance.json").read_text())
    assert stored["points"] == result["points"]
    page = (tmp_path / "runs" / "bv" / "report.html").read_text()
    assert "Bias², variance and noise by capacity" in page and "data:image/png;base64," in page


@pytest.mark.parametrize("settings, message", [
    ({"capacity": "unit", "values": [1, 2]}, r"unknown capacity axis 'unit'\. Did you mean 'units'\?.*'l2'"),
    ({"rounds": 1}, r"rounds must be an int >= 2, got 1\. The variance is the spread"),
    ({"capacity": "units"}, r"bias_variance\.values is empty"),
    ({"capacity": "num_epochs", "values": [0.5]}, r"'num_epochs' takes whole numbers"),
    ({"roundz": 3}, r"bias_variance\.roundz is not a bias-variance setting\. Did you mean 'rounds'\?"),
])
def test_bad_bias_variance_settings_are_refused_in_one_paragraph(settings, message) -> None:
    with pytest.raises(InputError, match=message):
        parse_bias_variance(_raw(**settings))


def test_rounds_below_two_at_the_command_line_exits_2_and_writes_nothing(tmp_path, capsys) -> None:
    import tomli_w

    spec = tmp_path / "bv.toml"
    spec.write_text(tomli_w.dumps(_raw()))
    with pytest.raises(SystemExit) as stop:
        main(["bias-variance", str(spec), "--rounds", "1", "--runs-dir", str(tmp_path / "runs")])
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert "--rounds must be an int >= 2, got 1" in error and "Traceback" not in error
    assert not (tmp_path / "runs").exists()


def test_sharpness_command_on_a_folder_without_a_model_exits_2(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["sharpness", str(tmp_path)])
    assert stop.value.code == 2
    assert "holds no trained model to measure" in capsys.readouterr().err


def test_the_examples_validate() -> None:
    from pathlib import Path

    from trainlab.generalize.bias_variance import load_bias_variance
    from trainlab.study import load_study

    examples = Path(__file__).resolve().parents[1] / "examples"
    config = load_bias_variance(examples / "bias_variance.toml")
    assert (config.settings.capacity, config.settings.values, config.settings.rounds) == (
        "units", [1, 2, 4, 16, 64, 256], 30)
    study = load_study(examples / "batch_size.toml")
    assert [r.spec.recipe.batch_size for r in study.runs] == [16, 16, 64, 64, 256, 256, 1024, 1024]
    assert study.runs[-1].spec.recipe.optimizer["lr"] == pytest.approx(0.001 * (1024 / 32) ** 0.5)
    assert study.settings.sharpness
