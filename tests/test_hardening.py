"""Bad input through the command line: refused with exit status 2, a clear message, and nothing written.

Regression tests for issue 17 ("every bad input refused cleanly, nothing
written outside runs/") and issue 10 items 8-10. Each case goes through the
CLI's `main` in-process and asserts exit status 2, no traceback, a message
that names the problem, and a runs directory without a single file (no run
folder, no index row). The crafted files cover every loader: spec and study
files, checkpoints, weights, .npz and .csv data.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from trainlab.cli import main

LAYERS = """
[[model.layers]]
type = "Dense"
units = 8
activation = "relu"

[[model.layers]]
type = "Dense"
units = 3
activation = "softmax"
"""

BASE = """
name = "{name}"

[data]
{data}
""" + LAYERS + """
[recipe]
{recipe}
"""

IRIS = 'name = "iris"'
QUICK = 'optimizer = {name = "adam", lr = 0.01}\nnum_epochs = 2\nbatch_size = 32\nseed = 0'


def spec_text(*, name: str = "h", data: str = IRIS, recipe: str = QUICK, layers: str | None = None) -> str:
    text = BASE.format(name=name, data=data, recipe=recipe)
    return text if layers is None else text.replace(LAYERS, layers)


def run_cli(args, capsys):
    """(exit status, stdout, stderr) of the CLI's `main`, run in-process."""
    try:
        main(args)
        code = 0
    except SystemExit as exit_info:
        code = exit_info.code if isinstance(exit_info.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def assert_refused(code, err, pattern, runs):
    import re

    assert code == 2, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert re.search(pattern, " ".join(err.split())), err
    assert files_under(runs) == [], "bad input must write nothing, not even the index"


# --------------------------------------------------------------------------- bad specs, all through `fit`

BAD_SPECS = {
    # failure 1: a name that would leave runs/
    "name-dotdot": (spec_text(name="../escaped"), r"name: must be a plain name.*--runs-dir"),
    "name-absolute": (spec_text(name="/tmp/escaped"), r"name: must be a plain name.*--runs-dir"),
    "name-separator": (spec_text(name="a/b"), r"name: must be a plain name"),
    "name-backslash": (spec_text(name="a\\\\b"), r"name: must be a plain name"),
    "name-dot": (spec_text(name="."), r"may not start or end with '.'"),
    "name-hidden": (spec_text(name=".hidden"), r"may not start or end with '.'"),
    "name-windows-con": (spec_text(name="CON"), r"'CON' is a device name that Windows reserves"),
    "name-windows-nul-ext": (spec_text(name="nul.txt"), r"'nul' is a device name that Windows reserves"),
    "name-windows-com1": (spec_text(name="com1"), r"Windows reserves"),
    "name-empty": (spec_text(name=""), r"name: must be a plain name"),
    "name-space": (spec_text(name="my run"), r"name: must be a plain name.*' '"),
    "name-too-long": (spec_text(name="a" * 101), r"keep it to 100"),
    "name-markup": (spec_text(name="[/b]"), r"name: must be a plain name.*'\['"),
    # failure 5: checked before anything is written
    "patience-negative": (spec_text(recipe=QUICK + "\nearly_stopping = {patience = -1}"),
                          r"recipe.early_stopping.patience: must be an int >= 0, got -1. Patience counts epochs"),
    "start-from-epoch-negative": (spec_text(recipe=QUICK + "\nearly_stopping = {start_from_epoch = -2}"),
                                  r"start_from_epoch: must be an int >= 0, got -2"),
    "device-tpu": (spec_text(recipe=QUICK + '\ndevice = "tpu"'), r"recipe.device: must be one of auto, cpu"),
    "device-empty": (spec_text(recipe=QUICK + '\ndevice = ""'), r"recipe.device: must be one of"),
    "labels-out-of-range": (spec_text(data='name = "digits"'), r"targets.*(out of range|0 to 2|classes|label)"),
    "binary-crossentropy-3-classes": (spec_text(recipe=QUICK + '\nloss = "binary_crossentropy"'),
                                      r"targets"),
    "input-shape": (spec_text(layers=LAYERS.replace('type = "Dense"\nunits = 8',
                                                    'type = "Dense"\nunits = 8\ninput_shape = [7]', 1)),
                    r"(shape|features|input)"),
    # failure 6
    "lr-zero": (spec_text(recipe=QUICK.replace("lr = 0.01", "lr = 0")), r"learning rate must be > 0, got lr = 0"),
    "monitor-val-acc": (spec_text(recipe=QUICK + '\nearly_stopping = {monitor = "val_acc"}'),
                        r"'val_acc' is not recorded.*Did you mean 'val_accuracy'"),
    "monitor-mae-on-classes": (spec_text(recipe=QUICK + '\nearly_stopping = {monitor = "val_mae"}'),
                               r"'val_mae' is not recorded"),
    # data
    "data-name-unknown": (spec_text(data='name = "irs"'), r"data.name: unknown dataset 'irs'.*Did you mean 'iris'"),
    "data-name-and-path": (spec_text(data='name = "iris"\npath = "x.csv"'), r"give exactly one of data.name"),
    "data-path-suffix": (spec_text(data='path = "data.parquet"'), r"data.path: must be a .csv or .npz file"),
    "data-path-missing": (spec_text(data='path = "missing.csv"'), r"does not exist"),
    "data-options-npz": (spec_text(data='path = "d.npz"\noptions = {num_samples = 5}'),
                         r"a .npz file has no setting data.options.num_samples"),
    "data-options-bundled": (spec_text(data='name = "iris"\noptions = {num_sample = 5}'),
                             r"data set 'iris' has no setting data.options.num_sample"),
    "synthetic-too-large": (spec_text(data='name = "synthetic"\noptions = {num_samples = 1099511627776}'),
                            r"needs about [\d.]+ TB of memory"),
    "validation-split": (spec_text(data='name = "iris"\nvalidation_split = 1.5'), r"data.validation_split"),
    # fields and techniques
    "unknown-field": (spec_text(recipe=QUICK + "\nepochs = 3"), r"recipe.epochs: unknown field"),
    "optimizer-unknown": (spec_text(recipe=QUICK.replace('"adam"', '"adma"')), r"unknown optimizer 'adma'"),
    "layer-type-markup": (spec_text(layers=LAYERS.replace('"Dense"', '"[/b]"', 1)), r"unknown layer '\[/b\]'"),
    "batch-size-zero": (spec_text(recipe=QUICK.replace("batch_size = 32", "batch_size = 0")),
                        r"recipe.batch_size"),
    "no-layers": (spec_text(layers="\n[model]\nlayers = []\n"), r"model.layers: needs at least one layer"),
}


@pytest.mark.parametrize("case", list(BAD_SPECS))
def test_bad_spec_is_refused_before_anything_is_written(case, tmp_path, capsys):
    text, pattern = BAD_SPECS[case]
    work = tmp_path / "work"
    work.mkdir()
    (work / "d.npz").write_bytes(b"")
    spec = work / "spec.toml"
    spec.write_text(text)
    runs = tmp_path / "runs"
    cwd = os.getcwd()
    os.chdir(work)
    try:
        code, _, err = run_cli(["fit", str(spec), "--runs-dir", str(runs), "--quiet"], capsys)
    finally:
        os.chdir(cwd)
    assert_refused(code, err, pattern, runs)
    assert not (tmp_path / "escaped").exists() and not Path("/tmp/escaped").exists()


def test_every_spec_error_is_reported_in_one_pass(tmp_path, capsys):
    text = spec_text(data='name = "irs"', recipe=QUICK.replace('"adam"', '"adma"') + "\nepochs = 3\n"
                     'loss = "crossentropy"\nmetrics = ["acuracy"]')
    text = text.replace('activation = "relu"', 'activation = "relux"').replace('"softmax"', '"softmaxx"')
    spec = tmp_path / "spec.toml"
    spec.write_text(text)
    code, _, err = run_cli(["fit", str(spec), "--runs-dir", str(tmp_path / "runs")], capsys)
    flat = " ".join(err.split())
    for fragment in ("unknown dataset 'irs'", "recipe.epochs: unknown field", "unknown optimizer 'adma'",
                     "unknown loss 'crossentropy'", "acuracy", "relux", "softmaxx"):
        assert fragment in flat, (fragment, err)
    assert "problems)" in flat
    assert_refused(code, err, "not a valid spec", tmp_path / "runs")


# --------------------------------------------------------------------------- containment


def test_a_symlink_already_in_runs_does_not_lead_outside(tmp_path, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "linked").symlink_to(outside, target_is_directory=True)
    spec = tmp_path / "spec.toml"
    spec.write_text(spec_text(name="linked"))
    code, _, err = run_cli(["fit", str(spec), "--runs-dir", str(runs), "--quiet"], capsys)
    assert code == 2 and "leads outside the runs directory" in " ".join(err.split()), err
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in runs.iterdir()) == ["linked"]


