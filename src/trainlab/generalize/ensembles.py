"""An ensemble of trained members that predicts as one model, saved as safetensors + JSON.

How the members' outputs combine (``combine``):

- ``"average"``: the mean of the members' outputs; for classes, of their class
  probabilities (soft voting, scikit-learn's ``VotingClassifier(voting="soft")``).
  Cross-validation's fold models and bagging predict this way.
- ``"vote"``: majority vote; each member votes for its most probable class and the
  output is each class's share of the votes (weighted by the member weights), so its
  argmax is the majority class (ties go to the lowest class index, as in scikit-learn).
- ``"adaboost"``: SAMME's weighted vote, sum_m alpha_m [h_m(x) = k], divided by
  sum_m alpha_m.
- ``"gradient"``: gradient boosting's sum, ``init + sum_m weight_m f_m(x)``.

Each member keeps its own scaler (fitted on its own training rows), applied to
the raw inputs before its forward pass.

Files (`save`, read back by `trainlab.load`): ``ensemble.json`` (method,
combine rule, member weights, task, the members' folders) and one folder per
member, ``member-<k>/model.safetensors`` + ``model.json``. No pickle.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from trainlab import __version__, check
from trainlab.errors import InputError
from trainlab.generalize._setup import outputs, probabilities

__all__ = ["COMBINE_RULES", "ENSEMBLE_FILE", "Ensemble", "is_ensemble_folder", "load_ensemble"]

#: The file that marks a folder as a saved ensemble.
ENSEMBLE_FILE = "ensemble.json"
COMBINE_RULES = ("average", "vote", "adaboost", "gradient")


class Ensemble(nn.Module):
    """Members that predict together (see the module docstring for the combine rules).

    Args:
        members: trained models (each may carry a ``scaler``).
        task: "classification" or "regression".
        combine: "average", "vote", "adaboost" or "gradient".
        weights: one weight per member (AdaBoost's alphas, gradient boosting's shrinkage);
            None weighs them equally.
        init: gradient boosting's initial prediction (the training targets' mean).
        method: what made the ensemble ("cv", "bagging", "adaboost", "gradient"), for the record.

    Example:
        >>> from torch import nn
        >>> a, b = nn.Linear(2, 1), nn.Linear(2, 1)
        >>> ensemble = Ensemble([a, b], task="regression")
        >>> x = torch.ones(3, 2)
        >>> torch.allclose(ensemble(x), (a(x) + b(x)) / 2)
        True
    """

    def __init__(self, members: Sequence[nn.Module], *, task: str, combine: str = "average",
                 weights: Sequence[float] | None = None, init: Sequence[float] | float | None = None,
                 method: str = "ensemble") -> None:
        super().__init__()
        if not members:
            raise InputError("an ensemble needs at least one member")
        check.choice("task", task, ("classification", "regression"))
        check.choice("combine", combine, COMBINE_RULES,
                     "'average' (soft vote), 'vote' (majority), 'adaboost' or 'gradient'.")
        if combine in ("vote", "adaboost") and task != "classification":
            raise InputError(f"combine='{combine}' votes for classes, but the task is {task}; use 'average'.")
        self.members = nn.ModuleList(members)
        values = [1.0] * len(members) if weights is None else [float(w) for w in weights]
        if len(values) != len(members):
            raise InputError(f"weights has {len(values)} values for {len(members)} members; give one per member.")
        self.weights: list[float] = values
        self.task, self.combine, self.method = task, combine, method
        self.init: list[float] | None = (None if init is None else
                                         [float(init)] if isinstance(init, (int, float)) else [float(v) for v in init])
        # Keras-style attributes that trainlab.load_model clears on a loaded model.
        self.compiled: Any = None
        self.optimizer: Any = None

    def __len__(self) -> int:
        return len(self.members)

    def member_outputs(self, x: Tensor) -> Tensor:
        """Each member's prediction on raw inputs x, shape (K, N, ...): class probabilities for classes."""
        parts = []
        for member in self.members:
            out = outputs(member, x)
            parts.append(probabilities(member, out) if self.task == "classification" else out)
        return torch.stack([p.to(parts[0].device) for p in parts])

    def combine_outputs(self, member_outputs: Tensor) -> Tensor:
        """The ensemble's prediction from `member_outputs` (K, N, ...) by the combine rule."""
        weights = torch.tensor(self.weights, dtype=member_outputs.dtype, device=member_outputs.device)
        shape = (-1,) + (1,) * (member_outputs.dim() - 1)
        if self.combine == "average":
            return (member_outputs * weights.view(shape)).sum(0) / weights.sum()
        if self.combine in ("vote", "adaboost"):
            classes = member_outputs.shape[-1]
            votes = torch.nn.functional.one_hot(member_outputs.argmax(-1), classes).to(member_outputs.dtype)
            return (votes * weights.view(shape)).sum(0) / weights.sum()
        total = (member_outputs * weights.view(shape)).sum(0)
        if self.init is not None:
            init = torch.tensor(self.init, dtype=total.dtype, device=total.device)
            total = total + (init.view(-1) if total.dim() > 1 else init.reshape(()))
        return total

    def forward(self, x: Tensor) -> Tensor:
        """The combined prediction on raw inputs (each member applies its own scaler)."""
        return self.combine_outputs(self.member_outputs(x))

    def predict(self, x: Any, batch_size: int | None = None) -> np.ndarray:
        """The combined prediction as a NumPy array (eval mode, no gradients), as `Sequential.predict`."""
        tensor = x if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x))
        if tensor.is_floating_point():
            tensor = tensor.to(torch.float32)
        with torch.no_grad():
            return np.asarray(self(tensor).detach().cpu().numpy())

    def save(self, path: str | Path) -> Path:
        """Write ``ensemble.json`` and one ``member-<k>/`` folder of safetensors + JSON per member."""
        from trainlab.models import Sequential
        from trainlab.runs import save_model, write_json_atomic

        folder = Path(path)
        for k, member in enumerate(self.members):
            if not isinstance(member, Sequential):
                raise InputError(f"member {k} is a {type(member).__name__}; only trainlab Sequential members can be "
                                 "saved as JSON + safetensors. Build the model from trainlab layers, or save "
                                 "each member's state_dict with safetensors yourself.")
        folder.mkdir(parents=True, exist_ok=True)
        names = []
        for k, member in enumerate(self.members):
            save_model(member, folder / f"member-{k}")
            names.append(f"member-{k}")
        write_json_atomic(folder / ENSEMBLE_FILE, {
            "format": "trainlab.Ensemble", "version": __version__, "method": self.method,
            "combine": self.combine, "task": self.task, "weights": self.weights, "init": self.init,
            "members": names})
        return folder


