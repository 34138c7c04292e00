"""The run index: `runs/index.sqlite`, one row per run and per study, for `trainlab runs`.

Every run that trainlab trains (by `trainlab fit` or inside a study) is
recorded here with its spec hash, status, timestamps, final metrics and
folder, so that runs can be listed, filtered and found again without walking
the run folders. The run folders stay the source of truth; the index is a
catalogue of them.

Several processes may write at once (two studies, a study and a fit): the
database runs in WAL mode with a busy timeout, and each write is one short
``BEGIN IMMEDIATE`` transaction, so writers queue instead of failing.

Tables:

    runs     id, name, study, case, seed, spec_hash, spec (JSON), status,
             started, finished (Unix seconds), final (JSON), run_dir, version
    studies  name, study_dir, spec_hash, status, num_runs, created, updated

Non-finite final metrics (a diverged loss) are stored as null: JSON has no NaN.

Example:
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> record_run(root, run_id="r1", name="iris", spec={"recipe": {"seed": 0}}, status="finished",
    ...            final={"val_accuracy": 0.9}, seed=0)
    >>> [(r.id, r.status, r.final["val_accuracy"]) for r in list_runs(root)]
    [('r1', 'finished', 0.9)]
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from trainlab import __version__, check
from trainlab.errors import InputError, did_you_mean

__all__ = [
    "INDEX_FILE",
    "STATUSES",
    "IndexedRun",
    "IndexedStudy",
    "get_run",
    "index_path",
    "list_runs",
    "list_studies",
    "record_run",
    "reconcile",
    "record_study",
    "spec_hash",
    "delete_run",
]

INDEX_FILE = "index.sqlite"
STATUSES: tuple[str, ...] = ("running", "finished", "failed", "interrupted")
# How long a writer waits for another writer's transaction before giving up (milliseconds).
BUSY_TIMEOUT_MS = 30_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    study TEXT,
    case_name TEXT,
    seed INTEGER,
    spec_hash TEXT NOT NULL,
    spec TEXT NOT NULL,
    status TEXT NOT NULL,
    started REAL,
    finished REAL,
    final TEXT NOT NULL,
    run_dir TEXT,
    version TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_study ON runs (study);
CREATE TABLE IF NOT EXISTS studies (
    name TEXT PRIMARY KEY,
    study_dir TEXT,
    spec_hash TEXT,
    status TEXT NOT NULL,
    num_runs INTEGER,
    created REAL,
    updated REAL
);
"""


@dataclass(frozen=True)
class IndexedRun:
    """One row of the runs table."""

    id: str
    name: str
    study: str | None
    case: str | None
    seed: int | None
    spec_hash: str
    spec: dict[str, Any]
    status: str
    started: float | None
    finished: float | None
    final: dict[str, Any]
    run_dir: str | None
    version: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class IndexedStudy:
    """One row of the studies table."""

    name: str
    study_dir: str | None
    spec_hash: str | None
    status: str
    num_runs: int | None
    created: float | None
    updated: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def index_path(root: str | Path) -> Path:
    """Where the index of the runs under `root` lives: ``root/index.sqlite``."""
    return Path(root) / INDEX_FILE


