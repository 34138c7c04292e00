"""Checkpoints as one safetensors file: tensors in the body, everything else as JSON in its header.

One file means one atomic rename: a checkpoint is written to a temporary file,
flushed to disk (fsync), then renamed over the previous one, so a process
killed at any moment leaves either the old checkpoint or the new one, never
half of one. Loading reads safetensors and JSON only: nothing is unpickled, so
a file crafted to run code when unpickled is rejected without running it.

Nested state (an optimizer's `state_dict()`, a callback's) is stored with its
tensors moved into the body and replaced in the JSON by ``{"__tensor__": key}``.

Example:
    >>> import tempfile, torch
    >>> path = Path(tempfile.mkdtemp()) / "state.safetensors"
    >>> save_state(path, {"epoch": 3, "optimizer": {"exp_avg": torch.ones(2)}})
    >>> load_state(path)["optimizer"]["exp_avg"]
    tensor([1., 1.])
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from trainlab.errors import InputError

METADATA_KEY = "trainlab_state"
STATE_FILE = "state.safetensors"
# What a resumable training state holds at its top level (the engine's snapshot).
RESUME_KEYS: dict[str, type | tuple[type, ...]] = {
    "epoch": int, "step": int, "fingerprint": list, "model": dict, "optimizer": dict, "callbacks": list,
    "history": dict, "rng": dict,
}


def _split(value: Any, tensors: dict[str, torch.Tensor], path: str) -> Any:
    if isinstance(value, torch.Tensor):
        key = path or "tensor"
        tensors[key] = value.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(value, dict):
        return {"__dict__": [[_key(k), _split(v, tensors, f"{path}.{k}" if path else str(k))]
                             for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"__tuple__": [_split(v, tensors, f"{path}.{i}") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_split(v, tensors, f"{path}.{i}") for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store a {type(value).__name__} in a checkpoint (at '{path}')")


def _key(key: Any) -> Any:
    # Dict keys keep their type (optimizer state is keyed by int) through JSON.
    if isinstance(key, (int, str)):
        return key
    raise TypeError(f"checkpoint dict keys must be int or str, got {type(key).__name__}")


class _Malformed(Exception):
    """The JSON header does not have the shape `save_state` writes."""


def _join(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, dict):
        if "__tensor__" in value:
            key = value["__tensor__"]
            if not isinstance(key, str) or key not in tensors:
                raise _Malformed(f"it refers to a tensor {key!r} that the file does not hold")
            return tensors[key]
        if "__dict__" in value:
            items = value["__dict__"]
            if not isinstance(items, list) or not all(isinstance(i, list) and len(i) == 2 for i in items):
                raise _Malformed("a stored mapping is not a list of [key, value] pairs")
            if not all(isinstance(k, (int, str)) for k, _ in items):
                raise _Malformed("a stored mapping has a key that is not an int or a string")
            return {k: _join(v, tensors) for k, v in items}
        if "__tuple__" in value:
            if not isinstance(value["__tuple__"], list):
                raise _Malformed("a stored tuple is not a list")
            return tuple(_join(v, tensors) for v in value["__tuple__"])
        return {k: _join(v, tensors) for k, v in value.items()}
    if isinstance(value, list):
        return [_join(v, tensors) for v in value]
    return value


def fsync_directory(directory: Path) -> None:
    """Make a rename inside `directory` durable."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _before_rename(tmp: Path) -> None:
    """Hook between writing the temporary file and renaming it into place (tests kill the process here)."""


def clean_stale_temporaries(target: Path) -> None:
    """Remove temporary files a killed writer left beside `target` (``.<name>.tmp*``).

    Only one process writes a given checkpoint, so any such file is left over.
    """
    try:
        stale = list(target.parent.glob(f".{target.name}.tmp*"))
    except OSError:
        return
    for file in stale:
        try:
            file.unlink()
        except OSError:
            pass


def save_state(path: str | Path, state: dict[str, Any]) -> None:
    """Write `state` (nested dicts/lists of tensors, numbers, strings) atomically to `path`."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(target)
    tensors: dict[str, torch.Tensor] = {}
    meta = json.dumps(_split(state, tensors, ""))
    tmp = target.with_name(f".{target.name}.tmp")
    save_file(tensors, str(tmp), metadata={METADATA_KEY: meta, "format": "pt"})
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    apply_umask(tmp)
    _before_rename(tmp)
    os.replace(tmp, target)
    fsync_directory(target.parent)


def apply_umask(path: Path) -> None:
    """Give a file the mode a plain `open()` would (0666 less the umask): some writers create 0600."""
    mask = os.umask(0)
    os.umask(mask)
    try:
        os.chmod(path, 0o666 & ~mask)
    except OSError:
        pass


def load_state(path: str | Path, *, require: Mapping[str, type | tuple[type, ...]] | None = None
               ) -> dict[str, Any]:
    """Read what `save_state` wrote; anything else is an InputError that says what is wrong.

    A pickle or a torch.save file, a file cut short, bad JSON in the header, a
    reference to a tensor the file does not hold, or a missing entry of
    `require` (top-level keys the caller needs, with their types) are each refused.
    """
    source = Path(path)
    if not source.is_file():
        raise InputError(f"no checkpoint at '{source}'")
    not_ours = f"'{source}' is not a trainlab checkpoint"
    try:
        from safetensors import safe_open

        with safe_open(str(source), framework="pt") as f:
            meta = (f.metadata() or {}).get(METADATA_KEY)
        tensors = load_file(str(source))
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise InputError(
            f"{not_ours}: it is not a valid safetensors file ({str(error).splitlines()[0] if str(error) else error!r}). "
            "trainlab never unpickles files, so checkpoints from torch.save or pickle cannot be loaded."
        ) from None
    if meta is None:
        raise InputError(f"'{source}' is a safetensors file but holds no trainlab state")
    try:
        result = _join(json.loads(meta), tensors)
    except (json.JSONDecodeError, RecursionError) as error:
        raise InputError(f"{not_ours}: its state header is not valid JSON ({error}). The file was damaged "
                         "or written by another program; start the run again without resume.") from None
    except _Malformed as error:
        raise InputError(f"{not_ours}: {error}. The file was damaged or written by another program; start the "
                         "run again without resume.") from None
    if not isinstance(result, dict):
        raise InputError(f"{not_ours}: its state is a {type(result).__name__}, not a table of entries")
    require = require or {}
    missing = [key for key in require if key not in result]
    wrong = [f"'{key}' is a {type(result[key]).__name__}" for key, kind in require.items()
             if key in result and (not isinstance(result[key], kind) or isinstance(result[key], bool))]
    if wrong:
        raise InputError(f"{not_ours} that can be resumed: {', '.join(wrong)}. The file was damaged or "
                         "written by another program; start the run again without resume.")
    if missing:
        raise InputError(f"{not_ours} that can be resumed: it lacks {', '.join(map(repr, missing))}. It was "
                         "made by another version of trainlab or by another program; start the run again "
                         "without resume.")
    return result
