"""ReduceLROnPlateau and LearningRateScheduler: each lr change at exactly the epoch Keras 3 makes it.

Expected epochs are derived by hand from Keras 3's ReduceLROnPlateau rules, at
each epoch end:
  1. in cooldown (counter > 0): counter -= 1; wait = 0
  2. improvement (min mode: current < best - min_delta; max: current > best + min_delta):
     best = current; wait = 0
  3. else, if not in cooldown (after step 1): wait += 1; when wait >= patience and
     lr > min_lr (compared in float32): lr = max(lr * factor, min_lr); counter = cooldown; wait = 0
The lr starts at 1.0 and factor is 0.5 unless said, so every lr below is exact.
"""

import pytest
import torch
from torch import nn

import trainlab
from trainlab.callbacks import CallbackList, RunState
from trainlab.callbacks.lr import LearningRateScheduler, ReduceLROnPlateau
from trainlab.errors import InputError
from trainlab.layers import Dense


def drive(callback, values, *, monitor="val_loss", lr=1.0, groups=None, start=0, run_begin=True,
          model=None, optimizer=None):
    """Feed scripted monitored values; return the optimizer and the lr of each group after each epoch."""
    if model is None:
        model = nn.Linear(2, 1)
    if optimizer is None:
        params = groups if groups is not None else [{"params": list(model.parameters()), "lr": lr}]
        optimizer = torch.optim.SGD(params, lr=lr)
    run = RunState(model=model, num_epochs=start + len(values), steps_per_epoch=1, optimizer=optimizer)
    callbacks = CallbackList([callback], model=model, run=run, params={})
    if run_begin:
        callbacks.on_train_begin({})
    after = []
    for epoch, value in enumerate(values, start=start):
        run.epoch = epoch
        callbacks.on_epoch_begin(epoch, {})
        callbacks.on_epoch_end(epoch, {monitor: value, "lr": optimizer.param_groups[0]["lr"]})
        after.append([g["lr"] for g in optimizer.param_groups])
    return optimizer, after


def reduction_epochs(after, start_lr=1.0):
    previous, epochs = start_lr, []
    for epoch, lrs in enumerate(after):
        if lrs[0] != previous:
            epochs.append(epoch)
        previous = lrs[0]
    return epochs


@pytest.mark.parametrize(
    "kwargs, values, expected_epochs, final_lr",
    [
        # patience 2: waits of 1, 2 at epochs 2, 3 -> reduce at 3; again 1, 2 at 4, 5 -> reduce at 5;
        # epoch 6 improves; waits 1, 2 at 7, 8 -> reduce at 8.
        (dict(patience=2, min_delta=0.0), [1.0, 0.9, 0.95, 0.96, 0.97, 0.98, 0.5, 0.6, 0.7], [3, 5, 8],
         0.125),
        # patience 0: every epoch that does not improve reduces at once.
        (dict(patience=0, min_delta=0.0), [1.0, 0.9, 0.9, 0.8, 0.8], [2, 4], 0.25),
        # cooldown 2 with patience 1 on a flat curve: reduce at 1 (counter 2); epoch 2 counts down
        # to 1 and is still in cooldown; epoch 3 counts down to 0, is out of cooldown, waits 1 and
        # reduces. Keras's decrement-then-check makes the period 2 epochs, not 3.
        (dict(patience=1, cooldown=2), [1.0] * 8, [1, 3, 5, 7], 1 / 16),
        # cooldown 3, patience 2: reduce at 2 (counter 3); 3, 4 in cooldown (3->2->1); 5 counts to 0,
        # then waits 1; 6 waits 2 -> reduce.
        (dict(patience=2, cooldown=3), [1.0] * 8, [2, 6], 0.25),
        # An improvement during the cooldown still updates best: reduce at 2 (counter 2); 0.5 at
        # epoch 3 (counter 1) is the new best; at epoch 4 the counter reaches 0 and 0.6 is wait 1;
        # 0.7 is wait 2 -> reduce at 5.
        (dict(patience=2, cooldown=2), [1.0, 1.0, 1.0, 0.5, 0.6, 0.7], [2, 5], 0.25),
        # min_delta 0.1: 0.95 is not below 1.0 - 0.1 -> reduce at 1; 0.85 is -> new best;
        # 0.89 is not below 0.75 -> reduce at 3; 0.70 is.
        (dict(patience=1, min_delta=0.1), [1.0, 0.95, 0.85, 0.89, 0.70], [1, 3], 0.25),
        # a negative min_delta is taken as its absolute value, as in Keras.
        (dict(patience=1, min_delta=-0.1), [1.0, 0.95, 0.85, 0.89, 0.70], [1, 3], 0.25),
        # min_lr 0.3: 1 -> 0.5 at epoch 1, -> max(0.25, 0.3) = 0.3 at epoch 2, then never lower.
        (dict(patience=1, min_lr=0.3), [1.0] * 6, [1, 2], 0.3),
        # factor 0.1 down to min_lr 0.01: 1 -> 0.1 -> 0.01 (0.1 * 0.1 rounds to 0.010000000000000002,
        # equal to 0.01 in float32, so it counts as reached and is not "reduced" to 0.01 again).
        (dict(patience=1, factor=0.1, min_lr=0.01), [1.0] * 5, [1, 2], 0.1 * 0.1),
    ],
)
def test_reduce_lr_on_plateau_reduces_at_the_epochs_keras_would(kwargs, values, expected_epochs, final_lr):
    callback = ReduceLROnPlateau(monitor="val_loss", factor=kwargs.pop("factor", 0.5), **kwargs)
    _, after = drive(callback, values)
    assert reduction_epochs(after) == expected_epochs
    assert after[-1][0] == final_lr


