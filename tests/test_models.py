"""Sequential with Keras's compile/fit/evaluate/predict/summary, and the issue's done-when checks."""

import numpy as np
import pytest
import torch
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import trainlab
from trainlab.callbacks import EarlyStopping
from trainlab.datasets import load
from trainlab.errors import InputError
from trainlab.layers import (
    LSTM,
    BatchNormalization,
    Bidirectional,
    Conv2D,
    Dense,
    Dropout,
    Embedding,
    Flatten,
)
from trainlab.models import Sequential


def test_keras_iris_example_reaches_ninety_percent_validation_accuracy():
    iris = load("iris")
    x, y = iris.x.numpy(), iris.y.numpy()
    x_train, _, y_train, _ = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    x_train = StandardScaler().fit_transform(x_train)
    # The user's Keras code, with only the imports changed:
    model = Sequential([Dense(64, input_shape=(4,), activation='relu'), BatchNormalization(),
                        Dense(128, activation='relu'), BatchNormalization(),
                        Dense(128, activation='relu'), BatchNormalization(),
                        Dense(3, activation='softmax')])
    model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy'])
    early_stopping = EarlyStopping(monitor='val_loss', patience=30, mode='min', min_delta=0.0001)
    history = model.fit(x_train, y_train, batch_size=16, epochs=300, validation_split=0.2,
                        callbacks=early_stopping, verbose=0, seed=0)
    val_accuracy = history.history["val_accuracy"]
    assert len(val_accuracy) < 300  # early stopping ended it
    assert val_accuracy[-1] >= 0.9


