"""Stacked members: each member ends where the single-run engine ends for the same run.

The oracle throughout is `trainlab.engine.train` itself, run once per member on
the member's rows with the member's optimizer, schedule, seed and model.
"""

import math

import numpy as np
import pytest
import torch
from torch import nn

import trainlab
from trainlab.callbacks import Callback, LambdaCallback
from trainlab.engine import LoopConfig, Technique, TrainData, train
from trainlab.errors import InputError
from trainlab.layers import LSTM, BatchNormalization, Dense, Dropout, Reshape
from trainlab.regularizers import L1L2
from trainlab.stacked import MemberConfig, fit_members, member_bytes
from trainlab.stacked._optim import MemberUpdate, StackedOptimizer, stack_order

IRIS = trainlab.datasets.load("iris")
X = (IRIS.x - IRIS.x.mean(0)) / IRIS.x.std(0)
Y = IRIS.y
DATA = TrainData(X[:80], Y[:80], X[120:], Y[120:])  # 80 rows, batch 8: 10 steps an epoch


def mlp(**dense):
    return trainlab.Sequential([Dense(8, activation="relu", **dense), Dense(3, activation="softmax", **dense)])


def solo(model, config, data=DATA, *, epochs=2, batch_size=8, loss="auto", metrics=("accuracy",)):
    """The same run alone, through the single-run engine."""
    rows, val = config.train_indices, config.val_indices
    x, y = (data.x, data.y) if rows is None else (data.x[rows], data.y[rows])
    xv, yv = (data.x_val, data.y_val) if val is None else (data.x[val], data.y[val])
    technique = Technique(loss=loss, optimizer=config.optimizer, metrics=list(metrics), schedule=config.schedule,
                          task="classification")
    callbacks = config.early_stopping_callback()
    return train(model, TrainData(x, y, xv, yv), technique,
                 LoopConfig(batch_size=batch_size, num_epochs=epochs, seed=config.seed, device="cpu"),
                 callbacks=callbacks)


