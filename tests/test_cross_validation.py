"""Cross-validation: folds from scikit-learn's splitters, scaling per fold, fold models as an ensemble."""

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.model_selection import GroupKFold, StratifiedKFold

import trainlab
from trainlab.errors import InputError
from trainlab.generalize import cross_validate
from trainlab.layers import Dense

RECIPE = {"num_epochs": 1, "seed": 3, "batch_size": 16, "optimizer": {"name": "adam", "lr": 0.01}}


def small_model(classes=3):
    return trainlab.Sequential([Dense(4, activation="relu"), Dense(classes, activation="softmax")])


def imbalanced(n_per_class=(25, 15, 10), seed=0):
    """Three classes in unequal numbers; one feature far out for a few rows (a scaler fitted on them moves)."""
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.full(n, k) for k, n in enumerate(n_per_class)])
    x = rng.normal(size=(len(y), 3)).astype(np.float32) + y[:, None].astype(np.float32)
    x[:4, 0] += 500.0  # a handful of extreme rows: held out, they must not reach that fold's scaler
    order = rng.permutation(len(y))
    return x[order], y[order]


@pytest.fixture(scope="module")
def result():
    x, y = imbalanced()
    return cross_validate(small_model(), (x, y), RECIPE, folds=5), x, y


def test_folds_are_disjoint_and_every_row_is_held_out_exactly_once(result):
    cv, x, _ = result
    n = len(x)
    held = np.concatenate([f.test_rows for f in cv.folds])
    assert sorted(held.tolist()) == list(range(n))
    for f in cv.folds:
        assert not set(f.train_rows.tolist()) & set(f.test_rows.tolist())
        assert sorted(np.concatenate([f.train_rows, f.test_rows]).tolist()) == list(range(n))


def test_folds_are_scikit_learns_stratified_k_fold_with_the_recipes_seed(result):  # oracle: scikit-learn
    cv, x, y = result
    expected = list(StratifiedKFold(n_splits=5, shuffle=True, random_state=RECIPE["seed"]).split(x, y))
    assert cv.splitter.startswith("StratifiedKFold")
    for f, (train, test) in zip(cv.folds, expected):
        assert f.train_rows.tolist() == train.tolist() and f.test_rows.tolist() == test.tolist()


def test_stratification_keeps_each_class_share_in_every_fold(result):
    cv, _, y = result
    assert [row["held_out_rows"] for row in cv.table()] == [10] * 5
    for f in cv.folds:  # 25, 15, 10 rows over 5 folds: exactly 5, 3, 2 of each class held out
        assert np.bincount(y[f.test_rows], minlength=3).tolist() == [5, 3, 2]