def test_a_study_name_cannot_leave_runs(tmp_path, capsys):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "report.html").write_text("keep me")
    spec = tmp_path / "study.toml"
    spec.write_text(spec_text(name=str(target)) + "\n[study]\nseeds = 1\n")
    runs = tmp_path / "runs"
    code, _, err = run_cli(["study", str(spec), "--runs-dir", str(runs), "--quiet"], capsys)
    assert_refused(code, err, r"name: must be a plain name", runs)
    assert (target / "report.html").read_text() == "keep me"


def test_runs_dir_is_the_one_way_to_write_elsewhere(tmp_path, capsys):
    elsewhere = tmp_path / "any" / "where"
    spec = tmp_path / "spec.toml"
    spec.write_text(spec_text(name="ok.run-1_a"))
    code, out, err = run_cli(["fit", str(spec), "--runs-dir", str(elsewhere), "--json"], capsys)
    assert code == 0, err
    run_dir = Path(json.loads(out)["run_dir"])
    assert run_dir.parent == elsewhere / "ok.run-1_a"


# --------------------------------------------------------------------------- crafted spec and study files

CRAFTED_TEXT_FILES = {
    "binary": (os.urandom(64) + b"\xff\xfe\x00", r"is not UTF-8 text"),
    "utf16": ('name = "x"\n'.encode("utf-16"), r"is not UTF-8 text \(it looks like UTF-16"),
    "pickle": (pickle.dumps({"name": "x"}), r"is not UTF-8 text \(it looks like a Python pickle"),
    "latin1": ('name = "caf\xe9"\n'.encode("latin-1"), r"is not UTF-8 text"),
    "truncated": (spec_text().encode()[:40], r"is not valid TOML"),
    "empty": (b"", r"(data: required field is missing|not a valid)"),
    "deeply-nested": (b"a = " + b"[" * 5000 + b"]" * 5000, r"(not valid TOML|nested too deeply|not a valid)"),
    "top-level-array-table": (b"[[data]]\nname = 'iris'\n", r"not a valid"),
}


