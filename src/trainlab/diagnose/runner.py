"""`diagnose_spec` and `diagnose_run`: verdicts for a spec (a short probe training) or a finished run.

On a spec, the run is trained as `trainlab fit` trains it (the same engine,
the same run folder), with `TrainingStatistics` on a fixed probe batch (the
first 128 rows of the scaled training part) and at most `num_epochs` epochs.
The run folder then also holds:

    statistics.jsonl   one statistics record per line (init, then each epoch)
    diagnosis.json     the verdicts, the baseline loss, and the run it came from
    diagnosis.html     the report page (see `trainlab.diagnose.report`)

On a finished run folder, the history and statistics are read back; a run
trained without statistics is judged on its history alone.

`apply_fix` turns a verdict's technique into a changed spec, for
``trainlab diagnose SPEC --fix``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from trainlab.callbacks import Callback
from trainlab.diagnose.statistics import TrainingStatistics, read_statistics
from trainlab.diagnose.verdicts import TECHNIQUES, Verdict, diagnose
from trainlab.errors import InputError

__all__ = ["Diagnosis", "apply_fix", "baseline_loss", "diagnose_run", "diagnose_spec"]

STATISTICS_FILE = "statistics.jsonl"
DIAGNOSIS_FILE = "diagnosis.json"
REPORT_FILE = "diagnosis.html"
_CROSS_ENTROPY = ("sparse_categorical_crossentropy", "categorical_crossentropy")


@dataclass
class Diagnosis:
    """A run's verdicts with what they were read from."""

    verdicts: list[Verdict]
    history: dict[str, list[float]]
    statistics: list[dict[str, Any]] = field(default_factory=list)
    baseline_loss: float | None = None
    stop_reason: str | None = None
    run_dir: Path | None = None
    name: str = "run"
    spec: dict[str, Any] | None = None

    @property
    def healthy(self) -> bool:
        return [v.name for v in self.verdicts] == ["healthy"]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "run_dir": None if self.run_dir is None else str(self.run_dir),
                "baseline_loss": self.baseline_loss, "stop_reason": self.stop_reason,
                "verdicts": [v.to_dict() for v in self.verdicts]}


def baseline_loss(y: torch.Tensor, loss: Any, task: str) -> float | None:
    """The loss of a model that ignores its inputs and predicts the best constant.

    Cross-entropy: the entropy of the class frequencies; mean squared error: the
    variance of the targets. None for other losses (no closed form is used).
    """
    name = loss if isinstance(loss, str) else (loss.get("name") if isinstance(loss, dict) else None)
    if name is None:
        name = "sparse_categorical_crossentropy" if task == "classification" else "mse"
    if name in _CROSS_ENTROPY and task == "classification":
        labels = y.argmax(dim=-1) if y.dim() > 1 else y.long()
        counts = torch.bincount(labels.flatten()).double()
        p = counts[counts > 0] / counts.sum()
        return float(-(p * p.log()).sum())
    if name in ("mse", "mean_squared_error") and y.is_floating_point():
        return float(y.double().var(dim=0, unbiased=False).mean())
    return None


def _prepared(spec: Any) -> Any:
    from trainlab.api import dataset_from_spec, prepare

    dataset = dataset_from_spec(spec.data)
    return prepare(dataset, validation_split=spec.data.validation_split, stratify=spec.data.stratify,
                   scaling=spec.data.scaling, seed=spec.recipe.seed)