def relative(a, b):
    """max over tensors of ||a - b|| / ||b||."""
    return max(((p - q).norm() / q.norm().clamp_min(1e-12)).item()
               for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def assert_same_history(stacked, alone, tol=1e-5):
    assert list(stacked.history) == list(alone.history)
    assert stacked.epoch == alone.epoch
    assert stacked.stop_reason == alone.stop_reason
    for key, values in alone.history.items():
        np.testing.assert_allclose(stacked.history[key], values, rtol=tol, atol=tol, err_msg=key)


OPTIMIZERS = [
    {"name": "sgd", "lr": 0.1},
    {"name": "momentum", "lr": 0.05, "weight_decay": 1e-3},
    {"name": "nesterov", "lr": 0.05},
    {"name": "adam", "lr": 0.01},
    {"name": "adam", "lr": 0.003, "weight_decay": 1e-2, "betas": [0.8, 0.99]},
    {"name": "adamw", "lr": 0.01, "weight_decay": 0.1},
    {"name": "rmsprop", "lr": 0.01},
    {"name": "adagrad", "lr": 0.05},
    {"name": "adadelta"},
    {"name": "nadam", "lr": 0.01},
]


def test_each_member_matches_its_solo_run_over_twenty_steps():
    members = [MemberConfig(seed=k, optimizer=spec) for k, spec in enumerate(OPTIMIZERS)]
    histories = fit_members(mlp(), members, DATA, metrics=["accuracy"], batch_size=8, num_epochs=2,
                            device="cpu", stack="on")
    for config, history in zip(members, histories):
        alone = solo(mlp(), config)
        assert history.params["stacked"] is True
        assert relative(history.model, alone.model) < 1e-5, config.optimizer
        assert_same_history(history, alone)


def test_unequal_subsets_schedules_penalties_and_smoothing_match_solo_runs():
    bootstrap = np.random.default_rng(0).integers(0, 80, size=80)  # repeats rows
    members = [
        MemberConfig(seed=0, optimizer={"name": "adam", "lr": 0.01}, train_indices=range(0, 60)),
        MemberConfig(seed=1, optimizer={"name": "sgd", "lr": 0.1}, train_indices=bootstrap, l2=1e-3),
        MemberConfig(seed=2, optimizer={"name": "momentum", "lr": 0.05}, train_indices=range(5, 42), l1=1e-3,
                     schedule="cosine"),
        MemberConfig(seed=3, optimizer={"name": "adamw", "lr": 0.01}, label_smoothing=0.2,
                     schedule={"name": "step", "step_size": 1, "gamma": 0.5}),
        MemberConfig(seed=4, optimizer={"name": "adam", "lr": 0.02}, train_indices=range(0, 80, 3),
                     label_smoothing=0.0),
    ]
    histories = fit_members(mlp(), members, DATA, metrics=["accuracy"], batch_size=8, num_epochs=3,
                            device="cpu", stack="on")
    for config, history in zip(members, histories):
        reg = ({"kernel_regularizer": L1L2(l1=config.l1 or 0.0, l2=config.l2 or 0.0)}
               if config.l1 is not None or config.l2 is not None else {})
        loss = ({"name": "sparse_categorical_crossentropy", "label_smoothing": config.label_smoothing}
                if config.label_smoothing is not None else "auto")
        alone = solo(mlp(**reg), config, epochs=3, loss=loss)
        assert history.params["steps"] == math.ceil(len(config.train_indices if config.train_indices is not None
                                                        else range(80)) / 8)
        assert relative(history.model, alone.model) < 1e-5
        assert_same_history(history, alone)


@pytest.mark.parametrize("penalties", [
    # (l1, l2) per member: a shared strength on consecutive rows (one multiply-add on a slice), rows
    # apart (an index), strengths that differ, both kinds on one member, and every member penalized.
    [(None, None), (None, 1e-2), (None, 1e-2), (1e-3, None), (1e-3, None)],
    [(1e-3, None), (None, None), (1e-2, None), (None, 5e-3), (None, None)],
    [(1e-3, 1e-2), (2e-3, 5e-3), (1e-4, 1e-2), (3e-3, 1e-3), (1e-3, 1e-3)],
])
def test_penalized_and_plain_members_in_one_stack_match_their_solo_runs(penalties):
    # The stack adds the L1/L2 gradient terms itself, on the rows that have them; each member's
    # weights and logged loss (penalty included, as Keras logs it) equal its run alone.
    members = [MemberConfig(seed=k, l1=l1, l2=l2) for k, (l1, l2) in enumerate(penalties)]
    histories = fit_members(mlp(), members, DATA, metrics=["accuracy"], batch_size=8, num_epochs=2, device="cpu",
                            stack="on")
    for config, history in zip(members, histories):
        reg = ({"kernel_regularizer": L1L2(l1=config.l1 or 0.0, l2=config.l2 or 0.0)}
               if config.l1 is not None or config.l2 is not None else {})
        alone = solo(mlp(**reg), config)
        assert history.params["stacked"] is True
        assert relative(history.model, alone.model) < 1e-5
        assert_same_history(history, alone)
        assert ("penalty" in history.history) == (config.l1 is not None or config.l2 is not None)


def test_batchnorm_members_keep_their_own_running_statistics():
    def model():
        return trainlab.Sequential([Dense(8, activation="relu"), BatchNormalization(), Dense(3, activation="softmax")])

    members = [MemberConfig(seed=k, optimizer={"name": "adam", "lr": lr}, train_indices=range(0, 80 - 9 * k))
               for k, lr in enumerate([0.01, 0.003, 0.03])]
    histories = fit_members(model(), members, DATA, batch_size=8, num_epochs=2, device="cpu", stack="on")
    for config, history in zip(members, histories):
        alone = solo(model(), config, metrics=())
        assert relative(history.model, alone.model) < 1e-5  # running_mean/var are in the state dict
        assert_same_history(history, alone)


def test_early_stopping_freezes_a_member_while_the_others_go_on():
    frozen = {}

    def recorder(k):
        def on_train_end(logs=None):
            frozen[k] = {n: t.clone() for n, t in recorders[k].model.state_dict().items()}
        return LambdaCallback(on_train_end=on_train_end)

    recorders = [recorder(k) for k in range(3)]
    stopping = {"monitor": "val_loss", "patience": 1, "restore_best_weights": True}
    members = [MemberConfig(seed=0, optimizer={"name": "sgd", "lr": 0.5}, early_stopping=stopping,
                            callbacks=[recorders[0]]),
               MemberConfig(seed=1, optimizer={"name": "adam", "lr": 0.01}, callbacks=[recorders[1]]),
               MemberConfig(seed=2, optimizer={"name": "adam", "lr": 0.003}, early_stopping=stopping,
                            callbacks=[recorders[2]])]
    histories = fit_members(mlp(), members, DATA, batch_size=8, num_epochs=25, device="cpu", stack="on")
    assert len(histories[0].epoch) < 25 and "did not improve" in histories[0].stop_reason
    assert len(histories[1].epoch) == 25 and histories[1].stop_reason is None
    for k, (config, history) in enumerate(zip(members, histories)):
        alone = solo(mlp(), config, epochs=25, metrics=())
        assert_same_history(history, alone)
        assert relative(history.model, alone.model) < 1e-5  # best weights restored, as alone
        # Nothing touched a member's weights after its own on_train_end.
        for name, tensor in history.model.state_dict().items():
            assert torch.equal(tensor, frozen[k][name])


class StopAfter(Callback):
    """Asks to stop at the end of epoch `epoch` (any callback may stop its own member)."""

    def __init__(self, epoch):
        self.last = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.last:
            self.run.request_stop(f"asked to stop after epoch {epoch}")


@pytest.mark.parametrize("optimizer", [{"name": "adam", "lr": 0.01}, {"name": "momentum", "lr": 0.05}])
def test_a_stopped_member_takes_no_further_update_as_the_stack_goes_on(optimizer):
    members = [MemberConfig(seed=0, optimizer=optimizer, callbacks=[StopAfter(1)]),
               MemberConfig(seed=1, optimizer=optimizer, callbacks=[StopAfter(3)]),
               MemberConfig(seed=2, optimizer=optimizer)]
    histories = fit_members(mlp(), members, DATA, batch_size=8, num_epochs=6, device="cpu", stack="on")
    assert [len(h.epoch) for h in histories] == [2, 4, 6]  # stacks of 3, then 2 (re-stacked), then 1
    assert histories[0].stop_reason == "asked to stop after epoch 1"
    for config, history, epochs in zip(members, histories, (2, 4, 6)):
        alone = solo(mlp(), MemberConfig(seed=config.seed, optimizer=optimizer), epochs=epochs, metrics=())
        assert relative(history.model, alone.model) < 1e-5


def test_per_member_plateau_schedules_cut_the_lr_when_their_own_loss_stalls():
    members = [MemberConfig(seed=k, optimizer={"name": "sgd", "lr": lr},
                            schedule={"name": "plateau", "monitor": "loss", "patience": 0, "factor": 0.5,
                                      "min_delta": delta})
               for k, (lr, delta) in enumerate([(0.1, 0.5), (0.2, 0.0)])]
    histories = fit_members(mlp(), members, DATA, batch_size=8, num_epochs=6, device="cpu", stack="on")
    for config, history in zip(members, histories):
        alone = solo(mlp(), config, epochs=6, metrics=())
        assert history.history["lr"] == alone.history["lr"]
        assert relative(history.model, alone.model) < 1e-5
    assert histories[0].history["lr"][-1] < histories[0].history["lr"][0]  # the schedule did cut


def test_a_diverging_member_stops_with_the_engines_diagnosis_and_keeps_its_last_good_weights():
    members = [MemberConfig(seed=0, optimizer={"name": "sgd", "lr": 40.0}),
               MemberConfig(seed=1, optimizer={"name": "sgd", "lr": 0.1})]
    histories = fit_members(mlp(), members, DATA, batch_size=8, num_epochs=8, device="cpu", stack="on")
    assert histories[0].stop_reason.startswith("training diverged")
    assert len(histories[1].epoch) == 8
    for config, history in zip(members, histories):
        alone = solo(mlp(), config, epochs=8, metrics=())
        assert_same_history(history, alone, tol=1e-4)
        assert relative(history.model, alone.model) < 1e-5


def test_folds_validate_on_their_own_held_out_rows():
    folds = np.array_split(np.arange(80), 4)
    members = [MemberConfig(seed=0, optimizer="adam", val_indices=fold,
                            train_indices=np.concatenate([f for j, f in enumerate(folds) if j != k]))
               for k, fold in enumerate(folds)]
    histories = fit_members(mlp(), members, DATA, metrics=["accuracy"], batch_size=8, num_epochs=2,
                            device="cpu", stack="on")
    for config, history in zip(members, histories):
        assert_same_history(history, solo(mlp(), config))


def test_histories_look_like_the_single_engines():
    members = [MemberConfig(seed=k, optimizer="adam") for k in range(2)]
    histories = fit_members(mlp(), members, DATA, metrics=["accuracy"], batch_size=8, num_epochs=3, device="cpu")
    alone = solo(mlp(), members[0], epochs=3)
    for k, history in enumerate(histories):
        assert list(history.history) == ["loss", "accuracy", "val_loss", "val_accuracy", "lr"]
        assert all(len(v) == 3 for v in history.history.values())
        assert history.epoch == [0, 1, 2] and history.seed == k and history.stop_reason is None
        assert set(alone.params) <= set(history.params)
        assert isinstance(history.model, trainlab.Sequential) and history.model is not histories[1 - k].model


def test_a_member_without_dropout_matches_its_solo_run_while_the_others_drop_units():
    def model():
        return trainlab.Sequential([Dense(8, activation="relu"), Dropout(0.5), Dense(3, activation="softmax")])

    members = [MemberConfig(seed=0, dropout=0.0), MemberConfig(seed=1), MemberConfig(seed=2, dropout=0.2)]
    histories = fit_members(model(), members, DATA, batch_size=8, num_epochs=2, device="cpu", stack="on")
    without = trainlab.Sequential([Dense(8, activation="relu"), Dropout(0.0), Dense(3, activation="softmax")])
    assert relative(histories[0].model, solo(without, members[0], metrics=()).model) < 1e-5
    assert [h.model.layers[1].rate for h in histories] == [0.0, 0.5, 0.2]
    assert histories[2].model.get_config()["layers"][1]["rate"] == 0.2


def test_kernel_initializer_per_member_matches_a_model_built_with_it():
    members = [MemberConfig(seed=3, kernel_initializer="he_normal"), MemberConfig(seed=3)]
    histories = fit_members(mlp(), members, DATA, batch_size=8, num_epochs=1, device="cpu", stack="on")
    alone = solo(mlp(kernel_initializer="he_normal"), members[1], epochs=1, metrics=())
    assert relative(histories[0].model, alone.model) < 1e-5
    assert relative(histories[1].model, alone.model) > 1e-2  # glorot_uniform otherwise


def test_chunks_give_the_same_results_as_one_stack(monkeypatch):
    members = [MemberConfig(seed=k, optimizer={"name": "adam", "lr": 0.01 * (k + 1)}) for k in range(5)]
    whole = fit_members(mlp(), members, DATA, batch_size=8, num_epochs=2, device="cpu", stack="on")
    chunked = fit_members(mlp(), members, DATA, batch_size=8, num_epochs=2, device="cpu", stack="on", chunk_size=2)
    import trainlab.stacked as stacked

    one = member_bytes(whole[0].model, X[:2], batch_size=8, num_samples=80)
    monkeypatch.setattr(stacked, "_memory_budget", lambda device: 3 * one)
    budgeted = fit_members(mlp(), members, DATA, batch_size=8, num_epochs=2, device="cpu", stack="on")
    assert "chunks of 3" in budgeted[0].params["stack_reason"]
    for a, b, c in zip(whole, chunked, budgeted):
        assert relative(a.model, b.model) < 1e-6 and relative(a.model, c.model) < 1e-6


def test_member_bytes_grows_with_the_batch_and_the_optimizer_state():
    model = mlp()
    model.build((4,))
    small = member_bytes(model, X[:2], batch_size=8, num_samples=80, optimizer=torch.optim.SGD(model.parameters()))
    adam = member_bytes(model, X[:2], batch_size=8, num_samples=80, optimizer=torch.optim.Adam(model.parameters()))
    big_batch = member_bytes(model, X[:2], batch_size=64, num_samples=80)
    params = sum(p.numel() for p in model.parameters())
    assert adam - small == 4 * 2 * params  # two moments, float32
    assert big_batch > adam


def test_models_that_do_not_stack_fall_back_to_solo_runs_with_the_same_results():
    def model():
        return trainlab.Sequential([Reshape((4, 1)), LSTM(4), Dense(3, activation="softmax")])

    members = [MemberConfig(seed=k, optimizer={"name": "adam", "lr": 0.01}) for k in range(2)]
    histories = fit_members(model(), members, DATA, batch_size=8, num_epochs=2, device="cpu")
    for config, history in zip(members, histories):
        assert history.params["stacked"] is False and "lstm" in history.params["stack_reason"]
        alone = solo(model(), config, metrics=())
        assert relative(history.model, alone.model) == 0.0
    with pytest.raises(InputError, match="cannot be stacked.*lstm"):
        fit_members(model(), members, DATA, batch_size=8, device="cpu", stack="on")


def test_batch_hooks_and_stack_off_run_each_member_through_the_engine():
    class Counter(Callback):
        def __init__(self):
            self.batches = 0

        def on_batch_end(self, batch, logs=None):
            self.batches += 1

    counters = [Counter(), Counter()]
    members = [MemberConfig(seed=k, callbacks=[c]) for k, c in enumerate(counters)]
    histories = fit_members(mlp(), members, DATA, batch_size=8, num_epochs=1, device="cpu")
    assert [c.batches for c in counters] == [10, 10]
    assert "batch hooks" in histories[0].params["stack_reason"]
    off = fit_members(mlp(), [MemberConfig(seed=0)], DATA, batch_size=8, num_epochs=1, device="cpu", stack="off")
    assert relative(off[0].model, solo(mlp(), MemberConfig(seed=0), epochs=1).model) == 0.0


def test_plain_torch_modules_stack_through_vmap():
    def model():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))

    members = [MemberConfig(seed=k, optimizer={"name": "sgd", "lr": 0.1 * (k + 1)}) for k in range(3)]
    histories = fit_members(model(), members, DATA, batch_size=8, num_epochs=2, device="cpu", stack="on")
    for config, history in zip(members, histories):
        alone = solo(model(), config, metrics=())
        assert relative(history.model, alone.model) < 1e-5
        assert_same_history(history, alone)