@pytest.mark.parametrize("command", ["fit", "study"])
@pytest.mark.parametrize("case", list(CRAFTED_TEXT_FILES))
def test_crafted_spec_and_study_files_are_refused(command, case, tmp_path, capsys):
    content, pattern = CRAFTED_TEXT_FILES[case]
    spec = tmp_path / "spec.toml"
    spec.write_bytes(content)
    runs = tmp_path / "runs"
    code, _, err = run_cli([command, str(spec), "--runs-dir", str(runs)], capsys)
    assert_refused(code, err, pattern, runs)


@pytest.mark.parametrize("command", ["fit", "study"])
def test_a_folder_given_as_the_spec_says_so(command, tmp_path, capsys):
    (tmp_path / "a.toml").write_text(spec_text())
    code, _, err = run_cli([command, str(tmp_path), "--runs-dir", str(tmp_path / "runs")], capsys)
    assert_refused(code, err, r"is a folder, not a file.*a.toml", tmp_path / "runs")


def test_a_missing_spec_file_says_so(tmp_path, capsys):
    code, _, err = run_cli(["fit", str(tmp_path / "nope.toml"), "--runs-dir", str(tmp_path / "runs")], capsys)
    assert_refused(code, err, r"does not exist", tmp_path / "runs")


@pytest.mark.parametrize("content", [b"\xff\xfe{", b"[1, 2]", b'{"runs": [{"run_id": "../x"}]}', b'{"runs": 3}',
                                     b'{"runs": [{"spec_hash": 1}]}', b"{"])