def spec_hash(spec: dict[str, Any]) -> str:
    """A short stable hash of a spec mapping (key order does not matter).

    Two runs with the same hash were trained from the same resolved spec.

    Example:
        >>> spec_hash({"a": 1, "b": [1, 2]}) == spec_hash({"b": [1, 2], "a": 1})
        True
        >>> len(spec_hash({}))
        16
    """
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def record_run(root: str | Path, *, run_id: str, name: str, spec: dict[str, Any], status: str,
               study: str | None = None, case: str | None = None, seed: int | None = None,
               final: dict[str, Any] | None = None, run_dir: str | Path | None = None,
               started: float | None = None, finished: float | None = None) -> None:
    """Insert or update the run `run_id` in ``root/index.sqlite`` (created on first use).

    Call it with ``status="running"`` when a run starts and again with
    ``"finished"`` (or ``"failed"``, ``"interrupted"``) when it ends; the
    second call keeps the start time of the first.

    Args:
        root: the runs folder (``runs``); the index is ``root/index.sqlite``.
        run_id: unique id of the run; a study's runs use ``<study>/<run-folder>``.
        name: the spec's name.
        spec: the resolved spec mapping; stored as JSON with its `spec_hash`.
        status: one of "running", "finished", "failed", "interrupted".
        study, case, seed: where the run belongs in a study (None for a lone fit).
        final: the last epoch's logs (loss, metrics, val_*, lr).
        run_dir: the run's folder.
        started, finished: Unix times; by default now when the status says so.
    """
    check.choice("record_run: status", status, STATUSES)
    now = time.time()
    if status == "running":
        started = now if started is None else started
    else:
        finished = now if finished is None else finished
    row = (run_id, name, study, case, seed, spec_hash(spec), json.dumps(spec, default=str), status,
           started, finished, json.dumps(json_safe(final or {})),
           None if run_dir is None else str(run_dir), __version__)
    with _writing(root) as db:
        db.execute(
            """INSERT INTO runs (id, name, study, case_name, seed, spec_hash, spec, status, started,
                                 finished, final, run_dir, version)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (id) DO UPDATE SET
                   name = excluded.name, study = excluded.study, case_name = excluded.case_name,
                   seed = excluded.seed, spec_hash = excluded.spec_hash, spec = excluded.spec,
                   status = excluded.status,
                   started = CASE WHEN excluded.status = 'running' THEN excluded.started
                                  ELSE COALESCE(excluded.started, runs.started) END,
                   finished = excluded.finished, final = excluded.final,
                   run_dir = excluded.run_dir, version = excluded.version""",
            row,
        )


def record_study(root: str | Path, *, name: str, status: str, study_dir: str | Path | None = None,
                 spec: dict[str, Any] | None = None, num_runs: int | None = None) -> None:
    """Insert or update the study `name` in ``root/index.sqlite`` (status as for `record_run`)."""
    check.choice("record_study: status", status, STATUSES)
    now = time.time()
    row = (name, None if study_dir is None else str(study_dir), None if spec is None else spec_hash(spec),
           status, num_runs, now, now)
    with _writing(root) as db:
        db.execute(
            """INSERT INTO studies (name, study_dir, spec_hash, status, num_runs, created, updated)
               VALUES (?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (name) DO UPDATE SET
                   study_dir = COALESCE(excluded.study_dir, studies.study_dir),
                   spec_hash = COALESCE(excluded.spec_hash, studies.spec_hash),
                   status = excluded.status, num_runs = COALESCE(excluded.num_runs, studies.num_runs),
                   updated = excluded.updated""",
            row,
        )


def delete_run(root: str | Path, run_id: str) -> None:
    """Remove the row of `run_id`, if any (a run refused on bad input leaves nothing behind)."""
    if not index_path(root).is_file():
        return
    with _writing(root) as db:
        db.execute("DELETE FROM runs WHERE id = ?", (run_id,))


def reconcile(root: str | Path) -> int:
    """Correct rows left "running" by a process killed between renaming a run folder and indexing it.

    A row "running" whose folder is gone is settled from what is on disk: when
    the staging folder ``.<id>.partial`` was renamed into place (its final
    folder holds result.json), the run is "finished" with that result's final
    metrics; a vanished staging folder with no final folder is "interrupted".
    A study's running rows point at their final folder, which appears only once
    the run is written, so they are settled only when it holds result.json.
    Returns the number of rows corrected.
    """
    if not index_path(root).is_file():
        return 0
    with _reading(root) as db:
        if db is None:
            return 0
        rows = [dict(r) for r in db.execute("SELECT id, run_dir FROM runs WHERE status = 'running'")]
    fixed = 0
    for row in rows:
        folder = Path(row["run_dir"]) if row["run_dir"] else None
        if folder is None or folder.exists():
            continue
        staged = folder.name.startswith(".") and folder.name.endswith(".partial")
        final_dir = folder.with_name(folder.name[1:].removesuffix(".partial")) if staged else folder
        result = _read_result(final_dir / "result.json")
        if result is not None:
            status, final, run_dir = "finished", result.get("final") or {}, str(final_dir)
        elif staged:
            status, final, run_dir = "interrupted", {}, None
        else:
            continue
        with _writing(root) as db:
            db.execute("UPDATE runs SET status = ?, final = ?, run_dir = ?, finished = ? "
                       "WHERE id = ? AND status = 'running'",
                       (status, json.dumps(json_safe(final)), run_dir, time.time(), row["id"]))
        fixed += 1
    return fixed


