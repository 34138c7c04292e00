"""What a Keras user writes every day, run with only the imports changed (issue 11).

Each test is a Keras habit, checked against what Keras 3 does: the saved model
comes back compiled, a learning-rate callback steers training, a frozen layer
stays frozen, class_weight weighs the loss as Keras's formula does, a generator
trains with steps_per_epoch, initial_epoch continues a fit.
"""

from __future__ import annotations

import io
import os
import shutil
import sys

import numpy as np
import pytest
import torch

import trainlab
from trainlab.callbacks import Callback, ModelCheckpoint
from trainlab.errors import InputError
from trainlab.layers import BatchNormalization, Dense
from trainlab.models import Sequential, load_model
from trainlab.optimizers import SGD, Adam


def classification_data(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int64")
    return x, y


def small_model(seed: int = 0) -> Sequential:
    torch.manual_seed(seed)
    model = Sequential([Dense(8, activation="relu", input_shape=(4,)), Dense(2, activation="softmax")])
    model.build()
    return model


# -- saving -------------------------------------------------------------------------------------------


def test_save_then_load_model_then_evaluate(tmp_path):
    x, y = classification_data()
    model = small_model()
    model.compile(optimizer=Adam(learning_rate=0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=0)
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0), abs=1e-6)
    assert np.allclose(loaded.predict(x), model.predict(x), atol=1e-6)
    assert float(loaded.optimizer.learning_rate) == pytest.approx(0.01)
    assert trainlab.load_model(tmp_path / "m.keras").get_config() == loaded.get_config()
    with pytest.raises(InputError, match="call model.compile"):
        load_model(tmp_path / "m.keras", compile=False).evaluate(x, y)


def test_a_keras_file_is_a_zip_of_json_and_safetensors(tmp_path):
    import zipfile

    model = small_model()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        assert sorted(archive.namelist()) == ["config.json", "metadata.json", "model.weights.safetensors"]


def test_save_weights_and_load_weights_and_h5_is_refused(tmp_path):
    x, y = classification_data()
    model, other = small_model(0), small_model(1)
    model.save_weights(tmp_path / "m.weights.safetensors")
    other.load_weights(tmp_path / "m.weights.safetensors")
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), other.get_weights()))
    with pytest.raises(InputError, match=r"HDF5 \(.h5\).*'m.weights.safetensors'"):
        model.save_weights(tmp_path / "m.weights.h5")
    with pytest.raises(InputError, match=r"'m.keras'"):
        model.save(tmp_path / "m.h5")
    with pytest.raises(InputError, match=r"'best.keras'.*'best.weights.safetensors'|"
                                         r"'best.weights.safetensors'.*'best.keras'"):
        ModelCheckpoint("best.h5")


def test_a_run_folder_loads_compiled(tmp_path):
    from trainlab.spec import parse_spec

    spec = parse_spec({"name": "iris", "data": {"name": "iris"},
                       "model": {"layers": [{"type": "Dense", "units": 8, "activation": "relu"},
                                            {"type": "Dense", "units": 3, "activation": "softmax"}]},
                       "recipe": {"num_epochs": 2, "seed": 0}})
    result = trainlab.run_spec(spec, runs_dir=tmp_path, verbose=0)
    assert result.run_dir is not None
    loaded = trainlab.load(result.run_dir)
    iris = trainlab.datasets.as_dataset("iris")
    loss, accuracy = loaded.evaluate(iris.x, iris.y, verbose=0)
    assert loss > 0 and 0 <= accuracy <= 1


def test_model_checkpoint_templates(tmp_path):
    x, y = classification_data()
    model = small_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=0, validation_split=0.25, callbacks=[
        ModelCheckpoint(str(tmp_path / "best.keras"), monitor="val_loss", save_best_only=True),
        ModelCheckpoint(str(tmp_path / "{epoch:02d}-{val_loss:.2f}.weights.safetensors"))])
    names = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))
    assert "best.keras" in names
    assert sum(n.startswith(("01-", "02-")) and n.endswith(".weights.safetensors") for n in names) == 2
    best = load_model(tmp_path / "best.keras")
    assert best.evaluate(x, y, verbose=0) > 0


# -- the optimizer ------------------------------------------------------------------------------------


class StopLearningAfterFirstEpoch(Callback):
    """The most common custom callback: it reads and sets self.model.optimizer.learning_rate."""

    def __init__(self) -> None:
        self.seen: list[float] = []
        self.weights: list[np.ndarray] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.seen.append(float(self.model.optimizer.learning_rate))
        if epoch == 1:
            self.model.optimizer.learning_rate = 0.0

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.weights.append(self.model.get_weights()[0])