def test_report_refuses_a_crafted_study_json(content, tmp_path, capsys):
    study = tmp_path / "runs" / "s"
    study.mkdir(parents=True)
    (study / "study.json").write_bytes(content)
    code, _, err = run_cli(["report", str(study)], capsys)
    assert code == 2, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert sorted(p.name for p in study.iterdir()) == ["study.json"]


# --------------------------------------------------------------------------- crafted data files


def _npz(path: Path, **arrays) -> None:
    np.savez(path, **arrays)


def _pickled_npz(path: Path) -> None:
    np.savez(path, x=np.array([{"a": 1}, {"b": 2}], dtype=object), y=np.array([0, 1]))


CRAFTED_DATA = {
    "npz-not-a-zip": ("d.npz", lambda p: p.write_bytes(b"PK\x03\x04garbage"), r"could not be read|not an .npz"),
    "npz-pickle": ("d.npz", lambda p: p.write_bytes(pickle.dumps({"x": 1})), r"never unpickles"),
    "npz-object-array": ("d.npz", _pickled_npz, r"(object array|never unpickles|Python objects)"),
    "npz-missing-key": ("d.npz", lambda p: _npz(p, x=np.ones((4, 2))), r"has no array 'y'"),
    "npz-truncated": ("d.npz", lambda p: (_npz(p, x=np.ones((9, 4)), y=np.zeros(9)),
                                          p.write_bytes(p.read_bytes()[:100])), r"could not be read|not an .npz"),
    "npz-nan": ("d.npz", lambda p: _npz(p, x=np.full((6, 4), np.nan), y=np.zeros(6)), r"(NaN|not finite)"),
    "npz-rows-mismatch": ("d.npz", lambda p: _npz(p, x=np.ones((6, 4)), y=np.zeros(5)), r"(6|5).*(rows|samples)"),
    "csv-utf16": ("d.csv", lambda p: p.write_bytes("a,b\n1,0\n".encode("utf-16")), r"not a UTF-8"),
    "csv-binary": ("d.csv", lambda p: p.write_bytes(os.urandom(32) + b"\xff"), r"not a UTF-8"),
    "csv-ragged": ("d.csv", lambda p: p.write_text("1,2,0\n3,1\n4,5,1\n"), r"line 2 has 2 fields"),
    "csv-text-cell": ("d.csv", lambda p: p.write_text("a,b,y\n1,2,0\nx,1,1\n3,3,0\n"), r"(not a number|line 3)"),
    "csv-empty": ("d.csv", lambda p: p.write_text(""), r"(no data rows|empty)"),
    "csv-one-column": ("d.csv", lambda p: p.write_text("1\n2\n"), r"needs feature columns"),
}


@pytest.mark.parametrize("case", list(CRAFTED_DATA))
def test_crafted_data_files_are_refused(case, tmp_path, capsys):
    filename, make, pattern = CRAFTED_DATA[case]
    make(tmp_path / filename)
    spec = tmp_path / "spec.toml"
    spec.write_text(spec_text(data=f'path = "{(tmp_path / filename).as_posix()}"'))
    runs = tmp_path / "runs"
    code, _, err = run_cli(["fit", str(spec), "--runs-dir", str(runs)], capsys)
    assert_refused(code, err, pattern, runs)


# --------------------------------------------------------------------------- crafted checkpoints (fit --resume)