def _read_result(file: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def list_runs(root: str | Path, *, study: str | None = None, name: str | None = None,
              case: str | None = None, status: str | None = None, seed: int | None = None,
              limit: int | None = None) -> list[IndexedRun]:
    """The indexed runs under `root`, oldest first, filtered by any of the given fields.

    Rows left "running" by a killed process are settled first (`reconcile`).
    An index that does not exist yet holds no runs (the result is empty).
    """
    reconcile(root)
    if status is not None:
        check.choice("runs: status", status, STATUSES)
    if limit is not None:
        check.int_at_least("runs: limit", limit, 1)
    filters = {"study": study, "name": name, "case_name": case, "status": status, "seed": seed}
    where = [f"{column} = ?" for column, value in filters.items() if value is not None]
    values = [value for value in filters.values() if value is not None]
    sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
    # Newest `limit` runs, still listed oldest first.
    sql += " ORDER BY COALESCE(started, finished), id"
    with _reading(root) as db:
        if db is None:
            return []
        rows = [_run(row) for row in db.execute(sql, values)]
    return rows[-limit:] if limit is not None else rows


def list_studies(root: str | Path) -> list[IndexedStudy]:
    """The indexed studies under `root`, oldest first."""
    with _reading(root) as db:
        if db is None:
            return []
        return [IndexedStudy(**dict(row)) for row in db.execute("SELECT * FROM studies ORDER BY created")]


def get_run(root: str | Path, run_id: str) -> IndexedRun:
    """The run with id `run_id`, or with an id that starts with `run_id` when only one does.

    Raises:
        InputError: no index under `root`, or no run (or several runs) match.
    """
    reconcile(root)
    with _reading(root) as db:
        if db is None:
            raise InputError(f"there is no run index at {index_path(root)}: no run has been recorded under "
                             f"'{root}' yet. Train one with `trainlab fit` or `trainlab study`, or pass "
                             "--runs-dir with the folder that holds your runs.")
        row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is not None:
            return _run(row)
        escaped = run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        matches = db.execute("SELECT * FROM runs WHERE id LIKE ? ESCAPE '\\'", (escaped + "%",)).fetchall()
        if len(matches) == 1:
            return _run(matches[0])
        if matches:
            shown = ", ".join(m["id"] for m in matches[:5])
            raise InputError(f"run id '{run_id}' is ambiguous: {len(matches)} runs start with it ({shown}"
                             f"{', ...' if len(matches) > 5 else ''}). Give more of the id.")
        ids = [r["id"] for r in db.execute("SELECT id FROM runs")]
    raise InputError(f"no run with id '{run_id}' in {index_path(root)}.{did_you_mean(run_id, ids)} "
                     "`trainlab runs` lists the recorded runs.")


def json_safe(value: Any) -> Any:
    """`value` with NaN and infinities replaced by None (JSON has no such numbers), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _run(row: sqlite3.Row) -> IndexedRun:
    return IndexedRun(
        id=row["id"], name=row["name"], study=row["study"], case=row["case_name"], seed=row["seed"],
        spec_hash=row["spec_hash"], spec=json.loads(row["spec"]), status=row["status"],
        started=row["started"], finished=row["finished"], final=json.loads(row["final"]),
        run_dir=row["run_dir"], version=row["version"],
    )


def _connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: transactions are opened explicitly (BEGIN IMMEDIATE) below.
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    db.row_factory = sqlite3.Row
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return db


def _use_wal(db: sqlite3.Connection) -> None:
    """Switch the file to WAL (readers go on while one process writes; the mode is stored in the file).

    Changing the journal mode needs the database to itself and does not wait on the busy timeout, so
    when a second process is creating the index at the same moment, try again for a while.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@contextmanager
def _writing(root: str | Path) -> Iterator[sqlite3.Connection]:
    path = index_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    db = _connect(path)
    try:
        _use_wal(db)
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("BEGIN IMMEDIATE")
        for statement in filter(str.strip, _SCHEMA.split(";")):
            db.execute(statement)
        yield db
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    finally:
        db.close()


@contextmanager
def _reading(root: str | Path) -> Iterator[sqlite3.Connection | None]:
    path = index_path(root)
    if not path.is_file():
        yield None
        return
    db = _connect(path)
    try:
        tables = {r["name"] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "runs" not in tables:
            yield None
            return
        yield db
    finally:
        db.close()