def test_a_callback_sets_the_learning_rate_with_effect_on_training():
    x, y = classification_data()
    model = small_model()
    model.compile(optimizer=SGD(learning_rate=0.1), loss="sparse_categorical_crossentropy")
    assert float(model.optimizer.learning_rate) == pytest.approx(0.1)
    callback = StopLearningAfterFirstEpoch()
    history = model.fit(x, y, epochs=3, batch_size=16, verbose=0, seed=0, callbacks=[callback])
    assert callback.seen == pytest.approx([0.1, 0.1, 0.0])
    assert history.history["lr"] == pytest.approx([0.1, 0.0, 0.0])
    assert not np.array_equal(callback.weights[0], small_model().get_weights()[0])
    # lr 0 in epochs 2 and 3: plain SGD leaves the weights exactly as after epoch 1.
    assert np.array_equal(callback.weights[0], callback.weights[2])


def test_learning_rate_assign_works_as_in_keras():
    model = small_model()
    model.compile(optimizer={"name": "adam", "learning_rate": 1e-3}, loss="mse")
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    model.optimizer.learning_rate.assign(5e-4)
    assert float(model.optimizer.learning_rate) == pytest.approx(5e-4)


def test_learning_rate_is_a_spelling_of_lr_with_typo_suggestions_for_both():
    model = small_model()
    with pytest.raises(InputError, match="no setting 'learning_rat'.*Did you mean 'learning_rate'"):
        model.compile(optimizer={"name": "adam", "learning_rat": 1e-3}, loss="mse")
    with pytest.raises(InputError, match="no setting 'lrr'.*Did you mean 'lr'"):
        model.compile(optimizer={"name": "adam", "lrr": 1e-3}, loss="mse")
    with pytest.raises(InputError, match="both lr=.* and learning_rate="):
        model.compile(optimizer={"name": "adam", "lr": 1e-3, "learning_rate": 1e-3}, loss="mse")


def test_a_keras_adam_object_is_adam_with_kerass_epsilon():
    x, y = classification_data()
    a, b = small_model(), small_model()
    a.compile(optimizer=Adam(learning_rate=0.01), loss="sparse_categorical_crossentropy")
    b.compile(optimizer={"name": "adam", "lr": 0.01, "eps": 1e-7}, loss="sparse_categorical_crossentropy")
    a.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=0)
    b.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=0)
    assert all(np.array_equal(p, q) for p, q in zip(a.get_weights(), b.get_weights()))


# -- layers -------------------------------------------------------------------------------------------


def test_a_frozen_layer_stays_frozen():
    x, y = classification_data()
    torch.manual_seed(0)
    model = Sequential([Dense(8, activation="relu"), BatchNormalization(), Dense(2, activation="softmax")])
    model.layers[0].trainable = False  # before the layer is built: its weights are made frozen
    model.layers[1].trainable = False  # a frozen BatchNormalization keeps its moving statistics
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.build((4,))
    before = [layer.get_weights() for layer in model.layers]
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=0)
    after = [layer.get_weights() for layer in model.layers]
    assert all(np.array_equal(p, q) for p, q in zip(before[0], after[0]))
    assert all(np.array_equal(p, q) for p, q in zip(before[1], after[1]))
    assert not np.array_equal(before[2][0], after[2][0])
    model.layers[0].trainable = True
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, seed=0)
    assert not np.array_equal(after[0][0], model.layers[0].get_weights()[0])


def test_layer_names_get_layer_and_layer_weights():
    model = Sequential([Dense(8, input_shape=(4,)), Dense(8), Dense(2, name="out")])
    model.build()
    assert [layer.name for layer in model.layers] == ["dense", "dense_1", "out"]
    assert model.get_layer("dense_1") is model.layers[1]
    with pytest.raises(InputError, match="no layer named 'dense_2'.*Did you mean"):
        model.get_layer("dense_2")
    kernel, bias = model.get_layer("out").get_weights()
    assert kernel.shape == (2, 8) and bias.shape == (2,)
    model.get_layer("out").set_weights([np.ones_like(kernel), np.zeros_like(bias)])
    assert np.array_equal(model.get_layer("out").get_weights()[0], np.ones((2, 8)))
    with pytest.raises(InputError, match="'weight' has shape"):
        model.get_layer("out").set_weights([np.ones((8, 2)), bias])


# -- weights ------------------------------------------------------------------------------------------


def test_class_weight_weighs_the_loss_as_keras_computes_it():
    # Keras: loss = sum_i class_weight[y_i] * loss_i / batch_size ("sum_over_batch_size").
    x, y = classification_data(32)
    model = small_model()
    model.compile(optimizer=SGD(learning_rate=0.0), loss="sparse_categorical_crossentropy")
    probabilities = torch.as_tensor(model.predict(x))
    per_sample = -torch.log(probabilities[torch.arange(32), torch.as_tensor(y)])
    weights = torch.where(torch.as_tensor(y) == 1, 3.0, 0.5)
    expected = float((weights * per_sample).sum() / 32)
    history = model.fit(x, y, epochs=1, batch_size=32, verbose=0, seed=0, shuffle=False,  # type: ignore[call-arg]
                        class_weight={0: 0.5, 1: 3.0})
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-5)