@pytest.mark.parametrize(
    "kwargs, monitor, values, expected_epochs",
    [
        # auto mode maximizes an accuracy: 0.6 does not beat 0.6 + 1e-4 -> waits 1, 2 at epochs 2, 3;
        # 0.7 improves; 0.65 waits 1; 0.7 is not above 0.7 + 1e-4 -> wait 2 -> reduce at 6.
        (dict(patience=2), "val_accuracy", [0.5, 0.6, 0.6, 0.6, 0.7, 0.65, 0.7], [3, 6]),
        # an explicit max mode for a name trainlab cannot classify.
        (dict(patience=1, mode="max"), "score", [1.0, 2.0, 1.5, 3.0, 2.9], [2, 4]),
        # an explicit min mode on an accuracy (nonsense, but the user's choice): rising is worse.
        (dict(patience=1, mode="min"), "accuracy", [0.5, 0.6, 0.4], [1]),
    ],
)
def test_reduce_lr_on_plateau_in_max_mode(kwargs, monitor, values, expected_epochs):
    callback = ReduceLROnPlateau(monitor=monitor, factor=0.5, **kwargs)
    _, after = drive(callback, values, monitor=monitor)
    assert reduction_epochs(after) == expected_epochs


def test_reduce_lr_on_plateau_reduces_each_param_group_above_min_lr():
    model = nn.Linear(2, 1)
    groups = [{"params": [model.weight], "lr": 1.0}, {"params": [model.bias], "lr": 0.1}]
    callback = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_lr=0.1)
    _, after = drive(callback, [1.0, 1.0, 1.0], monitor="loss", groups=groups, model=model)
    # the second group starts at min_lr and stays there; the first halves at epochs 1 and 2
    assert after == [[1.0, 0.1], [0.5, 0.1], [0.25, 0.1]]


def test_reduce_lr_on_plateau_says_when_it_reduces(capsys):
    callback = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, verbose=1)
    drive(callback, [1.0, 1.0], monitor="loss")
    assert "Epoch 2: ReduceLROnPlateau reducing learning rate to 0.5." in capsys.readouterr().out


def test_reduce_lr_on_plateau_warns_when_the_monitor_is_missing():
    callback = ReduceLROnPlateau(monitor="val_loss", patience=0)
    with pytest.warns(UserWarning, match="'val_loss', which is not in the epoch logs. Available: loss, lr"):
        _, after = drive(callback, [1.0, 1.0], monitor="loss")
    assert after == [[1.0], [1.0]]


def test_reduce_lr_on_plateau_starts_fresh_at_each_fit():
    callback = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2)
    drive(callback, [0.1, 0.5], monitor="loss")  # leaves best 0.1 and wait 1
    _, after = drive(callback, [1.0, 1.0, 1.0], monitor="loss")
    # fresh: 1.0 is the new best at epoch 0, waits 1, 2 -> reduce at epoch 2 (not at epoch 1)
    assert reduction_epochs(after) == [2]


