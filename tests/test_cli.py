"""`trainlab fit SPEC.toml`, `trainlab datasets`, `trainlab catalog`: results, files, and bad input.

Bad input must give one paragraph on stderr, exit status 2, no traceback and
no run folder on disk.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from trainlab.cli import main

ROOT = Path(__file__).resolve().parents[1]

IRIS_SPEC = """
name = "iris-small"

[data]
name = "iris"
validation_split = 0.2

[[model.layers]]
type = "Dense"
units = 16
activation = "relu"

[[model.layers]]
type = "Dense"
units = 3
activation = "softmax"

[recipe]
optimizer = {name = "adam", lr = 0.01}
loss = "sparse_categorical_crossentropy"
metrics = ["accuracy"]
batch_size = 16
num_epochs = 5
seed = 0
"""


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def write(tmp_path, text, name="spec.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_fit_writes_the_run_folder_and_prints_json(tmp_path, capsys):
    spec = write(tmp_path, IRIS_SPEC)
    main(["fit", str(spec), "--runs-dir", str(tmp_path / "runs"), "--json"])
    result = json.loads(capsys.readouterr().out)
    run_dir = Path(result["run_dir"])
    assert run_dir.parent == tmp_path / "runs" / "iris-small"
    # A finished run drops its resume state (issue 10: --keep-checkpoint keeps it); epochs count from 1.
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "history.jsonl", "model.json", "model.safetensors", "result.json", "spec.toml"]
    lines = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2, 3, 4, 5]
    assert lines[-1]["val_accuracy"] == result["final"]["val_accuracy"]
    resolved = (run_dir / "spec.toml").read_text()
    assert "shuffle = true" in resolved and 'device = "auto"' in resolved  # defaults written out


def test_saved_run_reloads_and_predicts_the_same(tmp_path, capsys):
    import numpy as np

    import trainlab
    from trainlab.datasets import load

    spec = write(tmp_path, IRIS_SPEC)
    main(["fit", str(spec), "--runs-dir", str(tmp_path / "runs"), "--json"])
    run_dir = Path(json.loads(capsys.readouterr().out)["run_dir"])
    model = trainlab.load(run_dir)
    iris = load("iris")
    probs = model.predict(iris.x)
    assert probs.shape == (150, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    # Scaling was stored with the model: raw features in, the same predictions as the run's scaled ones.
    again = trainlab.load(run_dir).predict(iris.x)
    assert np.array_equal(probs, again)


def test_digits_mlp_example_reaches_95_percent_validation_accuracy(tmp_path, capsys):
    main(["fit", str(ROOT / "examples" / "digits_mlp.toml"), "--runs-dir", str(tmp_path / "runs"), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert result["best"]["val_accuracy"]["value"] >= 0.95


BAD_SPECS = [
    (('optimizer = {name = "adam", lr = 0.01}', 'optimizer = {name = "adma"}'),
     "unknown optimizer 'adma'.*Did you mean 'adam'"),
    (('optimizer = {name = "adam", lr = 0.01}', 'optimzer = "adam"'),
     r"recipe\.optimzer: unknown field\. Did you mean 'optimizer'"),
    (('optimizer = {name = "adam", lr = 0.01}', 'optimizer = {name = "adam", lr = -1.0}'), "lr"),
    (('optimizer = {name = "adam", lr = 0.01}', 'optimizer = {name = "adam", lrr = 0.1}'),
     "has no setting 'lrr'.*Did you mean 'lr'"),
    (('loss = "sparse_categorical_crossentropy"', 'loss = "sparse_categorical_crosentropy"'),
     "Did you mean 'sparse_categorical_crossentropy'"),
    (("batch_size = 16", "batch_size = 0"), r"recipe\.batch_size"),
    (("seed = 0", "seed = 0\nearly_stopping = {patiense = 3}"),
     r"recipe\.early_stopping\.patiense: unknown field\. Did you mean 'patience'"),
]


@pytest.mark.parametrize("edit, message", BAD_SPECS)
def test_bad_recipe_fields_exit_2_with_one_paragraph_and_write_nothing(tmp_path, capsys, edit, message):
    import re

    spec = write(tmp_path, IRIS_SPEC.replace(*edit))
    code, out, err = run_cli(["fit", str(spec), "--runs-dir", str(tmp_path / "runs")], capsys)
    assert code == 2
    assert re.search(message, " ".join(err.split())), err
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("edit, message", [
    (("validation_split = 0.2", "validation_split = 1.5"), r"data\.validation_split: must be in \(0, 1\)"),
    (('name = "iris"', 'name = "irs"'), "unknown dataset 'irs'.*Did you mean 'iris'"),
    (("units = 3", "units = 2"), "label"),
    (('type = "Dense"\nunits = 16', 'type = "Dense"\nunits = 16\ninput_shape = [5]'),
     r"declared with input_shape=\(5,\) but received inputs of shape \(4,\)"),
    (('activation = "relu"', 'activation = "rleu"'), "Did you mean 'relu'"),
    (('type = "Dense"\nunits = 16', 'type = "Dens"\nunits = 16'), "unknown layer 'Dens'"),
])
def test_bad_data_and_model_exit_2_and_write_nothing(tmp_path, capsys, edit, message):
    import re

    spec = write(tmp_path, IRIS_SPEC.replace(*edit, 1))
    code, out, err = run_cli(["fit", str(spec), "--runs-dir", str(tmp_path / "runs")], capsys)
    assert code == 2, err
    assert re.search(message, " ".join(err.split())), err
    assert "Traceback" not in err
    assert not any((tmp_path / "runs").glob("*/*")) if (tmp_path / "runs").exists() else True


def test_nan_in_a_csv_is_rejected_before_training(tmp_path, capsys):
    rows = ["a,b,label"] + [f"{i},{i * 2},{i % 2}" for i in range(20)]
    rows[5] = "4,nan,0"
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    spec_text = IRIS_SPEC.replace('name = "iris"', f'path = "{tmp_path / "data.csv"}"\ntarget = "label"')
    spec = write(tmp_path, spec_text.replace("units = 3", "units = 2"))
    code, out, err = run_cli(["fit", str(spec), "--runs-dir", str(tmp_path / "runs")], capsys)
    assert code == 2
    assert "'nan'" in err and "line 6" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_missing_spec_file_and_invalid_toml(tmp_path, capsys):
    code, _, err = run_cli(["fit", str(tmp_path / "nope.toml")], capsys)
    assert code == 2 and "does not exist" in err
    bad = write(tmp_path, "name = \n")
    code, _, err = run_cli(["fit", str(bad)], capsys)
    assert code == 2 and "not valid TOML" in err


def test_a_real_process_exits_2_without_a_traceback(tmp_path):
    spec = write(tmp_path, IRIS_SPEC.replace('optimizer = {name = "adam", lr = 0.01}', 'optimizer = "adma"'))
    proc = subprocess.run([sys.executable, "-m", "trainlab.cli", "fit", str(spec), "--runs-dir",
                           str(tmp_path / "runs")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "unknown optimizer 'adma'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_datasets_lists_the_bundled_sets(capsys):
    main(["datasets", "--json"])
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert {"digits", "iris", "wine", "breast_cancer", "diabetes"} <= set(rows)
    assert rows["iris"]["samples"] == 150 and rows["iris"]["features"] == 4


def test_catalog_lists_every_kind_with_claims(capsys):
    main(["catalog", "--json"])
    rows = json.loads(capsys.readouterr().out)
    kinds = {row["kind"] for row in rows}
    assert {"optimizer", "schedule", "initializer", "activation", "loss", "metric", "regularizer"} <= kinds
    assert all(row["claim"] for row in rows if row["kind"] not in ("dataset", "scaler"))
    code, _, err = run_cli(["catalog", "optimzer"], capsys)
    assert code == 2 and "Did you mean 'optimizer'" in err


def test_fit_records_its_run_in_the_index(tmp_path, capsys):
    from trainlab.index import list_runs

    spec = write(tmp_path, IRIS_SPEC)
    main(["fit", str(spec), "--runs-dir", str(tmp_path / "runs"), "--json"])
    result = json.loads(capsys.readouterr().out)
    rows = list_runs(tmp_path / "runs", name="iris-small")
    assert len(rows) == 1
    row = rows[0]
    assert row.status == "finished" and Path(row.run_dir) == Path(result["run_dir"])
    assert row.final["val_accuracy"] == result["final"]["val_accuracy"] and row.study is None
