"""The one training loop: determinism, Keras-style History, hook order, stopping, data order."""

import numpy as np
import pytest
import torch
from torch import nn

import trainlab
from trainlab.callbacks import Callback, LambdaCallback
from trainlab.engine import LoopConfig, Technique, TrainData, train
from trainlab.errors import InputError
from trainlab.layers import BatchNormalization, Dense, Dropout
from trainlab.regularizers import L2


def iris_model(dropout=0.0):
    return trainlab.Sequential([Dense(16, activation="relu"), Dropout(dropout), BatchNormalization(),
                                Dense(3, activation="softmax")])


def weights_bytes(model):
    return [t.numpy().tobytes() for t in model.state_dict().values()]


def test_same_seed_gives_bit_identical_weights_and_another_seed_does_not():
    runs = []
    for seed in (3, 3, 4):
        model = iris_model(dropout=0.3)
        trainlab.fit(model, "iris", {"num_epochs": 3, "seed": seed, "batch_size": 8})
        runs.append(weights_bytes(model))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_fit_does_not_disturb_the_callers_random_state():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    trainlab.fit(iris_model(), "iris", {"num_epochs": 1, "seed": 0})
    assert torch.equal(torch.rand(3), expected)


def test_history_maps_keras_keys_to_per_epoch_lists():
    history = trainlab.fit(iris_model(), "iris", {"num_epochs": 4, "seed": 0})
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    assert all(len(v) == 4 for v in history.history.values())
    assert history.epoch == [0, 1, 2, 3]
    assert history.history["lr"] == [0.001] * 4
    assert history.seed == 0 and history.params["fused_loss"] is True