@pytest.mark.parametrize("load_before_train_begin", [True, False])
def test_reduce_lr_on_plateau_resumes_exactly_from_its_state(load_before_train_begin):
    values = [1.0, 0.9, 0.95, 0.96, 0.97, 0.98, 0.85, 0.86, 0.87, 0.88]
    kwargs = dict(monitor="loss", factor=0.5, patience=2, cooldown=1, min_delta=0.0)
    _, whole = drive(ReduceLROnPlateau(**kwargs), values, monitor="loss")

    first = ReduceLROnPlateau(**kwargs)
    optimizer, part1 = drive(first, values[:4], monitor="loss")
    state, optimizer_state = first.state_dict(), optimizer.state_dict()
    assert state == {"wait": 0, "cooldown_counter": 1, "best": 0.9}  # reduced at epoch 3

    model = nn.Linear(2, 1)
    resumed_optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    resumed_optimizer.load_state_dict(optimizer_state)  # the reduced lr lives in the optimizer
    resumed = ReduceLROnPlateau(**kwargs)
    if load_before_train_begin:
        resumed.load_state_dict(state)
        _, part2 = drive(resumed, values[4:], monitor="loss", start=4, model=model,
                         optimizer=resumed_optimizer)
    else:
        run = RunState(model=model, num_epochs=10, steps_per_epoch=1, optimizer=resumed_optimizer)
        CallbackList([resumed], model=model, run=run, params={}).on_train_begin({})
        resumed.load_state_dict(state)
        _, part2 = drive(resumed, values[4:], monitor="loss", start=4, model=model,
                         optimizer=resumed_optimizer, run_begin=False)
    assert part1 + part2 == whole
    # e3: wait 2 -> reduce (counter 1); e4: counter 0, wait 1; e5: wait 2 -> reduce; e6: counter 0,
    # improves; e7, e8: waits 1, 2 -> reduce; e9: counter 0, wait 1. A callback that forgot its
    # state would take 0.97 at epoch 4 as its first best and not reduce at epoch 5.
    assert reduction_epochs(whole) == [3, 5, 8]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(factor=1.0), r"ReduceLROnPlateau.factor must be in \(0.0, 1.0\), got 1.0"),
        (dict(factor=2), r"ReduceLROnPlateau.factor must be in \(0.0, 1.0\), got 2"),
        (dict(factor=0.0), r"factor must be in \(0.0, 1.0\), got 0.0"),
        (dict(patience=-1), "ReduceLROnPlateau.patience must be an int >= 0, got -1"),
        (dict(cooldown=-2), "ReduceLROnPlateau.cooldown must be an int >= 0, got -2"),
        (dict(min_lr=-0.1), "ReduceLROnPlateau.min_lr must be >= 0.0, got -0.1"),
        (dict(mode="maxx"), "ReduceLROnPlateau.mode must be one of 'auto', 'min', 'max', got 'maxx'. "
                            "Did you mean 'max'?"),
        (dict(monitor="score"), "ReduceLROnPlateau received monitor='score' and cannot tell whether "
                                "it should be minimized or maximized. Pass mode='max'"),
        (dict(min_delta="small"), "ReduceLROnPlateau.min_delta must be a number, got str 'small'"),
    ],
)
def test_reduce_lr_on_plateau_rejects_bad_settings(kwargs, message):
    with pytest.raises(InputError, match=message):
        ReduceLROnPlateau(**kwargs)


def test_reduce_lr_on_plateau_without_an_optimizer_says_how_to_run_it():
    model = nn.Linear(1, 1)
    callback = ReduceLROnPlateau(monitor="loss", patience=0)
    run = RunState(model=model, num_epochs=2, steps_per_epoch=1)
    callbacks = CallbackList([callback], model=model, run=run, params={})
    callbacks.on_train_begin({})
    callbacks.on_epoch_end(0, {"loss": 1.0})
    with pytest.raises(InputError, match="needs the run's torch optimizer"):
        callbacks.on_epoch_end(1, {"loss": 1.0})


def _iris_fit(callbacks, *, num_epochs, optimizer=None, schedule=None):
    torch.manual_seed(0)
    model = trainlab.Sequential([Dense(8, activation="relu"), Dense(3, activation="softmax")])
    recipe = {"num_epochs": num_epochs, "seed": 0, "batch_size": 32,
              "optimizer": optimizer or {"name": "sgd", "lr": 0.1}}
    if schedule is not None:
        recipe["schedule"] = schedule
    history = trainlab.fit(model, "iris", recipe, callbacks=callbacks)
    return model, history


def test_fit_history_shows_each_reduction_from_the_next_epoch_on():
    # min_delta 10 makes every epoch after the first a non-improvement, whatever the losses are:
    # patience 2, cooldown 1 -> reduce at the end of epochs 2, 4, 6 (epoch 3 and 5 count the
    # cooldown down, then wait 1). history's lr is the lr each epoch trained with.
    reduce = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2, cooldown=1, min_delta=10.0)
    _, history = _iris_fit([reduce], num_epochs=8)
    assert history.history["lr"] == [0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125]