def test_scaling_is_fitted_on_the_folds_training_rows_only(result):
    cv, x, _ = result
    moved = 0
    for f in cv.folds:
        scaler = f.model.scaler
        own = torch.as_tensor(x[f.train_rows], dtype=torch.float64)
        torch.testing.assert_close(scaler.shift.double(), own.mean(0), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(scaler.scale.double(), own.std(0, correction=0), rtol=1e-6, atol=1e-6)
        everything = torch.as_tensor(x, dtype=torch.float64).mean(0)
        moved += int(abs(float(scaler.shift[0]) - float(everything[0])) > 1.0)
    # Folds that hold out some of the far-out rows have a training mean far from the whole data's.
    assert moved >= 1


def test_the_cv_ensemble_predicts_the_mean_of_the_fold_models(result, tmp_path):
    cv, x, _ = result
    each = np.stack([f.model.predict(x) for f in cv.folds])  # Sequential.predict applies the fold's scaler
    np.testing.assert_allclose(cv.predict(x), each.mean(0), rtol=1e-5, atol=1e-6)
    loaded = trainlab.load(cv.save(tmp_path / "folds"))
    np.testing.assert_allclose(loaded.predict(x), each.mean(0), rtol=1e-5, atol=1e-6)


def test_the_interval_is_students_t_over_the_fold_scores(result):
    cv, _, _ = result
    values = cv.values()
    half = stats.t.ppf(0.975, df=len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    low, high = cv.interval
    assert low == pytest.approx(values.mean() - half) and high == pytest.approx(values.mean() + half)
    assert "t-interval" in cv.interval_name and "5 fold scores" in cv.interval_name


def test_each_fold_stops_early_on_its_own_training_rows_never_on_the_held_out_fold():
    x, y = imbalanced()
    recipe = {**RECIPE, "num_epochs": 3, "early_stopping": {"patience": 1}}
    cv = cross_validate(small_model(), (x, y), recipe, folds=3)
    for f in cv.folds:
        stop = set(f.stopping_rows.tolist())
        assert stop < set(f.train_rows.tolist()) and not stop & set(f.test_rows.tolist())
        fitted = np.setdiff1d(f.train_rows, f.stopping_rows)
        torch.testing.assert_close(f.model.scaler.shift.double(),
                                   torch.as_tensor(x[fitted], dtype=torch.float64).mean(0), rtol=1e-6, atol=1e-6)


def test_groups_stay_whole_with_group_k_fold():
    x, y = imbalanced()
    groups = np.arange(len(y)) % 7
    cv = cross_validate(small_model(), (x, y), RECIPE, folds=3, groups=groups, stratify=False)
    expected = list(GroupKFold(n_splits=3, shuffle=True, random_state=RECIPE["seed"]).split(x, y, groups))
    assert [f.test_rows.tolist() for f in cv.folds] == [t.tolist() for _, t in expected]
    for f in cv.folds:
        assert not set(groups[f.train_rows]) & set(groups[f.test_rows])


def test_folds_of_unequal_size_score_as_their_solo_fits_do():
    # Groups of unequal size give folds of 100 to 130 training rows: 13 to 17 steps an epoch at batch 8,
    # so some folds sit out the last steps of the others' epochs. Stacked, each fold scores as alone.
    iris = trainlab.datasets.load("iris")
    groups = np.repeat(np.arange(10), [5, 5, 10, 10, 15, 15, 20, 20, 25, 25])
    recipe = {"optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 8, "num_epochs": 4, "seed": 0}
    stacked = cross_validate(small_model(), iris, recipe, folds=4, groups=groups, stack="on")
    alone = cross_validate(small_model(), iris, recipe, folds=4, groups=groups, stack="off")
    assert stacked.stacked and not alone.stacked
    assert len({len(f.train_rows) for f in stacked.folds}) > 1
    for a, b in zip(stacked.folds, alone.folds):
        assert a.scores == pytest.approx(b.scores, rel=1e-5)


def test_more_folds_than_samples_of_a_class_is_refused_with_the_fix():
    x, y = imbalanced()
    with pytest.raises(InputError, match=r"folds=12 but class 2 has only 10 samples.*--folds 10.*--no-stratify"):
        cross_validate(small_model(), (x, y), RECIPE, folds=12)


def test_stratify_with_a_regression_target_is_refused():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 2)).astype(np.float32)
    with pytest.raises(InputError, match="regression target.*--no-stratify"):
        cross_validate([Dense(1)], (x, x[:, 0] * 2.0), RECIPE, folds=3, stratify=True)


def test_cv_against_a_single_hold_out_takes_one_of_each_per_seed():
    from trainlab.generalize import compare_with_holdout

    x, y = imbalanced()
    spread = compare_with_holdout(small_model(), (x, y), RECIPE, folds=3, seeds=2)
    assert spread.seeds == [3, 4]
    assert ["random_state=3" in spread.results[0].splitter, "random_state=4" in spread.results[1].splitter] == \
        [True, True]
    assert spread.cv == [r.mean for r in spread.results]
    # A 20% stratified hold-out of 50 rows is 10 rows: its accuracy is a multiple of 1/10.
    assert all(abs(h * 10 - round(h * 10)) < 1e-9 for h in spread.holdout)
    assert spread.spread("holdout") == pytest.approx(float(np.std(spread.holdout, ddof=1)))


def test_every_fold_starts_from_a_fresh_initialization_even_from_a_trained_model():
    x, y = imbalanced()
    trained = small_model()
    trainlab.fit(trained, (x, y), {**RECIPE, "num_epochs": 3})
    cv = cross_validate(trained, (x, y), {**RECIPE, "num_epochs": 1, "optimizer": {"name": "sgd", "lr": 1e-9}},
                        folds=2)
    initial = small_model()  # what a new model built under the recipe's seed starts from
    trainlab.fit(initial, (x, y), {**RECIPE, "num_epochs": 1, "optimizer": {"name": "sgd", "lr": 1e-9}})
    for f in cv.folds:  # an lr of 1e-9 leaves the initial weights: the seed's, not the trained model's
        torch.testing.assert_close(f.model.get_weights()[0], initial.get_weights()[0], atol=1e-6, rtol=0)
        assert not np.allclose(f.model.get_weights()[0], trained.get_weights()[0], atol=1e-3)
