"""ModelCheckpoint: save the model (or its weights) every N epochs, the best ones, and the last.

Keras 3 names and semantics: `filepath` may hold format fields filled from the
epoch (1-based, as Keras prints it) and the epoch's logs, e.g.
``"ckpt/{epoch:02d}-{val_loss:.2f}.weights.safetensors"``. A path ending in
``.keras`` saves the whole model (`Sequential.save`: JSON config and
safetensors weights in one zip, reloaded by `trainlab.load_model`); one ending
in ``.safetensors`` saves the weights. An ``.h5`` path is refused: HDF5 is
Keras's, and trainlab keeps to formats that cannot carry code. With
`save_best_only`, a file is written only when the monitored value improves
on the best so far (and on `initial_value_threshold`, if given). Every write is
atomic. Besides the weights, a trainlab Sequential gets a ``.json`` sibling
describing how to rebuild it (unless `save_weights_only`), so
`trainlab.load` reads it back.

Example:
    >>> import tempfile
    >>> from trainlab.callbacks import drive_epochs
    >>> from torch import nn
    >>> folder = tempfile.mkdtemp()
    >>> saver = ModelCheckpoint(folder + "/best.safetensors", monitor="val_loss", save_best_only=True)
    >>> drive_epochs(saver, {"val_loss": [1.0, 0.5, 0.7]}, model=nn.Linear(2, 1))
    >>> saver.saved_epochs
    [0, 1]
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from trainlab import check
from trainlab.callbacks import Callback, _direction
from trainlab.errors import InputError


class ModelCheckpoint(Callback):
    """Save weights to `filepath` after epochs (all, every N, or only improvements), plus `last`."""

    def __init__(self, filepath: str | Path, monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, save_weights_only: bool = False, mode: str = "auto",
                 save_freq: str = "epoch", initial_value_threshold: float | None = None, *,
                 every_n_epochs: int = 1, save_last: bool = False) -> None:
        check.choice("ModelCheckpoint.mode", mode, ("auto", "min", "max"))
        check.int_at_least("ModelCheckpoint.every_n_epochs", every_n_epochs, 1)
        if save_freq != "epoch":
            raise InputError(f"ModelCheckpoint.save_freq must be 'epoch', got {save_freq!r}; "
                             "use every_n_epochs=N to save every N epochs")
        path = str(filepath)
        if path.lower().endswith((".h5", ".hdf5")):
            stem = path.rsplit(".", 1)[0].removesuffix(".weights")
            raise InputError(
                f"ModelCheckpoint.filepath '{path}' is an HDF5 file, which trainlab does not write: a weights "
                f"file must end in .safetensors ('{stem}.weights.safetensors') and a whole model's in .keras "
                f"('{stem}.keras': JSON config + safetensors weights); neither can carry code."
            )
        if path.endswith(".keras") and save_weights_only:
            raise InputError(f"ModelCheckpoint: save_weights_only=True writes weights, which go in a "
                             f"'.weights.safetensors' file, but filepath is '{path}'. Change the suffix, or "
                             "drop save_weights_only to save the whole model.")
        if not path.endswith((".safetensors", ".keras")):
            raise InputError(f"ModelCheckpoint.filepath must end in .keras (the whole model) or .safetensors "
                             f"(the weights; e.g. 'best.weights.safetensors'), got '{path}'")
        self.filepath, self.monitor, self.verbose = path, monitor, verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        self.mode, self.every_n_epochs, self.save_last = mode, every_n_epochs, save_last
        self.best = initial_value_threshold
        self.saved_epochs: list[int] = []

    def _improves(self, value: float) -> bool:
        if self.best is None:
            return True
        direction = _direction(self.monitor, self.mode, "ModelCheckpoint")
        return value < self.best if direction == "min" else value > self.best

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        if self.save_last:
            suffix = ".keras" if self.filepath.endswith(".keras") else ".safetensors"
            self._write(Path(self.filepath).with_name("last" + suffix))
        if (epoch + 1) % self.every_n_epochs != 0:
            return
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                warnings.warn(f"ModelCheckpoint is monitoring '{self.monitor}', which is not in the logs. "
                              f"Available: {', '.join(logs)}", stacklevel=2)
                return
            if not math.isfinite(current) or not self._improves(current):
                return
            if self.verbose:
                print(f"Epoch {epoch + 1}: {self.monitor} improved from {self.best} to {current:.5f}, "
                      f"saving model to {self._path(epoch, logs)}")
            self.best = current
        self._write(self._path(epoch, logs))
        self.saved_epochs.append(epoch)

    def _path(self, epoch: int, logs: dict[str, Any]) -> Path:
        try:
            return Path(self.filepath.format(epoch=epoch + 1, **logs))
        except KeyError as error:
            raise InputError(f"ModelCheckpoint.filepath '{self.filepath}' names {error}, which is not in "
                             f"the logs ({', '.join(logs)})") from None

    def _write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".keras":
            save = getattr(self.model, "save", None)
            if not callable(save):
                raise InputError(f"ModelCheckpoint: a .keras file holds a trainlab Sequential; this model is a "
                                 f"{type(self.model).__name__}. Save its weights: '{path.with_suffix('')}"
                                 ".weights.safetensors'.")
            save(path)
            return
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        tmp = path.with_name(f".{path.name}.tmp")
        save_file(state, str(tmp), metadata={"format": "pt"})
        os.replace(tmp, path)
        get_config = getattr(self.model, "get_config", None)
        if not self.save_weights_only and callable(get_config):
            config_path = path.with_suffix(".json")
            tmp_json = config_path.with_name(f".{config_path.name}.tmp")
            tmp_json.write_text(json.dumps({"format": "trainlab.Sequential", **get_config()}))
            os.replace(tmp_json, config_path)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "saved_epochs": list(self.saved_epochs)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.saved_epochs = state["best"], list(state["saved_epochs"])
