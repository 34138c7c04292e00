"""Keras-style layers: shapes, Keras defaults and layouts, lazy building, clear shape errors."""

import math

import pytest
import torch
from torch import nn

from trainlab.errors import InputError
from trainlab.layers import (
    GRU,
    LSTM,
    Activation,
    AveragePooling2D,
    BatchNormalization,
    Bidirectional,
    Conv1D,
    Conv2D,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    GlobalAveragePooling2D,
    MaxPooling2D,
    Reshape,
    SimpleRNN,
    layer_config,
    layer_from_config,
)


@pytest.mark.parametrize(
    "layer, input_shape, output_shape",
    [
        (Dense(7), (5,), (7,)),
        (Dense(7), (3, 5), (3, 7)),                      # acts on the last axis, as Keras
        (Activation("tanh"), (4,), (4,)),
        (Dropout(0.5), (4,), (4,)),
        (BatchNormalization(), (6,), (6,)),
        (BatchNormalization(), (5, 5, 3), (5, 5, 3)),
        (Flatten(), (4, 4, 2), (32,)),
        (Reshape((4, 4, 1)), (16,), (4, 4, 1)),
        (Conv1D(8, 3), (10, 2), (8, 8)),
        (Conv1D(8, 3, padding="same"), (10, 2), (10, 8)),
        (Conv2D(4, 3), (8, 8, 1), (6, 6, 4)),
        (Conv2D(4, 3, strides=2, padding="same"), (7, 7, 1), (4, 4, 4)),   # ceil(7 / 2)
        (Conv2D(4, 3, data_format="channels_first"), (1, 8, 8), (4, 6, 6)),
        (MaxPooling2D(2), (8, 8, 3), (4, 4, 3)),
        (MaxPooling2D(2, padding="same"), (7, 7, 3), (4, 4, 3)),
        (AveragePooling2D((2, 2)), (8, 6, 3), (4, 3, 3)),
        (GlobalAveragePooling2D(), (5, 5, 3), (3,)),
        (SimpleRNN(6), (9, 4), (6,)),
        (LSTM(6, return_sequences=True), (9, 4), (9, 6)),
        (GRU(6), (9, 4), (6,)),
        (Bidirectional(LSTM(6, return_sequences=True)), (9, 4), (9, 12)),
        (Bidirectional(GRU(5)), (9, 4), (10,)),
    ],
)
def test_output_shapes_follow_keras(layer, input_shape, output_shape):
    y = layer(torch.randn(2, *input_shape))
    assert tuple(y.shape[1:]) == output_shape
    assert layer.output_shape == output_shape


def test_embedding_maps_token_ids_to_vectors_with_keras_uniform_init():
    layer = Embedding(100, 8)
    y = layer(torch.randint(0, 100, (3, 5)))
    assert y.shape == (3, 5, 8)
    assert layer.weight.abs().max() <= 0.05


def test_dense_uses_keras_glorot_uniform_and_zero_bias_by_default():
    layer = Dense(300)
    layer(torch.zeros(2, 500))
    limit = math.sqrt(6 / (500 + 300))
    assert layer.weight.abs().max() <= limit
    assert layer.weight.std().item() == pytest.approx(limit / math.sqrt(3), rel=0.02)
    assert torch.count_nonzero(layer.bias) == 0


def test_kernel_initializer_by_name_table_or_object():
    he = Dense(400, kernel_initializer="he_normal")
    he(torch.zeros(2, 800))
    assert he.weight.std().item() == pytest.approx(math.sqrt(2 / 800), rel=0.02)
    const = Dense(3, kernel_initializer={"name": "constant", "value": 0.5}, bias_initializer="ones")
    const(torch.zeros(1, 2))
    assert torch.all(const.weight == 0.5) and torch.all(const.bias == 1.0)


def test_lstm_starts_with_keras_forget_bias_and_orthogonal_recurrent_weights():
    layer = LSTM(4)
    layer(torch.zeros(1, 3, 2))
    b_ih = layer.rnn.bias_ih_l0
    assert torch.equal(b_ih[4:8], torch.ones(4)) and torch.count_nonzero(b_ih[:4]) == 0
    w_hh = layer.rnn.weight_hh_l0  # (4 * units, units): orthonormal columns
    assert torch.allclose(w_hh.T @ w_hh, torch.eye(4), atol=1e-5)


