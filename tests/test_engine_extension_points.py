"""Issue 9: the engine's extension points, each by its defining property."""

import threading

import numpy as np
import pytest
import torch
from torch import nn

import trainlab
from trainlab.callbacks import Callback, EarlyStopping, ReduceLROnPlateau, drive_epochs
from trainlab.engine import (
    ClipGradNorm,
    LoopConfig,
    Technique,
    TrainData,
    predict_members,
    predict_tensors,
    train,
)
from trainlab.engine.config import class_weights_to_sample_weights
from trainlab.errors import InputError
from trainlab.layers import Dense, Dropout
from trainlab.losses import LOSSES
from trainlab.losses import loss as make_loss

IRIS = trainlab.datasets.load("iris")
X = (IRIS.x - IRIS.x.mean(0)) / IRIS.x.std(0)
Y = IRIS.y


def mlp():
    return trainlab.Sequential([Dense(8, activation="relu"), Dropout(0.2), Dense(3, activation="softmax")])


def weights_of(model):
    return [t.detach().clone() for t in model.state_dict().values()]


def run(model=None, data=None, **config):
    model = model or mlp()
    settings = {"batch_size": 16, "num_epochs": 2, "seed": 0, "device": "cpu", **config}
    history = train(model, data or TrainData(X[:120], Y[:120], X[120:], Y[120:]),
                    Technique(loss="auto", optimizer={"name": "sgd", "lr": 0.1}, task="classification"),
                    LoopConfig(**settings))
    return model, history


# -- sample weights ------------------------------------------------------------------------------

def _example(name):
    y_pred = torch.rand(6, 3).softmax(-1)
    if name.startswith("sparse"):
        return y_pred, torch.tensor([0, 1, 2, 0, 1, 2])
    if name.startswith("binary"):
        return torch.rand(6, 1).clamp(0.05, 0.95), torch.tensor([[0.0], [1.0], [1.0], [0.0], [1.0], [0.0]])
    return y_pred, torch.rand(6, 3).softmax(-1)


@pytest.mark.parametrize("name", LOSSES.names())
def test_every_loss_weighs_samples_as_keras_sum_over_batch_size(name):
    loss = make_loss(name)
    y_pred, y_true = _example(name)
    ones = loss.weighted(y_pred, y_true, torch.ones(6))
    torch.testing.assert_close(ones, loss(y_pred, y_true))
    weights = torch.tensor([0.0, 1.0, 2.0, 0.5, 3.0, 1.0])
    if loss.sample_mean:  # sum_i w_i loss_i / N, with loss_i the per-sample terms whose mean is the loss
        expected = (loss.per_sample(y_pred, y_true) * weights).sum() / 6
        torch.testing.assert_close(loss.weighted(y_pred, y_true, weights), expected)
        torch.testing.assert_close(loss.per_sample(y_pred, y_true).mean(), loss(y_pred, y_true))


def test_a_zero_weight_removes_a_sample_and_a_weight_of_two_doubles_it():
    mse = make_loss("mse")
    y_pred, y_true = torch.tensor([[1.0], [3.0], [2.0]]), torch.zeros(3)
    assert mse.weighted(y_pred, y_true, torch.tensor([1.0, 0.0, 2.0])).item() == pytest.approx((1 + 0 + 2 * 4) / 3)


def test_one_full_batch_step_with_sample_weights_is_the_hand_computed_update():
    model = nn.Linear(4, 1)
    before = [p.detach().clone() for p in model.parameters()]
    x, y = X[:10], torch.linspace(-1, 1, 10)
    w = torch.arange(10, dtype=torch.float32)
    train(model, TrainData(x, y, sample_weight=w), Technique(loss="mse", optimizer={"name": "sgd", "lr": 0.1}),
          LoopConfig(batch_size=10, num_epochs=1, seed=0, device="cpu"))
    weight, bias = (p.clone().requires_grad_(True) for p in before)
    objective = (w * ((x @ weight.T + bias)[:, 0] - y) ** 2).sum() / 10
    objective.backward()
    torch.testing.assert_close(model.weight.detach(), weight.detach() - 0.1 * weight.grad)
    torch.testing.assert_close(model.bias.detach(), bias.detach() - 0.1 * bias.grad)