def load_ensemble(path: str | Path) -> Ensemble:
    """Rebuild a saved ensemble (its ``ensemble.json`` and member folders); JSON and safetensors only.

    Raises:
        InputError: the JSON is damaged or names a member folder that is missing or outside the folder.
    """
    from trainlab.runs import load, read_json

    folder = Path(path)
    folder = folder.parent if folder.is_file() else folder
    info = read_json(folder / ENSEMBLE_FILE, "ensemble.json")
    names = info.get("members")
    if info.get("format") != "trainlab.Ensemble" or not isinstance(names, list) or not names:
        raise InputError(f"{folder / ENSEMBLE_FILE} does not describe an ensemble (no 'members' list): it was "
                         "damaged or written by another program.")
    members = []
    for name in names:
        if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
            raise InputError(f"{folder / ENSEMBLE_FILE} names the member folder {name!r}, which is not a plain "
                             "folder name inside the ensemble's folder.")
        members.append(load(folder / name))
    try:
        return Ensemble(members, task=str(info.get("task")), combine=str(info.get("combine")),
                        weights=info.get("weights"), init=info.get("init"), method=str(info.get("method")))
    except (TypeError, ValueError) as error:
        raise InputError(f"{folder / ENSEMBLE_FILE} does not describe an ensemble trainlab can build: "
                         f"{error}") from None


def is_ensemble_folder(path: str | Path) -> bool:
    """Whether `path` is a folder (or a file in one) holding a saved ensemble."""
    folder = Path(path)
    folder = folder.parent if folder.is_file() else folder
    return (folder / ENSEMBLE_FILE).is_file()
