"""The doctor's statistics and verdicts: each planted problem fires its verdict, a healthy run is called healthy.

Planted problems (the course notes' list), each over several seeds, on the
digits images:

- a deep sigmoid net with N(0, 1) weights: saturated units and vanishing gradients;
- SGD at a far too high lr: divergence (lr too high);
- SGD at lr 1e-5: no progress (lr too low);
- ReLU layers with a large negative bias: dead units, cause bias/initialization;
  and with a huge lr: dead units, cause learning rate;
- a tiny training set with a big net: overfitting.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

import trainlab
from trainlab.api import prepare
from trainlab.datasets import as_dataset
from trainlab.diagnose import TrainingStatistics, Verdict, baseline_loss, diagnose, read_statistics
from trainlab.errors import InputError


def dense(units, activation, **settings):
    return {"type": "Dense", "units": units, "activation": activation, **settings}


@pytest.fixture(scope="module")
def digits():
    return prepare(as_dataset("digits"), validation_split=0.2, seed=0).data


def judge(digits, layers, recipe, *, rows=None, val_rows=None):
    x, y = (digits.x, digits.y) if rows is None else (digits.x[:rows], digits.y[:rows])
    stats = TrainingStatistics(probe=x[:256])
    history = trainlab.fit(trainlab.Sequential(layers), (x, y), recipe, scaling=None, callbacks=stats,
                           validation_data=(digits.x_val[:val_rows], digits.y_val[:val_rows]))
    verdicts = diagnose(history.history, stats.records, stop_reason=history.stop_reason,
                        baseline_loss=baseline_loss(y, None, "classification"))
    return {v.name: v for v in verdicts}


SEEDS = [0, 1, 2]


# ----------------------------------------------------------------------------- planted problems


@pytest.mark.parametrize("seed", SEEDS)
def test_deep_sigmoid_with_standard_normal_init_saturates_and_vanishes(digits, seed):
    layers = [dense(64, "sigmoid", kernel_initializer={"name": "normal", "std": 1.0}) for _ in range(8)]
    found = judge(digits, [*layers, dense(10, "softmax")],
                  {"optimizer": {"name": "sgd", "lr": 0.1}, "num_epochs": 1, "seed": seed}, rows=512)
    saturated, vanishing = found["saturated_units"], found["vanishing_gradients"]
    assert saturated.evidence["at_start"] and saturated.evidence["saturated_fraction"] > 0.25
    assert saturated.technique == "glorot_normal"
    assert vanishing.evidence["relative_grad_ratio"] < 0.02 and vanishing.layer == "dense"
    assert "healthy" not in found


@pytest.mark.parametrize("seed", SEEDS)
def test_sgd_at_a_far_too_high_lr_is_called_divergence(digits, seed):
    layers = [dense(64, "relu", kernel_initializer="he_normal"), dense(10, "softmax")]
    found = judge(digits, layers, {"optimizer": {"name": "sgd", "lr": 10.0}, "num_epochs": 2, "seed": seed}, rows=512)
    verdict = found["lr_too_high"]
    assert verdict.severity == "error" and verdict.technique == "lower_lr"
    assert "diverged" in verdict.evidence["stop_reason"]


@pytest.mark.parametrize("seed", SEEDS)
def test_sgd_at_lr_1e_5_is_called_too_low(digits, seed):
    layers = [dense(64, "relu", kernel_initializer="he_normal"), dense(10, "softmax")]
    found = judge(digits, layers, {"optimizer": {"name": "sgd", "lr": 1e-5}, "num_epochs": 2, "seed": seed}, rows=512)
    verdict = found["lr_too_low"]
    assert verdict.evidence["median_update_ratio"] < 1e-4 and verdict.technique == "higher_lr"
    assert "lr_too_high" not in found and "healthy" not in found


@pytest.mark.parametrize("seed", SEEDS)
def test_a_large_negative_bias_kills_relus_from_the_start(digits, seed):
    layers = [dense(64, "relu", kernel_initializer="he_normal", bias_initializer={"name": "constant", "value": -3.0})
              for _ in range(2)]
    found = judge(digits, [*layers, dense(10, "softmax")],
                  {"optimizer": {"name": "adam", "lr": 0.001}, "num_epochs": 1, "seed": seed}, rows=512)
    verdict = found["dead_relus"]
    assert verdict.evidence["dead_fraction"] > 0.3 and verdict.evidence["dead_at_start"] > 0.3
    assert "bias or initialization" in verdict.summary and verdict.technique == "zero_bias"


@pytest.mark.parametrize("seed", SEEDS)
def test_a_huge_lr_kills_relus_during_training(digits, seed):
    layers = [dense(64, "relu", kernel_initializer="he_normal") for _ in range(3)]
    found = judge(digits, [*layers, dense(10, "softmax")],
                  {"optimizer": {"name": "adam", "lr": 0.1}, "num_epochs": 2, "seed": seed,
                   "divergence_factor": None}, rows=512)
    verdict = found["dead_relus"]
    assert verdict.evidence["dead_fraction"] > 0.3 and verdict.evidence["dead_at_start"] < 0.3
    assert "learning rate" in verdict.summary and verdict.technique == "lower_lr"


@pytest.mark.parametrize("seed", SEEDS)
def test_a_tiny_training_set_with_a_big_net_overfits(digits, seed):
    layers = [dense(128, "relu", kernel_initializer="he_normal") for _ in range(2)]
    found = judge(digits, [*layers, dense(10, "softmax")],
                  {"optimizer": {"name": "adam", "lr": 0.01}, "num_epochs": 15, "batch_size": 8, "seed": seed},
                  rows=40, val_rows=150)
    verdict = found["overfitting"]
    assert verdict.evidence["gap"] > 0.1 * verdict.evidence["reference_loss"]
    assert verdict.evidence["loss_last"] < verdict.evidence["loss_at_best"]
    assert verdict.technique == "early_stopping" and set(found) == {"overfitting"}


@pytest.mark.parametrize("seed", SEEDS)
def test_a_healthy_relu_mlp_is_called_healthy(digits, seed):
    layers = [dense(64, "relu", kernel_initializer="he_normal"), dense(64, "relu", kernel_initializer="he_normal")]
    found = judge(digits, [*layers, dense(10, "softmax")],
                  {"optimizer": {"name": "adam", "lr": 0.001}, "num_epochs": 4, "seed": seed}, rows=720)
    assert list(found) == ["healthy"], {k: v.summary for k, v in found.items()}
    assert found["healthy"].severity == "ok"


# ----------------------------------------------------------------------------- the statistics themselves


def tiny_model(weight, bias, activation):
    model = trainlab.Sequential([{"type": "Dense", "units": weight.shape[0], "activation": activation},
                                 {"type": "Dense", "units": 2, "activation": "softmax"}])
    model.build((weight.shape[1],))
    with torch.no_grad():
        model.layers[0].weight.copy_(weight)
        model.layers[0].bias.copy_(bias)
    return model


def test_dead_fraction_counts_units_zero_on_every_probe_sample():
    # unit 0 is positive for x > 0, unit 1 never (bias -10), unit 2 always (bias +10), unit 3 is never positive
    weight = torch.tensor([[1.0], [1.0], [1.0], [-1.0]])
    bias = torch.tensor([0.0, -10.0, 10.0, -5.0])
    model = tiny_model(weight, bias, "relu")
    x = torch.linspace(-1, 1, 20).unsqueeze(1)
    stats = TrainingStatistics(probe=x, grad_batches=1)
    trainlab.fit(model, (x, (x[:, 0] > 0).long()), {"optimizer": {"name": "sgd", "lr": 1e-9}, "num_epochs": 1},
                 validation_split=None, scaling=None, callbacks=stats)
    layer = stats.records[0]["layers"][0]
    assert layer["kind"] == "relu" and layer["dead"] == pytest.approx(0.5)  # units 1 and 3 of 4
    assert layer["range"][0] == 0.0


def test_saturated_fraction_and_the_tanh_histogram_range():
    weight = torch.tensor([[100.0], [0.001]])
    model = tiny_model(weight, torch.zeros(2), "tanh")
    x = torch.tensor([[-1.0], [-0.5], [0.5], [1.0]])
    stats = TrainingStatistics(probe=x, bins=10)
    trainlab.fit(model, (x, torch.tensor([0, 0, 1, 1])), {"optimizer": {"name": "sgd", "lr": 1e-9}, "num_epochs": 1},
                 validation_split=None, scaling=None, callbacks=stats)
    layer = stats.records[0]["layers"][0]
    # the first unit is at +-1 on every sample (saturated), the second near 0 (not): half the outputs
    assert layer["saturated"] == pytest.approx(0.5) and "dead" not in layer
    assert layer["range"] == [-1.0, 1.0] and sum(layer["hist"]) == 8
    outputs = torch.tanh(x @ weight.T).flatten()
    expected = torch.histc(outputs, bins=10, min=-1, max=1)
    assert layer["hist"] == [int(c) for c in expected.tolist()]


def test_gradient_norms_and_update_ratio_match_the_hand_computed_sgd_step():
    torch.manual_seed(0)
    x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    model = trainlab.Sequential([{"type": "Dense", "units": 4, "activation": "tanh"},
                                 {"type": "Dense", "units": 2, "activation": "softmax"}])
    model.build((3,))
    start = {k: v.clone() for k, v in model.state_dict().items()}
    stats = TrainingStatistics(probe=x, steps=[0])
    trainlab.fit(model, (x, y), {"optimizer": {"name": "sgd", "lr": 0.5}, "num_epochs": 1, "batch_size": 16,
                                 "shuffle": False}, validation_split=None, scaling=None, callbacks=stats)
    # The oracle: the same loss's gradient by torch.autograd on the initial weights.
    reference = trainlab.Sequential.from_config(model.get_config())
    reference.load_state_dict(start)
    logits = reference.forward_logits(x)
    loss = nn.functional.cross_entropy(logits, y)
    params = [reference.layers[0].weight, reference.layers[0].bias, reference.layers[1].weight,
              reference.layers[1].bias]
    grads = torch.autograd.grad(loss, params)
    step = next(r for r in stats.records if r["moment"] == "step")
    first, last = step["grads"]
    assert first["grad_norm"] == pytest.approx(math.hypot(float(grads[0].norm()), float(grads[1].norm())), rel=1e-4)
    assert last["grad_norm"] == pytest.approx(math.hypot(float(grads[2].norm()), float(grads[3].norm())), rel=1e-4)
    # SGD moves W by lr * grad: the update ratio is lr * ||grad W|| / ||W||
    expected = 0.5 * grads[0].norm() / start["layers.0.weight"].norm()
    assert first["update_ratio"] == pytest.approx(float(expected), rel=1e-4)
    assert step["grad_ratio"] == pytest.approx(first["grad_norm"] / last["grad_norm"])


def test_statistics_change_nothing_and_their_hooks_are_removed(tmp_path):
    def train(callbacks):
        model = trainlab.Sequential([{"type": "Dense", "units": 8, "activation": "relu"},
                                     {"type": "Dropout", "rate": 0.3},
                                     {"type": "Dense", "units": 3, "activation": "softmax"}])
        trainlab.fit(model, "iris", {"num_epochs": 3, "seed": 0}, callbacks=callbacks)
        return model

    stats = TrainingStatistics(epochs=[0, 2], path=tmp_path / "statistics.jsonl")
    with_stats, without = train([stats]), train([])
    for (name, a), (_, b) in zip(with_stats.state_dict().items(), without.state_dict().items()):
        assert torch.equal(a, b), name
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in with_stats.modules())
    # the first training batch is the probe when none is given; records at the start and after epochs 1 and 3
    assert [r["epoch"] for r in stats.records] == [-1, 0, 2]
    assert read_statistics(tmp_path / "statistics.jsonl") == json.loads(json.dumps(stats.records))
    assert stats.records[1]["grads"] and not stats.records[0]["grads"]


def test_headline_numbers_go_into_the_history_once_per_epoch():
    model = trainlab.Sequential([{"type": "Dense", "units": 8, "activation": "relu"},
                                 {"type": "Dense", "units": 3, "activation": "softmax"}])
    stats = TrainingStatistics(epochs=[1])
    history = trainlab.fit(model, "iris", {"num_epochs": 3, "seed": 0}, callbacks=stats)
    dead = history.history["max_dead_fraction"]
    assert len(dead) == 3 and math.isnan(dead[0]) and math.isnan(dead[2])
    assert dead[1] == max(layer["dead"] for layer in stats.records[-1]["layers"])
    assert history.history["grad_ratio"][1] == stats.records[-1]["grad_ratio"]
    assert "max_saturated_fraction" not in history.history  # no sigmoid or tanh layer


def test_bad_statistics_settings_are_input_errors():
    with pytest.raises(InputError, match="probe must be a torch.Tensor"):
        TrainingStatistics(probe=[[1.0]])
    with pytest.raises(InputError, match="epochs"):
        TrainingStatistics(epochs="all")
    with pytest.raises(InputError, match="bins"):
        TrainingStatistics(bins=1)


# ----------------------------------------------------------------------------- verdicts from scripted histories


def test_verdicts_are_data_with_evidence_threshold_and_a_catalog_fix():
    history = {"loss": [2.0, 0.8, 0.5, 0.3, 0.2, 0.1, 0.05], "val_loss": [1.9, 0.9, 0.7, 0.9, 1.1, 1.3, 1.5]}
    [verdict] = diagnose(history, baseline_loss=2.3)
    assert verdict.name == "overfitting" and verdict.epoch == 2
    assert verdict.evidence["val_loss_best"] == 0.7 and verdict.evidence["val_loss_last"] == 1.5
    assert "10%" in verdict.threshold and verdict.technique == "early_stopping"
    assert Verdict.from_dict(json.loads(json.dumps(verdict.to_dict()))) == verdict


def test_a_loss_spike_is_called_lr_too_high():
    [verdict] = diagnose({"loss": [2.0, 1.0, 0.6, 1.4, 0.5]}, baseline_loss=2.3)
    assert verdict.name == "lr_too_high" and verdict.epoch == 3 and verdict.evidence["rise"] == pytest.approx(0.8)


def test_activation_std_collapsing_with_depth_is_called_bad_initialization():
    layers = [{"name": f"dense_{i}", "kind": "tanh", "std": 0.5 * 0.3 ** i, "saturated": 0.0} for i in range(4)]
    found = {v.name: v for v in diagnose({"loss": [1.0, 0.5, 0.3]}, [{"epoch": -1, "layers": layers, "grads": []}])}
    verdict = found["bad_initialization"]
    assert verdict.evidence["ratio"] == pytest.approx(0.3 ** 3) and verdict.technique == "glorot_normal"


def test_any_torch_module_gets_statistics_named_by_module_path():
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 8), nn.LeakyReLU(0.1), nn.Linear(8, 3))
    stats = TrainingStatistics(grad_batches=2)
    trainlab.fit(model, "iris", {"num_epochs": 1, "seed": 0, "loss": "sparse_categorical_crossentropy"},
                 callbacks=stats)
    start, end = stats.records
    assert [(layer["name"], layer["kind"]) for layer in start["layers"]] == [("1", "tanh"), ("3", "leaky_relu")]
    assert start["probe_size"] == 32  # the first training batch
    leaky = end["layers"][1]
    assert leaky["range"][0] < 0 < leaky["range"][1]  # negative outputs are inside the histogram's range
    assert [g["name"] for g in end["grads"]] == ["0", "2", "4"]
