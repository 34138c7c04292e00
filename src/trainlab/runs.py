"""A run on disk: `runs/<name>/<run-id>/` with the resolved spec, history, weights.

    spec.toml          the resolved spec, every default written out
    history.jsonl      one JSON line per epoch, epochs counted from 1
    model.safetensors  final weights (no pickle)
    model.json         how to rebuild the model (layers, input shape, scaling)
    result.json        seed, stop reason, final metrics (of the saved weights), version

This module is the one writer of run folders, for `trainlab fit` and for the
runs of a study. Files are written into a hidden staging folder
(``.<run-id>.partial``, with the resumable checkpoint in ``checkpoint/``) that
is renamed into place once complete: a run folder is always whole. A killed
run leaves its staging folder, which ``trainlab fit --resume`` continues. A
finished run drops its ``checkpoint/`` (its resume state) unless asked to keep
it. Files get the mode a plain ``open()`` gives (0666 less the umask).

A run folder is always inside the runs directory: a run's name is a plain
name (`trainlab.check.plain_name`), and `run_folder` refuses a path that a
symlink already in the runs directory would lead elsewhere.

JSON has no NaN or infinity, and strict parsers reject the bare ``NaN`` that
Python writes, so non-finite numbers (a diverged loss) are written as
``null``; `trainlab.study.compare.read_history` reads them back as NaN.

"final" in result.json is the metrics of the epoch whose weights were saved:
with ``restore_best_weights`` that is the best epoch (``final_epoch`` says
which, counted from 1; 0 means the initial weights), and the last epoch's
values are under ``last``.

`load` rebuilds a saved model; it reads JSON and safetensors only.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomli_w
from safetensors.torch import load_file, save_file
from torch import nn

from trainlab import __version__, check
from trainlab.callbacks import Callback, History
from trainlab.checkpoint import apply_umask, fsync_directory
from trainlab.errors import InputError
from trainlab.index import delete_run, json_safe, record_run
from trainlab.models import Sequential

if TYPE_CHECKING:
    from trainlab.generalize.ensembles import Ensemble

CHECKPOINT_DIR = "checkpoint"


def run_folder(root: str | Path, name: str, *more: str) -> Path:
    """``root/name/more...``, refused unless it stays inside `root`.

    `name` must be a plain name (letters, digits, '-', '_', '.'); the parts
    below it (run ids, case folders) hold no separator and do not start with a
    dot. A symlink already in the runs directory that leads outside it is
    refused too. `root` itself (``--runs-dir``) is where the user chose to write.
    """
    base = Path(root)
    check.plain_name("name", name)
    for part in more:
        if not isinstance(part, str) or not part or part.startswith(".") or any(c in part for c in "/\\:\0"):
            raise InputError(f"'{part}' cannot name a run folder: it must be one plain folder name inside "
                             f"'{base / name}'.")
    folder = base.joinpath(name, *more)
    inside = base.resolve()
    target = folder.resolve()
    if target != inside and inside not in target.parents:
        raise InputError(f"the run folder '{folder}' leads outside the runs directory '{base}' (to '{target}', "
                         "through a symlink). Remove the link or choose another name; pass --runs-dir to "
                         "write runs elsewhere.")
    return folder


@dataclass
class RunResult:
    history: History
    model: nn.Module
    run_dir: Path | None


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def read_json(file: Path, what: str) -> dict[str, Any]:
    """A JSON object read from `file`; not UTF-8, bad JSON or another type is an InputError.

    `what` says what the file is, for the message ("study.json").
    """
    try:
        text = file.read_bytes().decode("utf-8")
    except OSError as error:
        raise InputError(f"{what} '{file}' cannot be read: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise InputError(f"{what} '{file}' is not UTF-8 text: it was damaged or replaced by another file. "
                         "Write it again with trainlab.") from None
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        raise InputError(f"{what} '{file}' is not valid JSON ({error}): it was damaged or cut short. Write it "
                         "again with trainlab.") from None
    if not isinstance(value, dict):
        raise InputError(f"{what} '{file}' holds a JSON {type(value).__name__}, not an object: it was damaged "
                         "or replaced by another file.")
    return value


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON via a temporary file, fsync and rename: readers never see half a file.

    NaN and infinities become null (see the module docstring).
    """
    write_text_atomic(path, json.dumps(json_safe(payload), indent=2, allow_nan=False))


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` via a temporary file, fsync and rename, with the user's umask."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_model(model: nn.Module, directory: Path) -> None:
    """model.safetensors (weights) and, for a Sequential, model.json (how to rebuild it).

    An ensemble (`trainlab.generalize.Ensemble`) is written as its ensemble.json and member folders.
    """
    from trainlab.generalize.ensembles import Ensemble

    if isinstance(model, Ensemble):
        model.save(directory)
        return
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = directory / ".model.safetensors.tmp"
    save_file(state, str(tmp), metadata={"format": "pt", "trainlab": __version__})
    apply_umask(tmp)  # safetensors creates its files with mode 0600
    os.replace(tmp, directory / "model.safetensors")
    if isinstance(model, Sequential):
        write_json_atomic(directory / "model.json",
                          {"format": "trainlab.Sequential", "version": __version__, **model.get_config()})


def load(path: str | Path) -> Sequential | Ensemble:
    """Rebuild a saved Sequential (architecture, scaling, weights), or a saved ensemble.

    `path` is a run or model folder (model.json + model.safetensors), or a
    weights file ``X.safetensors`` with its ``X.json`` beside it (as
    ModelCheckpoint writes them); a folder with an ``ensemble.json``
    (`trainlab.generalize.Ensemble.save`) comes back as that `Ensemble`.

    Raises:
        InputError: the files are missing, model.json is not valid JSON or does
            not describe a model, the weights file is not safetensors, or the
            weights do not fit the architecture (missing or extra tensors,
            other shapes).
    """
    given = Path(path)
    from trainlab.generalize.ensembles import is_ensemble_folder, load_ensemble

    if given.suffix != ".safetensors" and is_ensemble_folder(given):
        return load_ensemble(given)
    if given.suffix == ".safetensors":
        config_file, weights_file = given.with_suffix(".json"), given
    else:
        directory = given.parent if given.is_file() else given
        config_file, weights_file = directory / "model.json", directory / "model.safetensors"
    if not config_file.is_file() or not weights_file.is_file():
        raise InputError(f"'{path}' holds no saved model: expected {weights_file.name} and {config_file.name}")
    try:
        config = json.loads(config_file.read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
        raise InputError(f"{config_file} is not valid JSON: {error}") from None
    if not isinstance(config, dict):
        raise InputError(f"{config_file} does not describe a model: it holds a {type(config).__name__}, not a "
                         "table with 'layers'")
    try:
        model = Sequential.from_config(config)
    except InputError as error:
        raise InputError(f"{config_file} does not describe a model trainlab can build: {error}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise InputError(f"{config_file} does not describe a model trainlab can build ({type(error).__name__}: "
                         f"{error}). It was damaged or written by another program.") from None
    try:
        state = load_file(str(weights_file))
    except Exception as error:  # safetensors raises its own error types on a bad header
        raise InputError(f"{weights_file} is not a valid safetensors file: {error}") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).splitlines()[1:2] or [str(error)]
        raise InputError(f"the weights in {weights_file} do not fit the model {config_file.name} describes "
                         f"({first[0].strip()}). Both files must come from the same run.") from None
    model.eval()
    return model


def history_rows(history: Mapping[str, Sequence[Any]], extra: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One dict per epoch, epochs counted from 1 (as a person reads them), plus `extra` as the next one."""
    count = max((len(v) for v in history.values()), default=0)
    rows = [{"epoch": i + 1, **{k: v[i] for k, v in history.items() if i < len(v)}} for i in range(count)]
    if extra is not None:
        rows.append({"epoch": count + 1, **extra})
    return rows


def write_history(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """history.jsonl, atomically: one strict-JSON line per epoch (NaN as null)."""
    write_text_atomic(path, "".join(json.dumps(json_safe(row), allow_nan=False) + "\n" for row in rows))


class HistoryFile(Callback):
    """Rewrites history.jsonl (atomically) after each epoch: one JSON line per epoch so far.

    It reads the run's history, which a resumed run restores from its
    checkpoint, so the file always matches the run's state.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        write_history(self.path, history_rows(self.run.history, dict(logs or {})))


def find_partial(parent: Path, spec_text: str) -> Path | None:
    """The newest unfinished run folder of the same spec, if any (for --resume).

    A staging folder whose spec.toml cannot be read as the same text is another run's.
    """
    candidates = []
    for folder in parent.glob(".*.partial"):
        try:
            same = (folder / "spec.toml").read_bytes() == spec_text.encode("utf-8")
        except OSError:
            same = False
        if same:
            candidates.append(folder)
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def kept_epoch(history: History, recipe: Any = None) -> int:
    """The epoch (from 0) whose weights the model holds after training; -1 for the initial weights.

    The engine may say (``history.params["kept_epoch"]``). Otherwise: with
    early stopping's ``restore_best_weights``, the best epoch (found by
    replaying the monitored values through the same EarlyStopping); after a
    divergence, the epoch before it; else the last epoch.
    """
    params = getattr(history, "params", None) or {}
    if isinstance(params.get("kept_epoch"), int):
        return int(params["kept_epoch"])
    epochs = max((len(v) for v in history.history.values()), default=0)
    stopping = getattr(recipe, "early_stopping", None)
    if stopping is not None and stopping.restore_best_weights:
        values = history.history.get(stopping.monitor)
        if values:
            from trainlab.callbacks import EarlyStopping, drive_epochs

            replay = EarlyStopping(**{**stopping.model_dump(), "restore_best_weights": False})
            drive_epochs(replay, {stopping.monitor: list(values)})
            return int(replay.best_epoch)
    if (history.stop_reason or "").startswith("training diverged"):
        return epochs - 2
    return epochs - 1


def summarize(history: History, recipe: Any = None) -> dict[str, Any]:
    """What a person reads about a finished run: final metrics (of the saved weights), best, epochs.

    ``final`` holds the values of the epoch whose weights were saved and
    ``final_epoch`` that epoch counted from 1 (0: the initial weights, which
    have no values); ``last`` holds the last epoch's values when that is
    another epoch; ``best`` maps each metric to its best value and epoch (from 1).
    """
    values = history.history
    epochs = max((len(v) for v in values.values()), default=0)
    kept = kept_epoch(history, recipe)
    last = {k: v[-1] for k, v in values.items() if v}
    final = {k: v[kept] for k, v in values.items() if 0 <= kept < len(v)}
    summary: dict[str, Any] = {"epochs": epochs, "final": final, "final_epoch": kept + 1,
                               "best": best_epochs(values), "stop_reason": history.stop_reason,
                               "diverged": (history.stop_reason or "").startswith("training diverged")}
    if kept != epochs - 1:
        summary["last"] = last
    return summary


def best_epochs(history: Mapping[str, Sequence[float]]) -> dict[str, dict[str, Any]]:
    """Each metric's best value and its epoch, counted from 1 (metrics of unknown direction left out)."""
    from trainlab.callbacks import _direction

    best = {}
    for key, series in history.items():
        finite = [i for i, v in enumerate(series) if isinstance(v, (int, float)) and math.isfinite(v)]
        if key == "lr" or not finite:
            continue
        try:
            direction = _direction(key, "auto", "best")
        except InputError:
            continue
        pick = min if direction == "min" else max
        epoch = pick(finite, key=lambda i: series[i])
        best[key] = {"value": series[epoch], "epoch": epoch + 1}
    return best


def stage(parent: Path, run_id: str, spec_text: str) -> Path:
    """A fresh hidden staging folder ``parent/.<run_id>.partial`` holding spec.toml."""
    staging = parent / f".{run_id}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    write_text_atomic(staging / "spec.toml", spec_text)
    return staging


def finish(staging: Path, target: Path, *, history: History, model: nn.Module, result: dict[str, Any],
           recipe: Any = None, keep_checkpoint: bool = False) -> dict[str, Any]:
    """Complete a staged run folder and rename it to `target`; return its result.json.

    Writes history.jsonl (all epochs), the model, and result.json (`result`
    plus the `summarize` fields, the seed and the version); drops the resume
    state in ``checkpoint/`` unless `keep_checkpoint`.
    """
    write_history(staging / "history.jsonl", history_rows(history.history))
    save_model(model, staging)
    summary = summarize(history, recipe)
    payload = {**result, "seed": history.seed, "epochs": summary["epochs"], "stop_reason": history.stop_reason,
               "diverged": summary["diverged"], "final": summary["final"], "final_epoch": summary["final_epoch"],
               **({"last": summary["last"]} if "last" in summary else {}), "version": __version__}
    if not keep_checkpoint:
        shutil.rmtree(staging / CHECKPOINT_DIR, ignore_errors=True)
    if target.exists():
        shutil.rmtree(target)  # an incomplete folder from elsewhere; this run replaces it
    # result.json last, just before the rename: a folder with a result.json is complete.
    write_json_atomic(staging / "result.json", payload)
    os.replace(staging, target)
    fsync_directory(target.parent)
    return payload


def write_run(root: Path, name: str, spec: dict[str, Any],
              train: Callable[[Path, bool, Callback], tuple[History, nn.Module]], *,
              resume: bool = False, keep_checkpoint: bool = False, recipe: Any = None) -> RunResult:
    """Run `train` inside a hidden staging folder; rename it into place when the run is complete.

    `train(staging, resuming, history_file)` trains with its checkpoint in
    ``staging/checkpoint`` and `history_file` among its callbacks. With
    `resume`, the newest unfinished folder of the same spec is continued. Bad
    input found while training removes the staging folder and the index row
    (nothing is left of it); any other interruption keeps the folder, with its
    checkpoint, for ``--resume``. A finished run drops its checkpoint unless
    `keep_checkpoint`.
    """
    parent = run_folder(root, name)
    spec_text = tomli_w.dumps(spec)
    staging = find_partial(parent, spec_text) if (resume and parent.is_dir()) else None
    resuming = staging is not None
    if staging is None:
        staging = stage(parent, new_run_id(), spec_text)
    run_id = staging.name[1:].removesuffix(".partial")
    indexed = f"{name}/{run_id}"
    record = functools.partial(record_run, root, run_id=indexed, name=name, spec=spec)
    record(status="running", run_dir=staging)
    try:
        history, model = train(staging, resuming, HistoryFile(staging / "history.jsonl"))
        result = finish(staging, parent / run_id, history=history, model=model, recipe=recipe,
                        keep_checkpoint=keep_checkpoint,
                        # The engine's resumed_from_epoch is the first epoch trained after the resume, from 0:
                        # the number of the last epoch done before it, counted from 1.
                        result={"name": name, "run_id": run_id,
                                "resumed_after_epoch": history.params.get("resumed_from_epoch")})
    except InputError:
        if not resuming:
            shutil.rmtree(staging, ignore_errors=True)
            delete_run(root, indexed)
        else:
            record(status="failed", run_dir=staging)
        raise
    except BaseException:
        record(status="interrupted", run_dir=staging)
        raise
    run_dir = parent / run_id
    record(status="finished", final=result["final"], run_dir=run_dir)
    return RunResult(history, model, run_dir)
