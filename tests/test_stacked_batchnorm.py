"""BatchNormalization on the layer-stack path: stacked members match their solo runs.

The layer path (`LayerStackForward`, no vmap) normalizes each member's features
by that member's own batch statistics and updates that member's running
statistics in place, exactly as the solo layer's ``F.batch_norm`` does.
"""

import numpy as np
import pytest
import torch

import trainlab
import trainlab.engine.stacked as stacked_step
from trainlab.engine import LoopConfig, Technique, TrainData, train
from trainlab.engine.evaluate import predict_members, predict_tensors
from trainlab.layers import BatchNormalization, Dense, Dropout, Flatten, Reshape
from trainlab.stacked import MemberConfig, fit_members
from trainlab.stacked._forward import LayerStackForward, layer_stack_supported

IRIS = trainlab.datasets.load("iris")
X = (IRIS.x - IRIS.x.mean(0)) / IRIS.x.std(0)
Y = IRIS.y
# 77 training rows in batches of 16: four full batches and a last one of 13.
DATA = TrainData(X[:77], Y[:77], X[110:], Y[110:])


def bn_mlp(frozen=False):
    return trainlab.Sequential([Dense(16, activation="relu"), BatchNormalization(),
                                Dense(16, activation="relu"), Dropout(0.2),
                                BatchNormalization(momentum=0.9, epsilon=1e-2, trainable=not frozen),
                                Dense(3, activation="softmax")])


def bn_sequence_mlp():
    # BatchNormalization over (batch, steps, features): statistics over batch and steps.
    return trainlab.Sequential([Reshape((2, 2)), Dense(8, activation="tanh"), BatchNormalization(momentum=0.8),
                                Flatten(), Dense(3, activation="softmax")])


def solo(model, config, data=DATA, *, epochs, batch_size=16, shuffle=True):
    rows = config.train_indices
    x, y = (data.x, data.y) if rows is None else (data.x[rows], data.y[rows])
    technique = Technique(loss="auto", optimizer=config.optimizer, metrics=["accuracy"], task="classification")
    return train(model, TrainData(x, y, data.x_val, data.y_val), technique,
                 LoopConfig(batch_size=batch_size, num_epochs=epochs, seed=config.seed, device="cpu", shuffle=shuffle))


def relative(a, b):
    """max over the state dict (weights, running_mean, running_var) of ||a - b|| / ||b||."""
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    return max(((sa[n] - sb[n]).norm() / sb[n].norm().clamp_min(1e-12)).item() for n in sb)


@pytest.fixture
def no_vmap(monkeypatch):
    """Fail if the stack builds the vmap forward: these models must take the layer path."""
    def refuse(*args, **kwargs):
        raise AssertionError("the vmap forward was chosen for a model the layer path runs")

    monkeypatch.setattr(stacked_step, "VmapForward", refuse)


def check(model_fn, members, *, epochs=3, **loop):
    model = model_fn()
    model(X[:2])
    assert layer_stack_supported(model)
    histories = fit_members(model_fn(), members, DATA, metrics=["accuracy"], batch_size=16, num_epochs=epochs,
                            device="cpu", stack="on", **loop)
    for config, history in zip(members, histories):
        assert history.params["stacked"] is True
        alone = solo(model_fn(), config, epochs=epochs, **loop)
        assert relative(history.model, alone.model) < 1e-5
        assert list(history.history) == list(alone.history)
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            np.testing.assert_allclose(history.history[key], alone.history[key], rtol=1e-5, atol=1e-6, err_msg=key)
    return histories


def test_members_with_their_own_seeds_and_lrs_match_their_solo_runs(no_vmap):
    members = [MemberConfig(seed=0, optimizer={"name": "adam", "lr": 0.01}),
               MemberConfig(seed=1, optimizer={"name": "adam", "lr": 0.003}),
               MemberConfig(seed=2, optimizer={"name": "momentum", "lr": 0.05})]
    histories = check(bn_mlp, members)
    # The running statistics moved away from their initial values, differently for each member.
    means = [h.model.state_dict()["layers.1.running_mean"] for h in histories]
    assert all(m.abs().max() > 1e-2 for m in means)
    assert (means[0] - means[1]).abs().max() > 1e-3


