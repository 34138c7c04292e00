"""EarlyStopping and the callback machinery: each decision at exactly the epoch Keras 3 makes it.

Expected epochs are derived by hand from Keras 3's EarlyStopping rules: each
monitored epoch increments `wait`; an improvement (beyond min_delta) resets it
(only if it also beats `baseline`) and returns; otherwise training stops when
`wait >= patience` and `epoch > 0`.
"""

import pytest
import torch
from torch import nn

from trainlab.callbacks import Callback, CallbackList, EarlyStopping, LambdaCallback, RunState, drive_epochs
from trainlab.errors import InputError


@pytest.mark.parametrize(
    "kwargs, values, expected_stop",
    [
        # patience 3: best at epoch 1, three epochs without improvement -> stop at epoch 4
        (dict(monitor="loss", patience=3), [1.0, 0.9, 0.95, 0.96, 0.97, 0.5], 4),
        # patience 0 stops at the first epoch without improvement (never at epoch 0)
        (dict(monitor="loss", patience=0), [1.0, 1.1, 0.5], 1),
        (dict(monitor="loss", patience=0), [1.0, 0.9, 0.8, 0.8], 3),
        # min_delta: 0.95 and 0.92 are not better than 1.0 by more than 0.1
        (dict(monitor="val_loss", patience=2, min_delta=0.1), [1.0, 0.95, 0.92, 0.5], 2),
        # a negative min_delta is taken as its absolute value, as in Keras
        (dict(monitor="val_loss", patience=2, min_delta=-0.1), [1.0, 0.95, 0.92, 0.5], 2),
        # max mode picked automatically for accuracy
        (dict(monitor="val_accuracy", patience=2), [0.5, 0.6, 0.6, 0.6, 0.9], 3),
        (dict(monitor="score", mode="max", patience=1), [1.0, 2.0, 1.5], 2),
        # start_from_epoch: epochs 0 and 1 are not monitored at all
        (dict(monitor="loss", patience=1, start_from_epoch=2), [1.0, 2.0, 3.0, 4.0, 5.0], 3),
        # baseline: improvements that do not beat the baseline do not reset wait,
        # but an improving epoch never triggers the stop itself
        (dict(monitor="loss", patience=2, baseline=0.5), [0.9, 0.8, 0.7, 0.6], None),
        (dict(monitor="loss", patience=2, baseline=0.5), [0.9, 0.8, 0.85], 2),
        (dict(monitor="loss", patience=2, baseline=0.5), [0.9, 0.4, 0.45, 0.46], 3),
        # never stops while improving
        (dict(monitor="loss", patience=1), [5.0, 4.0, 3.0, 2.0], None),
    ],
)
def test_early_stopping_stops_at_the_epoch_keras_would(kwargs, values, expected_stop):
    stopper = EarlyStopping(**kwargs)
    assert drive_epochs(stopper, {stopper.monitor: values}) == expected_stop


def test_early_stopping_states_its_reason():
    stopper = EarlyStopping(monitor="val_loss", patience=2)
    model = nn.Linear(1, 1)
    run = RunState(model=model, num_epochs=5, steps_per_epoch=1)
    cbs = CallbackList([stopper], model=model, run=run, params={})
    cbs.on_train_begin()
    for epoch, value in enumerate([1.0, 0.8, 0.9, 0.85]):
        cbs.on_epoch_end(epoch, {"val_loss": value})
    assert run.stop_requested is True and not hasattr(model, "stop_training")  # issue 9: no writes on the module
    assert run.stop_reason == "val_loss did not improve for 2 epochs (best 0.8 at epoch 2)"


def test_early_stopping_restores_the_best_weights():
    model = nn.Linear(1, 1, bias=False)
    seen = {}

    def set_weight(epoch, logs):
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        seen[epoch] = float(epoch)

    stopper = EarlyStopping(monitor="loss", patience=2, restore_best_weights=True)
    # The callback sees each epoch's weights after they were set: best loss at epoch 1.
    setter = LambdaCallback(on_epoch_end=set_weight)
    run = RunState(model=model, num_epochs=5, steps_per_epoch=1)
    cbs = CallbackList([setter, stopper], model=model, run=run, params={})
    cbs.on_train_begin()
    for epoch, value in enumerate([1.0, 0.5, 0.7, 0.8]):
        cbs.on_epoch_end(epoch, {"loss": value})
        if getattr(model, "stop_training", False):
            break
    cbs.on_train_end()
    assert epoch == 3
    assert model.weight.item() == 1.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(patience=-1), "patience must be an int >= 0"),
        (dict(mode="maximum"), "mode must be one of"),
        (dict(start_from_epoch=-2), "start_from_epoch must be an int >= 0"),
    ],
)
def test_early_stopping_rejects_bad_settings(kwargs, match):
    with pytest.raises(InputError, match=match):
        EarlyStopping(**kwargs)


def test_auto_mode_refuses_a_monitor_of_unknown_direction():
    with pytest.raises(InputError, match="mode='max'"):
        drive_epochs(EarlyStopping(monitor="weirdness"), {"weirdness": [1.0, 2.0]})


def test_batch_hooks_that_nobody_overrides_are_skipped():
    class EpochOnly(Callback):
        def on_epoch_end(self, epoch, logs=None):
            pass

    class Batchy(Callback):
        def on_batch_end(self, batch, logs=None):
            pass

    model = nn.Linear(1, 1)
    run = RunState(model=model, num_epochs=1, steps_per_epoch=1)
    assert not CallbackList([EpochOnly()], model=model, run=run, params={}).has_batch_hooks
    assert CallbackList([Batchy()], model=model, run=run, params={}).has_batch_hooks


def test_lambda_callback_batch_hooks_are_called():
    import trainlab
    from trainlab.layers import Dense

    seen = []
    probe = LambdaCallback(on_batch_begin=lambda batch, logs: seen.append(("begin", batch)),
                           on_batch_end=lambda batch, logs: seen.append(("end", batch)))
    trainlab.fit(trainlab.Sequential([Dense(3, activation="softmax")]), "iris",
                 {"num_epochs": 1, "batch_size": 60, "seed": 0}, callbacks=probe)
    assert seen == [("begin", 0), ("end", 0), ("begin", 1), ("end", 1)]
