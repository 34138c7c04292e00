"""A run on disk: `runs/<name>/<run-id>/` with the resolved spec, history, weights.

    spec.toml          the resolved spec, every default written out
    history.jsonl      one JSON line per epoch
    model.safetensors  final weights (no pickle)
    model.json         how to rebuild the model (layers, input shape, scaling)
    result.json        seed, stop reason, final metrics, version

Files are written into a hidden staging folder (``.<run-id>.partial``, with
the resumable checkpoint in ``checkpoint/``) that is renamed into place once
complete: a run folder is always whole. A killed run leaves its staging
folder, which ``trainlab fit --resume`` continues.
`load` rebuilds a saved model; it reads JSON and safetensors only.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w
from safetensors.torch import load_file, save_file
from torch import nn

from trainlab import __version__
from trainlab.callbacks import Callback, History
from trainlab.errors import InputError
from trainlab.index import record_run
from trainlab.models import Sequential


@dataclass
class RunResult:
    history: History
    model: nn.Module
    run_dir: Path | None


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON via a temporary file, fsync and rename: readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_model(model: nn.Module, directory: Path) -> None:
    """model.safetensors (weights) and, for a Sequential, model.json (how to rebuild it)."""
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = directory / ".model.safetensors.tmp"
    save_file(state, str(tmp), metadata={"format": "pt", "trainlab": __version__})
    os.replace(tmp, directory / "model.safetensors")
    if isinstance(model, Sequential):
        write_json_atomic(directory / "model.json",
                          {"format": "trainlab.Sequential", "version": __version__, **model.get_config()})


def load(path: str | Path) -> Sequential:
    """Rebuild a saved Sequential (architecture, scaling, weights).

    `path` is a run or model folder (model.json + model.safetensors), or a
    weights file ``X.safetensors`` with its ``X.json`` beside it (as
    ModelCheckpoint writes them).
    """
    given = Path(path)
    if given.suffix == ".safetensors":
        config_file, weights_file = given.with_suffix(".json"), given
    else:
        directory = given.parent if given.is_file() else given
        config_file, weights_file = directory / "model.json", directory / "model.safetensors"
    if not config_file.is_file() or not weights_file.is_file():
        raise InputError(f"'{path}' holds no saved model: expected {weights_file.name} and {config_file.name}")
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as error:
        raise InputError(f"{config_file} is not valid JSON: {error}") from None
    model = Sequential.from_config(config)
    try:
        state = load_file(str(weights_file))
    except Exception as error:  # safetensors raises its own error types on a bad header
        raise InputError(f"{weights_file} is not a valid safetensors file: {error}") from None
    model.load_state_dict(state)
    model.eval()
    return model


class HistoryFile(Callback):
    """Rewrites history.jsonl (atomically) after each epoch: one JSON line per epoch so far.

    It reads the run's history, which a resumed run restores from its
    checkpoint, so the file always matches the run's state.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        history = self.run.history
        count = max((len(v) for v in history.values()), default=0)
        rows = [{"epoch": i, **{k: v[i] for k, v in history.items() if i < len(v)}} for i in range(count)]
        rows.append({"epoch": epoch, **(logs or {})})
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with open(tmp, "w") as f:
            f.write("".join(json.dumps(row) + "\n" for row in rows))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


def find_partial(parent: Path, spec_text: str) -> Path | None:
    """The newest unfinished run folder of the same spec, if any (for --resume)."""
    candidates = [p for p in parent.glob(".*.partial")
                  if (p / "spec.toml").is_file() and (p / "spec.toml").read_text() == spec_text]
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def write_run(root: Path, name: str, spec: dict[str, Any],
              train: Callable[[Path, bool, Callback], tuple[History, nn.Module]], *,
              resume: bool = False) -> RunResult:
    """Run `train` inside a hidden staging folder; rename it into place when the run is complete.

    `train(staging, resuming, history_file)` trains with its checkpoint in
    ``staging/checkpoint`` and `history_file` among its callbacks. With
    `resume`, the newest unfinished folder of the same spec is continued. Bad
    input removes the staging folder (nothing half-written is left); any other
    interruption keeps it, with its checkpoint, for ``--resume``.
    """
    parent = root / name
    spec_text = tomli_w.dumps(spec)
    staging = find_partial(parent, spec_text) if (resume and parent.is_dir()) else None
    resuming = staging is not None
    if staging is None:
        run_id = new_run_id()
        staging = parent / f".{run_id}.partial"
        staging.mkdir(parents=True)
        (staging / "spec.toml").write_text(spec_text)
    run_id = staging.name[1:].removesuffix(".partial")
    record = functools.partial(record_run, root, run_id=f"{name}/{run_id}", name=name, spec=spec)
    record(status="running", run_dir=staging)
    try:
        history, model = train(staging, resuming, HistoryFile(staging / "history.jsonl"))
        save_model(model, staging)
        final = {k: v[-1] for k, v in history.history.items() if v}
        write_json_atomic(staging / "result.json", {
            "name": name, "run_id": run_id, "seed": history.seed, "epochs": len(history.epoch),
            "stop_reason": history.stop_reason, "final": final, "version": __version__,
            "resumed_from_epoch": history.params.get("resumed_from_epoch"),
        })
        run_dir = parent / run_id
        os.replace(staging, run_dir)
    except InputError:
        if not resuming:
            shutil.rmtree(staging, ignore_errors=True)
        record(status="failed", run_dir=None)
        raise
    except BaseException:
        record(status="interrupted", run_dir=staging)
        raise
    record(status="finished", final=final, run_dir=run_dir)
    return RunResult(history, model, run_dir)