def test_batch_normalization_uses_keras_momentum_and_epsilon():
    layer = BatchNormalization()
    x = torch.randn(64, 3) * 4 + 2
    layer.train()
    y = layer(x)
    assert torch.allclose(y.mean(0), torch.zeros(3), atol=1e-5)
    # Keras momentum 0.99: running = 0.99 * running + 0.01 * batch statistic.
    assert torch.allclose(layer.running_mean, 0.01 * x.mean(0), atol=1e-6)
    layer.eval()
    expected = (x - layer.running_mean) / torch.sqrt(layer.running_var + 1e-3)
    assert torch.allclose(layer(x), expected, atol=1e-5)


def test_dropout_drops_about_rate_and_rescales_in_training_only():
    layer = Dropout(0.25)
    x = torch.ones(20000)
    layer.train()
    y = layer(x.unsqueeze(0)).squeeze(0)
    assert (y == 0).float().mean().item() == pytest.approx(0.25, abs=0.02)
    assert y[y != 0].unique().tolist() == [pytest.approx(1 / 0.75)]
    layer.eval()
    assert torch.equal(layer(x.unsqueeze(0)).squeeze(0), x)


def test_declared_input_shape_mismatch_names_the_layer_and_both_shapes():
    layer = Dense(4, input_shape=(4,), name="first")
    with pytest.raises(InputError, match=r"layer 'first' \(Dense\) was declared with input_shape=\(4,\) "
                                         r"but received inputs of shape \(5,\)"):
        layer(torch.zeros(2, 5))


def test_built_dense_fed_the_wrong_width_names_both_widths():
    layer = Dense(4)
    layer(torch.zeros(2, 3))
    with pytest.raises(InputError, match="built for 3 input features but received shape"):
        layer(torch.zeros(2, 6))


def test_conv_on_flat_inputs_explains_the_expected_rank():
    with pytest.raises(InputError, match=r"expects 4-D inputs \(batch, height, width, channels\)"):
        Conv2D(4, 3)(torch.zeros(2, 64))


@pytest.mark.parametrize("make, match", [
    (lambda: Dense(0), "Dense.units must be an int >= 1"),
    (lambda: Dropout(1.0), r"Dropout.rate must be in \[0.0, 1.0\)"),
    (lambda: Conv2D(4, 3, padding="smae"), "Did you mean 'same'"),
    (lambda: Dense(3, activation="rleu"), "unknown activation 'rleu'.*Did you mean 'relu'"),
    (lambda: Dense(3, kernel_initializer="he_norml"), "Did you mean 'he_normal'"),
    (lambda: Bidirectional(Dense(3)), "Bidirectional wraps a SimpleRNN, LSTM or GRU"),
    (lambda: layer_from_config({"type": "Dens", "units": 3}), "unknown layer 'Dens'.*Did you mean 'Dense'"),
    (lambda: layer_from_config({"type": "Dense", "unit": 3}), "has no setting 'unit'.*Did you mean 'units'"),
])
def test_bad_layer_settings_are_clear_errors(make, match):
    with pytest.raises(InputError, match=match):
        make()


def test_layer_config_round_trips():
    layer = Dense(5, activation="relu", kernel_regularizer={"name": "l2", "l2": 0.1}, input_shape=(3,))
    rebuilt = layer_from_config(layer_config(layer))
    assert layer_config(rebuilt) == layer_config(layer)
    assert isinstance(rebuilt, Dense) and rebuilt.declared_input_shape == (3,)
    nested = Bidirectional(LSTM(4, return_sequences=True))
    assert layer_config(layer_from_config(layer_config(nested))) == layer_config(nested)


def test_layers_are_plain_torch_modules():
    assert all(issubclass(cls, nn.Module) for cls in (Dense, Conv2D, LSTM, Embedding))
