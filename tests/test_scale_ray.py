"""Studies on Ray (trainlab.scale.ray): one task per group of stackable runs, gathered into the same study
folder, index and report, with the same results bit for bit as a local study; clear errors without Ray or
without a cluster."""

import json
import socket
import sys
import time

import pytest
import tomli_w
import torch
from safetensors.torch import load_file

from trainlab.cli import main
from trainlab.index import list_runs
from trainlab.study import parse_study, run_study

ray = pytest.importorskip("ray", reason="Ray is the optional extra trainlab[ray]; `make test` installs it")

# Two groups (batch sizes 16 and 32) of two stackable runs (seeds 0 and 1): two Ray tasks, each training
# its group as stacked members, as a local study does.
STUDY = {
    "name": "spread",
    "data": {"name": "iris", "validation_split": 0.2},
    "model": {"layers": [{"type": "Dense", "units": 8, "activation": "relu"},
                         {"type": "Dense", "units": 3, "activation": "softmax"}]},
    "recipe": {"optimizer": {"name": "adam", "lr": 0.01}, "num_epochs": 2, "metrics": ["accuracy"]},
    "study": {"seeds": 2, "vary": {"batch_size": [16, 32]}},
}


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for the module (starting one takes seconds)."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             _system_config={"worker_niceness": 0})
    yield
    ray.shutdown()


@pytest.fixture
def study_file(tmp_path):
    file = tmp_path / "spread.toml"
    file.write_text(tomli_w.dumps(STUDY))
    return file


def test_a_study_on_ray_gathers_the_same_runs_bit_for_bit_into_the_index_and_report(local_ray, study_file,
                                                                                     tmp_path, capsys):
    main(["study", str(study_file), "--runs-dir", str(tmp_path / "ray"), "--json", "--ray"])
    printed = json.loads(capsys.readouterr().out)
    local = run_study(parse_study(STUDY), runs_dir=tmp_path / "local", report=False)

    assert sorted(printed["trained"]) == sorted(local.trained) and len(local.trained) == 4
    untimed = [{k: v for k, v in case.items() if k != "seconds_mean"} for case in printed["comparison"]["cases"]]
    assert untimed == [{k: v for k, v in case.items() if k != "seconds_mean"}
                       for case in json.loads(json.dumps(local.comparison.to_dict()))["cases"]]
    assert (tmp_path / "ray" / "spread" / "report.html").is_file()
    indexed = list_runs(tmp_path / "ray", study="spread")
    assert sorted(r.id for r in indexed) == sorted(f"spread/{run}" for run in local.trained)
    assert {r.status for r in indexed} == {"finished"}
    for run in local.trained:
        ours, theirs = tmp_path / "ray" / "spread" / run, tmp_path / "local" / "spread" / run
        assert (ours / "history.jsonl").read_text() == (theirs / "history.jsonl").read_text()
        a, b = load_file(ours / "model.safetensors"), load_file(theirs / "model.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        assert json.loads((ours / "result.json").read_text())["final"] == \
            json.loads((theirs / "result.json").read_text())["final"]


def test_without_ray_installed_the_message_names_the_extra_and_nothing_is_written(study_file, tmp_path,
                                                                                  monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(SystemExit) as stop:
        main(["study", str(study_file), "--runs-dir", str(tmp_path / "runs"), "--ray"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "pip install 'trainlab[ray]'" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_a_ray_address_nobody_answers_is_a_clear_error_within_30_seconds(study_file, tmp_path, capsys):
    with socket.socket() as s:  # a local port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(SystemExit) as stop:
        main(["study", str(study_file), "--runs-dir", str(tmp_path / "runs"), "--ray", f"127.0.0.1:{port}"])
    assert time.monotonic() - started < 30
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"the Ray cluster at '127.0.0.1:{port}' cannot be reached" in err and "ray status" in err
    assert not (tmp_path / "runs").exists()


def test_a_malformed_ray_address_says_what_an_address_looks_like(study_file, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["study", str(study_file), "--runs-dir", str(tmp_path / "runs"), "--ray", "headnode"])
    assert stop.value.code == 2
    assert "is not a Ray cluster address" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