def diagnose_spec(spec: Any, *, runs_dir: str | Path = "runs", num_epochs: int | None = 20,
                  probe_size: int = 128, verbose: int = 0, callbacks: Sequence[Callback] = (),
                  report: bool = True) -> Diagnosis:
    """Train what the spec describes with statistics on (at most `num_epochs` epochs) and judge it.

    Args:
        spec: a validated `FitSpec`, a spec dict, or a TOML path.
        runs_dir: where the run folder is written (as `trainlab fit` writes it).
        num_epochs: at most this many epochs (None: the spec's own).
        probe_size: rows of the scaled training part used as the fixed probe batch.
        verbose: 0 silent, 1 progress bar.
        callbacks: more callbacks for the run.
        report: also write diagnosis.html.
    """
    from trainlab.api import run_spec
    from trainlab.spec import FitSpec, load_spec, parse_spec, spec_to_dict

    if isinstance(spec, (str, Path)):
        spec = load_spec(spec)
    elif isinstance(spec, dict):
        spec = parse_spec(spec)
    if not isinstance(spec, FitSpec):
        raise InputError(f"diagnose needs a spec (a TOML path, a dict or a FitSpec), got {type(spec).__name__}")
    if num_epochs is not None and spec.recipe.num_epochs > num_epochs:
        spec = spec.model_copy(update={"recipe": spec.recipe.model_copy(update={"num_epochs": num_epochs})})
    prepared = _prepared(spec)
    stats = TrainingStatistics(probe=prepared.data.x[:probe_size], probe_size=probe_size)
    result = run_spec(spec, runs_dir=runs_dir, verbose=verbose, callbacks=[*callbacks, stats])
    baseline = baseline_loss(prepared.data.y, spec.recipe.loss, prepared.dataset.task)
    history = result.history
    verdicts = diagnose(history.history, stats.records, stop_reason=history.stop_reason, baseline_loss=baseline)
    diagnosis = Diagnosis(verdicts, {k: list(v) for k, v in history.history.items()}, stats.records, baseline,
                          history.stop_reason, result.run_dir, spec.name, spec_to_dict(spec))
    if result.run_dir is not None:
        _write(diagnosis, result.run_dir, report=report)
    return diagnosis


def _write(diagnosis: Diagnosis, run_dir: Path, *, report: bool) -> None:
    with open(run_dir / STATISTICS_FILE, "w") as f:
        f.write("".join(json.dumps(record) + "\n" for record in diagnosis.statistics))
    (run_dir / DIAGNOSIS_FILE).write_text(json.dumps(diagnosis.to_dict(), indent=2))
    if report:
        from trainlab.diagnose.report import write_report

        write_report(diagnosis, run_dir / REPORT_FILE)


def diagnose_run(run_dir: str | Path, *, report: bool = True) -> Diagnosis:
    """Judge a finished run folder from its history.jsonl (and statistics.jsonl, when recorded)."""
    folder = Path(run_dir)
    history_file = folder / "history.jsonl"
    if not folder.is_dir() or not history_file.is_file():
        raise InputError(f"'{folder}' is not a run folder: it has no history.jsonl. Give a run folder "
                         "(runs/<name>/<run-id>/, see `trainlab runs`) or a spec TOML file.")
    history: dict[str, list[float]] = {}
    for number, line in enumerate(history_file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{history_file} line {number} is not valid JSON: {error}") from None
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)):
                history.setdefault(key, []).append(float(value))
    records = read_statistics(folder / STATISTICS_FILE) if (folder / STATISTICS_FILE).is_file() else []
    result = _read_json(folder / "result.json")
    stop_reason = result.get("stop_reason")
    spec_dict, baseline = _spec_and_baseline(folder)
    verdicts = diagnose(history, records, stop_reason=stop_reason, baseline_loss=baseline)
    name = result.get("name") or (spec_dict or {}).get("name", folder.name)
    diagnosis = Diagnosis(verdicts, history, records, baseline, stop_reason, folder, str(name), spec_dict)
    (folder / DIAGNOSIS_FILE).write_text(json.dumps(diagnosis.to_dict(), indent=2))
    if report:
        from trainlab.diagnose.report import write_report

        write_report(diagnosis, folder / REPORT_FILE)
    return diagnosis


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        loaded = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise InputError(f"{path} is not valid JSON: {error}") from None
    return loaded if isinstance(loaded, dict) else {}


def _spec_and_baseline(folder: Path) -> tuple[dict[str, Any] | None, float | None]:
    spec_file = folder / "spec.toml"
    if not spec_file.is_file():
        return None, None
    from trainlab.spec import parse_spec, read_toml

    raw = read_toml(spec_file)
    try:
        spec = parse_spec(raw, source=str(spec_file))
        prepared = _prepared(spec)
    except InputError:
        return raw, None  # the data moved or changed: judge without the baseline
    return raw, baseline_loss(prepared.data.y, spec.recipe.loss, prepared.dataset.task)


# ----------------------------------------------------------------------------- --fix


def _optimizer_lr(optimizer: Any) -> float:
    from trainlab.optimizers import optimizer as make_optimizer

    built = make_optimizer(optimizer, [torch.nn.Parameter(torch.zeros(1))], source="recipe.optimizer")
    return float(built.param_groups[0]["lr"])


