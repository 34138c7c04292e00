"""trainlab.sklearn: the estimators pass scikit-learn's own checks and work inside its tools."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from joblib import parallel_config
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import load_iris, make_classification
from sklearn.ensemble import AdaBoostClassifier, BaggingClassifier
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.metrics import log_loss
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import trainlab
from trainlab.data import split_validation
from trainlab.errors import InputError, InputTypeError
from trainlab.layers import Dense, Dropout
from trainlab.sklearn import NeuralNetClassifier, NeuralNetRegressor


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Networks of a few units: spinning up a second thread costs more than it saves, and on a
    # shared machine it costs a lot more.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# Small and quick, yet good enough for the checks' score thresholds (accuracy 0.83 on blobs, R2 0.5).
CHECKED = [NeuralNetClassifier(units=8, lr=0.05, epochs=5, batch_size=64, random_state=0),
           NeuralNetRegressor(units=8, lr=0.05, epochs=5, batch_size=64, random_state=0)]

REPEATS_ARE_NOT_WEIGHTS = ("minibatch training: a repeated row lands in other batches and shifts the shuffle, "
                           "so weight 2 and two copies train to different weights")


def expected_failures(estimator):
    return {"check_sample_weight_equivalence_on_dense_data": REPEATS_ARE_NOT_WEIGHTS}


@parametrize_with_checks(CHECKED, expected_failed_checks=expected_failures)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def binary():
    return make_classification(n_samples=120, n_features=6, n_informative=4, class_sep=2.0, random_state=0)


def small(**settings):
    return NeuralNetClassifier(**{"units": 8, "lr": 0.05, "epochs": 10, "random_state": 0, **settings})


# -- one engine -------------------------------------------------------------------------------------

def test_fit_trains_through_trainlab_fit_to_the_same_weights(iris):
    X, y = iris
    clf = NeuralNetClassifier(units=[8], optimizer={"name": "sgd", "momentum": 0.9}, lr=0.05, batch_size=16,
                              epochs=3, random_state=7).fit(X, y)
    model = trainlab.Sequential([Dense(8, activation="relu"), Dense(3, activation="softmax")])
    trainlab.fit(model, (X.astype(np.float32), y), {"optimizer": {"name": "sgd", "momentum": 0.9, "lr": 0.05},
                                                    "batch_size": 16, "num_epochs": 3, "seed": 7},
                 validation_split=None)
    for ours, theirs in zip(clf.model_.state_dict().values(), model.state_dict().values()):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    assert clf.n_iter_ == 3 and len(clf.history_["loss"]) == 3


def test_fitted_attributes_and_probabilities(iris):
    X, y = iris
    labels = np.array(["setosa", "versicolor", "virginica"])[y]
    clf = small().fit(X, labels)
    assert clf.classes_.tolist() == ["setosa", "versicolor", "virginica"]
    assert clf.n_features_in_ == 4
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    assert set(clf.predict(X)) <= set(clf.classes_)
    assert (clf.classes_[proba.argmax(1)] == clf.predict(X)).all()
    assert clf.score(X, labels) > 0.8


def test_predict_before_fit_raises_scikit_learns_not_fitted_error(iris):
    with pytest.raises(NotFittedError, match="not fitted"):
        small().predict(iris[0])


def test_regressor_keeps_the_target_shape():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3)).astype(np.float32)
    Y = np.stack([X[:, 0] - X[:, 1], 0.5 * X[:, 2]], axis=1)
    two = NeuralNetRegressor(units=16, lr=0.02, epochs=60, random_state=0).fit(X, Y)
    assert two.predict(X).shape == (80, 2) and two.score(X, Y) > 0.9
    one = NeuralNetRegressor(units=16, lr=0.02, epochs=60, random_state=0).fit(X, Y[:, 0])
    assert one.predict(X).shape == (80,)


# -- parameters -------------------------------------------------------------------------------------

def test_nested_names_set_one_setting_of_the_technique():
    clf = NeuralNetClassifier(optimizer="sgd")
    original = clf.get_params()["optimizer"]
    clf.set_params(optimizer__momentum=0.9, early_stopping__patience=3)
    assert clf.optimizer == {"name": "sgd", "momentum": 0.9} and original == "sgd"
    assert clf.early_stopping == {"patience": 3}
    deep = clf.get_params(deep=True)
    assert deep["optimizer__momentum"] == 0.9 and deep["early_stopping__patience"] == 3
    copy = clone(clf)
    assert copy.get_params() == clf.get_params() and copy.optimizer is not clf.optimizer


def test_nested_optimizer_setting_reaches_the_torch_optimizer(iris):
    X, y = iris
    clf = small(optimizer="sgd", epochs=1).set_params(optimizer__momentum=0.8, optimizer__nesterov=True).fit(X, y)
    defaults = clf.model_.optimizer.torch_optimizer.defaults
    assert (defaults["momentum"], defaults["nesterov"], defaults["lr"]) == (0.8, True, 0.05)


def test_a_torch_optimizer_class_takes_lr(iris):
    X, y = iris
    clf = small(optimizer=torch.optim.RMSprop, lr=0.01, epochs=1).fit(X, y)
    held = clf.model_.optimizer.torch_optimizer
    assert isinstance(held, torch.optim.RMSprop) and held.defaults["lr"] == 0.01


def test_layers_list_builds_fresh_layers_each_fit(iris):
    X, y = iris
    given = [Dense(8, activation="tanh"), Dropout(0.1)]
    clf = NeuralNetClassifier(layers=given, epochs=2, random_state=0).fit(X, y)
    assert not given[0].built  # the parameter is never trained in place
    kinds = [type(layer).__name__ for layer in clf.model_.layers]
    assert kinds == ["Dense", "Dropout", "Dense"] and clf.model_.layers[-1].units == 3
    again = clone(clf).fit(X, y)
    for a, b in zip(clf.model_.state_dict().values(), again.model_.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch_layers = NeuralNetClassifier(layers=[torch.nn.Linear(4, 8), torch.nn.ReLU()], epochs=1, random_state=3)
    first, second = clone(torch_layers).fit(X, y), clone(torch_layers).fit(X, y)
    torch.testing.assert_close(first.model_.layers[0].weight, second.model_.layers[0].weight, rtol=0, atol=0)
    assert not torch.equal(first.model_.layers[0].weight, torch_layers.layers[0].weight)  # fresh, seeded
    tables = NeuralNetClassifier(layers=[{"type": "Dense", "units": 8, "activation": "tanh"}], epochs=2,
                                 random_state=0).fit(X, y)
    assert tables.model_.layers[0].units == 8


# -- sample weights ---------------------------------------------------------------------------------

def test_sample_weight_shifts_the_learned_prior_as_weighted_cross_entropy_says():
    # Labels without signal: the best constant answer under weights w is P(1) = sum w[y=1] / sum w.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    y = rng.permutation(np.repeat([0, 1], 100))
    weights = np.where(y == 1, 4.0, 1.0)
    clf = NeuralNetClassifier(units=[], lr=0.1, epochs=60, batch_size=200, random_state=0)  # full batch
    plain = clone(clf).fit(X, y).predict_proba(X)[:, 1].mean()
    weighted = clone(clf).fit(X, y, sample_weight=weights).predict_proba(X)[:, 1].mean()
    assert abs(plain - 0.5) < 0.03 and abs(weighted - 0.8) < 0.03
    by_class = clone(clf).set_params(class_weight={0: 4.0}).fit(X, y).predict_proba(X)[:, 1].mean()
    assert abs(by_class - 0.2) < 0.03


def test_sample_weights_are_relative(binary):
    X, y = binary
    weights = np.random.default_rng(1).uniform(0.5, 2.0, size=len(y))
    a = small().fit(X, y, sample_weight=weights).predict_proba(X)
    b = small().fit(X, y, sample_weight=weights / weights.sum()).predict_proba(X)
    np.testing.assert_allclose(a, b, atol=1e-5)


# -- early stopping, partial_fit, pickling ----------------------------------------------------------

def test_early_stopping_holds_out_a_tenth_and_keeps_the_best_epoch(binary):
    X, y = binary
    clf = small(lr=0.2, epochs=200, early_stopping={"patience": 3}).fit(X, y)
    assert clf.n_iter_ < 200 and "did not improve" in clf.stop_reason_
    # The held-out rows: scikit-learn's validation_fraction (0.1), stratified, drawn with the run's seed.
    rows = torch.arange(len(y)).unsqueeze(1)
    held_out = split_validation(rows, torch.as_tensor(y), fraction=0.1, stratify=True, seed=0)[2][:, 0].numpy()
    assert len(held_out) == 12
    best = min(clf.history_["val_loss"])
    assert best < clf.history_["val_loss"][-1]  # it went on past the best epoch, then went back to it
    final = log_loss(y[held_out], clf.predict_proba(X[held_out]), labels=[0, 1])
    assert final == pytest.approx(best, abs=1e-5)


def test_partial_fit_trains_one_epoch_per_call_and_needs_classes_first(iris):
    X, y = iris
    clf = small(early_stopping=True)  # as in scikit-learn's MLP, it does not apply to partial_fit
    with pytest.raises(InputError, match="classes"):
        clf.partial_fit(X, y)
    clf.partial_fit(X[:75], y[:75], classes=[0, 1, 2])
    scaler = clf.model_.scaler
    clf.partial_fit(X[75:], y[75:])
    assert clf.n_iter_ == 2 and len(clf.history_["loss"]) == 2 and "val_loss" not in clf.history_
    assert clf.model_.scaler is scaler  # fitted on the first part, kept
    with pytest.raises(InputError, match="not in classes"):
        clf.partial_fit(X[:5], y[:5] + 7)


@pytest.mark.parametrize("clf", [
    small(epochs=3),
    NeuralNetClassifier(layers=[torch.nn.Linear(4, 8), torch.nn.Tanh(), Dense(8, activation="relu")],
                        optimizer={"name": "sgd", "momentum": 0.9}, lr=0.05, epochs=3, random_state=0),
], ids=["adam", "torch-modules-and-momentum"])
def test_pickle_round_trip_keeps_predictions_and_the_optimizer_state(iris, clf):
    X, y = iris
    clf = clone(clf).fit(X, y)
    copy = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))
    clf.partial_fit(X, y)
    copy.partial_fit(X, y)  # the optimizer's moments came along, so the next epoch is the same
    np.testing.assert_allclose(copy.predict_proba(X), clf.predict_proba(X), rtol=0, atol=1e-6)


def test_a_diverged_run_warns_with_convergence_warning(binary):
    X, y = binary
    with pytest.warns(ConvergenceWarning, match="training diverged"):
        clf = small(optimizer="sgd", lr=1e6, epochs=3).fit(X, y)
    assert clf.stop_reason_.startswith("training diverged")
    assert np.isfinite(clf.predict_proba(X)).all()  # the weights from before the blow-up


# -- bad input --------------------------------------------------------------------------------------

@pytest.mark.parametrize("settings, match", [
    ({"optimizer": "adm"}, r"unknown optimizer 'adm' \(from NeuralNetClassifier.optimizer\).*Did you mean 'adam'"),
    ({"optimizer": {"name": "sgd", "momentun": 0.9}}, "no setting 'momentun'.*Did you mean 'momentum'"),
    ({"lr": 0.1, "optimizer": {"name": "sgd", "lr": 0.2}}, "learning rate is given twice"),
    ({"lr": -1.0}, r"NeuralNetClassifier.lr must be a number > 0"),
    ({"units": [0]}, r"NeuralNetClassifier.units must be a positive int"),
    ({"layers": [{"type": "Dense", "units": 4}], "units": 8}, "given as layers, and also as units"),
    ({"early_stopping": {"patiense": 3}}, "patiense is not a setting of EarlyStopping. Did you mean 'patience'"),
    ({"schedule": "cosin"}, r"unknown schedule 'cosin' \(from NeuralNetClassifier.schedule\)"),
    ({"batch_size": 0}, r"NeuralNetClassifier.batch_size must be an int >= 1"),
    ({"validation_split": 1.5}, r"NeuralNetClassifier.validation_split must be a fraction in \(0, 1\)"),
    ({"scaling": "zscore"}, r"unknown scaler 'zscore' \(from NeuralNetClassifier.scaling\)"),
    ({"device": "tpu"}, r"NeuralNetClassifier.device: must be one of auto, cpu"),
    ({"class_weight": {"setosa": 2.0}}, r"class_weight names \['setosa'\], which are not classes of y"),
])
def test_bad_settings_fail_in_fit_naming_the_parameter(iris, settings, match):
    clf = NeuralNetClassifier(**settings, epochs=1)  # __init__ only stores
    with pytest.raises(InputError, match=match):
        clf.fit(*iris)


def test_bad_types_and_one_class(iris):
    X, y = iris
    with pytest.raises(InputTypeError, match="random_state must be None, an int"):
        NeuralNetClassifier(random_state="x", epochs=1).fit(X, y)
    with pytest.raises(InputTypeError, match="optimizer__momentum needs optimizer to be a name or a table"):
        NeuralNetClassifier(optimizer=torch.optim.SGD).set_params(optimizer__momentum=0.9)
    with pytest.raises(ValueError, match="one class only"):
        NeuralNetClassifier(epochs=1).fit(X[:10], y[:10])
    with pytest.raises(ValueError, match="Sample weights must contain at least one non-zero number"):
        NeuralNetClassifier(epochs=1).fit(X, y, sample_weight=np.zeros(len(y)))


# -- in scikit-learn's tools ------------------------------------------------------------------------

def test_grid_search_over_lr_and_units_in_two_processes_or_two_threads(binary):
    X, y = binary
    grid = {"lr": [0.005, 0.05], "units": [4, 16]}
    search = GridSearchCV(small(epochs=5), grid, cv=2, n_jobs=2).fit(X, y)  # loky: worker processes
    assert len(search.cv_results_["params"]) == 4
    assert search.best_estimator_.model_.layers[0].units == search.best_params_["units"]
    means = search.cv_results_["mean_test_score"]
    assert means.max() > 0.8 and len(set(np.round(means, 6))) > 1  # the settings reached the training
    with parallel_config(backend="threading"):  # the engine is safe to call from several threads
        threaded = GridSearchCV(small(epochs=5), grid, cv=2, n_jobs=2).fit(X, y)
    np.testing.assert_array_equal(threaded.cv_results_["mean_test_score"], means)  # seeded: same scores


def test_cross_val_score_and_a_pipeline_with_standard_scaler(binary):
    X, y = binary
    X = X * 50 + 20  # far from standardized, so the scaler has work to do
    pipe = make_pipeline(StandardScaler(), small(scaling=None))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.75
    raw = cross_val_score(small(scaling=None, lr=0.05), X, y, cv=3)
    assert scores.mean() > raw.mean()  # scaling is why the pipeline exists


def test_bagging_classifier(binary):
    X, y = binary
    bag = BaggingClassifier(small(), n_estimators=3, random_state=0).fit(X, y)
    assert len(bag.estimators_) == 3 and bag.score(X, y) > 0.8
    first = bag.estimators_[0].predict_proba(X)
    assert any(not np.allclose(first, e.predict_proba(X)) for e in bag.estimators_[1:])


def test_adaboost_passes_its_sample_weights_to_the_engine(binary):
    X, y = binary
    boost = AdaBoostClassifier(small(units=4, epochs=5), n_estimators=3, random_state=0).fit(X, y)
    assert len(boost.estimators_) >= 2 and boost.score(X, y) > 0.8
    assert np.all(np.isfinite(boost.estimator_weights_[:len(boost.estimators_)]))


def test_calibrated_classifier_cv(binary):
    X, y = binary
    calibrated = CalibratedClassifierCV(small(), cv=2).fit(X, y)
    proba = calibrated.predict_proba(X)
    assert proba.shape == (len(y), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert calibrated.score(X, y) > 0.8
