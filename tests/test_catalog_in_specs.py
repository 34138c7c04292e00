"""Every technique in the catalog is selectable by name from a spec, and `trainlab fit` trains with it."""

import math

import numpy as np
import pytest
import torch

import trainlab
from trainlab.activations import ACTIVATIONS
from trainlab.api import dataset_from_spec
from trainlab.augment import AUGMENTATIONS
from trainlab.errors import InputError
from trainlab.initializers import INITIALIZERS
from trainlab.metrics import METRICS
from trainlab.optimizers import OPTIMIZERS
from trainlab.regularizers import REGULARIZERS
from trainlab.schedules import SCHEDULES
from trainlab.spec import parse_spec


def spec(data="iris", layers=None, **recipe):
    layers = layers or [{"type": "Dense", "units": 8, "activation": "relu"},
                        {"type": "Dense", "units": 3, "activation": "softmax"}]
    return parse_spec({"name": "t", "data": {"name": data}, "model": {"layers": layers},
                       "recipe": {"num_epochs": 2, "seed": 0, "batch_size": 16, **recipe}})


def train(parsed):
    model = trainlab.Sequential(parsed.model.layers)
    history = trainlab.fit(model, dataset_from_spec(parsed.data), parsed.recipe,
                           validation_split=parsed.data.validation_split)
    assert len(history.history["loss"]) == parsed.recipe.num_epochs
    return history


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_every_optimizer_trains_from_a_spec(name):
    history = train(spec(optimizer={"name": name}))
    assert all(math.isfinite(v) for v in history.history["loss"])


@pytest.mark.parametrize("name", SCHEDULES.names())
def test_every_schedule_trains_from_a_spec_and_sets_the_lr(name):
    history = train(spec(schedule={"name": name, **({"monitor": "loss"} if name == "plateau" else {})},
                         optimizer={"name": "sgd", "lr": 0.1}))
    assert all(0 <= lr <= 0.1 + 1e-12 for lr in history.history["lr"])


def test_warmup_composes_with_any_schedule_from_toml_style_tables():
    history = train(spec(schedule={"name": "cosine", "warmup_epochs": 1}, optimizer={"name": "sgd", "lr": 0.1},
                         num_epochs=4))
    # The lr of epoch 0 is the last warmup step's, below the peak; then cosine decays to 0 at the end.
    lrs = history.history["lr"]
    assert lrs[0] < 0.1 and lrs[-1] < lrs[1]


@pytest.mark.parametrize("name", INITIALIZERS.names())
def test_every_initializer_trains_from_a_spec(name):
    layers = [{"type": "Dense", "units": 8, "activation": "tanh", "kernel_initializer": name},
              {"type": "Dense", "units": 3, "activation": "softmax"}]
    train(spec(layers=layers))


@pytest.mark.parametrize("name", [n for n in ACTIVATIONS.names() if n not in ("softmax", "log_softmax")])
def test_every_hidden_activation_trains_from_a_spec(name):
    layers = [{"type": "Dense", "units": 8, "activation": name},
              {"type": "Dense", "units": 3, "activation": "softmax"}]
    train(spec(layers=layers))


@pytest.mark.parametrize("name", REGULARIZERS.names())
def test_every_regularizer_trains_from_a_spec_and_reports_its_penalty(name):
    settings = {"l1l2": {"l1": 0.01, "l2": 0.01}}.get(name, {})
    layers = [{"type": "Dense", "units": 8, "activation": "relu",
               "kernel_regularizer": {"name": name, **settings},
               "activity_regularizer": {"name": name, **settings}},
              {"type": "Dense", "units": 3, "activation": "softmax"}]
    history = train(spec(layers=layers))
    assert all(p > 0 for p in history.history["penalty"])


@pytest.mark.parametrize("data, units, activation, loss", [
    ("iris", 3, "softmax", "sparse_categorical_crossentropy"),
    ("iris", 3, "softmax", {"name": "sparse_categorical_crossentropy", "label_smoothing": 0.1}),
    ("breast_cancer", 1, "sigmoid", "binary_crossentropy"),
    ("breast_cancer", 1, None, {"name": "binary_crossentropy", "from_logits": True, "label_smoothing": 0.1}),
    ("diabetes", 1, None, "mse"),
    ("diabetes", 1, None, "rmse"),
    ("diabetes", 1, None, "mae"),
    ("diabetes", 1, None, {"name": "huber", "delta": 10.0}),
    ("diabetes", 1, None, "mean_squared_error"),
    ("diabetes", 1, None, "mean_absolute_error"),
])
def test_losses_train_from_a_spec(data, units, activation, loss):
    layers = [{"type": "Dense", "units": 8, "activation": "relu"},
              {"type": "Dense", "units": units, "activation": activation}]
    history = train(spec(data=data, layers=layers, loss=loss, metrics=[]))
    assert all(math.isfinite(v) for v in history.history["val_loss"])