def _safetensors_with_header(path: Path, header: dict) -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)


def _state(path: Path, meta: str, tensors: dict | None = None) -> None:
    save_file(tensors or {"t": torch.zeros(1)}, str(path), metadata={"trainlab_state": meta, "format": "pt"})


def _other_architecture(path: Path) -> None:
    from trainlab.checkpoint import save_state

    save_state(path, {"epoch": 0, "step": 4, "fingerprint": [32, 120, 4, 0], "first_loss": 1.0,
                      "model": {"layers.0.weight": torch.zeros(99, 4)}, "optimizer": {"state": {}, "param_groups": []},
                      "schedule": None, "callbacks": [None, None], "history": {"history": {}, "epoch": []},
                      "rng": {"cpu": torch.get_rng_state(), "generator": torch.get_rng_state()},
                      "stopped": False, "stop_reason": None})


CRAFTED_CHECKPOINTS = {
    "bad-json": (lambda p: _state(p, "{not json"), r"state header is not valid JSON"),
    "missing-tensor": (lambda p: _state(p, json.dumps({"epoch": 0, "model": {"__tensor__": "nope"}})),
                       r"refers to a tensor 'nope' that the file does not hold"),
    "only-epoch": (lambda p: _state(p, json.dumps({"epoch": 3})), r"it lacks 'step'"),
    "epoch-is-text": (lambda p: _state(p, json.dumps({k: "x" for k in ("epoch", "step", "fingerprint", "model",
                                                                       "optimizer", "callbacks", "history", "rng")})),
                      r"'epoch' is a str"),
    "a-list": (lambda p: _state(p, "[1, 2]"), r"its state is a list"),
    "bad-dict-pairs": (lambda p: _state(p, json.dumps({"__dict__": [[1]]})), r"not a list of \[key, value\] pairs"),
    "other-architecture": (_other_architecture, r"does not fit this run"),
    "pickle": (lambda p: p.write_bytes(pickle.dumps({"epoch": 1})), r"never unpickles"),
    "torch-save": (lambda p: torch.save({"epoch": 1}, p), r"never unpickles"),
    "truncated": (lambda p: (_state(p, json.dumps({"epoch": 0}), {"t": torch.zeros(1000)}),
                             p.write_bytes(p.read_bytes()[:-100])), r"not a valid safetensors file"),
    "huge-header-length": (lambda p: p.write_bytes(struct.pack("<Q", 2**62) + b"{}"), r"not a valid safetensors"),
    "header-offsets-outside": (lambda p: _safetensors_with_header(
        p, {"t": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}), r"not a valid safetensors"),
    "no-trainlab-state": (lambda p: save_file({"t": torch.zeros(1)}, str(p)), r"holds no trainlab state"),
}


@pytest.mark.parametrize("case", list(CRAFTED_CHECKPOINTS))
def test_crafted_checkpoints_are_refused_on_resume(case, tmp_path, capsys):
    import tomli_w

    from trainlab.spec import load_spec, spec_to_dict

    make, pattern = CRAFTED_CHECKPOINTS[case]
    spec = tmp_path / "spec.toml"
    spec.write_text(spec_text(name="resumed", recipe=QUICK.replace("num_epochs = 2", "num_epochs = 1")))
    runs = tmp_path / "runs"
    staging = runs / "resumed" / ".20260101-000000-abcdef.partial"
    (staging / "checkpoint").mkdir(parents=True)
    (staging / "spec.toml").write_text(tomli_w.dumps(spec_to_dict(load_spec(spec))))
    make(staging / "checkpoint" / "state.safetensors")
    before = files_under(runs)
    code, _, err = run_cli(["fit", str(spec), "--runs-dir", str(runs), "--resume", "--quiet"], capsys)
    assert code == 2, err
    assert "Traceback" not in err and "internal error" not in err, err
    import re

    assert re.search(pattern, " ".join(err.split())), err
    # The unfinished run is kept as it was (a checkpoint is never overwritten by a refused resume).
    assert [f for f in files_under(runs) if not f.startswith("index.sqlite")] == before


