"""Streamed batches (trainlab.engine.source): data that does not fit in memory (issues 11 and 12).

The claims: a DataLoader over a Dataset and a generator are read while training,
never gathered; for the same batches they give exactly the in-memory result;
workers change nothing; steps_per_epoch follows Keras 3 (one iterator continued
across epochs, for generators, DataLoaders and arrays); batch transforms apply to
streamed batches; a DataLoader run resumes exactly after a crash.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

import trainlab
from trainlab import engine
from trainlab.callbacks import Callback
from trainlab.engine import BatchSource, LoopConfig, StreamData, Technique
from trainlab.errors import InputError
from trainlab.layers import Dense
from trainlab.models import Sequential
from trainlab.optimizers import SGD


def data(n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=generator)
    return x, (x[:, 0] + x[:, 1] > 0).long()


class Rows(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """A map-style Dataset (not a TensorDataset) that counts how many rows were read."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y, self.reads = x, y, 0

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        self.reads += 1
        return self.x[i], self.y[i]


def model(seed: int = 0) -> Sequential:
    torch.manual_seed(seed)
    net = Sequential([Dense(8, activation="relu", input_shape=(4,)), Dense(2, activation="softmax")])
    net.build()
    net.compile(optimizer=SGD(learning_rate=0.1, momentum=0.9), loss="sparse_categorical_crossentropy",
                metrics=["accuracy"])
    return net


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


class ReadsAtBatchEnd(Callback):
    def __init__(self, rows: Rows) -> None:
        self.rows = rows
        self.seen: list[int] = []

    def on_batch_end(self, batch, logs=None):
        self.seen.append(self.rows.reads)


def test_a_dataloader_over_a_dataset_is_read_while_training_never_gathered():
    x, y = data()
    rows = Rows(x, y)
    reads = ReadsAtBatchEnd(rows)
    history = model().fit(DataLoader(rows, batch_size=8), epochs=2, verbose=0, seed=0, callbacks=[reads])
    # After the first batch only it and the next one (read ahead) were read; each epoch reads every row once.
    assert reads.seen[0] == 16
    assert rows.reads == 2 * 40
    assert history.params["executor"] == "stream" and history.params["steps"] == 5


def test_an_infinite_generator_draws_steps_per_epoch_batches_per_epoch():
    x, y = data()
    drawn = []

    def forever():
        k = 0
        while True:
            drawn.append(k)
            yield x[(8 * k) % 40:(8 * k) % 40 + 8], y[(8 * k) % 40:(8 * k) % 40 + 8]
            k += 1

    history = model().fit(forever(), steps_per_epoch=3, epochs=4, verbose=0, seed=0)
    assert len(drawn) == 12 and history.epoch == [0, 1, 2, 3]


@pytest.mark.parametrize("validation", [False, True])
def test_streamed_batches_give_exactly_the_in_memory_result(validation):
    x, y = data()
    streamed, in_memory = model(), model()
    val = {"validation_data": DataLoader(Rows(x[:12], y[:12]), batch_size=5)} if validation else {}
    val_arrays = {"validation_data": (x[:12], y[:12])} if validation else {}
    h1 = streamed.fit(DataLoader(Rows(x, y), batch_size=8, shuffle=False), epochs=3, verbose=0, seed=0, **val)
    h2 = in_memory.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, seed=0, **val_arrays)
    assert same_weights(streamed, in_memory)
    assert h1.history.keys() == h2.history.keys()
    for key in h1.history:
        np.testing.assert_allclose(h1.history[key], h2.history[key], rtol=1e-6, err_msg=key)
    loader = DataLoader(Rows(x, y), batch_size=7)
    assert streamed.evaluate(loader, verbose=0) == pytest.approx(in_memory.evaluate(x, y, verbose=0), rel=1e-6)
    np.testing.assert_allclose(streamed.predict(loader), in_memory.predict(x), rtol=1e-5, atol=1e-7)