def test_unequal_training_sets_and_shuffle_false(no_vmap):
    # 77, 60 and 45 rows: the members' last batches differ in size (13, 12, 13) and the member with
    # 45 rows sits the fifth step out, so the stack runs members subsets (their running statistics
    # are gathered, updated in place and scattered back).
    members = [MemberConfig(seed=k, optimizer={"name": "adam", "lr": 0.01}, train_indices=range(0, n))
               for k, n in enumerate([77, 60, 45])]
    check(bn_mlp, members)
    check(bn_mlp, members, epochs=2, shuffle=False)


def test_a_frozen_batchnorm_runs_in_inference_mode_as_alone(no_vmap):
    members = [MemberConfig(seed=k, optimizer={"name": "adam", "lr": 0.01}) for k in range(2)]
    histories = check(lambda: bn_mlp(frozen=True), members, epochs=2)
    for history in histories:
        state = history.model.state_dict()
        assert torch.equal(state["layers.4.running_mean"], torch.zeros(16))
        assert torch.equal(state["layers.4.running_var"], torch.ones(16))
        assert not torch.equal(state["layers.1.running_mean"], torch.zeros(16))


def test_batchnorm_over_steps_and_features(no_vmap):
    members = [MemberConfig(seed=k, optimizer={"name": "adam", "lr": 0.01 * (k + 1)}) for k in range(3)]
    check(bn_sequence_mlp, members, epochs=2)


def test_the_layer_path_uses_each_members_batch_statistics_and_updates_its_running_ones():
    torch.manual_seed(0)
    k, b, f = 3, 10, 5
    model = trainlab.Sequential([BatchNormalization(momentum=0.7, epsilon=1e-3)])
    model(torch.zeros(2, f))
    params = {"layers.0.weight": torch.rand(k, f) + 0.5, "layers.0.bias": torch.randn(k, f)}
    start_mean, start_var = torch.randn(k, f), torch.rand(k, f) + 0.5
    buffers = {"layers.0.running_mean": start_mean.clone(), "layers.0.running_var": start_var.clone()}
    x = torch.randn(k, b, f) * torch.tensor([1.0, 3.0, 0.5]).view(k, 1, 1) + 2.0
    forward = LayerStackForward(model, fused=False)
    out, _ = forward(params, buffers, x, training=True)
    mean = x.mean(1)
    biased = x.var(1, unbiased=False)
    expected = ((x - mean.unsqueeze(1)) / torch.sqrt(biased.unsqueeze(1) + 1e-3)
                * params["layers.0.weight"].unsqueeze(1) + params["layers.0.bias"].unsqueeze(1))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    # Keras momentum 0.7: new = 0.7 * old + 0.3 * batch statistic; the variance is the unbiased one.
    torch.testing.assert_close(buffers["layers.0.running_mean"], 0.7 * start_mean + 0.3 * mean)
    torch.testing.assert_close(buffers["layers.0.running_var"], 0.7 * start_var + 0.3 * x.var(1, unbiased=True))
    # Eval mode normalizes by the running statistics and leaves them as they are.
    running = {n: t.clone() for n, t in buffers.items()}
    out, _ = forward(params, buffers, x, training=False)
    expected = ((x - running["layers.0.running_mean"].unsqueeze(1))
                / torch.sqrt(running["layers.0.running_var"].unsqueeze(1) + 1e-3)
                * params["layers.0.weight"].unsqueeze(1) + params["layers.0.bias"].unsqueeze(1))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    assert all(torch.equal(buffers[n], running[n]) for n in buffers)
    # One batch seen by every member (how validation runs): each member's own running statistics.
    shared, _ = forward(params, buffers, x[1], training=False, shared=True)
    torch.testing.assert_close(shared[1], expected[1], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(shared[0], expected[1])
    # Running statistics passed as strided views get the same update, in place.
    strided = {n: t.t().contiguous().t() for n, t in running.items()}
    assert not strided["layers.0.running_mean"].is_contiguous()
    forward(params, strided, x, training=True)
    torch.testing.assert_close(strided["layers.0.running_mean"], 0.7 * running["layers.0.running_mean"] + 0.3 * mean)


def test_predict_members_runs_batchnorm_members_with_their_own_running_statistics():
    models = []
    for k in range(3):
        torch.manual_seed(k)
        model = bn_mlp()
        model.train()
        for _ in range(3):
            model(X[:40] + k)  # running statistics of its own
        models.append(model)
    out = predict_members(models, X[100:])
    for k, model in enumerate(models):
        torch.testing.assert_close(out[k], predict_tensors(model, X[100:]), rtol=1e-5, atol=1e-6)
