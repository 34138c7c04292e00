"""Data sets, validation split, scaling: each loader's facts, each rule's defining property, bad input."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch

from trainlab.datasets import (
    DATASETS,
    SCALERS,
    Dataset,
    as_dataset,
    describe_datasets,
    from_arrays,
    from_csv,
    from_npz,
    load,
    scaler,
    scaler_from_dict,
    split_validation,
)
from trainlab.errors import InputError

# ----------------------------------------------------------------------------- bundled loaders


@pytest.mark.parametrize(
    "name, samples, features, task, num_classes",
    [
        ("iris", 150, 4, "classification", 3),
        ("digits", 1797, 64, "classification", 10),
        ("wine", 178, 13, "classification", 3),
        ("breast_cancer", 569, 30, "classification", 2),
        ("diabetes", 442, 10, "regression", None),
    ],
)
def test_bundled_loader_has_the_published_shape_and_task(name, samples, features, task, num_classes):
    data = load(name)
    assert tuple(data.x.shape) == (samples, features)
    assert (data.task, data.num_classes) == (task, num_classes)
    assert data.x.dtype == torch.float32
    assert data.y.dtype == (torch.int64 if task == "classification" else torch.float32)
    assert data.feature_names is not None and len(data.feature_names) == features
    if task == "classification":
        assert sorted(torch.unique(data.y).tolist()) == list(range(num_classes))
        assert len(data.class_names) == num_classes


def test_digits_are_raw_pixel_counts_0_to_16():
    x = load("digits").x
    assert x.min().item() == 0.0 and x.max().item() == 16.0
    assert bool((x == x.round()).all())


def test_diabetes_features_are_raw_not_prescaled():
    data = load("diabetes")
    age = data.x[:, data.feature_names.index("age")]
    assert age.min().item() >= 19 and age.max().item() <= 79  # years, not sklearn's scaled values
    assert 25 <= data.y.min().item() and data.y.max().item() <= 346


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_registered_dataset_loads_a_valid_dataset_with_summary_and_claim(name):
    entry = DATASETS.entry(name)
    assert entry.claim and entry.summary
    assert ("classification" in entry.summary) or ("regression" in entry.summary)
    data = load(name)
    assert isinstance(data, Dataset) and data.name == name
    assert len(data) == data.x.shape[0] == data.y.shape[0] > 0
    assert data.x.dtype in (torch.float32, torch.int64)
    assert f"{len(data)}" in entry.summary or "default" in entry.summary


def test_unknown_dataset_name_suggests_the_close_match():
    with pytest.raises(InputError, match=r"unknown dataset 'irs'.*Did you mean 'iris'"):
        load("irs")


def test_describe_datasets_lists_every_entry_with_its_facts():
    rows = {row["name"]: row for row in describe_datasets()}
    assert sorted(rows) == DATASETS.names()
    assert {k: rows["wine"][k] for k in ("samples", "features", "task", "classes")} == {
        "samples": 178, "features": 13, "task": "classification", "classes": 3}
    assert rows["diabetes"]["classes"] is None
    json.dumps(list(rows.values()))  # the CLI prints it with --json


# ----------------------------------------------------------------------------- generated data sets


def test_synthetic_honours_its_settings_and_is_reproducible_by_seed():
    a = load("synthetic", num_samples=300, num_features=8, num_classes=4, seed=3)
    b = load("synthetic", num_samples=300, num_features=8, num_classes=4, seed=3)
    c = load("synthetic", num_samples=300, num_features=8, num_classes=4, seed=4)
    assert tuple(a.x.shape) == (300, 8) and a.num_classes == 4
    assert sorted(torch.unique(a.y).tolist()) == [0, 1, 2, 3]
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, c.x)


def test_synthetic_rejects_bad_settings():
    with pytest.raises(InputError, match=r"synthetic: num_classes must be an int >= 2, got 1"):
        load("synthetic", num_classes=1)
    with pytest.raises(InputError, match=r"synthetic: num_classes=40 needs num_features >= 11, got 4"):
        load("synthetic", num_classes=40, num_features=4)
    with pytest.raises(InputError, match=r"no setting 'num_sample'.*Did you mean 'num_samples'"):
        load("synthetic", num_sample=10)


def test_sequences_are_int64_token_ids_labelled_by_marker_order():
    data = load("sequences", num_samples=500, length=12, vocab_size=9, seed=1)
    x = data.x
    assert x.dtype == torch.int64 and tuple(x.shape) == (500, 12)
    assert x.min().item() >= 1 and x.max().item() <= 8  # 0 is left for padding
    assert bool(((x == 1).sum(1) == 1).all()) and bool(((x == 2).sum(1) == 1).all())
    first_at = (x == 1).int().argmax(1)
    second_at = (x == 2).int().argmax(1)
    assert torch.equal(data.y, (first_at < second_at).long())
    assert 0.4 < data.y.float().mean().item() < 0.6


def test_sequences_order_matters_a_bag_of_words_stays_at_chance():
    from sklearn.linear_model import LogisticRegression

    data = load("sequences", num_samples=2000, length=20, vocab_size=50, seed=0)
    x, y = data.x.numpy(), data.y.numpy()
    counts = np.stack([np.bincount(row, minlength=50) for row in x])
    bag = LogisticRegression(max_iter=1000).fit(counts[:1500], y[:1500]).score(counts[1500:], y[1500:])
    first_at = (x == 1).argmax(1)[:, None]
    second_at = (x == 2).argmax(1)[:, None]
    order = LogisticRegression().fit(first_at[:1500] - second_at[:1500], y[:1500])
    accuracy_with_order = order.score(first_at[1500:] - second_at[1500:], y[1500:])
    assert bag < 0.58  # 500 test samples: chance is 0.5 +- 0.022 (1 std)
    assert accuracy_with_order > 0.99


def test_sequences_reject_a_vocabulary_without_filler_tokens():
    with pytest.raises(InputError, match=r"sequences: vocab_size must be an int >= 4, got 3.*padding"):
        load("sequences", vocab_size=3)


# ----------------------------------------------------------------------------- Dataset validation


def _data(**changes):
    fields = dict(x=torch.zeros(4, 2), y=torch.tensor([0, 1, 1, 0]), task="classification",
                  num_classes=2, name="toy")
    fields.update(changes)
    return Dataset(**fields)


def test_dataset_reports_nan_in_x_with_count_and_first_row():
    x = torch.zeros(5, 3)
    x[2, 1] = float("nan")
    x[4, 0] = float("nan")
    message = r"dataset 'toy': x has 2 NaN values in 2 of 5 rows \(first in row 2\)"
    with pytest.raises(InputError, match=message):
        _data(x=x, y=torch.tensor([0, 1, 0, 1, 0]))


def test_dataset_reports_inf_in_y():
    y = torch.tensor([1.0, float("inf"), 2.0, 3.0])
    with pytest.raises(InputError, match=r"y has 1 infinite value in 1 of 4 rows \(first in row 1\)"):
        _data(y=y, task="regression", num_classes=None)


def test_dataset_rejects_mismatched_rows_empty_data_and_bad_labels():
    with pytest.raises(InputError, match=r"x has 4 rows but y has 3"):
        _data(y=torch.tensor([0, 1, 1]))
    with pytest.raises(InputError, match=r"x has 0 rows"):
        _data(x=torch.zeros(0, 2), y=torch.zeros(0, dtype=torch.long))
    with pytest.raises(InputError, match=r"labels must be in 0..1 \(num_classes=2\), got 5 in row 3"):
        _data(y=torch.tensor([0, 1, 1, 5]))
    with pytest.raises(InputError, match=r"num_classes is for classification"):
        _data(y=torch.zeros(4), task="regression")
    with pytest.raises(InputError, match=r"x must be float32 \(features\) or int64 .*, got torch.float64"):
        _data(x=torch.zeros(4, 2, dtype=torch.float64))
    with pytest.raises(InputError, match=r"token ids, which must be >= 0"):
        _data(x=torch.tensor([[1, 2], [3, -1], [0, 0], [1, 1]]))


def test_subset_keeps_the_task_facts_and_rejects_an_empty_selection():
    data = load("iris", shuffled=False)
    part = data.subset(torch.tensor([0, 149]))
    assert part.y.tolist() == [0, 2] and part.num_classes == 3 and part.class_names == data.class_names
    assert len(data.subset(data.y == 1)) == 50
    with pytest.raises(InputError, match=r"selects no rows"):
        data.subset([])
    with pytest.raises(InputError, match=r"do not fit its 150 samples"):
        data.subset([150])


# ----------------------------------------------------------------------------- from_arrays


def test_from_arrays_infers_classification_from_integer_labels():
    data = from_arrays(np.ones((4, 2)), np.array([0, 3, 1, 1]))
    assert (data.task, data.num_classes, data.y.dtype, data.x.dtype) == (
        "classification", 4, torch.int64, torch.float32)


def test_from_arrays_treats_float_labels_as_regression_even_when_whole_numbers():
    data = from_arrays([[1.0], [2.0], [3.0]], [0.0, 1.0, 2.0])
    assert (data.task, data.num_classes, data.y.dtype) == ("regression", None, torch.float32)
    forced = from_arrays([[1.0], [2.0], [3.0]], [0.0, 1.0, 2.0], task="classification")
    assert (forced.task, forced.num_classes, forced.y.tolist()) == ("classification", 3, [0, 1, 2])


def test_from_arrays_accepts_bool_labels_tensors_and_one_hot_rows():
    assert from_arrays(torch.rand(3, 2), torch.tensor([True, True, True])).num_classes == 2
    one_hot = torch.eye(3)[[0, 2, 1, 2]]
    data = from_arrays(torch.rand(4, 2, dtype=torch.float64), one_hot, task="classification")
    assert (data.num_classes, data.y.dtype, tuple(data.y.shape)) == (3, torch.float32, (4, 3))
    regression = from_arrays(np.zeros((2, 2)), np.array([[1, 2], [3, 4]]), task="regression")
    assert regression.y.dtype == torch.float32 and regression.task == "regression"


def test_from_arrays_keeps_int64_token_ids_only_when_asked():
    ids = np.array([[3, 1, 2], [2, 1, 4]])
    assert from_arrays(ids, [0, 1]).x.dtype == torch.float32
    assert from_arrays(ids, [0, 1], tokens=True).x.dtype == torch.int64
    with pytest.raises(InputError, match=r"tokens=True needs integer token ids in x, got torch.float64"):
        from_arrays(ids.astype(float), [0, 1], tokens=True)


@pytest.mark.parametrize(
    "x, y, kwargs, message",
    [
        (np.zeros((0, 3)), np.zeros(0), {}, r"x has 0 rows"),
        ([[1.0], [2.0]], [0, 1, 1], {}, r"x has 2 rows but y has 3 rows"),
        ([[1.0], [float("nan")]], [0, 1], {}, r"x has 1 NaN value in 1 of 2 rows \(first in row 1\)"),
        ([[1.0], [2.0]], [0.0, float("inf")], {}, r"y has 1 infinite value.*first in row 1"),
        ([["a"], ["b"]], [0, 1], {}, r"x holds strings \(dtype <U1\), expected numbers"),
        ([[1.0], [2.0]], ["cat", "dog"], {}, r"y holds strings.*np.unique\(y, return_inverse=True\)"),
        (np.array([[1], [2]], dtype=object), [0, 1], {}, r"x holds Python objects"),
        ([[1.0], [2.0, 3.0]], [0, 1], {}, r"could not be read as one numeric array"),
        ([1.0, 2.0], [0, 1], {}, r"x must have one row per sample.*x.reshape\(-1, 1\)"),
        ([[1.0], [2.0]], [0, -1], {}, r"class labels must be >= 0.*got -1 in row 1"),
        ([[1.0], [2.0]], [0, 0], {}, r"only 1 class can be inferred"),
        ([[1.0], [2.0]], [0, 4], {"num_classes": 3}, r"num_classes=3 but y holds label 4"),
        ([[1.0], [2.0]], [0.5, 1.0], {"task": "classification"}, r"whole-number class labels, got 0.5"),
        ([[1.0], [2.0]], [[0.5, 0.6], [1.0, 0.0]], {"task": "classification"}, r"row 0 sums to 1.1"),
        ([[1.0], [2.0]], [[0], [1]], {}, r"class labels must have shape \(num_samples,\).*y.reshape\(-1\)"),
        ([[1.0], [2.0]], [0.0, 1.0], {"num_classes": 2}, r"num_classes is for classification"),
        ([[1.0], [2.0]], [0, 1], {"task": "clasification"}, r"task must be one of.*mean 'classification'"),
    ],
)
def test_from_arrays_rejects_bad_input_with_the_reason(x, y, kwargs, message):
    with pytest.raises(InputError, match=message):
        from_arrays(x, y, **kwargs)


# ----------------------------------------------------------------------------- files


def test_csv_with_header_and_string_labels_maps_labels_sorted(tmp_path):
    path = tmp_path / "flowers.csv"
    path.write_text("petal,sepal,species\n1.4,5.1,virginica\n4.7,7.0,setosa\n\n5.9,6.3,versicolor\n"
                    "1.3,4.9,setosa\n")
    data = from_csv(path)  # header detected, target = last column
    assert data.name == "flowers" and data.feature_names == ("petal", "sepal")
    assert data.class_names == ("setosa", "versicolor", "virginica")
    assert data.y.tolist() == [2, 0, 1, 0]
    torch.testing.assert_close(data.x, torch.tensor([[1.4, 5.1], [4.7, 7.0], [5.9, 6.3], [1.3, 4.9]]))


def test_csv_target_by_name_or_index_and_text_features_are_rejected(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("label,a,b\n1,0.5,2\n0,1.5,3\n")
    data = from_csv(path, target="label")
    assert (data.task, data.num_classes, data.y.tolist(), data.feature_names) == (
        "classification", 2, [1, 0], ("a", "b"))
    regression = from_csv(path, target=1)
    assert regression.task == "regression" and regression.y.tolist() == [0.5, 1.5]
    assert regression.feature_names == ("label", "b")
    text = tmp_path / "text.csv"
    text.write_text("petal,species\n1.4,setosa\n")
    with pytest.raises(InputError, match=r"line 2, column 'species' holds 'setosa', which is not a number"):
        from_csv(text, target="petal")


def test_csv_without_header_reads_every_row_as_data(tmp_path):
    path = tmp_path / "plain.csv"
    path.write_text("0.1,0.2,3\n0.3,0.4,1\n0.5,0.6,0\n")
    data = from_csv(path)
    assert len(data) == 3 and data.feature_names is None
    assert (data.task, data.num_classes, data.y.tolist()) == ("classification", 4, [3, 1, 0])
    assert torch.allclose(data.x, torch.tensor([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]))
    floats = tmp_path / "reg.csv"
    floats.write_text("1;2.5\n2;3.5\n")
    assert from_csv(floats).task == "regression"  # ';' delimiter, float target
    assert from_csv(floats, target=0, task="classification").num_classes == 3


@pytest.mark.parametrize(
    "text, kwargs, message",
    [
        ("a,b\n1,2\n3\n", {}, r"line 3 has 1 fields, expected 2"),
        ("a,b,c\n1,,0\n", {}, r"line 2, column 'b' is empty"),
        ("a,b\n1,0\n", {"target": "lable"}, r"no column 'lable'. Columns: a, b"),
        ("a,label\n1,0\n", {"target": "labl"}, r"Did you mean 'label'"),
        ("1,2\n3,4\n", {"target": 5}, r"target=5 is outside the 2 columns"),
        ("a,b\n1,x\n2,3\n", {}, r"mixes numbers \('3' on line 3\) and text \('x' on line 2\)"),
        ("1,nan\n2,0\n", {"target": 0}, r"line 1, column 'column 1' holds 'nan'"),
        ("a,b\n", {}, r"no data rows after its header"),
        ("\n\n", {}, r"is empty"),
        ("a,b\n1,0\n", {"target": "a", "header": False}, r"header=False says"),
    ],
)
def test_csv_rejects_bad_files_naming_line_and_column(tmp_path, text, kwargs, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        from_csv(path, **kwargs)


def test_npz_round_trip(tmp_path):
    path = tmp_path / "arrays.npz"
    x = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1, 2])
    np.savez(path, x=x, y=y)
    data = from_npz(path)
    assert data.name == "arrays" and data.num_classes == 3
    assert np.array_equal(data.x.numpy(), x) and data.y.tolist() == y.tolist()
    np.savez(tmp_path / "keys.npz", features=x, target=y.astype(np.float64))
    assert from_npz(tmp_path / "keys.npz", x_key="features", y_key="target").task == "regression"


def test_npz_with_a_pickled_object_array_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, x=np.array([{"a": 1}, None], dtype=object), y=np.array([0, 1]))  # pickled inside
    with pytest.raises(InputError, match=r"array 'x' .* object array, stored as a pickle.*never unpickles"):
        from_npz(path)
    not_npz = tmp_path / "pickle.npz"
    not_npz.write_bytes(b"\x80\x04K\x01.")  # a pickle of the int 1
    with pytest.raises(InputError, match=r"not an .npz archive.*never unpickles"):
        from_npz(not_npz)


def test_npz_missing_key_lists_the_keys(tmp_path):
    path = tmp_path / "k.npz"
    np.savez(path, X=np.eye(2), y=np.array([0, 1]))
    with pytest.raises(InputError, match=r"no array 'x'. Arrays in it: X, y. Did you mean 'X'"):
        from_npz(path)


def test_missing_file_is_an_error_naming_the_path(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(InputError, match=r"nope.csv' does not exist"):
        from_csv(missing)
    with pytest.raises(InputError, match=r"nope.npz' does not exist"):
        from_npz(tmp_path / "nope.npz")
    with pytest.raises(InputError, match=r"nope.csv' \(from --data\) does not exist"):
        as_dataset(str(missing), source="--data")
    with pytest.raises(InputError, match=r"write its name alone: 'iris'"):
        as_dataset(tmp_path / "iris.csv")


# ----------------------------------------------------------------------------- as_dataset


def test_as_dataset_accepts_every_documented_form(tmp_path):
    iris = load("iris")
    assert as_dataset(iris) is iris
    assert as_dataset("Iris").name == "iris"
    assert len(as_dataset({"name": "synthetic", "num_samples": 500})) == 500
    assert as_dataset((np.zeros((3, 2)), [0, 1, 1])).num_classes == 2
    csv_path = tmp_path / "d.csv"
    csv_path.write_text("y,a\n1,0.5\n0,1.5\n")
    assert as_dataset(str(csv_path)).task == "regression"  # last column by default
    assert as_dataset({"path": str(csv_path), "target": "y"}).task == "classification"
    npz_path = tmp_path / "d.npz"
    np.savez(npz_path, x=np.eye(2), y=np.array([0, 1]))
    assert len(as_dataset(npz_path)) == 2


def test_as_dataset_rejects_what_it_cannot_read():
    with pytest.raises(InputError, match=r"unknown dataset 'irsi' \(from --data\).*Did you mean 'iris'"):
        as_dataset("irsi", source="--data")
    with pytest.raises(InputError, match=r"trainlab reads .csv and .npz files"):
        as_dataset("data.txt")
    with pytest.raises(InputError, match=r"no setting 'targt'.*Did you mean 'target'"):
        as_dataset({"path": "d.csv", "targt": "y"})
    with pytest.raises(InputError, match=r"must be \(x, y\), got 3 items"):
        as_dataset((1, 2, 3))
    with pytest.raises(InputError, match=r"cannot make a data set from int"):
        as_dataset(3)


# ----------------------------------------------------------------------------- split_validation


def test_split_takes_exactly_the_last_rows_like_keras():
    x = torch.arange(300.0).reshape(150, 2)
    y = torch.arange(150) % 3
    x_train, y_train, x_val, y_val = split_validation(x, y, fraction=0.2)
    assert torch.equal(x_train, x[:120]) and torch.equal(y_train, y[:120])
    assert torch.equal(x_val, x[120:]) and torch.equal(y_val, y[120:])
    again = split_validation(x, y, fraction=0.2, seed=123)  # the seed only matters when stratified
    assert torch.equal(again[2], x_val)


@pytest.mark.parametrize("n, fraction", [(10, 0.3), (10, 0.25), (7, 0.5), (1000, 0.1), (33, 0.33), (5, 0.7)])
def test_split_point_is_keras_floor_of_n_times_one_minus_fraction(n, fraction):
    x_train, _, x_val, _ = split_validation(torch.zeros(n, 1), torch.zeros(n), fraction=fraction)
    assert len(x_train) == math.floor(n * (1.0 - fraction))
    assert len(x_train) + len(x_val) == n


def test_stratified_split_keeps_class_proportions_within_one_sample():
    y = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    x = torch.arange(100.0)[:, None]
    x_train, y_train, x_val, y_val = split_validation(x, y, fraction=0.2, stratify=True, seed=0)
    assert len(y_val) == 20 and len(y_train) == 80
    for label, count in ((0, 60), (1, 30), (2, 10)):
        assert abs(int((y_val == label).sum()) - count * 0.2) <= 1
    assert torch.equal(y[x_train[:, 0].long()], y_train)  # rows stay paired
    assert sorted(x_train[:, 0].tolist() + x_val[:, 0].tolist()) == list(range(100))


def test_stratified_split_matches_sklearn_and_is_deterministic_per_seed():
    from sklearn.model_selection import train_test_split

    data = load("wine")
    _, _, x_val, y_val = split_validation(data.x, data.y, fraction=0.25, stratify=True, seed=7)
    _, val_at = train_test_split(np.arange(len(data)), test_size=0.25, stratify=data.y.numpy(),
                                 random_state=7)
    assert torch.equal(x_val, data.x[val_at]) and torch.equal(y_val, data.y[val_at])
    assert torch.equal(split_validation(data.x, data.y, fraction=0.25, stratify=True, seed=7)[2], x_val)
    assert not torch.equal(split_validation(data.x, data.y, fraction=0.25, stratify=True, seed=8)[2], x_val)


def test_split_of_label_sorted_rows_warns():
    data = load("iris", shuffled=False)
    with pytest.warns(UserWarning, match=r"holds only class 2.*sorted by label.*stratify=True"):
        split_validation(data.x, data.y, fraction=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        split_validation(data.x, data.y, fraction=0.2, stratify=True)
        shuffled = load("iris")
        split_validation(shuffled.x, shuffled.y, fraction=0.2)


def test_bundled_sets_come_in_one_fixed_shuffled_order_with_the_same_rows():
    shipped, shuffled = load("iris", shuffled=False), load("iris")
    assert torch.equal(load("iris").x, shuffled.x)  # the same order every time
    assert not torch.equal(shipped.y, shuffled.y)
    def as_rows(d):
        return sorted(map(tuple, torch.cat([d.x, d.y[:, None].float()], 1).tolist()))
    assert as_rows(shipped) == as_rows(shuffled)
    # The last fifth (a Keras-style validation split) holds every class.
    assert set(shuffled.y[120:].tolist()) == {0, 1, 2}


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.1])
def test_split_fraction_must_be_strictly_between_0_and_1(fraction):
    with pytest.raises(InputError, match=rf"validation_split must be in \(0, 1\), got {fraction}"):
        split_validation(torch.zeros(10, 1), torch.zeros(10), fraction=fraction)


def test_split_leaving_an_empty_part_says_which_fractions_work():
    message = r"leaves the training part empty: 3 samples.*between 0.334 and 0.666"
    with pytest.raises(InputError, match=message):
        split_validation(torch.zeros(3, 1), torch.zeros(3), fraction=0.9)
    with pytest.raises(InputError, match=r"1 sample cannot be split"):
        split_validation(torch.zeros(1, 1), torch.zeros(1), fraction=0.5)


def test_stratified_split_rejects_regression_targets_and_singleton_classes():
    with pytest.raises(InputError, match=r"stratify=True needs class labels.*stratify=False"):
        split_validation(torch.zeros(10, 1), torch.rand(10), fraction=0.2, stratify=True)
    with pytest.raises(InputError, match=r"not possible.*at least 2 samples"):
        split_validation(torch.zeros(10, 1), torch.tensor([0] * 9 + [1]), fraction=0.2, stratify=True)


# ----------------------------------------------------------------------------- scalers


def _wine_split():
    data = load("wine")
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(data), generator=generator)
    return data.x[order[:140]], data.x[order[140:]]


def test_standardize_gives_training_features_mean_0_std_1():
    train, _ = _wine_split()
    scaled = scaler("standardize").fit(train).transform(train)
    torch.testing.assert_close(scaled.mean(0), torch.zeros(13), atol=1e-5, rtol=0)
    torch.testing.assert_close(scaled.std(0, correction=0), torch.ones(13), atol=1e-5, rtol=0)


def test_validation_part_is_scaled_with_the_training_statistics():
    train, val = _wine_split()
    fitted = scaler("standardize").fit(train)
    expected = (val.double() - train.double().mean(0)) / train.double().std(0, correction=0)
    torch.testing.assert_close(fitted.transform(val), expected.float(), atol=1e-5, rtol=1e-5)
    own = scaler("standardize").fit(val).transform(val)
    assert (fitted.transform(val) - own).abs().max().item() > 0.05  # not the validation part's own stats


def test_standardize_and_minmax_match_sklearn():
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    train, val = _wine_split()
    for name, reference in (("standardize", StandardScaler()), ("minmax", MinMaxScaler())):
        ours = scaler(name).fit(train).transform(val)
        theirs = reference.fit(train.double().numpy()).transform(val.double().numpy())
        torch.testing.assert_close(ours, torch.from_numpy(theirs).float(), atol=1e-5, rtol=1e-5)


def test_minmax_maps_the_training_range_to_0_1():
    train, _ = _wine_split()
    scaled = scaler("minmax").fit(train).transform(train)
    assert torch.equal(scaled.min(0).values, torch.zeros(13))
    torch.testing.assert_close(scaled.max(0).values, torch.ones(13))


def test_constant_feature_is_centred_with_scale_1_or_mapped_to_0():
    x = torch.tensor([[1.0, 0.1], [3.0, 0.1], [5.0, 0.1]])
    standardized = scaler("standardize").fit(x)
    assert standardized.to_dict()["std"][1] == 1.0
    assert standardized.transform(x)[:, 1].tolist() == [0.0, 0.0, 0.0]
    assert standardized.transform(torch.tensor([[3.0, 2.1]]))[0, 1].item() == pytest.approx(2.0)
    assert scaler("minmax").fit(x).transform(x)[:, 1].tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("name", SCALERS.names())
def test_every_scaler_round_trips_through_json_with_an_identical_transform(name):
    train, val = _wine_split()
    fitted = scaler(name).fit(train)
    state = json.loads(json.dumps(fitted.to_dict()))
    assert state["name"] == name
    restored = scaler_from_dict(state)
    out = restored.transform(val)
    assert torch.equal(out, fitted.transform(val))
    assert out.shape == val.shape and out.dtype == val.dtype
    double = val.double()
    assert fitted.transform(double).dtype == torch.float64


def test_scaler_spec_forms_and_bad_specs():
    assert scaler(None) is None
    assert scaler({"name": "MinMax"}).name == "minmax"
    built = scaler("none")
    assert scaler(built) is built
    with pytest.raises(InputError, match=r"unknown scaler 'standardise'.*Did you mean 'standardize'"):
        scaler("standardise", source="--scaling")
    with pytest.raises(InputError, match=r"a scaler must be a name"):
        scaler(3)


def test_scaling_token_ids_is_an_error_but_none_passes_them_through():
    tokens = load("sequences", num_samples=10).x
    with pytest.raises(InputError, match=r"standardize: cannot scale torch.int64 input.*token ids"):
        scaler("standardize").fit(tokens)
    fitted = scaler("minmax").fit(torch.rand(4, 20))
    with pytest.raises(InputError, match=r"minmax: cannot scale torch.int64 input"):
        fitted.transform(tokens)
    assert scaler("none").fit(tokens).transform(tokens) is tokens


def test_scaler_misuse_is_reported():
    with pytest.raises(InputError, match=r"transform called before fit"):
        scaler("standardize").transform(torch.rand(3, 2))
    fitted = scaler("standardize").fit(torch.rand(5, 3))
    with pytest.raises(InputError, match=r"fitted on samples of shape \(3,\), got x of shape \(2, 4\)"):
        fitted.transform(torch.rand(2, 4))
    with pytest.raises(InputError, match=r"standardize: fit: x has 1 NaN value"):
        scaler("standardize").fit(torch.tensor([[1.0], [float("nan")]]))
    with pytest.raises(InputError, match=r"unknown scaler 'zscore'"):
        scaler_from_dict({"name": "zscore"})
    with pytest.raises(InputError, match=r"'std' > 0"):
        scaler_from_dict({"name": "standardize", "mean": [0.0], "std": [0.0]})
    with pytest.raises(InputError, match=r"both 'mean' and 'std'"):
        scaler_from_dict({"name": "standardize", "mean": [0.0]})
