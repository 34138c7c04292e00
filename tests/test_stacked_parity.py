"""Issue 9: a stacked member's weights equal its solo run's within 1e-5 relative over 20 steps,
for every loop feature the one driver now gives both executors."""

import pytest
import torch

import trainlab
from trainlab.engine import LoopConfig, Technique, TrainData, train
from trainlab.layers import Dense, Dropout
from trainlab.stacked import MemberConfig, fit_members
from trainlab.stacked._members import member_model

IRIS = trainlab.datasets.load("iris")
X = (IRIS.x - IRIS.x.mean(0)) / IRIS.x.std(0)
Y = IRIS.y
DATA = TrainData(X[:80], Y[:80], X[120:], Y[120:])  # 80 rows, batch 8: 10 steps an epoch, 20 in two


def mlp(**dense):
    return trainlab.Sequential([Dense(8, activation="relu", **dense), Dense(3, activation="softmax", **dense)])


def relative(a, b):
    return max(((p - q).norm() / q.norm().clamp_min(1e-12)).item()
               for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def solo(model, config, data=DATA, **loop):
    settings = {"batch_size": 8, "num_epochs": 2, "seed": config.seed, "device": "cpu", **loop}
    technique = Technique(loss="auto", optimizer=config.optimizer, task="classification")
    rows = config.train_indices
    weights = config.sample_weight if config.sample_weight is not None else data.sample_weight
    x, y = (data.x, data.y) if rows is None else (data.x[rows], data.y[rows])
    if weights is not None:
        weights = torch.as_tensor(weights, dtype=torch.float32)
        weights = weights if rows is None else weights[rows]
    return train(member_model(model, config, "m"), TrainData(x, y, data.x_val, data.y_val, sample_weight=weights),
                 technique, LoopConfig(**settings))


def check(model_fn, members, data=DATA, **loop):
    loop.setdefault("num_epochs", 2)
    stacked = fit_members(model_fn(), members, data, batch_size=8, device="cpu", stack="on", **loop)
    for config, history in zip(members, stacked):
        assert history.params["stacked"] is True
        alone = solo(model_fn(), config, data, **loop)
        assert relative(history.model, alone.model) < 1e-5
    return stacked


def test_clipping_by_norm_and_value():
    members = [MemberConfig(seed=k, optimizer={"name": "sgd", "lr": 0.5}) for k in range(3)]
    check(mlp, members, clip_grad_norm=0.05)
    check(mlp, members, clip_grad_value=0.01)


def test_shuffle_false():
    check(mlp, [MemberConfig(seed=k, optimizer={"name": "adam", "lr": 0.01}) for k in range(3)], shuffle=False)


def test_sample_weights_shared_and_per_member():
    generator = torch.Generator().manual_seed(0)
    shared = torch.rand(80, generator=generator)
    data = TrainData(DATA.x, DATA.y, DATA.x_val, DATA.y_val, sample_weight=shared)
    own = torch.rand(80, generator=generator) * 3
    members = [MemberConfig(seed=0, optimizer={"name": "adam", "lr": 0.01}),
               MemberConfig(seed=1, optimizer={"name": "adam", "lr": 0.01}, sample_weight=own)]
    check(mlp, members, data)


def test_members_that_differ_in_l2_or_dropout_rate():
    def model():
        return trainlab.Sequential([Dense(16, activation="relu"), Dropout(0.2), Dense(3, activation="softmax")])

    members = [MemberConfig(seed=0, l2=0.0), MemberConfig(seed=1, l2=1e-2), MemberConfig(seed=2, dropout=0.5),
               MemberConfig(seed=3, l2=1e-3, dropout=0.0)]
    check(model, members)


def test_resume_of_a_stack_ends_where_an_uninterrupted_stack_ends(tmp_path):
    members = [MemberConfig(seed=k, optimizer={"name": "adam", "lr": 0.01 * (k + 1)}) for k in range(3)]
    whole = fit_members(mlp(), members, DATA, batch_size=8, num_epochs=4, device="cpu", stack="on")
    fit_members(mlp(), members, DATA, batch_size=8, num_epochs=2, device="cpu", stack="on",
                checkpoint_dir=tmp_path)
    # The checkpoint of epoch 2 says 2 epochs were done; the resumed run asks for 4 in all.
    for k in range(3):
        assert (tmp_path / f"member-{k}" / "state.safetensors").is_file()
    resumed = fit_members(mlp(), members, DATA, batch_size=8, num_epochs=4, device="cpu", stack="on",
                          checkpoint_dir=tmp_path, resume=True)
    for a, b in zip(whole, resumed):
        assert b.params["resumed_from_epoch"] == 2
        assert relative(b.model, a.model) < 1e-6
        assert b.epoch == [0, 1, 2, 3]
    # A stack's checkpoint continues solo as well: the state is the same as a solo run's.
    alone = fit_members(mlp(), members, DATA, batch_size=8, num_epochs=4, device="cpu", stack="off",
                        checkpoint_dir=tmp_path, resume=True)
    for a, b in zip(whole, alone):
        assert relative(b.model, a.model) < 1e-5


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_a_plain_run_draws_the_same_dropout_masks_as_its_stacked_member(rate):
    def model():
        return trainlab.Sequential([Dense(16, activation="relu"), Dropout(rate), Dense(3, activation="softmax")])

    check(model, [MemberConfig(seed=k, optimizer={"name": "sgd", "lr": 0.1}) for k in range(2)])


def test_each_member_scales_on_its_own_training_rows_only():
    raw = IRIS.x * torch.tensor([1.0, 10.0, 100.0, 0.1])
    folds = [torch.arange(0, 50), torch.arange(50, 100), torch.arange(100, 150)]
    members = [MemberConfig(seed=k, optimizer={"name": "adam", "lr": 0.01}, val_indices=fold,
                            train_indices=torch.cat([f for j, f in enumerate(folds) if j != k]))
               for k, fold in enumerate(folds)]
    stacked = fit_members(mlp(), members, TrainData(raw, Y), batch_size=8, num_epochs=2, device="cpu", stack="on",
                          scaling="standardize")
    alone = fit_members(mlp(), members, TrainData(raw, Y), batch_size=8, num_epochs=2, device="cpu", stack="off",
                        scaling="standardize")
    for config, a, b in zip(members, stacked, alone):
        rows = raw[config.train_indices]
        # The member's scaler saw its training rows only: their mean is its mean, not the whole set's.
        torch.testing.assert_close(a.scaler.transform(rows).mean(0), torch.zeros(4), atol=1e-5, rtol=0)
        assert a.model.scaler is a.scaler
        assert relative(a.model, b.model) < 1e-5
        assert a.history["val_loss"] == pytest.approx(b.history["val_loss"], rel=1e-5)


def test_members_with_as_many_steps_but_other_row_counts_step_as_one_block():
    # 77, 78 and 80 rows at batch 8: ten steps an epoch each, the last batch 5, 6 and 8 rows. The three
    # share one Adam block (one step count), and each still ends where its solo run ends.
    members = [MemberConfig(seed=k, optimizer={"name": "adam", "lr": 0.01}, train_indices=torch.arange(n))
               for k, n in enumerate((77, 78, 80))]
    stacked = check(mlp, members)
    for history in stacked:
        assert len(history.history["loss"]) == 2


def test_rows_with_as_many_steps_per_epoch_form_one_block():
    from trainlab.stacked._optim import _spans

    assert _spans([0, 1, 2], [10, 10, 10]) == [(0, 3)]
    assert _spans([0, 1, 2, 3], [10, 10, 9, 10]) == [(0, 2), (2, 3), (3, 4)]
    assert _spans([0, 2], [10, 10, 10]) == [(0, 1), (2, 3)]


def test_members_whose_passes_end_early_keep_their_state_while_they_sit_out():
    # Two members on 64 rows (8 steps an epoch) beside two on 80 rows (10 steps): the short pair sits
    # out the last two steps of every epoch. Its moments and step count must not move meanwhile,
    # or its next epoch's updates differ from its solo run's.
    members = [MemberConfig(seed=k, optimizer={"name": "adam", "lr": 0.01}, train_indices=torch.arange(n))
               for k, n in enumerate((80, 80, 64, 64))]
    check(mlp, members, num_epochs=3)


class _StopAtBatch(trainlab.callbacks.Callback):
    def __init__(self, batch):
        super().__init__()
        self.batch = batch

    def on_batch_end(self, batch, logs=None):
        if batch == self.batch:
            self.model.stop_training = True


def test_a_member_stopped_mid_epoch_saves_the_optimizer_state_of_its_solo_run(tmp_path):
    from trainlab.checkpoint import load_state

    def members():
        return [MemberConfig(seed=k, optimizer={"name": "adam", "lr": 0.01},
                             callbacks=[_StopAtBatch(3)] if k == 1 else []) for k in range(3)]

    for mode in ("on", "off"):
        fit_members(mlp(), members(), DATA, batch_size=8, num_epochs=2, device="cpu", stack=mode,
                    checkpoint_dir=tmp_path / mode)
    for k, steps in enumerate((20, 4, 20)):
        stacked, alone = (load_state(tmp_path / mode / f"member-{k}" / "state.safetensors") for mode in ("on", "off"))
        assert stacked["step"] == alone["step"] == steps
        for index, state in alone["optimizer"]["state"].items():
            mine = stacked["optimizer"]["state"][index]
            assert float(mine["step"]) == float(state["step"]) == steps
            for key in ("exp_avg", "exp_avg_sq"):
                torch.testing.assert_close(mine[key], state[key], rtol=1e-5, atol=1e-7)
