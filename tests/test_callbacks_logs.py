"""CSVLogger, TensorBoard and TerminateOnNaN: what they write (read back and compared with the
run's History) and where TerminateOnNaN stops."""

import csv
import sys

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

import trainlab
from trainlab.callbacks import Callback, CallbackList, LambdaCallback, RunState
from trainlab.callbacks.logs import CSVLogger, TensorBoard, TerminateOnNaN
from trainlab.errors import InputError
from trainlab.layers import Dense, Dropout


def iris_model():
    return trainlab.Sequential([Dense(8, activation="relu"), Dropout(0.2), Dense(3, activation="softmax")])


def iris_fit(callbacks, *, num_epochs=3, model=None):
    model = model if model is not None else iris_model()
    recipe = {"num_epochs": num_epochs, "seed": 0, "batch_size": 32, "optimizer": {"name": "sgd", "lr": 0.1}}
    return model, trainlab.fit(model, "iris", recipe, callbacks=callbacks)


def read_csv(path, separator=","):
    with open(path, newline="") as f:
        return list(csv.reader(f, delimiter=separator))


# -- CSVLogger ------------------------------------------------------------------------------------

def test_csv_logger_writes_one_row_per_epoch_equal_to_the_history(tmp_path):
    path = tmp_path / "log.csv"
    _, history = iris_fit([CSVLogger(path)])
    header, *rows = read_csv(path)
    keys = sorted(history.history)
    assert header == ["epoch", *keys] == ["epoch", "accuracy", "loss", "lr", "val_accuracy", "val_loss"]
    assert [int(r[0]) for r in rows] == [0, 1, 2]
    for column, key in enumerate(keys, start=1):
        # full precision: the floats read back are the history's, bit for bit
        assert [float(r[column]) for r in rows] == history.history[key]


def test_csv_logger_flushes_each_epoch_so_a_killed_run_keeps_its_rows(tmp_path):
    path = tmp_path / "log.csv"
    seen = []
    # runs after the logger, while the file is still open: what is on disk now survives a kill
    peek = LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(len(read_csv(path))))
    iris_fit([CSVLogger(path), peek])
    assert seen == [2, 3, 4]  # header + one row per finished epoch


def test_csv_logger_append_continues_the_file_under_one_header(tmp_path):
    path = tmp_path / "log.csv"
    iris_fit([CSVLogger(path)], num_epochs=2)
    iris_fit([CSVLogger(path, append=True)], num_epochs=3)
    header, *rows = read_csv(path)
    assert header[0] == "epoch"
    assert [r[0] for r in rows] == ["0", "1", "0", "1", "2"]
    assert all(len(r) == len(header) for r in rows)


def test_csv_logger_without_append_starts_the_file_over(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("old,content\n1,2\n")
    iris_fit([CSVLogger(path)], num_epochs=1)
    header, *rows = read_csv(path)
    assert header[:2] == ["epoch", "accuracy"] and len(rows) == 1


def test_csv_logger_append_to_a_file_with_other_columns_follows_the_file(tmp_path):
    path = tmp_path / "nested" / "log.csv"
    path.parent.mkdir()
    path.write_text("epoch;loss;old_metric\n0;9.0;1.0\n")
    logger = CSVLogger(path, separator=";", append=True)
    with pytest.warns(UserWarning, match=r"columns \(epoch, loss, old_metric\) differ from this run's"):
        _, history = iris_fit([logger], num_epochs=2)
    assert read_csv(path, ";") == [["epoch", "loss", "old_metric"], ["0", "9.0", "1.0"],
                                   ["0", repr(history.history["loss"][0]), "NA"],
                                   ["1", repr(history.history["loss"][1]), "NA"]]


def test_csv_logger_uses_the_separator_and_creates_the_folder(tmp_path):
    path = tmp_path / "a" / "b" / "log.tsv"
    _, history = iris_fit([CSVLogger(path, separator="\t")], num_epochs=1)
    header, row = read_csv(path, "\t")
    assert header == ["epoch", *sorted(history.history)]
    assert float(row[header.index("val_loss")]) == history.history["val_loss"][0]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(filename="x.csv", separator=",,"), "CSVLogger.separator must be one character such as ',' or "
                                                 "';', got ',,'"),
        (dict(filename=3), "CSVLogger.filename must be a path, got int 3"),
        (dict(filename="x.csv", append="yes"), "CSVLogger.append must be True or False, got 'yes'"),
    ],
)
def test_csv_logger_rejects_bad_settings(kwargs, message):
    with pytest.raises(InputError, match=message):
        CSVLogger(**kwargs)


