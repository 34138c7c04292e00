"""`trainlab cv` and `trainlab ensemble`: results on disk, and bad input (exit 2, one paragraph, nothing written)."""

import json

import numpy as np
import pytest

import trainlab
from trainlab.cli import main

SPEC = """
name = "{name}"

[data]
name = "{data}"

[[model.layers]]
type = "Dense"
units = 6
activation = "relu"

[[model.layers]]
type = "Dense"
units = {units}
{activation}

[recipe]
optimizer = {{name = "adam", lr = 0.01}}
batch_size = 32
num_epochs = 1
seed = 0
{extra}
"""


def spec(tmp_path, *, name="iris-small", data="iris", units=3, activation='activation = "softmax"', extra=""):
    path = tmp_path / f"{name}.toml"
    path.write_text(SPEC.format(name=name, data=data, units=units, activation=activation, extra=extra))
    return path


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def test_cv_writes_the_fold_models_and_a_report(tmp_path, capsys):
    runs = tmp_path / "runs"
    main(["cv", str(spec(tmp_path)), "--folds", "3", "--runs-dir", str(runs), "--json"])
    payload = json.loads(capsys.readouterr().out)
    folder = runs / "iris-small" / payload["result_dir"].rsplit("/", 1)[-1]
    assert payload["splitter"].startswith("StratifiedKFold(n_splits=3") and len(payload["folds"]) == 3
    assert "t-interval" in payload["interval_name"]
    assert (folder / "cv.json").is_file()
    page = (folder / "report.html").read_text()
    assert "<h2>Held-out accuracy per fold</h2>" in page and page.count("<td class=case>fold ") == 3
    iris = trainlab.datasets.load("iris")
    assert trainlab.load(folder).predict(iris.x).shape == (150, 3)


def test_ensemble_writes_the_members_and_a_report(tmp_path, capsys):
    runs = tmp_path / "runs"
    main(["ensemble", str(spec(tmp_path)), "--method", "bagging", "--members", "3", "--runs-dir", str(runs),
          "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert payload["members"] == 3 and payload["oob_score"] is not None
    html = (runs / "iris-small" / payload["result_dir"].rsplit("/", 1)[-1] / "report.html").read_text()
    assert "Out-of-bag accuracy against the members" in html and "<script" in html


@pytest.mark.parametrize("args, words", [
    (["cv", "{iris}", "--folds", "51"], ["folds=51 but class", "has only 50 samples", "--no-stratify"]),
    (["cv", "{diabetes}", "--stratify"], ["regression target", "--no-stratify"]),
    (["ensemble", "{iris}", "--members", "1"], ["members must be an int >= 2, got 1", "--members 2 or more"]),
    (["ensemble", "{rmse}", "--method", "adaboost"], ["recipe.loss 'rmse' cannot take sample weights",
                                                      "sparse_categorical_crossentropy"]),
])
def test_bad_input_exits_2_with_one_paragraph_and_writes_nothing(tmp_path, capsys, args, words):
    files = {"iris": spec(tmp_path),
             "diabetes": spec(tmp_path, name="diabetes-small", data="diabetes", units=1, activation=""),
             "rmse": spec(tmp_path, name="iris-rmse", extra='loss = "rmse"')}
    runs = tmp_path / "runs"
    code, out, err = run_cli([a.format(**files) for a in args] + ["--runs-dir", str(runs)], capsys)
    assert code == 2
    assert err.startswith("error: ") and "Traceback" not in err
    message = " ".join(err.split())
    for word in words:
        assert word in message
    assert not runs.exists() or not any(runs.rglob("*"))


def test_ensemble_predictions_average_the_saved_members(tmp_path, capsys):
    runs = tmp_path / "runs"
    main(["ensemble", str(spec(tmp_path)), "--members", "2", "--runs-dir", str(runs), "--json"])
    folder = runs / "iris-small" / json.loads(capsys.readouterr().out)["result_dir"].rsplit("/", 1)[-1]
    iris = trainlab.datasets.load("iris")
    members = [trainlab.load(folder / f"member-{k}").predict(iris.x) for k in range(2)]
    np.testing.assert_allclose(trainlab.load(folder).predict(iris.x), np.mean(members, axis=0), rtol=1e-5,
                               atol=1e-6)
