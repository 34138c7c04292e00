"""Studies on Ray (trainlab.scale.ray): one task per group of stackable runs, gathered into the same study
folder, index and report, with the same results bit for bit as a local study; gallery entries and searches
on Ray (a search's workers as tasks sharing its storage); clear errors without Ray or without a cluster."""

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


# --------------------------------------------------------------------------- gallery and search on Ray

SEARCH = {
    "name": "spread-search",
    "data": {"name": "iris", "stratify": True},
    "model": {"layers": [{"type": "Dense", "units": 8, "activation": "relu"},
                         {"type": "Dense", "units": 3, "activation": "softmax"}]},
    "recipe": {"optimizer": "sgd", "metrics": ["accuracy"], "batch_size": 16, "num_epochs": 2, "seed": 0},
    "search": {"trials": 4, "pruner": "none", "startup_trials": 2,
               "space": {"lr": {"log_uniform": [1e-3, 1.0]}, "optimizer": {"choice": ["sgd", "adam"]}}},
}


def test_a_gallery_entry_on_ray_reaches_the_same_verdict_and_numbers_as_a_local_run(local_ray, tmp_path, capsys):
    from trainlab.gallery import run_entry

    main(["gallery", "C1", "--quick", "--runs-dir", str(tmp_path / "ray"), "--json", "--ray"])
    printed = json.loads(capsys.readouterr().out)
    local = run_entry("C1", quick=True, runs_dir=tmp_path / "local", draw=False)

    def untimed(verdict: dict) -> dict:
        return {k: v for k, v in verdict.items() if k not in ("seconds", "finished")}

    folder = tmp_path / "ray" / "gallery" / local.folder.name
    ours = json.loads((folder / "verdict.json").read_text())
    assert untimed(ours) == untimed(json.loads((local.folder / "verdict.json").read_text()))
    assert printed["word"] == local.verdict.word == ours["word"] and ours["findings"]
    runs = sorted(p.name for p in local.folder.iterdir() if (p / "history.jsonl").is_file())
    assert len(runs) >= 4 and sorted(p.name for p in folder.iterdir() if (p / "history.jsonl").is_file()) == runs
    for run in runs:
        assert (folder / run / "history.jsonl").read_text() == (local.folder / run / "history.jsonl").read_text()


def test_a_search_on_ray_runs_its_jobs_as_tasks_sharing_the_storage(local_ray, tmp_path, capsys):
    from trainlab.search import load_search

    file = tmp_path / "search.toml"
    file.write_text(tomli_w.dumps(SEARCH))
    main(["search", str(file), "--runs-dir", str(tmp_path / "runs"), "--jobs", "2", "--json", "--ray"])
    result = json.loads(capsys.readouterr().out)
    assert result["storage"].startswith("sqlite:///") and (tmp_path / "runs" / "spread-search" / "search.db").is_file()
    assert sorted(t["number"] for t in result["trials"]) == [0, 1, 2, 3]  # 4 trials in all, no number twice
    assert {t["state"] for t in result["trials"]} == {"COMPLETE"} and result["trained"] == 4
    assert len({tuple(sorted(t["values"].items())) for t in result["trials"]}) == 4  # no point proposed twice
    assert result["direction"] == load_search(file).direction == "maximize"  # val_accuracy by default
    best = next(t for t in result["trials"] if t["number"] == result["best_trial"])
    assert result["best_value"] == best["value"] == max(t["value"] for t in result["trials"])
    assert result["best_values"] == best["values"] and (tmp_path / "runs" / "spread-search" / "best.toml").is_file()


def _command(kind: str, tmp_path) -> list[str]:
    if kind == "gallery":
        return ["gallery", "C1", "--quick", "--runs-dir", str(tmp_path / "runs")]
    file = tmp_path / "search.toml"
    file.write_text(tomli_w.dumps(SEARCH))
    return ["search", str(file), "--runs-dir", str(tmp_path / "runs"), "--jobs", "2"]


@pytest.mark.parametrize("kind", ["gallery", "search"])
def test_gallery_and_search_without_ray_installed_stop_with_the_extra_named(kind, tmp_path, monkeypatch, capsys):
    command = _command(kind, tmp_path)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(SystemExit) as stop:
        main([*command, "--ray"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "pip install 'trainlab[ray]'" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("kind", ["gallery", "search"])
def test_gallery_and_search_with_an_unreachable_ray_address_stop_within_30_seconds(kind, tmp_path, capsys):
    command = _command(kind, tmp_path)
    with socket.socket() as s:  # a local port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(SystemExit) as stop:
        main([*command, "--ray", f"127.0.0.1:{port}"])
    assert time.monotonic() - started < 30
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"the Ray cluster at '127.0.0.1:{port}' cannot be reached" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_a_search_on_a_ray_cluster_with_a_sqlite_storage_warns_that_other_nodes_cannot_share_it(tmp_path):
    from trainlab.search import parse_search, run_search
    from trainlab.search.runner import _child

    class Recording:  # stands in for RayExecutor: records the tasks it is given
        address, num_cpus, calls = "10.0.0.5:6379", 1.0, []

        def map(self, function, arguments, *, poll=None):
            self.calls.append((function, [args[3] for args in arguments]))
            return [None] * len(arguments)

    executor = Recording()
    with pytest.warns(UserWarning, match="workers on other nodes cannot share it.*postgresql://"):
        run_search(parse_search(SEARCH), runs_dir=tmp_path, trials=5, jobs=2, report=False, executor=executor)
    assert executor.calls == [(_child, [3, 2])]  # the local worker function; 5 trials split over 2 tasks