# -- TensorBoard ----------------------------------------------------------------------------------

def events(folder):
    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0})
    accumulator.Reload()
    return accumulator


def test_tensorboard_writes_every_epoch_log_as_a_scalar_equal_to_the_history(tmp_path):
    _, history = iris_fit([TensorBoard(tmp_path)])
    h = history.history
    train, validation = events(tmp_path / "train"), events(tmp_path / "validation")
    assert sorted(train.Tags()["scalars"]) == ["epoch_accuracy", "epoch_loss", "epoch_lr"]
    assert sorted(validation.Tags()["scalars"]) == ["epoch_accuracy", "epoch_loss"]
    expected = {("train", "loss"): h["loss"], ("train", "accuracy"): h["accuracy"], ("train", "lr"): h["lr"],
                ("validation", "loss"): h["val_loss"], ("validation", "accuracy"): h["val_accuracy"]}
    for (part, key), values in expected.items():
        written = (train if part == "train" else validation).Scalars(f"epoch_{key}")
        assert [e.step for e in written] == [0, 1, 2]
        # event files store scalars as float32
        assert [e.value for e in written] == [float(np.float32(v)) for v in values]


def test_tensorboard_histograms_every_n_epochs_hold_the_weights_and_last_gradients(tmp_path):
    model, _ = iris_fit([TensorBoard(tmp_path, histogram_freq=2)], num_epochs=5)
    train = events(tmp_path / "train")
    names = [name for name, _ in model.named_parameters()]
    assert sorted(train.Tags()["histograms"]) == sorted(
        [f"{n}/histogram" for n in names] + [f"{n}/gradient" for n in names])
    for name, param in model.named_parameters():
        weights, grads = train.Histograms(f"{name}/histogram"), train.Histograms(f"{name}/gradient")
        assert [e.step for e in weights] == [e.step for e in grads] == [0, 2, 4]
        # epoch 4 is the last: its histograms describe the final weights and the gradients the loop
        # left on them (those of the last batch)
        for event, tensor in ((weights[-1], param.detach()), (grads[-1], param.grad)):
            value = event.histogram_value
            assert value.num == tensor.numel()
            assert value.min == pytest.approx(tensor.min().item(), rel=1e-6)
            assert value.max == pytest.approx(tensor.max().item(), rel=1e-6)
            assert value.sum == pytest.approx(tensor.double().sum().item(), rel=1e-5, abs=1e-9)


def test_tensorboard_writes_the_batch_loss_every_k_steps(tmp_path):
    batch_losses = []

    class Record(Callback):
        def on_batch_end(self, batch, logs=None):
            batch_losses.append(float(logs["loss"]))

    _, history = iris_fit([TensorBoard(tmp_path, update_freq=2), Record()], num_epochs=2)
    steps_per_epoch = history.params["steps"]  # 120 training samples / 32 -> 4
    assert steps_per_epoch == 4
    written = events(tmp_path / "train").Scalars("batch_loss")
    assert [e.step for e in written] == [2, 4, 6, 8]  # steps done, across epochs
    assert [e.value for e in written] == [float(np.float32(batch_losses[s - 1])) for s in (2, 4, 6, 8)]


def test_tensorboard_events_can_be_read_while_the_run_goes_on(tmp_path):
    seen = []
    peek = LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(
        [e.step for e in events(tmp_path / "train").Scalars("epoch_loss")]))
    iris_fit([TensorBoard(tmp_path), peek], num_epochs=2)
    assert seen == [[0], [0, 1]]