@pytest.mark.parametrize("loss", ["categorical_crossentropy", "kl_divergence",
                                  {"name": "categorical_crossentropy", "label_smoothing": 0.2}])
def test_one_hot_losses_train_from_python(loss):
    iris = trainlab.datasets.load("iris")
    one_hot = torch.nn.functional.one_hot(iris.y, 3).float()
    model = trainlab.Sequential([trainlab.layers.Dense(8, activation="relu"),
                                 trainlab.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    history = model.fit(iris.x, one_hot, epochs=2, validation_split=0.2, verbose=0, seed=0)
    assert np.isfinite(history.history["val_loss"]).all()


CLASSIFICATION_METRICS = ["accuracy", "acc", "sparse_categorical_accuracy", {"name": "top_k_accuracy", "k": 2},
                          {"name": "precision", "average": "macro"}, {"name": "recall", "average": "weighted"},
                          {"name": "f1", "average": "micro"}, "auc", "confusion_matrix",
                          "categorical_accuracy"]
REGRESSION_METRICS = ["mse", "rmse", "mae", "r2"]
CALIBRATION_METRICS = ["ece", {"name": "ece", "num_bins": 5}, "log_loss", "nll"]


def test_metric_lists_cover_the_catalog():
    named = {m if isinstance(m, str) else m["name"]
             for m in CLASSIFICATION_METRICS + REGRESSION_METRICS + CALIBRATION_METRICS}
    assert set(METRICS.names()) - named == {"binary_accuracy"}  # covered below on a binary task


@pytest.mark.parametrize("metric", CLASSIFICATION_METRICS)
def test_classification_metrics_from_a_spec_land_in_the_history(metric):
    if metric == "categorical_accuracy":
        iris = trainlab.datasets.load("iris")
        model = trainlab.Sequential([trainlab.layers.Dense(3, activation="softmax")])
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=[metric])
        history = model.fit(iris.x, torch.nn.functional.one_hot(iris.y, 3).float(), epochs=2,
                            validation_split=0.2, verbose=0, seed=0)
        assert 0 <= history.history["val_categorical_accuracy"][-1] <= 1
        return
    history = train(spec(metrics=[metric]))
    name = metric if isinstance(metric, str) else metric["name"]
    key = {"acc": "accuracy"}.get(name, name)
    if key == "confusion_matrix":
        assert "confusion_matrix" not in history.history  # not a per-epoch number
    else:
        assert 0 <= history.history[f"val_{key}"][-1] <= 1


@pytest.mark.parametrize("metric", REGRESSION_METRICS)
def test_regression_metrics_from_a_spec_land_in_the_history(metric):
    layers = [{"type": "Dense", "units": 8, "activation": "relu"}, {"type": "Dense", "units": 1}]
    history = train(spec(data="diabetes", layers=layers, loss="mse", metrics=[metric]))
    assert math.isfinite(history.history[f"val_{metric}"][-1])


def test_binary_accuracy_on_a_sigmoid_output():
    layers = [{"type": "Dense", "units": 8, "activation": "relu"}, {"type": "Dense", "units": 1,
                                                                    "activation": "sigmoid"}]
    history = train(spec(data="breast_cancer", layers=layers, metrics=["binary_accuracy", "auc", "f1"]))
    assert 0.5 < history.history["val_binary_accuracy"][-1] <= 1


def test_a_combination_of_techniques_trains_well():
    layers = [{"type": "Dense", "units": 64, "activation": "leaky_relu", "kernel_initializer": "he_uniform",
               "kernel_regularizer": {"name": "l2", "l2": 1e-4}},
              {"type": "BatchNormalization"},
              {"type": "Dropout", "rate": 0.2},
              {"type": "Dense", "units": 10, "activation": "softmax"}]
    parsed = spec(data="digits", layers=layers, optimizer={"name": "nesterov", "lr": 0.05},
                  schedule={"name": "one_cycle"}, loss={"name": "sparse_categorical_crossentropy",
                                                         "label_smoothing": 0.05},
                  metrics=["accuracy", {"name": "f1", "average": "macro"}], num_epochs=8, batch_size=32,
                  clip_grad_norm=5.0)
    model = trainlab.Sequential(parsed.model.layers)
    history = trainlab.fit(model, "digits", parsed.recipe)
    assert history.history["val_accuracy"][-1] > 0.93


@pytest.mark.parametrize("metric", CALIBRATION_METRICS)
def test_calibration_metrics_from_a_spec_land_in_the_history(metric):
    history = train(spec(metrics=["accuracy", metric]))
    key = {"nll": "log_loss"}.get(metric if isinstance(metric, str) else metric["name"], "")
    key = key or (metric if isinstance(metric, str) else metric["name"])
    value = history.history[f"val_{key}"][-1]
    assert 0 <= value <= (1 if key == "ece" else 50)


IMAGE_LAYERS = [
    {"type": "RandomFlip", "mode": "horizontal"},
    {"type": "RandomTranslation", "height_factor": 0.1, "width_factor": 0.1, "fill_mode": "constant"},
    {"type": "RandomRotation", "factor": 0.05},
    {"type": "RandomZoom", "height_factor": 0.1},
    {"type": "RandomContrast", "factor": 0.2},
    {"type": "RandomBrightness", "factor": 0.1},
    {"type": "GaussianNoise", "stddev": 0.1},
    {"type": "GaussianDropout", "rate": 0.2},
    {"type": "RandomCrop", "height": 6, "width": 6},
]


def test_image_layer_list_covers_the_augmentation_layers():
    from trainlab.augment import layers as augment_layers

    assert {c["type"] for c in IMAGE_LAYERS} == set(augment_layers.__all__)


@pytest.mark.parametrize("layer", IMAGE_LAYERS, ids=lambda c: c["type"])
def test_every_augmentation_layer_trains_a_small_cnn_from_a_spec(layer):
    layers = [layer, {"type": "Conv2D", "filters": 4, "kernel_size": 3, "activation": "relu"},
              {"type": "Flatten"}, {"type": "Dense", "units": 10, "activation": "softmax"}]
    parsed = parse_spec({"name": "t", "data": {"name": "digits_images", "scaling": "none",
                                                  "options": {"subset": 400}},
                         "model": {"layers": layers},
                         "recipe": {"num_epochs": 2, "seed": 0, "batch_size": 64,
                                    "optimizer": {"name": "adam", "lr": 0.01}}})
    history = train(parsed)
    assert history.history["val_accuracy"][-1] > 0.15  # chance is 0.1


def test_weight_noise_trains_from_a_spec_and_leaves_plain_weights():
    parsed = spec(weight_noise={"stddev": 0.05})
    model = trainlab.Sequential(parsed.model.layers)
    history = trainlab.fit(model, "iris", parsed.recipe)
    assert all(math.isfinite(v) for v in history.history["loss"])
    assert not any("parametrizations" in key for key in model.state_dict())


@pytest.mark.parametrize("fields", [
    {"augment": [{"name": "random_translation", "height_factor": 0.1}, "random_flip"]},
    {"mixup": {"alpha": 0.2}}, {"cutmix": 1.0}, {"input_noise": 0.1}, {"weight_noise": 0.01},
])
def test_data_technique_recipe_fields_validate(fields):
    assert spec(**fields).recipe


@pytest.mark.parametrize("fields, message", [
    ({"augment": ["random_translaton"]}, r"recipe.augment\[0\].*Did you mean 'random_translation'"),
    ({"mixup": {"alpha": -1}}, r"alpha must be > 0"),
    ({"mixup": 0.2, "cutmix": 1.0}, r"at most one of mixup and cutmix"),
    ({"weight_noise": {"std": 0.1}}, r"weight_noise has no setting 'std'"),
])
def test_bad_data_technique_fields_are_spec_errors(fields, message):
    with pytest.raises(InputError, match=message):
        spec(**fields)


SIGNAL_AUGMENTATIONS = {"signal_shift", "signal_scale", "signal_jitter"}


@pytest.mark.parametrize("name", AUGMENTATIONS.names())
def test_every_recipe_augmentation_trains_from_a_spec(name):
    if name in SIGNAL_AUGMENTATIONS:
        data = {"name": "mnist1d", "options": {"num_samples": 300}}
        layers = [{"type": "Dense", "units": 32, "activation": "relu"},
                  {"type": "Dense", "units": 10, "activation": "softmax"}]
    else:
        data = {"name": "digits_images", "scaling": "none", "options": {"subset": 300}}
        layers = [{"type": "Conv2D", "filters": 4, "kernel_size": 3, "activation": "relu"},
                  {"type": "Flatten"}, {"type": "Dense", "units": 10, "activation": "softmax"}]
    recipe = {"num_epochs": 2, "seed": 0, "batch_size": 64}
    if name in ("mixup", "cutmix"):
        recipe[name] = {"alpha": 0.4}
    elif name == "gaussian_noise":
        recipe["input_noise"] = {"stddev": 0.1}
    else:
        recipe["augment"] = [name]
    parsed = parse_spec({"name": "t", "data": data, "model": {"layers": layers}, "recipe": recipe})
    history = train(parsed)
    assert all(math.isfinite(v) for v in history.history["loss"] + history.history["val_loss"])
