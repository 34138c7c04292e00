"""A run on disk: `runs/<name>/<run-id>/` with the resolved spec, history, weights.

    spec.toml          the resolved spec, every default written out
    history.jsonl      one JSON line per epoch
    model.safetensors  final weights (no pickle)
    model.json         how to rebuild the model (layers, input shape, scaling)
    result.json        seed, stop reason, final metrics, version

Files are written into a hidden staging folder that is renamed into place once
complete, so an interrupted or failed run leaves no half-written run folder.
`load` rebuilds a saved model; it reads JSON and safetensors only.
"""

from __future__ import annotations

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
from trainlab.callbacks import History
from trainlab.errors import InputError
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
    """Rebuild a saved Sequential (architecture, scaling, weights) from a run or model folder."""
    directory = Path(path)
    if directory.is_file():
        directory = directory.parent
    config_file, weights_file = directory / "model.json", directory / "model.safetensors"
    if not config_file.is_file() or not weights_file.is_file():
        raise InputError(f"'{path}' holds no saved model: expected model.json and model.safetensors there")
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


def write_run(root: Path, name: str, spec: dict[str, Any], train: Callable[[Callable[[int, dict[str, Any]],
              None]], tuple[History, nn.Module]]) -> RunResult:
    """Run `train` while streaming its history into a staging folder; move it into place when done.

    `train` receives a function to call with (epoch, logs) after each epoch.
    """
    run_id = new_run_id()
    parent = root / name
    parent.mkdir(parents=True, exist_ok=True)
    staging = parent / f".{run_id}.partial"
    staging.mkdir()
    try:
        (staging / "spec.toml").write_text(tomli_w.dumps(spec))
        with open(staging / "history.jsonl", "w") as history_file:

            def record(epoch: int, logs: dict[str, Any]) -> None:
                history_file.write(json.dumps({"epoch": epoch, **logs}) + "\n")
                history_file.flush()

            history, model = train(record)
        save_model(model, staging)
        final = {k: v[-1] for k, v in history.history.items() if v}
        write_json_atomic(staging / "result.json", {
            "name": name, "run_id": run_id, "seed": history.seed, "epochs": len(history.epoch),
            "stop_reason": history.stop_reason, "final": final, "version": __version__,
        })
        run_dir = parent / run_id
        os.replace(staging, run_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return RunResult(history, model, run_dir)