def test_convolutional_members_stack_through_vmap():
    digits = trainlab.datasets.load("digits")
    images, labels = (digits.x / 16.0).reshape(-1, 8, 8, 1)[:64], digits.y[:64]
    data = TrainData(images[:48], labels[:48], images[48:], labels[48:])

    def model():
        return trainlab.Sequential([trainlab.layers.Conv2D(4, 3, activation="relu"), trainlab.layers.Flatten(),
                                    Dense(10, activation="softmax")])

    members = [MemberConfig(seed=k, optimizer={"name": "adam", "lr": 0.01 * (k + 1)}) for k in range(2)]
    histories = fit_members(model(), members, data, batch_size=16, num_epochs=2, device="cpu", stack="on")
    for config, history in zip(members, histories):
        alone = solo(model(), config, data, batch_size=16, metrics=())
        assert relative(history.model, alone.model) < 1e-5
        assert_same_history(history, alone)


@pytest.mark.parametrize("rates", [(0.1, 0.3, 0.5), (0.5, 0.5, 0.0)])
def test_with_dropout_each_member_matches_its_solo_run_over_twenty_steps(rates):
    """Issue 9: masks come from each member's counter-based stream, the one its solo run draws from.
    (This replaced a test that only asked for a match in distribution.)"""
    def model():
        return trainlab.Sequential([Dense(32, activation="relu"), Dropout(0.3), Dense(3, activation="softmax")])

    members = [MemberConfig(seed=k, dropout=rate, optimizer={"name": "adam", "lr": 0.01})
               for k, rate in enumerate(rates)]
    stacked = fit_members(model(), members, DATA, batch_size=8, num_epochs=2, device="cpu", stack="on")
    for config, history in zip(members, stacked):
        from trainlab.stacked._members import member_model

        alone = solo(member_model(model(), config, "m"), config, metrics=())
        assert relative(history.model, alone.model) < 1e-5