def test_bidirectional_lstm_classifier_clearly_beats_chance_on_token_sequences():
    data = load("sequences")
    x, y = data.x[:1200], data.y[:1200]
    model = Sequential([
        Embedding(int(data.x.max()) + 1, 16),
        Bidirectional(LSTM(64, return_sequences=True)),
        Bidirectional(LSTM(32)),
        Dense(64, activation="relu"),
        Dropout(0.5),
        Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=32, epochs=6, validation_split=0.25, verbose=0, seed=0)
    chance = max(y.float().mean().item(), 1 - y.float().mean().item())
    assert max(history.history["val_accuracy"]) >= chance + 0.2


def test_summary_prints_names_output_shapes_and_parameter_counts():
    model = Sequential([Dense(64, input_shape=(4,), activation="relu"), BatchNormalization(),
                        Dense(3, activation="softmax")])
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "dense (Dense)" in text and "dense_1 (Dense)" in text
    assert "batch_normalization (BatchNormalization)" in text
    assert "(None, 64)" in text and "(None, 3)" in text
    assert "Total params: 771" in text             # trainable + BatchNormalization's 2*64 running stats
    assert "Trainable params: 643" in text         # (4*64+64) + 2*64 + (64*3+3)
    assert "Non-trainable params: 128" in text
    assert model.count_params() == 771


def test_summary_without_a_known_input_shape_says_how_to_give_one():
    with pytest.raises(InputError, match="input_shape"):
        Sequential([Dense(3)]).summary()


def test_scaling_is_fitted_on_training_data_and_reused_by_predict():
    rng = np.random.default_rng(0)
    x = rng.normal(loc=50.0, scale=10.0, size=(200, 3)).astype("float32")
    y = (x[:, 0] > 50).astype("int64")
    model = Sequential([Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2, validation_split=0.25, scaling="standardize", verbose=0, seed=0)
    assert torch.allclose(model.scaler.transform(torch.as_tensor(x[:150])).mean(0), torch.zeros(3), atol=1e-4)
    manual = model.predict(model.scaler.transform(torch.as_tensor(x)).numpy()[:0])  # empty works
    assert manual.shape[0] == 0
    scaled = model.scaler.transform(torch.as_tensor(x))
    expected = torch.softmax(model.forward_logits(scaled), -1).detach().numpy()
    model.eval()
    assert np.allclose(model.predict(x), expected, atol=1e-6)


def test_evaluate_returns_loss_and_metrics_like_keras():
    model = Sequential([Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    iris = load("iris")
    model.fit(iris.x, iris.y, epochs=1, verbose=0, seed=0)
    loss, accuracy = model.evaluate(iris.x, iris.y)
    logs = model.evaluate(iris.x, iris.y, return_dict=True)
    assert logs == {"loss": loss, "accuracy": accuracy}
    probs = model.predict(iris.x)
    assert accuracy == pytest.approx((probs.argmax(1) == iris.y.numpy()).mean())
    nll = -np.log(probs[np.arange(150), iris.y.numpy()]).mean()
    assert loss == pytest.approx(nll, rel=1e-4)


def test_get_and_set_weights_round_trip():
    model = Sequential([Dense(4, input_shape=(2,)), Dense(1)])
    model.build()
    weights = model.get_weights()
    other = Sequential([Dense(4, input_shape=(2,)), Dense(1)])
    other.build()
    other.set_weights(weights)
    assert all(np.array_equal(a, b) for a, b in zip(other.get_weights(), weights))


def test_any_torch_module_trains_with_fit():
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    history = trainlab.fit(net, "iris", {"num_epochs": 30, "seed": 0,
                                         "optimizer": {"name": "adam", "lr": 0.01}})
    assert history.history["val_accuracy"][-1] > 0.6
    assert history.params["fused_loss"] is False and history.params["from_logits"] is True


def test_conv_model_trains_on_digit_images():
    digits = load("digits")
    images = digits.x.reshape(-1, 8, 8, 1) / 16.0
    model = Sequential([Conv2D(8, 3, activation="relu", padding="same"), Flatten(),
                        Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(images, digits.y, epochs=3, batch_size=64, validation_split=0.2, verbose=0, seed=0)
    assert history.history["val_accuracy"][-1] > 0.7


@pytest.mark.parametrize("kwargs, match", [
    (dict(optimizer="adma", loss="mse"), "unknown optimizer 'adma'.*Did you mean 'adam'"),
    (dict(optimizer="adam", loss="sparse_categorical_crossentropi"), "Did you mean 'sparse_categorical_crossentropy'"),
    (dict(optimizer="adam", loss="mse", metrics=["acuracy"]), "unknown metric 'acuracy'"),
    (dict(optimizer="adam"), "compile\\(\\) needs a loss"),
])
def test_compile_rejects_typos_at_once(kwargs, match):
    with pytest.raises(InputError, match=match):
        Sequential([Dense(1)]).compile(**kwargs)


def model_for_iris(outputs=3):
    model = Sequential([Dense(8, activation="relu"), Dense(outputs, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_fit_bad_input_errors():
    iris = load("iris")
    x, y = iris.x.numpy(), iris.y.numpy()
    bad = x.copy()
    bad[7, 2] = np.nan
    with pytest.raises(InputError, match="NaN"):
        model_for_iris().fit(bad, y, verbose=0)
    with pytest.raises(InputError, match="inf"):
        model_for_iris().fit(np.where(x > 7, np.inf, x), y, verbose=0)
    with pytest.raises(InputError, match=r"validation_split must be in \(0, 1\)"):
        model_for_iris().fit(x, y, validation_split=1.5, verbose=0)
    with pytest.raises(InputError, match="label"):
        model_for_iris(outputs=2).fit(x, y, verbose=0)
    with pytest.raises(InputError):
        model_for_iris().fit(x[:0], y[:0], verbose=0)
    with pytest.raises(InputError, match="rows|samples|length"):
        model_for_iris().fit(x, y[:100], verbose=0)
    with pytest.raises(InputError, match=r"declared with input_shape=\(5,\)"):
        wrong = Sequential([Dense(3, input_shape=(5,), activation="softmax")])
        wrong.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        wrong.fit(x, y, verbose=0)