def _hidden_layers(layers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    weighted = [layer for layer in layers if "units" in layer or "filters" in layer]
    return weighted[:-1]


def _activation_name(layer: dict[str, Any]) -> str:
    activation = layer.get("activation")
    if isinstance(activation, dict):
        return str(activation.get("name", ""))
    return str(activation or "linear")


def apply_fix(spec: dict[str, Any], verdict: Verdict) -> tuple[dict[str, Any], str]:
    """The spec changed as the verdict's technique says, and a sentence saying what changed.

    Raises:
        InputError: the verdict suggests nothing to change (a healthy run).
    """
    technique = verdict.technique
    if technique is None or technique not in TECHNIQUES:
        raise InputError(f"the verdict '{verdict.name}' has no fix to apply: the run looks healthy")
    fixed = copy.deepcopy(spec)
    recipe = fixed.setdefault("recipe", {})
    layers: list[dict[str, Any]] = fixed["model"]["layers"]
    hidden = _hidden_layers(layers)
    if technique in ("lower_lr", "higher_lr"):
        optimizer = recipe.get("optimizer", "adam")
        table = dict(optimizer) if isinstance(optimizer, dict) else {"name": optimizer}
        old = _optimizer_lr(optimizer)
        table["lr"] = old * (0.1 if technique == "lower_lr" else 10.0)
        recipe["optimizer"] = table
        return fixed, f"lr {old:g} -> {table['lr']:g}"
    if technique in ("he_normal", "glorot_normal", "zero_bias"):
        changed = []
        for layer in hidden:
            kind = _activation_name(layer)
            init = "glorot_normal" if kind in ("sigmoid", "tanh", "linear", "softmax") else "he_normal"
            layer["kernel_initializer"] = init
            if technique == "zero_bias":
                layer["bias_initializer"] = "zeros"
            changed.append(init)
        what = "kernel_initializer = " + "/".join(sorted(set(changed)))
        return fixed, what + (" and bias_initializer = zeros" if technique == "zero_bias" else "") + \
            " on the hidden layers"
    if technique == "clip_grad_norm":
        recipe["clip_grad_norm"] = 1.0
        return fixed, "clip_grad_norm = 1.0"
    if technique == "warmup":
        recipe["schedule"] = {"name": "constant", "warmup_epochs": 2}
        return fixed, "a 2-epoch lr warmup"
    if technique == "leaky_relu":
        for layer in hidden:
            if _activation_name(layer) == "relu":
                layer["activation"] = "leaky_relu"
        return fixed, "relu -> leaky_relu"
    if technique == "more_capacity":
        for layer in hidden:
            if "units" in layer:
                layer["units"] = int(layer["units"]) * 2
        return fixed, "hidden layers twice as wide"
    if technique == "early_stopping" and recipe.get("early_stopping") is None:
        recipe["early_stopping"] = {"monitor": "val_loss", "patience": 5, "restore_best_weights": True}
        return fixed, "early stopping on val_loss (patience 5, best weights restored)"
    if technique in ("early_stopping", "Dropout", "BatchNormalization", "l2"):
        if technique == "l2":
            for layer in hidden:
                layer["kernel_regularizer"] = {"name": "l2", "l2": 1e-3}
            return fixed, "an L2 kernel penalty of 1e-3 on the hidden layers"
        extra = {"type": "BatchNormalization"} if technique == "BatchNormalization" else {"type": "Dropout",
                                                                                          "rate": 0.3}
        ids = {id(layer) for layer in hidden}
        rebuilt: list[dict[str, Any]] = []
        for layer in layers:
            rebuilt.append(layer)
            if id(layer) in ids:
                rebuilt.append(dict(extra))
        fixed["model"]["layers"] = rebuilt
        return fixed, f"a {extra['type']} layer after each hidden layer"
    raise InputError(f"no automatic fix for technique '{technique}'")  # pragma: no cover


def top_fix(diagnosis: Diagnosis) -> Verdict | None:
    """The first verdict (worst first) whose technique can be applied, or None for a healthy run."""
    return next((v for v in diagnosis.verdicts if v.technique in TECHNIQUES), None)


def final_metrics(history: dict[str, list[float]]) -> dict[str, float]:
    """The last value of each logged quantity except the lr."""
    return {k: float(v[-1]) for k, v in history.items() if v and k != "lr"}