def test_two_workers_give_the_same_weights_as_none():
    # Not shuffled: torch's multi-process iterator draws from a shared generator otherwise than the
    # single-process one, so a reshuffled second pass differs in PyTorch itself.
    x, y = data()
    results = []
    for workers in (0, 2):
        net = model()
        loader = DataLoader(Rows(x, y), batch_size=8, num_workers=workers,
                            multiprocessing_context="fork" if workers else None)
        net.fit(loader, epochs=2, verbose=0, seed=0, validation_data=loader)
        results.append(net)
    assert same_weights(*results)


def test_steps_per_epoch_continues_one_iterator_across_epochs_as_keras_does():
    # Keras 3's EpochIterator: 3 batches per pass and 2 steps per epoch -> epochs of 2, 1 (the pass
    # ends: "ran out of data"), then 2 from a new pass.
    loader = DataLoader(TensorDataset(torch.arange(10.0).reshape(10, 1), torch.zeros(10)), batch_size=4)
    source = BatchSource(loader, steps_per_epoch=2)
    with pytest.warns(UserWarning, match="ran out of data"):
        epochs = [[int(b[0][0, 0]) for b in source.epoch()] for _ in range(3)]
    assert epochs == [[0, 4], [8], [0, 4]]


class Recorder:
    """A batch transform that records the first input of each training batch (and changes nothing)."""

    def __init__(self) -> None:
        self.firsts: list[int] = []

    def __call__(self, x, y, *, generator):
        self.firsts.append(int(x[0, 0]))
        return x, y


def test_a_generator_continues_across_epochs_and_batch_transforms_see_each_streamed_batch():
    def numbered():
        k = 0
        while True:
            yield torch.full((4, 1), float(k)), torch.zeros(4)
            k += 1

    recorder = Recorder()
    history = engine.train(torch.nn.Linear(1, 1), StreamData(BatchSource(numbered(), steps_per_epoch=3)),
                           Technique(loss="mse", optimizer="sgd"),
                           LoopConfig(num_epochs=3, seed=0, batch_transforms=[recorder]))
    assert recorder.firsts == list(range(9))
    assert len(history.epoch) == 3


def test_a_generator_that_ends_stops_training_with_the_reason():
    x, y = data()

    def once():
        for start in range(0, 40, 8):
            yield x[start:start + 8], y[start:start + 8]

    history = model().fit(once(), steps_per_epoch=2, epochs=5, verbose=0, seed=0)
    assert history.epoch == [0, 1, 2]  # 2 + 2 + 1 batches, then nothing is left
    assert "ran out" in history.stop_reason
    with pytest.raises(InputError, match="gives one epoch of data"):
        model().fit(once(), epochs=2, verbose=0)