# --------------------------------------------------------------------------- crafted weights (trainlab.load)


def _saved_model(folder: Path) -> None:
    from trainlab import Sequential
    from trainlab.layers import Dense
    from trainlab.runs import save_model

    model = Sequential([Dense(3, input_shape=(4,))])
    model(torch.zeros(1, 4))
    save_model(model, folder)


CRAFTED_WEIGHTS = {
    "json-not-json": (lambda d: (d / "model.json").write_text("{"), r"not valid JSON"),
    "json-utf16": (lambda d: (d / "model.json").write_bytes('{"a": 1}'.encode("utf-16")), r"not valid JSON"),
    "json-a-list": (lambda d: (d / "model.json").write_text("[1]"), r"does not describe a model"),
    "json-no-layers": (lambda d: (d / "model.json").write_text('{"format": "x"}'), r"does not describe a model"),
    "json-bad-layer": (lambda d: (d / "model.json").write_text('{"layers": [{"type": "Nope"}]}'),
                       r"does not describe a model"),
    "weights-pickle": (lambda d: (d / "model.safetensors").write_bytes(pickle.dumps(1)), r"not a valid safetensors"),
    "weights-other-shape": (lambda d: save_file({"layers.0.weight": torch.zeros(5, 4), "layers.0.bias": torch.zeros(5)},
                                                str(d / "model.safetensors")), r"do not fit the model"),
    "weights-missing-tensor": (lambda d: save_file({"layers.0.weight": torch.zeros(3, 4)}, str(d / "model.safetensors")),
                               r"do not fit the model"),
}


@pytest.mark.parametrize("case", list(CRAFTED_WEIGHTS))
def test_crafted_weights_are_refused_by_load(case, tmp_path):
    from trainlab.errors import InputError
    from trainlab.runs import load

    _saved_model(tmp_path)
    make, pattern = CRAFTED_WEIGHTS[case]
    make(tmp_path)
    with pytest.raises(InputError, match=pattern):
        load(tmp_path)


# --------------------------------------------------------------------------- files of a finished run


RESTORE = QUICK.replace("num_epochs = 2", "num_epochs = 12").replace("lr = 0.01", "lr = 0.5") + (
    '\nearly_stopping = {monitor = "val_loss", patience = 100, restore_best_weights = true}')


def test_result_json_the_table_and_the_saved_model_agree(tmp_path, capsys):
    import trainlab
    from trainlab.api import dataset_from_spec, prepare
    from trainlab.engine import Technique, evaluate_tensors, resolve_loss
    from trainlab.spec import load_spec

    spec = tmp_path / "spec.toml"
    spec.write_text(spec_text(name="agree", data='name = "iris"\nvalidation_split = 0.5', recipe=RESTORE))
    old = os.umask(0o022)
    try:
        code, out, err = run_cli(["fit", str(spec), "--runs-dir", str(tmp_path / "runs"), "--json",
                                  "--keep-checkpoint"], capsys)
    finally:
        os.umask(old)
    assert code == 0, err
    printed = json.loads(out)
    run_dir = Path(printed["run_dir"])
    result = json.loads((run_dir / "result.json").read_text())
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    kept = result["final_epoch"]
    assert 1 <= kept < result["epochs"], "this run's best epoch is not its last, so restoring matters"
    assert result["last"]["val_loss"] == history[-1]["val_loss"] != result["final"]["val_loss"]
    assert printed["final"] == result["final"] and printed["final_epoch"] == kept
    # epochs count from 1 everywhere; "final" is the kept epoch's row; best.epoch counts from 1 too
    assert [row["epoch"] for row in history] == list(range(1, len(history) + 1))
    assert result["final"]["val_loss"] == history[kept - 1]["val_loss"]
    assert printed["best"]["val_loss"]["epoch"] == kept
    assert min(row["val_loss"] for row in history) == result["final"]["val_loss"]
    # the saved model scores what result.json says
    parsed = load_spec(spec)
    prepared = prepare(dataset_from_spec(parsed.data), validation_split=0.5, scaling="auto", seed=0)
    model = trainlab.load(run_dir)
    loss_fn, forward, from_logits = resolve_loss(model, Technique(loss="auto", task="classification"),
                                                 prepared.data.y, 3)
    logs = evaluate_tensors(model, forward, loss_fn, [], prepared.data.x_val, prepared.data.y_val,
                            batch_size=1024, from_logits=from_logits)
    assert logs["loss"] == pytest.approx(result["final"]["val_loss"], rel=1e-5)
    # --keep-checkpoint keeps the resume state; files get the user's umask, not 0600
    assert (run_dir / "checkpoint" / "state.safetensors").is_file()
    for name in ("model.safetensors", "model.json", "result.json", "history.jsonl", "spec.toml"):
        assert (run_dir / name).stat().st_mode & 0o777 == 0o644, name