def test_hooks_run_in_keras_order():
    calls = []

    class Recorder(Callback):
        def on_train_begin(self, logs=None): calls.append("train_begin")
        def on_epoch_begin(self, epoch, logs=None): calls.append(f"epoch_begin {epoch}")
        def on_batch_begin(self, batch, logs=None): calls.append(f"batch_begin {batch}")
        def on_batch_end(self, batch, logs=None): calls.append(f"batch_end {batch}")
        def on_epoch_end(self, epoch, logs=None): calls.append(f"epoch_end {epoch} {'val_loss' in logs}")
        def on_train_end(self, logs=None): calls.append("train_end")

    model = trainlab.Sequential([Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.zeros((10, 3), dtype="float32")
    model.fit(x, np.zeros((10, 2), dtype="float32"), batch_size=8, epochs=2, verbose=0,
              validation_split=0.2, callbacks=Recorder(), seed=0)
    assert calls == ["train_begin",
                     "epoch_begin 0", "batch_begin 0", "batch_end 0", "epoch_end 0 True",
                     "epoch_begin 1", "batch_begin 0", "batch_end 0", "epoch_end 1 True",
                     "train_end"]


def test_setting_model_stop_training_stops_after_that_epoch():
    model = iris_model()

    def stop_at_two(epoch, logs):
        if epoch == 2:
            model.stop_training = True

    history = trainlab.fit(model, "iris", {"num_epochs": 10, "seed": 0},
                           callbacks=LambdaCallback(on_epoch_end=stop_at_two))
    assert len(history.history["loss"]) == 3


def test_train_end_runs_even_when_a_callback_raises():
    ended = []
    boom = LambdaCallback(on_epoch_end=lambda e, logs: (_ for _ in ()).throw(RuntimeError("boom")),
                          on_train_end=lambda logs: ended.append(True))
    with pytest.raises(RuntimeError, match="boom"):
        trainlab.fit(iris_model(), "iris", {"num_epochs": 3, "seed": 0}, callbacks=boom)
    assert ended == [True]


class Recording(nn.Module):
    """Identity-ish model that records which samples each training batch held."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1, 1))
        self.seen: list[list[int]] = []

    def forward(self, x):
        if self.training and x.shape[0] != 2:
            self.seen.append(x[:, 0].long().tolist())
        return x * self.w


def test_each_epoch_visits_every_sample_once_in_a_fresh_random_order():
    n, batch = 23, 5
    x = torch.arange(n, dtype=torch.float32).unsqueeze(1)
    model = Recording()
    train(model, TrainData(x, torch.zeros(n, 1)), Technique(loss="mse", optimizer="sgd"),
          LoopConfig(batch_size=batch, num_epochs=2, seed=0))
    per_epoch = len(model.seen) // 2
    assert per_epoch == 5 and [len(b) for b in model.seen[:5]] == [5, 5, 5, 5, 3]
    first = [i for b in model.seen[:per_epoch] for i in b]
    second = [i for b in model.seen[per_epoch:] for i in b]
    assert sorted(first) == list(range(n)) and sorted(second) == list(range(n))
    assert first != second and first != list(range(n))


def test_shuffle_false_keeps_the_data_order():
    n = 13  # last batch of 3: the recorder ignores the 2-sample shape probe
    x = torch.arange(n, dtype=torch.float32).unsqueeze(1)
    model = Recording()
    train(model, TrainData(x, torch.zeros(n, 1)), Technique(loss="mse", optimizer="sgd"),
          LoopConfig(batch_size=5, num_epochs=1, seed=0, shuffle=False))
    assert [i for b in model.seen for i in b] == list(range(n))


def test_validation_split_is_the_last_fraction_and_val_loss_uses_final_weights():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0], dtype="float32"))[:, None]
    model = trainlab.Sequential([Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(x, y, validation_split=0.2, epochs=3, batch_size=8, verbose=0, seed=0)
    assert history.history["val_loss"][-1] == pytest.approx(model.evaluate(x[40:], y[40:]), rel=1e-6)


def test_regularization_penalty_is_added_to_the_loss_and_reported_apart():
    model = trainlab.Sequential([Dense(8, activation="relu", kernel_regularizer=L2(0.01)),
                                 Dense(3, activation="softmax", kernel_regularizer="l2")])
    history = trainlab.fit(model, "iris", {"num_epochs": 2, "seed": 0})
    assert "penalty" in history.history
    assert all(p > 0 for p in history.history["penalty"])
    # After training, the penalty of the final weights equals the formula.
    expected = sum(0.01 * (layer.weight ** 2).sum() for layer in model.layers)
    assert model.penalty().item() == pytest.approx(expected.item(), rel=1e-6)


def test_a_diverging_run_stops_with_a_diagnosis():
    model = trainlab.Sequential([Dense(32, activation="relu"), Dense(1)])
    history = trainlab.fit(model, "diabetes", {"num_epochs": 20, "seed": 0, "loss": "mse",
                                               "optimizer": {"name": "sgd", "lr": 10.0}},
                           scaling=None)
    assert history.stop_reason is not None and "diverged" in history.stop_reason
    assert "learning rate" in history.stop_reason
    assert len(history.history["loss"]) < 20


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_cuda_device_without_cuda_is_a_clear_error():
    with pytest.raises(InputError, match="CUDA is not available"):
        trainlab.fit(iris_model(), "iris", {"num_epochs": 1, "device": "cuda"})


def test_fused_softmax_cross_entropy_stays_finite_on_huge_logits():
    model = trainlab.Sequential([Dense(3, activation="softmax", kernel_initializer={"name": "constant",
                                                                                      "value": 1e4})])
    history = trainlab.fit(model, "iris", {"num_epochs": 1, "seed": 0, "optimizer": {"name": "sgd", "lr": 1e-12}},
                           scaling=None)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("data, outputs, expected", [
    ("breast_cancer", 1, "binary_crossentropy"),
    ("breast_cancer", 2, "sparse_categorical_crossentropy"),
    ("iris", 3, "sparse_categorical_crossentropy"),
    ("diabetes", 1, "mse"),
])
def test_the_default_loss_fits_the_task_and_the_output_layer(data, outputs, expected):
    from trainlab.datasets import load
    from trainlab.engine import auto_loss

    dataset = load(data)
    assert auto_loss(dataset.task, dataset.y, outputs) == expected
    activation = None if expected == "mse" else ("sigmoid" if outputs == 1 else "softmax")
    model = trainlab.Sequential([Dense(8, activation="relu"), Dense(outputs, activation=activation)])
    history = trainlab.fit(model, data, {"num_epochs": 2, "seed": 0})
    assert np.isfinite(history.history["val_loss"]).all()


def test_mismatched_sample_counts_are_clear_errors():
    x, y = torch.zeros(10, 2), torch.zeros(10, 1)
    technique, config = Technique(loss="mse", optimizer="sgd"), LoopConfig(num_epochs=1, seed=0)
    with pytest.raises(InputError, match="x has 10 samples but y has 9"):
        train(nn.Linear(2, 1), TrainData(x, y[:9]), technique, config)
    with pytest.raises(InputError, match="validation x and y .* got 4 and 3"):
        train(nn.Linear(2, 1), TrainData(x, y, x[:4], y[:3]), technique, config)


@pytest.mark.parametrize("optimizer", [{"name": "adam", "lr": 0.01}, {"name": "adamw", "lr": 0.01, "weight_decay": 0.1},
                                       {"name": "nesterov", "lr": 0.05}])
def test_the_solo_step_gives_exactly_what_optimizer_step_gives(optimizer):
    # From its second step the solo executor makes the functional call `step()` makes, with its
    # lists bound once; a step hook sends every step through `step()` itself: the same bits.
    import trainlab
    from trainlab.layers import Dense

    def run():
        model = trainlab.Sequential([Dense(16, activation="relu"), Dense(3, activation="softmax")])
        trainlab.fit(model, "iris", {"optimizer": optimizer, "batch_size": 16, "num_epochs": 3, "seed": 0,
                                     "schedule": "cosine"})
        return model

    fast = run()
    calls = []
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    handle = register_optimizer_step_pre_hook(lambda opt, args, kwargs: calls.append(1))
    try:
        plain = run()
    finally:
        handle.remove()
    assert len(calls) == 3 * 8  # every step went through step(): 120 training rows, batches of 16
    for a, b in zip(fast.state_dict().values(), plain.state_dict().values(), strict=True):
        assert torch.equal(a, b)