def test_the_direction_step_equals_torch_optim_step_by_step():
    """Each member's row, stepped through the shared direction buffer, equals torch.optim on that row alone."""
    torch.manual_seed(0)
    specs = [(torch.optim.Adam, {"lr": 0.01, "betas": (0.9, 0.999)}),
             (torch.optim.Adam, {"lr": 0.1, "betas": (0.9, 0.999), "weight_decay": 0.1}),
             (torch.optim.AdamW, {"lr": 0.05, "weight_decay": 0.3}),
             (torch.optim.SGD, {"lr": 0.2, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
             (torch.optim.RMSprop, {"lr": 0.01, "momentum": 0.5, "centered": True}),
             (torch.optim.Adam, {"lr": 0.02, "betas": (0.8, 0.9)})]
    k, shape = len(specs), (3, 5)
    start = torch.randn(k, *shape)
    lengths = [10, 10, 10, 10, 10, 7]  # the last member falls out of step: it keeps its own step count
    references = [start[i].clone().requires_grad_() for i in range(k)]
    ref_opts = [cls([references[i]], **kw) for i, (cls, kw) in enumerate(specs)]
    placeholders = [[torch.zeros(shape, requires_grad=True)] for _ in specs]
    updates = [MemberUpdate.of(cls(params, **kw), params) for params, (cls, kw) in zip(placeholders, specs)]
    order = stack_order(updates, lengths)
    assert all(u.direction_key is not None for u in updates)
    leaf = start[order].clone().requires_grad_()
    stacked = StackedOptimizer([leaf.detach().view(k, -1)], [leaf], [updates[i] for i in order],
                               [lengths[i] for i in order])
    lr = torch.tensor([[specs[i][1]["lr"]] for i in order])
    for step in range(12):
        grads = torch.randn(k, *shape)
        active = [step < lengths[i] or step % 2 == 0 for i in range(k)]
        for i in range(k):
            if active[i]:
                references[i].grad = grads[i].clone()
                ref_opts[i].step()
        leaf.grad = grads[order].clone()
        stacked.step(lr * torch.tensor([[float(active[i])] for i in order]), [active[i] for i in order])
        for row, i in enumerate(order):
            torch.testing.assert_close(leaf.detach()[row], references[i].detach(), rtol=1e-6, atol=1e-7)


def test_auto_stacks_a_small_mlp_and_says_why():
    members = [MemberConfig(seed=k) for k in range(4)]
    histories = fit_members(mlp(), members, DATA, batch_size=8, num_epochs=1, device="cpu")
    assert histories[0].params["stacked"] is True
    assert "member-step" in histories[0].params["stack_reason"]
    single = fit_members(mlp(), members[:1], DATA, batch_size=8, num_epochs=1, device="cpu")
    assert single[0].params["stacked"] is False


def test_fit_members_leaves_the_callers_random_state_and_thread_setting_alone():
    threads = torch.get_num_threads()
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    fit_members(mlp(), [MemberConfig(seed=0), MemberConfig(seed=1)], DATA, batch_size=8, device="cpu", stack="on")
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads


@pytest.mark.parametrize("kwargs, message", [
    ({"members": []}, "members is empty"),
    ({"members": MemberConfig(seed=0)}, "list of MemberConfig"),
    ({"members": [{"seed": 0}]}, r"members\[0\] must be a MemberConfig"),
    ({"stack": "always"}, "stack must be one of"),
    ({"members": [MemberConfig(train_indices=[0, 80])]}, r"members\[0\].train_indices must be row numbers in \[0, 79\]"),
    ({"members": [MemberConfig(val_indices=[-1])]}, r"val_indices must be row numbers"),
    ({"loss": "mse", "members": [MemberConfig(label_smoothing=0.1)]}, "needs a cross-entropy loss"),
    ({"chunk_size": 0}, "chunk_size must be an int >= 1"),
    ({"data": (X, Y[:10])}, "x has 150 rows but y has 10"),
    ({"data": (X, Y, X[:5], Y[:4])}, "x_val has 5 rows but y_val has 4"),
])
def test_bad_input_is_rejected_with_a_clear_message(kwargs, message):
    args = {"model": mlp(), "members": [MemberConfig(seed=0), MemberConfig(seed=1)], "data": DATA,
            "batch_size": 8, "device": "cpu", **kwargs}
    with pytest.raises(InputError, match=message):
        fit_members(args.pop("model"), args.pop("members"), args.pop("data"), **args)


def test_bad_member_configs_are_rejected_when_built():
    with pytest.raises(InputError, match="MemberConfig.dropout must be in"):
        MemberConfig(dropout=1.0)
    with pytest.raises(InputError, match="MemberConfig.train_indices must be a 1-D list of integer"):
        MemberConfig(train_indices=[0.5, 1.5])
    with pytest.raises(InputError, match="unknown setting 'patiense'.*Did you mean 'patience'"):
        MemberConfig(early_stopping={"patiense": 3})
    with pytest.raises(InputError, match="MemberConfig.seed must be an int >= 0"):
        MemberConfig(seed=-1)
    shared = LambdaCallback()
    with pytest.raises(InputError, match="share the callback object"):
        fit_members(mlp(), [MemberConfig(callbacks=[shared]), MemberConfig(callbacks=[shared])], DATA)


def test_model_changes_that_need_trainlab_layers_say_so():
    built = mlp()
    built.build((4,))
    with pytest.raises(InputError, match="kernel_initializer sets the initial weights, but the model is already built"):
        fit_members(built, [MemberConfig(kernel_initializer="he_normal")], DATA, device="cpu")
    with pytest.raises(InputError, match="l2 change.* but the model is a Sequential"):
        fit_members(nn.Sequential(nn.Linear(4, 3)), [MemberConfig(l2=0.1)], DATA, device="cpu")


class _OwnAdam(torch.optim.Adam):
    """A user's torch optimizer: Adam's update, but a class the optimizer registry does not know."""


def test_an_optimizer_stacks_only_when_its_registry_entry_gives_a_stacked_form(monkeypatch):
    from trainlab.optimizers import OPTIMIZERS as REGISTRY
    from trainlab.optimizers import StackedForm
    from trainlab.registry import Entry

    members = [MemberConfig(seed=k, optimizer=lambda params: _OwnAdam(params, lr=0.01)) for k in range(3)]
    unknown = fit_members(mlp(), members, DATA, batch_size=8, num_epochs=2, device="cpu")
    for history in unknown:
        assert history.params["stacked"] is False and history.params["executor"] == "solo"
        assert "_OwnAdam has no stacked form" in history.params["plan_reason"]
    with pytest.raises(InputError, match="_OwnAdam has no stacked form"):
        fit_members(mlp(), members, DATA, batch_size=8, num_epochs=1, device="cpu", stack="on")

    # The same class, registered with the capability, stacks and gives the same members.
    form = StackedForm(_OwnAdam, state_slots=lambda group: 2)
    monkeypatch.setitem(REGISTRY._entries, "own_adam",
                        Entry("own_adam", "optimizer", _OwnAdam, "Adam under another name", "",
                              {"stacked": form}))
    known = fit_members(mlp(), members, DATA, batch_size=8, num_epochs=2, device="cpu")
    for a, b in zip(known, unknown):
        assert a.params["stacked"] is True and a.params["executor"] == "stacked"
        assert relative(a.model, b.model) < 1e-5


@pytest.mark.parametrize("other", [
    trainlab.Sequential([Dense(8, activation="tanh"), Dense(3, activation="softmax")]),
    trainlab.Sequential([Dense(8, activation="relu"), BatchNormalization(momentum=0.5), Dense(3, activation="softmax")]),
])
def test_members_whose_layers_differ_in_a_setting_train_alone_with_their_own_layers(other):
    # A stack runs members[0]'s layers; a member with another activation or BatchNormalization
    # momentum is trained on its own, as it would be alone.
    first = (mlp() if len(other.layers) == 2 else
             trainlab.Sequential([Dense(8, activation="relu"), BatchNormalization(), Dense(3, activation="softmax")]))
    members = [MemberConfig(seed=0), MemberConfig(seed=1, model=other)]
    histories = fit_members(first, members, DATA, batch_size=8, num_epochs=1, device="cpu", stack="auto")
    assert histories[1].params["stacked"] is False
    assert "differs from members[0]'s in" in histories[1].params["stack_reason"]
    fresh = trainlab.Sequential.from_config(other.get_config())
    alone = solo(fresh, members[1], epochs=1, metrics=())
    assert relative(histories[1].model, alone.model) < 1e-5