def test_class_weight_equals_the_sample_weights_of_each_samples_class():
    assert class_weights_to_sample_weights(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), {1: 3.0}).tolist() == [3.0, 1.0]
    by_class = trainlab.fit(mlp(), (X, Y), {"num_epochs": 2, "seed": 0}, class_weight={0: 1.0, 1: 4.0, 2: 0.5})
    table = torch.tensor([1.0, 4.0, 0.5])
    by_sample = trainlab.fit(mlp(), (X, Y), {"num_epochs": 2, "seed": 0}, sample_weight=table[Y])
    for a, b in zip(weights_of(by_class.model), weights_of(by_sample.model)):
        assert torch.equal(a, b)
    plain = trainlab.fit(mlp(), (X, Y), {"num_epochs": 2, "seed": 0})
    assert not torch.equal(weights_of(plain.model)[0], weights_of(by_class.model)[0])


def test_sequential_fit_and_evaluate_take_sample_weights():
    model = trainlab.Sequential([Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = X.numpy(), IRIS.x[:, 0].numpy()
    model.fit(x, y, epochs=1, batch_size=16, seed=0, verbose=0, sample_weight=np.ones(150))
    w = np.linspace(0, 2, 150).astype("float32")
    predictions = model.predict(x)[:, 0]
    expected = float((w * (predictions - y) ** 2).sum() / 150)
    assert model.evaluate(x, y, sample_weight=w) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(InputError, match="batch_size must be an int >= 1"):
        model.fit(x, y, batch_size=0)


# -- batch transforms ------------------------------------------------------------------------------

class OneHot:
    """Replaces the labels by probability rows, as mixup does; counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, x, y, *, generator):
        self.calls += 1
        assert isinstance(generator, torch.Generator)
        return x, torch.nn.functional.one_hot(y, 3).float()


def test_batch_transforms_run_on_training_batches_only_and_may_give_soft_targets():
    transform = OneHot()
    transformed, history = run(batch_transforms=[transform])
    assert transform.calls == 2 * 8  # 120 rows in batches of 16: 8 steps an epoch, never in validation
    plain, plain_history = run()
    for a, b in zip(weights_of(transformed), weights_of(plain)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)  # one-hot rows: the same cross-entropy
    assert history.history["val_loss"] == pytest.approx(plain_history.history["val_loss"], rel=1e-5)


def test_a_transforms_generator_depends_on_the_seed_and_step_only():
    seen = []

    def noise(x, y, *, generator):
        seen.append(torch.rand(1, generator=generator).item())
        return x, y

    run(batch_transforms=[noise], num_epochs=1)
    first = list(seen)
    seen.clear()
    run(batch_transforms=[noise], num_epochs=1)
    assert seen == first and len(set(first)) == len(first)


# -- gradient hooks, stopping, per-step history --------------------------------------------------

def test_gradient_hooks_sit_between_backward_and_step_and_clipping_is_one():
    def freeze(params, run_state):
        for p in params:
            p.grad.zero_()

    model = mlp()
    model.build((4,))
    before = weights_of(model)
    run(model, gradient_hooks=[freeze])
    assert all(torch.equal(a, b) for a, b in zip(before, weights_of(model)))
    clipped, _ = run(clip_grad_norm=0.1)
    hooked, _ = run(gradient_hooks=[ClipGradNorm(0.1)])
    assert all(torch.equal(a, b) for a, b in zip(weights_of(clipped), weights_of(hooked)))


def test_a_stop_asked_for_in_a_batch_ends_the_epoch_there_with_per_step_history():
    class StopAtThirdBatch(Callback):
        def on_batch_end(self, batch, logs=None):
            if batch == 2:
                self.run.request_stop("enough")

    _, history = run(record_steps=True, num_epochs=3)
    assert len(history.steps["loss"]) == len(history.steps["lr"]) == 24
    assert history.steps["loss"][0] > history.steps["loss"][-1] > 0
    stopped = train(mlp(), TrainData(X[:120], Y[:120]), Technique(loss="auto", task="classification"),
                    LoopConfig(batch_size=16, num_epochs=3, seed=0, record_steps=True),
                    callbacks=[StopAtThirdBatch()])
    assert len(stopped.steps["loss"]) == 3 and stopped.epoch == [0] and stopped.stop_reason == "enough"
    # The epoch's loss is the mean over the batches it trained.
    assert stopped.history["loss"][0] == pytest.approx(float(np.mean(stopped.steps["loss"])), rel=1e-5)


def test_a_keras_style_stop_in_on_batch_end_stops_after_that_batch():
    class KerasStop(Callback):
        def on_batch_end(self, batch, logs=None):
            if batch == 2:
                self.model.stop_training = True

    model = mlp()
    history = train(model, TrainData(X[:120], Y[:120]), Technique(loss="auto", task="classification"),
                    LoopConfig(batch_size=16, num_epochs=3, seed=0, record_steps=True), callbacks=[KerasStop()])
    assert len(history.steps["loss"]) == 3 and history.epoch == [0]
    assert history.steps["lr"] == [0.001] * 3


def test_the_loop_writes_no_attribute_on_a_plain_torch_module():
    model = nn.Sequential(nn.Linear(4, 3))
    before = set(vars(model))
    history = train(model, TrainData(X, Y), Technique(loss="auto", task="classification"),
                    LoopConfig(num_epochs=1, seed=0))
    assert set(vars(model)) == before and not hasattr(model, "stop_training")
    assert history.epoch == [0]


# -- predict_members, threads -------------------------------------------------------------------

def test_predict_members_stacks_each_models_predictions():
    models = [mlp() for _ in range(3)]
    for k, model in enumerate(models):
        torch.manual_seed(k)
        model.build((4,))
    out = predict_members(models, X)
    assert out.shape == (3, 150, 3)
    for k, model in enumerate(models):
        torch.testing.assert_close(out[k], predict_tensors(model, X), rtol=1e-5, atol=1e-6)
    plain = [nn.Linear(4, 2), nn.Linear(4, 2)]
    torch.testing.assert_close(predict_members(plain, X)[1], predict_tensors(plain[1], X))


def test_two_threads_training_at_once_give_the_weights_each_gives_alone():
    alone = [weights_of(run(seed=seed)[0]) for seed in (1, 2)]
    threads_before = torch.get_num_threads()
    results: dict[int, list[torch.Tensor]] = {}

    def work(seed):
        results[seed] = weights_of(run(seed=seed)[0])

    workers = [threading.Thread(target=work, args=(seed,)) for seed in (1, 2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    for seed, expected in zip((1, 2), alone):
        assert all(torch.equal(a, b) for a, b in zip(results[seed], expected))
    assert torch.get_num_threads() == threads_before


# -- Keras 3.15 with a NaN first monitored value --------------------------------------------------

def test_early_stopping_takes_a_nan_first_value_as_the_best_as_keras_does():
    losses = {"val_loss": [float("nan"), 1.0, 0.5, 0.4]}
    assert drive_epochs(EarlyStopping(monitor="val_loss", patience=1), losses) == 1


def test_reduce_lr_on_plateau_halves_the_lr_at_the_second_epoch_after_a_nan_first_value():
    # Keras 3.15: NaN is the best so far, nothing beats it, so every patience epoch reduces again.
    model = nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    plateau = ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1, min_delta=0.0)
    from trainlab.callbacks import CallbackList, RunState

    state = RunState(model=model, num_epochs=4, steps_per_epoch=1, optimizer=optimizer)
    callbacks = CallbackList([plateau], model=model, run=state, params={})
    callbacks.on_train_begin()
    lrs = []
    for epoch, value in enumerate([float("nan"), 1.0, 0.5, 0.4]):
        callbacks.on_epoch_end(epoch, {"val_loss": value})
        lrs.append(optimizer.param_groups[0]["lr"])
    assert lrs == [1.0, 0.5, 0.25, 0.125]


def test_resume_does_not_depend_on_display_callbacks(tmp_path, capsys):
    """Issue 17 item 7: a progress display is not part of what a checkpoint must match."""
    whole = trainlab.fit(mlp(), (X, Y), {"num_epochs": 3, "seed": 0})
    trainlab.fit(mlp(), (X, Y), {"num_epochs": 2, "seed": 0}, verbose=2, checkpoint_dir=tmp_path)
    resumed = trainlab.fit(mlp(), (X, Y), {"num_epochs": 3, "seed": 0}, verbose=0, checkpoint_dir=tmp_path,
                           resume=True)
    assert resumed.params["resumed_from_epoch"] == 2
    assert all(torch.equal(a, b) for a, b in zip(weights_of(whole.model), weights_of(resumed.model)))
