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
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from trainlab.errors import InputError

METADATA_KEY = "trainlab_state"
STATE_FILE = "state.safetensors"


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


def _join(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, dict):
        if "__tensor__" in value:
            return tensors[value["__tensor__"]]
        if "__dict__" in value:
            return {k: _join(v, tensors) for k, v in value["__dict__"]}
        if "__tuple__" in value:
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


def save_state(path: str | Path, state: dict[str, Any]) -> None:
    """Write `state` (nested dicts/lists of tensors, numbers, strings) atomically to `path`."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    meta = json.dumps(_split(state, tensors, ""))
    tmp = target.with_name(f".{target.name}.tmp")
    save_file(tensors, str(tmp), metadata={METADATA_KEY: meta, "format": "pt"})
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    _before_rename(tmp)
    os.replace(tmp, target)
    fsync_directory(target.parent)


def load_state(path: str | Path) -> dict[str, Any]:
    """Read what `save_state` wrote; anything else (a pickle, a torch.save file) is an InputError."""
    source = Path(path)
    if not source.is_file():
        raise InputError(f"no checkpoint at '{source}'")
    try:
        from safetensors import safe_open

        with safe_open(str(source), framework="pt") as f:
            meta = (f.metadata() or {}).get(METADATA_KEY)
        tensors = load_file(str(source))
    except (SafetensorError, OSError, ValueError) as error:
        raise InputError(
            f"'{source}' is not a trainlab checkpoint: it is not a valid safetensors file ({error}). "
            "trainlab never unpickles files, so checkpoints from torch.save or pickle cannot be loaded."
        ) from None
    if meta is None:
        raise InputError(f"'{source}' is a safetensors file but holds no trainlab state")
    result: dict[str, Any] = _join(json.loads(meta), tensors)
    return result
