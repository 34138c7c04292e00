"""Running a study: folders, index, determinism against a lone fit, and resuming after a kill."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import torch

import trainlab
from trainlab.errors import InputError
from trainlab.index import list_runs, list_studies
from trainlab.study import StudyProgress, parse_study, run_study

ROOT = Path(__file__).resolve().parents[1]


def tiny(name="tiny", seeds=2, epochs=2, vary=None):
    return {
        "name": name,
        "data": {"name": "iris", "validation_split": 0.2},
        "model": {"layers": [{"type": "Dense", "units": 8, "activation": "relu"},
                             {"type": "Dense", "units": 3, "activation": "softmax"}]},
        "recipe": {"optimizer": {"name": "adam", "lr": 0.01}, "num_epochs": epochs, "batch_size": 16,
                   "metrics": ["accuracy"]},
        "study": {"seeds": seeds, "vary": vary or {"optimizer": ["sgd", "adam"]}},
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    study = parse_study(tiny())
    return study, runs, run_study(study, runs_dir=runs, report=False)


def test_a_study_writes_one_complete_folder_per_run_and_study_json(finished):
    study, runs, result = finished
    folder = runs / "tiny"
    assert result.study_dir == folder
    assert sorted(p.name for p in folder.iterdir()) == [
        "optimizer-adam-s0", "optimizer-adam-s1", "optimizer-sgd-s0", "optimizer-sgd-s1", "study.json"]
    for run in study.runs:
        files = sorted(p.name for p in (folder / run.run_id).iterdir())
        assert files == ["history.jsonl", "model.json", "model.safetensors", "result.json", "spec.toml"]
        saved = json.loads((folder / run.run_id / "result.json").read_text())
        assert (saved["case"], saved["seed"], saved["spec_hash"], saved["epochs"]) == \
            (run.case.label, run.seed, run.spec_hash, 2)
        assert saved["steps_per_epoch"] == 8  # 120 training samples in batches of 16
        assert len((folder / run.run_id / "history.jsonl").read_text().splitlines()) == 2
    info = json.loads((folder / "study.json").read_text())
    assert info["status"] == "finished"
    assert [r["run_id"] for r in info["runs"]] == [r.run_id for r in study.runs]
    assert sorted(result.trained) == sorted(r.run_id for r in study.runs) and result.reused == []
    assert [c.case for c in result.comparison.cases] != [] and result.comparison.metric == "val_accuracy"


def test_every_run_is_recorded_in_the_index(finished):
    study, runs, _ = finished
    rows = list_runs(runs, study="tiny")
    assert sorted(r.id for r in rows) == sorted(f"tiny/{r.run_id}" for r in study.runs)
    assert {r.status for r in rows} == {"finished"}
    assert {r.case for r in rows} == {"optimizer=sgd", "optimizer=adam"}
    assert all(0.0 <= r.final["val_accuracy"] <= 1.0 for r in rows)
    [entry] = list_studies(runs)
    assert (entry.name, entry.status, entry.num_runs) == ("tiny", "finished", 4)


def test_a_study_run_equals_a_lone_fit_of_its_spec(finished):
    # Its cases train as stacked members: equal to the lone fit to float32 rounding.
    study, runs, _ = finished
    run = study.runs[3]  # optimizer=adam, seed 1
    model = trainlab.Sequential(run.spec.model.layers)
    trainlab.fit(model, "iris", run.spec.recipe, validation_split=0.2)
    saved = trainlab.load(runs / "tiny" / run.run_id)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, saved.state_dict()[key], rtol=1e-4, atol=1e-5)


def test_augmented_study_runs_stack_and_equal_lone_fits_with_the_same_noise(tmp_path):
    # Input noise is a batch transform: stacked members draw it from their own (seed, step) stream,
    # so each equals its lone fit; and it is applied (the weights differ from a run without it).
    spec = tiny("noisy", seeds=2, vary={"optimizer": ["adam"]})
    spec["recipe"]["input_noise"] = 0.3
    study = parse_study(spec)
    run_study(study, runs_dir=tmp_path, report=False)
    run = study.runs[1]
    assert json.loads((tmp_path / "noisy" / run.run_id / "result.json").read_text())["seconds_shared_by"] == 2
    saved = trainlab.load(tmp_path / "noisy" / run.run_id)
    model = trainlab.Sequential(run.spec.model.layers)
    trainlab.fit(model, "iris", run.spec.recipe, validation_split=0.2)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, saved.state_dict()[key], rtol=1e-4, atol=1e-5)
    quiet = trainlab.Sequential(run.spec.model.layers)
    trainlab.fit(quiet, "iris", run.spec.recipe.model_copy(update={"input_noise": None}), validation_split=0.2)
    assert not torch.allclose(quiet.state_dict()["layers.0.weight"], model.state_dict()["layers.0.weight"])


def test_without_resume_a_study_with_finished_runs_is_not_overwritten(finished):
    study, runs, _ = finished
    with pytest.raises(InputError, match=r"already holds 4 finished runs of study 'tiny'. Pass --resume"):
        run_study(study, runs_dir=runs, report=False)


def test_resume_trains_only_the_missing_runs_and_drops_half_written_ones(tmp_path):
    study = parse_study(tiny(name="resumed"))
    run_study(study, runs_dir=tmp_path, report=False)
    folder = tmp_path / "resumed"
    before = (folder / "optimizer-sgd-s0" / "model.safetensors").read_bytes()
    # A kill during a run's writing leaves its staging folder; a kill before it leaves nothing.
    os.rename(folder / "optimizer-adam-s1", folder / ".optimizer-adam-s1.partial")
    (folder / ".optimizer-adam-s1.partial" / "result.json").unlink()
    shutil.rmtree(folder / "optimizer-sgd-s1")
    result = run_study(study, runs_dir=tmp_path, resume=True, report=False)
    assert sorted(result.trained) == ["optimizer-adam-s1", "optimizer-sgd-s1"]
    assert sorted(result.reused) == ["optimizer-adam-s0", "optimizer-sgd-s0"]
    assert not list(folder.glob(".*.partial"))
    assert (folder / "optimizer-sgd-s0" / "model.safetensors").read_bytes() == before
    assert len(result.comparison.cases) == 2 and {c.n for c in result.comparison.cases} == {2}


def test_resume_refuses_runs_trained_from_a_spec_that_has_changed_since(tmp_path):
    run_study(parse_study(tiny(name="changed", seeds=1)), runs_dir=tmp_path, report=False)
    changed = tiny(name="changed", seeds=1)
    changed["recipe"]["batch_size"] = 32
    with pytest.raises(InputError, match=r"holds a finished run trained from another spec than the study now "
                                         r"describes for case 'optimizer=sgd' seed 0"):
        run_study(parse_study(changed), runs_dir=tmp_path, resume=True, report=False)


class StopAfter(StudyProgress):
    def __init__(self, runs):
        self.left = runs

    def run_end(self, run, record):
        self.left -= 1
        if self.left == 0:
            raise KeyboardInterrupt


def test_an_interrupted_study_says_so_and_resume_finishes_it(tmp_path):
    study = parse_study(tiny(name="stopped"))
    with pytest.raises(KeyboardInterrupt):
        run_study(study, runs_dir=tmp_path, progress=StopAfter(1), report=False)
    info = json.loads((tmp_path / "stopped" / "study.json").read_text())
    assert info["status"] == "interrupted"
    # The runs of a group are all under way for a stacked engine; those not finished are interrupted.
    statuses = sorted(r.status for r in list_runs(tmp_path, study="stopped"))
    assert statuses == ["finished", "interrupted", "interrupted", "interrupted"]
    result = run_study(study, runs_dir=tmp_path, resume=True, report=False)
    assert result.reused == ["optimizer-sgd-s0"] and len(result.trained) == 3
    assert {r.status for r in list_runs(tmp_path, study="stopped")} == {"finished"}


KILLABLE = """
name = "killed"
[data]
name = "iris"
[[model.layers]]
type = "Dense"
units = 8
activation = "relu"
[[model.layers]]
type = "Dense"
units = 3
activation = "softmax"
[recipe]
num_epochs = 15
batch_size = 8
[study]
seeds = 1
[study.vary]
# Each width is its own architecture, so the runs train (and finish) one after another.
"model.layers[0].units" = [4, 5, 6, 7, 8, 9, 10, 11]
"""


def test_killing_the_study_process_midway_then_resume_trains_only_the_missing_runs(tmp_path):
    spec = tmp_path / "killed.toml"
    spec.write_text(KILLABLE)
    folder = tmp_path / "runs" / "killed"
    # One thread each: tiny models on a busy 2-core machine otherwise wait on each other's cores.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "trainlab.cli", "study", str(spec), "--runs-dir",
                                str(tmp_path / "runs"), "--quiet"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if folder.is_dir() and any((p / "result.json").is_file() for p in folder.iterdir() if p.is_dir()):
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = sorted(p.name for p in folder.iterdir() if p.is_dir() and (p / "result.json").is_file())
    assert len(done) >= 1 and len(done) < 8, "the study should be killed midway; make its runs longer if this fails"
    study = parse_study(tomllib.loads(KILLABLE))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = run_study(study, runs_dir=tmp_path / "runs", resume=True, report=False)
    finally:
        torch.set_num_threads(threads)
    assert sorted(result.reused) == done
    assert sorted(result.trained) == sorted(set(r.run_id for r in study.runs) - set(done))
    assert len(result.comparison.cases) == 8


def test_runs_that_differ_only_in_label_smoothing_stack_and_equal_lone_fits(tmp_path):
    # The loss's label smoothing is a member's own: both cases share one stacked pass (per-member
    # smoothing in the stacked loss), and each run equals its lone fit over 20 steps (2 epochs of 10).
    spec = tiny("smoothing", seeds=1)
    spec["recipe"].update(loss="sparse_categorical_crossentropy", batch_size=12)
    spec["study"] = {"seeds": 1, "case": [
        {"name": "none"},
        {"name": "smoothed", "recipe.loss": {"name": "sparse_categorical_crossentropy", "label_smoothing": 0.2}}]}
    study = parse_study(spec)
    run_study(study, runs_dir=tmp_path, report=False)
    weights = []
    for run in study.runs:
        result = json.loads((tmp_path / "smoothing" / run.run_id / "result.json").read_text())
        assert result["seconds_shared_by"] == 2 and result["steps_per_epoch"] == 10
        saved = trainlab.load(tmp_path / "smoothing" / run.run_id)
        model = trainlab.Sequential(run.spec.model.layers)
        trainlab.fit(model, "iris", run.spec.recipe, validation_split=0.2)
        for key, value in model.state_dict().items():
            other = saved.state_dict()[key]
            assert ((other - value).norm() / value.norm()).item() < 1e-5, key
        weights.append(model.state_dict()["layers.0.weight"])
    assert not torch.allclose(weights[0], weights[1])  # the smoothing is applied


def test_runs_with_and_without_dropout_share_a_stack_and_equal_lone_fits(tmp_path):
    # A run without Dropout trains as one with rate-0 Dropout layers in the same places (which pass
    # their input through), so the dropout, L2 and plain runs are members of one stacked pass; each
    # run's saved model has its own spec's layers and equals its lone fit.
    spec = tiny("regularized", seeds=1)
    spec["recipe"].update(batch_size=12)
    dense = {"type": "Dense", "units": 8, "activation": "relu"}
    spec["study"] = {"seeds": 1, "case": [
        {"name": "none"},
        {"name": "dropout", "model.layers": [dense, {"type": "Dropout", "rate": 0.4},
                                             {"type": "Dense", "units": 3, "activation": "softmax"}]},
        {"name": "L2", "layers.kernel_regularizer": {"name": "l2", "l2": 1e-2}}]}
    study = parse_study(spec)
    run_study(study, runs_dir=tmp_path, report=False)
    for run in study.runs:
        result = json.loads((tmp_path / "regularized" / run.run_id / "result.json").read_text())
        assert result["seconds_shared_by"] == 3
        saved = trainlab.load(tmp_path / "regularized" / run.run_id)
        model = trainlab.Sequential(run.spec.model.layers)
        trainlab.fit(model, "iris", run.spec.recipe, validation_split=0.2)
        assert saved.state_dict().keys() == model.state_dict().keys()
        assert saved.get_config()["layers"] == model.get_config()["layers"]
        for key, value in model.state_dict().items():
            assert ((saved.state_dict()[key] - value).norm() / value.norm()).item() < 1e-5, (run.run_id, key)