def test_reduced_lr_trains_like_the_same_lrs_set_by_a_scheduler():
    # Oracle: the batches must really use the reduced lr. The same lr sequence set at each epoch's
    # start by LearningRateScheduler gives bit-identical weights (the CPU loop is deterministic).
    # patience 1 and min_delta 10: reductions at the end of epochs 1, 2 (and 3).
    reduce = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=10.0)
    model_a, history_a = _iris_fit([reduce], num_epochs=4)
    lrs = [0.1, 0.1, 0.05, 0.025]
    assert history_a.history["lr"] == lrs
    model_b, history_b = _iris_fit([LearningRateScheduler(lambda epoch: lrs[epoch])], num_epochs=4)
    assert history_b.history["lr"] == lrs
    for a, b in zip(model_a.state_dict().values(), model_b.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    model_c, _ = _iris_fit([], num_epochs=4)  # and not like a constant lr
    assert not torch.equal(model_a.layers[0].weight, model_c.layers[0].weight)


@pytest.mark.parametrize(
    "schedule, expected",
    [
        (lambda epoch: 0.1 / (epoch + 1), [0.1, 0.05, 0.1 / 3, 0.025]),
        (lambda epoch, lr: lr if epoch < 2 else lr * 0.5, [1.0, 1.0, 0.5, 0.25]),
    ],
)
def test_learning_rate_scheduler_sets_the_lr_at_each_epoch_start(schedule, expected):
    _, after = drive(LearningRateScheduler(schedule), [0.0] * 4)
    assert [lrs[0] for lrs in after] == expected


def test_learning_rate_scheduler_with_two_arguments_keeps_group_ratios():
    model = nn.Linear(2, 1)

    def groups():
        return [{"params": [model.weight], "lr": 1.0}, {"params": [model.bias], "lr": 0.1}]

    halve = LearningRateScheduler(lambda epoch, lr: lr * 0.5)
    _, after = drive(halve, [0.0] * 2, groups=groups(), model=model)
    assert after == [[0.5, 0.05], [0.25, 0.025]]
    # a one-argument schedule gives the lr of every group
    _, after = drive(LearningRateScheduler(lambda epoch: 0.2), [0.0], groups=groups(), model=model)
    assert after == [[0.2, 0.2]]


def test_learning_rate_scheduler_is_used_by_the_training_steps():
    # lr 0 from epoch 1 on: the weights after 3 epochs are those after epoch 0.
    frozen = LearningRateScheduler(lambda epoch: 0.1 if epoch == 0 else 0.0)
    model_a, history = _iris_fit([frozen], num_epochs=3)
    assert history.history["lr"] == [0.1, 0.0, 0.0]
    model_b, _ = _iris_fit([], num_epochs=1)
    for a, b in zip(model_a.state_dict().values(), model_b.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_learning_rate_scheduler_says_what_it_sets(capsys):
    drive(LearningRateScheduler(lambda epoch: 0.5, verbose=1), [0.0])
    assert "Epoch 1: LearningRateScheduler setting learning rate to 0.5." in capsys.readouterr().out


def test_learning_rate_scheduler_warns_when_a_recipe_schedule_overrides_it():
    scheduler = LearningRateScheduler(lambda epoch: 0.05)
    with pytest.warns(UserWarning, match="set lr=0.05 at the start of epoch 1, but the epoch ended with "
                                         "lr=0.1: .* recipe schedule"):
        _iris_fit([scheduler], num_epochs=2, schedule="constant")


@pytest.mark.parametrize(
    "schedule, message",
    [
        (0.1, "LearningRateScheduler.schedule must be a function \\(epoch\\) or \\(epoch, lr\\) returning "
              "the lr, got float 0.1"),
        (lambda: 0.1, r"must take \(epoch\) or \(epoch, lr\), but .* takes \(\)"),
        (lambda epoch, lr, extra: 0.1, r"takes \(epoch, lr, extra\)"),
    ],
)
def test_learning_rate_scheduler_rejects_what_is_not_a_schedule(schedule, message):
    with pytest.raises(InputError, match=message):
        LearningRateScheduler(schedule)


@pytest.mark.parametrize(
    "value, message",
    [
        (1, "must return the lr as a float, but at epoch 0 it returned int 1. Return float"),
        ("0.1", "returned str '0.1'"),
        (torch.tensor(0.1), "returned Tensor"),
        (float("nan"), "returned lr=nan at epoch 0; an lr must be a finite number >= 0"),
        (-0.1, "returned lr=-0.1 at epoch 0"),
    ],
)
def test_learning_rate_scheduler_rejects_a_value_that_is_not_an_lr(value, message):
    with pytest.raises(InputError, match=message):
        drive(LearningRateScheduler(lambda epoch: value), [0.0])