# -- data and epochs ----------------------------------------------------------------------------------


def test_a_generator_with_steps_per_epoch_trains_as_the_arrays_in_order():
    x, y = classification_data()

    def batches():
        while True:
            for start in range(0, len(x), 16):
                yield x[start:start + 16], y[start:start + 16]

    a, b = small_model(), small_model()
    for model in (a, b):
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    a.fit(batches(), steps_per_epoch=4, epochs=3, verbose=0, seed=0)
    b.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0, seed=0)
    assert all(np.array_equal(p, q) for p, q in zip(a.get_weights(), b.get_weights()))
    history = a.fit(batches(), steps_per_epoch=4, epochs=1, verbose=0, seed=0,
                    validation_data=batches(), validation_steps=2)
    assert "val_loss" in history.history


def test_a_generator_that_reshuffles_each_epoch_streams_the_batches_it_gives():
    # Keras reads a generator while training: each epoch trains on that epoch's own batches.
    x, y = classification_data()
    orders = [np.random.default_rng(k).permutation(len(x)) for k in range(2)]

    def shuffled():
        for order in orders:
            for start in range(0, len(x), 16):
                yield x[order[start:start + 16]], y[order[start:start + 16]]

    streamed, by_hand = small_model(), small_model()
    for model in (streamed, by_hand):
        model.compile(optimizer=SGD(learning_rate=0.05), loss="sparse_categorical_crossentropy")
    history = streamed.fit(shuffled(), steps_per_epoch=4, epochs=2, verbose=0, seed=0)
    by_hand.fit(x[orders[0]], y[orders[0]], batch_size=16, epochs=1, shuffle=False, verbose=0, seed=0)
    by_hand.fit(x[orders[1]], y[orders[1]], batch_size=16, epochs=2, initial_epoch=1, shuffle=False, verbose=0,
                seed=0)
    assert history.epoch == [0, 1] and history.params["executor"] == "stream"
    assert all(np.allclose(p, q, atol=1e-6) for p, q in zip(streamed.get_weights(), by_hand.get_weights()))


def test_initial_epoch_continues_a_fit():
    x, y = classification_data()
    whole, split = small_model(), small_model()
    for model in (whole, split):
        model.compile(optimizer=SGD(learning_rate=0.05), loss="sparse_categorical_crossentropy")
    whole.fit(x, y, batch_size=16, epochs=5, shuffle=False, verbose=0, seed=0)
    split.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0, seed=0)
    history = split.fit(x, y, batch_size=16, epochs=5, initial_epoch=3, shuffle=False, verbose=0, seed=0)
    assert history.epoch == [3, 4]
    assert all(np.allclose(p, q, atol=1e-6) for p, q in zip(whole.get_weights(), split.get_weights()))


# -- the display --------------------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def fit_printing(verbose: int, stream: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(sys, "stdout", stream)
    monkeypatch.setattr(shutil, "get_terminal_size", lambda fallback=(80, 24): os.terminal_size((80, 24)))
    x, y = classification_data()
    model = small_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=8, verbose=verbose, seed=0, validation_split=0.25)
    monkeypatch.undo()
    return stream.getvalue()


def test_verbose_1_keeps_each_epoch_line_with_its_bar_within_80_columns(monkeypatch):
    screen = fit_printing(1, Terminal(), monkeypatch)
    kept = [part.split("\r")[-1] for part in screen.split("\n")]  # what stays on screen per line
    assert kept[0] == "Epoch 1/2"
    assert kept[1].startswith("6/6 " + "━" * 20) and "loss: " in kept[1] and "accuracy: " in kept[1]
    assert kept[2].lstrip().startswith("- ") and "val_loss: " in kept[2]
    assert kept[3] == "Epoch 2/2"
    assert all(len(line) <= 80 for line in kept)
    assert screen.count("\r") >= 2  # the bar was redrawn in place within the epoch
    assert "Scaling: none (Sequential.fit uses inputs as given, as Keras does)" in screen


def test_verbose_2_prints_one_line_per_epoch(monkeypatch):
    lines = fit_printing(2, io.StringIO(), monkeypatch).splitlines()
    assert [line.split(" - ")[0] for line in lines[:2]] == ["Epoch 1/2", "Epoch 2/2"]
    assert all("val_loss: " in line for line in lines[:2]) and lines[2].startswith("Scaling: ")