def test_arrays_with_steps_per_epoch_follow_keras():
    x, y = data()
    counts: list[int] = []

    class Count(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            counts.append(0)

        def on_batch_end(self, batch, logs=None):
            counts[-1] += 1

    # 5 batches of 8 in a pass, 2 per epoch: 2, 2, then the last batch of the pass alone (Keras warns).
    with pytest.warns(UserWarning, match="ran out of data"):
        model().fit(x, y, batch_size=8, steps_per_epoch=2, epochs=4, verbose=0, seed=0, callbacks=[Count()])
    assert counts == [2, 2, 1, 2]
    # Without batch_size, one pass takes steps_per_epoch batches: ceil(40 / 4) = 10 samples each.
    history = model().fit(x, y, steps_per_epoch=4, epochs=1, verbose=0, seed=0)
    assert history.params["batch_size"] == 10 and history.params["steps"] == 4
    # A whole pass per epoch (30 training rows: 4 batches) is the in-memory run, shuffled the same way.
    a, b = model(), model()
    a.fit(x, y, batch_size=8, steps_per_epoch=4, epochs=3, verbose=0, seed=1, validation_split=0.25)
    b.fit(x, y, batch_size=8, epochs=3, verbose=0, seed=1, validation_split=0.25)
    assert same_weights(a, b)
    # trainlab.fit reads in-memory data the same way (32 training rows after its 20 % split: 4 batches).
    c, d = model(), model()
    recipe = {"num_epochs": 2, "seed": 1, "batch_size": 8}
    hc = trainlab.fit(c, (x, y), recipe, steps_per_epoch=4)
    hd = trainlab.fit(d, (x, y), recipe)
    assert same_weights(c, d) and hc.history == hd.history


class Crash(Callback):
    def __init__(self, epoch: int) -> None:
        self.at = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.at:
            raise KeyboardInterrupt


def test_a_shuffling_dataloader_run_resumes_exactly_mid_pass(tmp_path):
    x, y = data()

    def loader():
        return DataLoader(Rows(x, y), batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(7))

    recipe = {"num_epochs": 5, "seed": 2, "optimizer": {"name": "adam", "lr": 0.01}, "schedule": "cosine"}

    def net():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))

    reference = net()
    expected = trainlab.fit(reference, loader(), recipe, steps_per_epoch=2, callbacks=[Crash(-1)])
    crashed = net()
    with pytest.raises(KeyboardInterrupt):  # epoch 1 ends with 4 of the pass's 5 batches read
        trainlab.fit(crashed, loader(), recipe, steps_per_epoch=2, checkpoint_dir=tmp_path, callbacks=[Crash(2)])
    resumed = net()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        history = trainlab.fit(resumed, loader(), recipe, steps_per_epoch=2, checkpoint_dir=tmp_path, resume=True,
                               callbacks=[Crash(-1)])
    assert history.params["resumed_from_epoch"] == 2
    assert history.history == expected.history
    assert same_weights(resumed, reference)


def test_trainlab_fit_streams_a_dataset_with_mixup_as_it_trains_the_tensors():
    x, y = data()
    recipe = {"num_epochs": 2, "seed": 0, "batch_size": 8, "shuffle": False, "mixup": {"alpha": 0.4},
              "early_stopping": {"monitor": "val_loss", "patience": 3}}
    streamed, in_memory = model(), model()
    h1 = trainlab.fit(streamed, Rows(x, y), recipe, validation_data=(x[:8], y[:8]))
    h2 = trainlab.fit(in_memory, (x, y), recipe, validation_data=(x[:8], y[:8]), scaling=None)
    assert same_weights(streamed, in_memory)
    np.testing.assert_allclose(h1.history["val_loss"], h2.history["val_loss"], rtol=1e-6)
    assert h1.params["scaling"].startswith("none")


def test_streamed_data_refuses_what_needs_memory():
    x, y = data()
    with pytest.raises(InputError, match="validation_split"):
        model().fit(DataLoader(Rows(x, y), batch_size=8), validation_split=0.2, verbose=0)
    with pytest.raises(InputError, match="in the batches"):
        model().fit(DataLoader(Rows(x, y), batch_size=8), sample_weight=np.ones(40), verbose=0)
    with pytest.raises(InputError, match="scaling"):
        trainlab.fit(model(), Rows(x, y), {"num_epochs": 1}, scaling="standardize")
    with pytest.raises(InputError, match="steps_per_epoch must be an int"):
        BatchSource([(x, y)], steps_per_epoch=0)


def test_gradient_hooks_and_divergence_detection_work_on_streamed_batches():
    x, y = data()
    calls = []
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 2)
    start = {k: v.clone() for k, v in net.state_dict().items()}

    def batches():
        while True:
            yield x[:8], y[:8]

    history = engine.train(net, StreamData(BatchSource(batches(), steps_per_epoch=4)),
                           Technique(loss="auto", optimizer={"name": "sgd", "lr": 1e4}),
                           LoopConfig(num_epochs=3, seed=0, gradient_hooks=[lambda params, run: calls.append(run)]))
    # The loss explodes within the first epoch: training stops at that batch and keeps the initial weights.
    assert "diverged" in history.stop_reason and "initial weights were kept" in history.stop_reason
    assert 1 < len(calls) <= 4
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in start.items())
