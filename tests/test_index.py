"""The run index (runs/index.sqlite): record, update, filter, find by id, and several writers at once."""

import multiprocessing
import sqlite3

import pytest

from trainlab.errors import InputError
from trainlab.index import get_run, index_path, list_runs, list_studies, record_run, record_study, spec_hash

SPEC = {"name": "iris", "recipe": {"seed": 0, "optimizer": "adam"}}


def test_a_recorded_run_is_listed_with_its_fields_and_an_update_keeps_its_start_time(tmp_path):
    record_run(tmp_path, run_id="s/a-s0", name="s", study="s", case="a", seed=0, spec=SPEC, status="running",
               run_dir=tmp_path / "s" / "a-s0", started=100.0)
    record_run(tmp_path, run_id="s/a-s0", name="s", study="s", case="a", seed=0, spec=SPEC, status="finished",
               final={"val_loss": float("nan"), "val_accuracy": 0.9}, run_dir=tmp_path / "s" / "a-s0",
               finished=160.0)
    [row] = list_runs(tmp_path)
    assert (row.id, row.study, row.case, row.seed, row.status) == ("s/a-s0", "s", "a", 0, "finished")
    assert (row.started, row.finished) == (100.0, 160.0)
    assert row.final == {"val_loss": None, "val_accuracy": 0.9}  # JSON has no NaN
    assert row.spec == SPEC and row.spec_hash == spec_hash(SPEC)
    assert row.run_dir == str(tmp_path / "s" / "a-s0")
    journal = sqlite3.connect(index_path(tmp_path)).execute("PRAGMA journal_mode").fetchone()[0]
    assert journal == "wal"


def test_filters_and_limit(tmp_path):
    rows = [("s1", "finished"), ("s1", "failed"), ("s2", "finished"), (None, "running")]
    for i, (study, status) in enumerate(rows):
        record_run(tmp_path, run_id=f"r{i}", name=study or "fit", study=study, seed=i, spec=SPEC,
                   status=status, started=float(i))
    assert [r.id for r in list_runs(tmp_path, study="s1")] == ["r0", "r1"]
    assert [r.id for r in list_runs(tmp_path, status="finished")] == ["r0", "r2"]
    assert [r.id for r in list_runs(tmp_path, name="fit")] == ["r3"]
    assert [r.id for r in list_runs(tmp_path, limit=2)] == ["r2", "r3"]
    assert list_runs(tmp_path / "elsewhere") == []
    with pytest.raises(InputError, match=r"runs: status must be one of .*got 'done'"):
        list_runs(tmp_path, status="done")
    with pytest.raises(InputError, match=r"record_run: status must be one of"):
        record_run(tmp_path, run_id="x", name="x", spec=SPEC, status="ok")


def test_get_run_by_id_or_unique_prefix_and_clear_errors(tmp_path):
    with pytest.raises(InputError, match=r"there is no run index at .*index.sqlite"):
        get_run(tmp_path, "anything")
    for run_id in ("study/lr-0.1-s0", "study/lr-0.1-s1", "study/lr-1-s0"):
        record_run(tmp_path, run_id=run_id, name="study", spec=SPEC, status="finished")
    assert get_run(tmp_path, "study/lr-1-s0").id == "study/lr-1-s0"
    assert get_run(tmp_path, "study/lr-1").id == "study/lr-1-s0"
    with pytest.raises(InputError, match=r"run id 'study/lr-0.1' is ambiguous: 2 runs start with it"):
        get_run(tmp_path, "study/lr-0.1")
    with pytest.raises(InputError, match=r"no run with id 'study/lr-1-s9'.*Did you mean 'study/lr-1-s0'"):
        get_run(tmp_path, "study/lr-1-s9")


def test_studies_are_recorded_and_updated(tmp_path):
    record_study(tmp_path, name="lr", status="running", study_dir=tmp_path / "lr", spec=SPEC, num_runs=6)
    record_study(tmp_path, name="lr", status="interrupted")
    [study] = list_studies(tmp_path)
    assert (study.name, study.status, study.num_runs, study.study_dir) == ("lr", "interrupted", 6,
                                                                         str(tmp_path / "lr"))


def _writer(root, worker, count, barrier):
    barrier.wait()
    for i in range(count):
        record_run(root, run_id=f"w{worker}-{i}", name="w", study="concurrent", seed=i, spec={"i": i},
                   status="running")
        record_run(root, run_id=f"w{worker}-{i}", name="w", study="concurrent", seed=i, spec={"i": i},
                   status="finished", final={"loss": float(i)})


def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    workers = [context.Process(target=_writer, args=(tmp_path, w, 40, barrier)) for w in range(2)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=120)
    assert [p.exitcode for p in workers] == [0, 0]
    rows = list_runs(tmp_path, study="concurrent")
    assert sorted(r.id for r in rows) == sorted(f"w{w}-{i}" for w in range(2) for i in range(40))
    assert all(r.status == "finished" and r.final == {"loss": float(r.seed)} for r in rows)