def test_a_diverged_run_writes_strict_json_and_exits_0(tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    recipe = 'optimizer = {name = "sgd", lr = 1e12}\nnum_epochs = 3\nseed = 0\nloss = "mse"'
    layers = '\n[[model.layers]]\ntype = "Dense"\nunits = 1\n'
    spec.write_text(spec_text(name="boom", data='name = "diabetes"', recipe=recipe, layers=layers))
    code, out, err = run_cli(["fit", str(spec), "--runs-dir", str(tmp_path / "runs"), "--json"], capsys)
    assert code == 0, err
    printed = json.loads(out, parse_constant=lambda c: pytest.fail(f"bare {c} in --json output"))
    assert printed["diverged"] is True and "diverged" in printed["stop_reason"]
    run_dir = Path(printed["run_dir"])
    strict = {"parse_constant": lambda c: pytest.fail(f"bare {c} in a run file")}
    json.loads((run_dir / "result.json").read_text(), **strict)
    rows = [json.loads(line, **strict) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert any(value is None for row in rows for value in row.values())  # NaN/inf written as null


def test_history_and_result_files_write_null_for_non_finite_numbers(tmp_path):
    from trainlab.runs import history_rows, write_history, write_json_atomic

    write_history(tmp_path / "h.jsonl", history_rows({"loss": [1.0, float("nan")], "lr": [0.1, float("inf")]}))
    assert (tmp_path / "h.jsonl").read_text().splitlines() == [
        '{"epoch": 1, "loss": 1.0, "lr": 0.1}', '{"epoch": 2, "loss": null, "lr": null}']
    write_json_atomic(tmp_path / "r.json", {"final": {"loss": float("-inf")}})
    assert json.loads((tmp_path / "r.json").read_text()) == {"final": {"loss": None}}


# --------------------------------------------------------------------------- index and temporary files


def test_runs_reconciles_a_row_left_running_at_a_vanished_partial_folder(tmp_path, capsys):
    from trainlab.index import get_run, list_runs, record_run

    runs = tmp_path / "runs"
    done = runs / "r" / "20260101-000000-aaaaaa"
    done.mkdir(parents=True)
    (done / "result.json").write_text(json.dumps({"final": {"val_loss": 0.5}}))
    # killed after the rename, before the index update
    record_run(runs, run_id="r/20260101-000000-aaaaaa", name="r", spec={}, status="running",
               run_dir=runs / "r" / ".20260101-000000-aaaaaa.partial")
    # killed, and its staging folder removed since
    record_run(runs, run_id="r/20260101-000000-bbbbbb", name="r", spec={}, status="running",
               run_dir=runs / "r" / ".20260101-000000-bbbbbb.partial")
    # still training: its staging folder exists
    live = runs / "r" / ".20260101-000000-cccccc.partial"
    live.mkdir()
    record_run(runs, run_id="r/20260101-000000-cccccc", name="r", spec={}, status="running", run_dir=live)
    code, out, err = run_cli(["runs", "--runs-dir", str(runs), "--json"], capsys)
    assert code == 0, err
    by_id = {r.id: r for r in list_runs(runs)}
    assert by_id["r/20260101-000000-aaaaaa"].status == "finished"
    assert by_id["r/20260101-000000-aaaaaa"].run_dir == str(done)
    assert by_id["r/20260101-000000-aaaaaa"].final == {"val_loss": 0.5}
    assert by_id["r/20260101-000000-bbbbbb"].status == "interrupted"
    assert get_run(runs, "r/20260101-000000-cccccc").status == "running"


def test_stale_temporary_files_are_cleaned_on_the_next_write(tmp_path):
    from trainlab.checkpoint import load_state, save_state

    target = tmp_path / "state.safetensors"
    stale = [tmp_path / ".state.safetensors.tmp", tmp_path / ".state.safetensors.tmp8f3k2"]
    for file in stale:
        file.write_bytes(b"\0" * 1000)
    other = tmp_path / "keep.txt"
    other.write_text("not ours")
    save_state(target, {"epoch": 1, "w": torch.ones(2)})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt", "state.safetensors"]
    assert load_state(target)["epoch"] == 1


def test_a_study_whose_case_cannot_train_writes_nothing(tmp_path, capsys):
    spec = tmp_path / "study.toml"
    spec.write_text(spec_text(name="st") + '\n[study]\nseeds = 1\nvary = {loss = ["sparse_categorical_crossentropy", '
                    '"binary_crossentropy"]}\n')
    runs = tmp_path / "runs"
    code, _, err = run_cli(["study", str(spec), "--runs-dir", str(runs), "--quiet"], capsys)
    assert_refused(code, err, r"case 'loss=binary_crossentropy': training targets: binary_crossentropy", runs)


def test_mutated_checkpoint_and_weights_bytes_load_or_are_refused(tmp_path):
    """300 seeded byte mutations (flips in the header, cuts, insertions) of a real checkpoint and model."""
    import random

    from trainlab.checkpoint import RESUME_KEYS, load_state, save_state
    from trainlab.errors import InputError
    from trainlab.runs import load

    state = tmp_path / "state.safetensors"
    save_state(state, {"epoch": 1, "step": 3, "fingerprint": [1, 2], "model": {"w": torch.ones(3)},
                       "optimizer": {"state": {0: {"m": torch.zeros(3)}}}, "callbacks": [], "history": {},
                       "rng": {"cpu": torch.get_rng_state()}})
    _saved_model(tmp_path / "model")
    rng = random.Random(0)
    outcomes = {"loaded": 0, "refused": 0}
    for i in range(300):
        original = state if i % 2 else tmp_path / "model" / "model.safetensors"
        data = bytearray(original.read_bytes())
        header_end = 8 + int.from_bytes(data[:8], "little")
        choice = rng.random()
        if choice < 0.6:
            data[rng.randrange(header_end)] = rng.randrange(256)
        elif choice < 0.8:
            del data[rng.randrange(1, len(data)):]
        else:
            data.insert(rng.randrange(len(data)), rng.randrange(256))
        folder = tmp_path / f"m{i}"
        folder.mkdir()
        try:
            if i % 2:
                (folder / "state.safetensors").write_bytes(bytes(data))
                load_state(folder / "state.safetensors", require=RESUME_KEYS)
            else:
                (folder / "model.safetensors").write_bytes(bytes(data))
                (folder / "model.json").write_bytes((tmp_path / "model" / "model.json").read_bytes())
                load(folder)
            outcomes["loaded"] += 1
        except InputError:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 200, outcomes


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_all_finite_finds_one_bad_number_anywhere(bad):
    from trainlab.check import all_finite

    for dtype in (torch.float32, torch.float64, torch.float16):
        t = torch.randn(7, 5).to(dtype)
        assert all_finite(t)
        for index in [(0, 0), (3, 2), (6, 4)]:
            broken = t.clone()
            broken[index] = bad
            assert not all_finite(broken)
    assert all_finite(torch.zeros(0, 3)) and all_finite(torch.tensor([1, 2]))