def test_tensorboard_graph_and_histograms_leave_the_run_bit_identical(tmp_path):
    # the graph is traced in eval mode inside a forked RNG: dropout draws and weights are unchanged
    logged, _ = iris_fit([TensorBoard(tmp_path, histogram_freq=1, write_graph=True, update_freq="batch")])
    plain, _ = iris_fit([])
    for a, b in zip(logged.state_dict().values(), plain.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert events(tmp_path / "train").Tags()["graph"] is True
    assert logged.training  # left in training mode after tracing


def test_tensorboard_can_log_a_second_fit(tmp_path):
    board = TensorBoard(tmp_path)
    model, _ = iris_fit([board], num_epochs=1)
    iris_fit([board], num_epochs=2, model=model)
    assert [e.step for e in events(tmp_path / "train").Scalars("epoch_loss")] == [0, 0, 1]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(histogram_freq=-1), "TensorBoard.histogram_freq must be an int >= 0, got -1"),
        (dict(update_freq="epochs"), "TensorBoard.update_freq must be one of 'epoch', 'batch', got 'epochs'. "
                                     "Did you mean 'epoch'"),
        (dict(update_freq=0), "TensorBoard.update_freq must be an int >= 1, got 0"),
        (dict(write_graph="yes"), "TensorBoard.write_graph must be True or False, got 'yes'"),
        (dict(log_dir=None), "TensorBoard.log_dir must be a path, got NoneType None"),
    ],
)
def test_tensorboard_rejects_bad_settings(kwargs, message):
    with pytest.raises(InputError, match=message):
        TensorBoard(**kwargs)


def test_tensorboard_without_the_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import now raises ImportError
    install = r"needs the tensorboard package.*pip install 'trainlab\[tensorboard\]'"
    with pytest.raises(InputError, match=install):
        TensorBoard("logs")


# -- TerminateOnNaN -------------------------------------------------------------------------------

class BreaksAtCall(nn.Module):
    """A linear classifier whose output turns NaN at its `at`-th training forward (from 1)."""

    def __init__(self, at):
        super().__init__()
        self.linear = nn.Linear(4, 3)
        self.at, self.calls = at, 0

    def forward(self, x):
        out = self.linear(x)
        if self.training:
            self.calls += 1
            if self.calls == self.at:
                out = out * float("nan")
        return out


@pytest.mark.parametrize(
    "at, reason",
    [
        # 120 training samples in batches of 32: 4 steps per epoch
        (3, "the loss became nan at batch 3/4 of epoch 1 (step 3)"),
        (6, "the loss became nan at batch 2/4 of epoch 2 (step 6)"),
    ],
)
def test_terminate_on_nan_names_the_first_bad_batch_and_stops_after_that_epoch(at, reason):
    history = trainlab.fit(BreaksAtCall(at), "iris", {"num_epochs": 5, "seed": 0, "batch_size": 32},
                           callbacks=[TerminateOnNaN()])
    assert history.stop_reason == reason + "; training stops after this batch"  # issue 9: Keras 3 stops mid-epoch
    assert len(history.history["loss"]) == (at - 1) // 4 + 1


def test_the_loop_alone_stops_on_a_nan_epoch_without_naming_the_batch():
    history = trainlab.fit(BreaksAtCall(3), "iris", {"num_epochs": 5, "seed": 0, "batch_size": 32})
    assert history.stop_reason.startswith("training diverged: the loss became nan")
    assert len(history.history["loss"]) == 1


class Unreadable:
    def __float__(self):
        raise AssertionError("TerminateOnNaN read a loss after it had asked to stop")


def test_terminate_on_nan_checks_inf_and_reads_nothing_after_stopping():
    model = nn.Linear(1, 1)
    run = RunState(model=model, num_epochs=2, steps_per_epoch=4, epoch=1, step=4)
    callbacks = CallbackList([TerminateOnNaN()], model=model, run=run, params={})
    callbacks.on_train_begin({})
    callbacks.on_batch_end(0, {"loss": torch.tensor(0.5)})
    callbacks.on_batch_end(1, {"size": 32})  # no loss: nothing to check
    assert run.stop_reason is None and not getattr(model, "stop_training", False)
    callbacks.on_batch_end(2, {"loss": torch.tensor(float("-inf"))})
    callbacks.on_batch_end(3, {"loss": Unreadable()})
    assert run.stop_requested is True and not hasattr(model, "stop_training")  # issue 9: no writes on the module
    assert run.stop_reason.startswith("the loss became -inf at batch 3/4 of epoch 2 (step 7)")
