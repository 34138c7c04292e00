"""Bias-variance decomposition: how much of the test error is bias, variance and noise.

The expected test loss of a training procedure, averaged over training sets
D drawn from the same distribution, splits into parts (Geman et al. 1992):

    E_D[(y - h_D(x))^2] = (f(x) - hbar(x))^2 + E_D[(h_D(x) - hbar(x))^2] + sigma^2
                        =        bias^2      +          variance          + noise

with f the noise-free target, hbar = E_D[h_D] the *main prediction* and
sigma^2 the noise variance. trainlab estimates it as the field does
(Efron's bootstrap, as in mlxtend's ``bias_variance_decomp``): a fixed test
set is held out, `rounds` bootstrap samples of the remaining rows are the
training sets, one member is trained per round (stacked: `trainlab.stacked`,
each member with its own scaler fitted on its own bootstrap rows), and each
member predicts the test set (`trainlab.engine.predict_members`).

- Squared loss (regression). Where the data set's noise is known (generated
  data: ``friedman1``, ``noisy_sine``; `trainlab.data.regression`), bias^2 is
  measured against f and the noise is sigma^2, so bias^2 + variance + noise
  equals the expected test MSE up to the test set's sampling error
  (``residual``). Where it is not, bias^2 is measured against the observed y
  and holds the noise too (as mlxtend reports it); the sum is then exact.
- 0-1 loss (classification), Domingos (2000): the main prediction ym is the
  most frequent class over the rounds (the lowest class on a tie, as mlxtend),
  bias(x) = [ym != y], variance(x) = P_D(h_D(x) != ym). The loss is
  bias + net variance, where the variance *adds* to the loss on unbiased
  points and *subtracts* on biased ones (there a change of prediction can only
  be right): net variance = mean over unbiased points of V(x) minus mean over
  biased points of P_D(h_D(x) = y). With the observed label as y (noise taken
  as 0), the identity is exact.

A capacity axis (hidden units, epochs or the L2 strength) repeats the
decomposition for each value on the same test set and the same bootstrap
samples, and draws the classic U: bias falls and variance grows with capacity.

A bias-variance file is a fit spec (`trainlab.spec`) plus::

    [bias_variance]
    rounds = 30              # bootstrap training sets (members), at least 2
    test_fraction = 0.3      # rows held out as the fixed test set
    capacity = "units"       # optional: "units" (every hidden Dense layer), "num_epochs" or "l2"
    values = [2, 8, 32, 128]

Example:
    >>> import torch
    >>> predictions = torch.tensor([[1.0, 2.0], [3.0, 2.0]])  # 2 rounds x 2 test points
    >>> d = decompose_squared(predictions, torch.tensor([2.0, 2.0]))
    >>> d.expected_loss, d.bias, d.variance
    (0.5, 0.0, 0.5)

References:
    Domingos, "A Unified Bias-Variance Decomposition and its Applications", ICML 2000.
    Geman, Bienenstock, Doursat, "Neural Networks and the Bias/Variance Dilemma", 1992.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, ValidationError
from torch import Tensor, nn

from trainlab import check
from trainlab.errors import InputError, did_you_mean

__all__ = ["CAPACITY_AXES", "BiasVarianceResult", "BiasVarianceSettings", "BiasVarianceSpec", "BootstrapPredictions",
           "CapacityPoint", "Decomposition", "bias_variance", "bootstrap_predictions", "decompose_squared", "decompose_zero_one", "load_bias_variance",
           "parse_bias_variance", "run_bias_variance"]

#: What a capacity axis may vary, with what it changes.
CAPACITY_AXES = {
    "units": "the units of every hidden Dense layer (all Dense layers but the last)",
    "num_epochs": "the number of training epochs",
    "l2": "the L2 penalty strength on every weight layer's kernel",
}


@dataclass(frozen=True)
class Decomposition:
    """One bias-variance decomposition, averaged over the test rows.

    Attributes:
        loss: "squared" or "zero_one".
        expected_loss: the members' mean test loss, E_D[L(y, h_D(x))] averaged over x.
        bias: bias^2 for the squared loss; Domingos's bias (the main prediction's error rate) for 0-1.
        variance: E_D[(h_D - hbar)^2] for the squared loss; P_D(h_D != ym) for 0-1.
        noise: sigma^2 where it is known (squared loss on generated data), else None.
        net_variance: 0-1 only: the variance's net effect on the loss (see the module docstring).
        residual: expected_loss minus the sum of the parts (bias + variance + noise, or bias +
            net_variance): the test set's sampling error where the noise is known, else 0 up to rounding.
        rounds, test_rows: how many members and test rows it is averaged over.
    """

    loss: str
    expected_loss: float
    bias: float
    variance: float
    noise: float | None
    residual: float
    rounds: int
    test_rows: int
    net_variance: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decompose_squared(predictions: Tensor, y: Tensor, *, noise_free: Tensor | None = None,
                      noise_variance: float | None = None) -> Decomposition:
    """The squared-loss decomposition of `predictions` (rounds x test rows) against `y`.

    With `noise_free` (f at the test rows) and `noise_variance` (sigma^2), bias^2
    is measured against f and the noise is sigma^2; otherwise bias^2 is measured
    against y (it then holds the noise) and noise is None.

    Example:
        >>> d = decompose_squared(torch.tensor([[0.0], [2.0]]), torch.tensor([1.5]),
        ...                       noise_free=torch.tensor([1.0]), noise_variance=0.25)
        >>> d.bias, d.variance, d.noise, d.expected_loss, d.residual
        (0.0, 1.0, 0.25, 1.25, 0.0)
    """
    p = _as_rounds(predictions, "predictions").double()
    target = y.reshape(-1).double()
    _check_columns(p, target)
    if (noise_free is None) != (noise_variance is None):
        raise InputError("decompose_squared: give both noise_free (f at the test rows) and noise_variance "
                         "(sigma^2), or neither")
    main = p.mean(dim=0)
    expected = float(((p - target) ** 2).mean())
    variance = float(((p - main) ** 2).mean())
    if noise_free is not None and noise_variance is not None:
        truth = noise_free.reshape(-1).double()
        bias = float(((main - truth) ** 2).mean())
        noise: float | None = float(noise_variance)
    else:
        bias, noise = float(((main - target) ** 2).mean()), None
    return Decomposition(loss="squared", expected_loss=expected, bias=bias, variance=variance, noise=noise,
                         residual=expected - (bias + variance + (noise or 0.0)), rounds=p.shape[0],
                         test_rows=p.shape[1])


def decompose_zero_one(predictions: Tensor, y: Tensor) -> Decomposition:
    """Domingos's 0-1 loss decomposition of predicted labels (rounds x test rows) against labels `y`.

    Example:
        >>> d = decompose_zero_one(torch.tensor([[0, 1], [0, 1], [1, 0]]), torch.tensor([0, 0]))
        >>> round(d.expected_loss, 4), d.bias, round(d.variance, 4), round(d.net_variance, 4)
        (0.5, 0.5, 0.3333, 0.0)
    """
    p = _as_rounds(predictions, "predictions").long()
    target = y.reshape(-1).long()
    _check_columns(p, target)
    rounds = p.shape[0]
    counts = torch.nn.functional.one_hot(p, int(max(p.max(), target.max())) + 1).sum(dim=0)  # (N, C)
    main = counts.argmax(dim=1)  # the first maximum: the lowest class on a tie
    biased = main != target
    variance_x = (p != main).double().mean(dim=0)
    right_x = (p == target).double().mean(dim=0)
    n = target.numel()
    net = float((variance_x[~biased].sum() - right_x[biased].sum()) / n)
    expected = float((p != target).double().mean())
    bias = float(biased.double().mean())
    return Decomposition(loss="zero_one", expected_loss=expected, bias=bias, variance=float(variance_x.mean()),
                         noise=None, residual=expected - (bias + net), rounds=rounds, test_rows=n,
                         net_variance=net)


def _as_rounds(values: Tensor, name: str) -> Tensor:
    tensor = torch.as_tensor(values)
    if tensor.dim() < 2:
        raise InputError(f"{name} must hold one row of test predictions per round (rounds x test rows), got "
                         f"shape {tuple(tensor.shape)}")
    if tensor.shape[0] < 2:
        raise InputError(f"{name} holds {tensor.shape[0]} round; the variance needs at least 2")
    return tensor.reshape(tensor.shape[0], -1)


def _check_columns(p: Tensor, target: Tensor) -> None:
    if p.shape[1] != target.numel():
        raise InputError(f"the predictions cover {p.shape[1]} test values but y has {target.numel()}; they must "
                         "match")


# --------------------------------------------------------------------------- one decomposition


def bias_variance(model: Any, data: Any, recipe: Any = None, *, rounds: int = 30, test_fraction: float = 0.3,
                  seed: int | None = None, scaling: Any = "auto", l2: float | None = None,
                  noise_free: Callable[[Tensor], Tensor] | None = None, noise_variance: float | None = None,
                  stack: str = "auto") -> Decomposition:
    """Decompose the test loss of training `model` with `recipe` on bootstrap samples of `data`.

    Args:
        model: a trainlab Sequential, a list of layers, or any nn.Module (copied for every round).
        data: a Dataset, a bundled name ("friedman1"), (x, y), ... (as `trainlab.fit`).
        recipe: a RecipeSpec or dict (optimizer, batch_size, num_epochs, early_stopping, seed, ...).
            With early stopping, each round validates on its out-of-bag rows.
        rounds: bootstrap training sets, one member each; at least 2.
        test_fraction: the fraction of rows held out as the fixed test set.
        seed: the split's and the bootstrap samples' seed (default: the recipe's seed).
            Member k trains with seed recipe.seed + k.
        scaling: "auto" (standardize float features), "standardize", "minmax" or None/"none";
            each member's scaler is fitted on its own bootstrap rows.
        l2: an L2 penalty on every weight layer for every member (None: the model's own).
        noise_free, noise_variance: the noise-free target f(x) as a function of the raw inputs,
            and sigma^2, for data whose noise is known; for a bundled generated set given by
            name (friedman1, noisy_sine) they are read from its registry entry.
        stack: as `trainlab.stacked.fit_members`.

    Raises:
        InputError: rounds < 2, a test fraction that leaves no training rows, or any bad input
            `trainlab.stacked.fit_members` refuses.
    """
    from trainlab.api import as_model, as_recipe
    from trainlab.data import as_dataset

    check_rounds("rounds", rounds)
    spec = as_recipe(recipe)
    dataset = as_dataset(data, source="data")
    if noise_free is None and isinstance(data, str):
        known = known_noise(data, {})
        if known is not None:
            noise_free, noise_variance = known
    made = _predictions(as_model(model), dataset, spec, rounds=rounds, test_fraction=test_fraction,
                        seed=spec.seed if seed is None else seed, scaling=scaling, l2=l2, stack=stack)
    return made.decompose(noise_free=noise_free, noise_variance=noise_variance)


def check_rounds(field_name: str, rounds: Any) -> int:
    """`rounds` as an int >= 2, or an InputError that says why two are needed."""
    return check.int_at_least(field_name, rounds, 2,
                              "The variance is the spread of the members' predictions across bootstrap training "
                              "sets, so it needs at least 2 rounds; 30 is usual (more rounds, steadier figures).")


def known_noise(name: str, options: Mapping[str, Any]) -> tuple[Callable[[Tensor], Tensor], float] | None:
    """(f, sigma^2) for a registered data set whose noise is known (capabilities noise_free, noise_setting)."""
    import inspect

    from trainlab.data import DATASETS

    if name not in DATASETS:
        return None
    entry = DATASETS.entry(name)
    truth = entry.capabilities.get("noise_free")
    setting = entry.capabilities.get("noise_setting")
    if truth is None or setting is None:
        return None
    std = options.get(setting, inspect.signature(entry.factory).parameters[setting].default)
    return truth, float(std) ** 2


@dataclass(frozen=True)
class BootstrapPredictions:
    """Every round's predictions on the fixed test set, and what they were made from.

    Attributes:
        predictions: (rounds, test rows, ...) raw model outputs (as `predict_members` gives them).
        labels: (rounds, test rows) predicted classes for classification, else None.
        x_test, y_test: the test rows (raw, unscaled inputs) and their targets.
        test_rows: the test rows' positions in the data set; samples: each round's bootstrap rows
            (positions in the data set).
    """

    predictions: Tensor
    labels: Tensor | None
    x_test: Tensor
    y_test: Tensor
    test_rows: np.ndarray
    samples: list[np.ndarray]

    def decompose(self, *, noise_free: Callable[[Tensor], Tensor] | None = None,
                  noise_variance: float | None = None) -> Decomposition:
        """The 0-1 decomposition for labels, else the squared one (against f where the noise is known)."""
        if self.labels is not None:
            return decompose_zero_one(self.labels, _label_targets(self.y_test))
        rounds = self.predictions.shape[0]
        if noise_free is not None and noise_variance is not None:
            return decompose_squared(self.predictions.reshape(rounds, -1), self.y_test,
                                     noise_free=noise_free(self.x_test).reshape(-1), noise_variance=noise_variance)
        return decompose_squared(self.predictions.reshape(rounds, -1), self.y_test)


def bootstrap_predictions(model: Any, data: Any, recipe: Any = None, *, rounds: int = 30,
                          test_fraction: float = 0.3, seed: int | None = None, scaling: Any = "auto",
                          l2: float | None = None, stack: str = "auto") -> BootstrapPredictions:
    """Train one member per bootstrap sample (stacked) and predict the fixed test set with each.

    The arguments are those of `bias_variance`; this is its first half, for callers that
    want the predictions themselves (another decomposition, a cross-check).
    """
    from trainlab.api import as_model, as_recipe
    from trainlab.data import as_dataset

    check_rounds("rounds", rounds)
    spec = as_recipe(recipe)
    return _predictions(as_model(model), as_dataset(data, source="data"), spec, rounds=rounds,
                        test_fraction=test_fraction, seed=spec.seed if seed is None else seed, scaling=scaling,
                        l2=l2, stack=stack)


def _predictions(template: nn.Module, dataset: Any, recipe: Any, *, rounds: int, test_fraction: float, seed: int,
                 scaling: Any, l2: float | None, stack: str) -> BootstrapPredictions:
    from trainlab.engine import TrainData, predict_members
    from trainlab.stacked import MemberConfig, fit_members

    check.in_range("test_fraction", test_fraction, 0.0, 1.0, open_low=True, open_high=True,
                   hint="It is the fraction of rows held out as the fixed test set; 0.3 is usual.")
    pool, test, samples = _split(len(dataset), test_fraction=test_fraction, rounds=rounds, seed=seed)
    x, y = dataset.x, dataset.y
    x_pool, y_pool, x_test, y_test = x[pool], y[pool], x[test], y[test]
    members = []
    for k, rows in enumerate(samples):
        out_of_bag = np.setdiff1d(np.arange(len(pool)), rows)
        members.append(MemberConfig(
            seed=recipe.seed + k, optimizer=recipe.optimizer, schedule=recipe.schedule, train_indices=rows,
            val_indices=out_of_bag if recipe.early_stopping is not None and out_of_bag.size else None,
            early_stopping=recipe.early_stopping.model_dump() if recipe.early_stopping is not None else None,
            l2=l2))
    if scaling == "auto":
        scaling = "standardize" if x.is_floating_point() else None
    metrics = recipe.metrics if recipe.metrics is not None else (
        ["accuracy"] if dataset.task == "classification" else ["mae"])
    histories = fit_members(template, members, TrainData(x_pool, y_pool), loss=recipe.loss or "auto",
                            metrics=metrics, task=dataset.task, batch_size=recipe.batch_size,
                            num_epochs=recipe.num_epochs, device=recipe.device, stack=stack, shuffle=recipe.shuffle,
                            clip_grad_norm=recipe.clip_grad_norm, clip_grad_value=recipe.clip_grad_value,
                            divergence_factor=recipe.divergence_factor,
                            scaling=None if scaling == "none" else scaling)
    outputs = []
    for history in histories:
        # Each member has its own scaler (fitted on its own bootstrap rows), so each sees its own inputs.
        inputs = history.scaler.transform(x_test) if history.scaler is not None else x_test
        outputs.append(predict_members([history.model], inputs)[0].cpu())
    predictions = torch.stack(outputs)
    labels = _labels(predictions, histories[0].model) if dataset.task == "classification" else None
    return BootstrapPredictions(predictions=predictions, labels=labels, x_test=x_test, y_test=y_test,
                                test_rows=test, samples=[pool[rows] for rows in samples])


def _split(n: int, *, test_fraction: float, rounds: int, seed: int) -> tuple[np.ndarray, np.ndarray,
                                                                             list[np.ndarray]]:
    """Training pool, fixed test rows, and one bootstrap sample (rows of the pool) per round."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    num_test = int(round(test_fraction * n))
    if num_test < 1 or n - num_test < 2:
        raise InputError(f"test_fraction={test_fraction:g} of {n} rows leaves {num_test} test rows and "
                         f"{n - num_test} training rows; both parts need rows (at least 1 and 2). Use more data "
                         "or another fraction.")
    test, pool = np.sort(order[:num_test]), np.sort(order[num_test:])
    samples = [rng.integers(0, pool.size, size=pool.size) for _ in range(rounds)]
    return pool, test, samples


def _labels(outputs: Tensor, model: nn.Module) -> Tensor:
    """Predicted classes from outputs (rounds, rows, units): argmax, or a threshold for one unit."""
    from trainlab.engine import output_activation

    if outputs.dim() == 3 and outputs.shape[-1] > 1:
        return outputs.argmax(dim=-1)
    threshold = 0.5 if output_activation(model) == "sigmoid" else 0.0
    return (outputs.reshape(outputs.shape[0], -1) > threshold).long()


def _label_targets(y: Tensor) -> Tensor:
    return y.argmax(dim=-1) if y.dim() > 1 and y.shape[-1] > 1 else y.reshape(-1).long()


# --------------------------------------------------------------------------- capacity axis and files


class BiasVarianceSettings(BaseModel):
    """The ``[bias_variance]`` table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rounds: int = 30
    test_fraction: float = 0.3
    seed: int | None = None
    capacity: str | None = None
    values: list[float] = []


@dataclass(frozen=True)
class BiasVarianceSpec:
    """A validated bias-variance file: the fit spec and the ``[bias_variance]`` settings."""

    spec: Any  # trainlab.spec.FitSpec
    settings: BiasVarianceSettings
    raw: dict[str, Any]


@dataclass(frozen=True)
class CapacityPoint:
    """One value of the capacity axis (None without an axis) and its decomposition."""

    value: float | None
    decomposition: Decomposition
    seconds: float


@dataclass
class BiasVarianceResult:
    """What `run_bias_variance` measured, and where it wrote it."""

    name: str
    axis: str | None
    task: str
    points: list[CapacityPoint]
    folder: Path | None = None
    report: Path | None = None
    noise_known: bool = False
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "axis": self.axis, "task": self.task, "noise_known": self.noise_known,
                "settings": self.settings,
                "points": [{"value": p.value, "seconds": p.seconds, **p.decomposition.to_dict()}
                           for p in self.points],
                "folder": None if self.folder is None else str(self.folder),
                "report": None if self.report is None else str(self.report)}


def load_bias_variance(path: str | Path, *, rounds: int | None = None) -> BiasVarianceSpec:
    """Read and validate a bias-variance TOML file (a fit spec plus ``[bias_variance]``)."""
    from trainlab.spec import read_toml

    return parse_bias_variance(read_toml(path, what="bias-variance spec"), source=str(path), rounds=rounds)


def parse_bias_variance(raw: Mapping[str, Any], *, source: str = "spec", rounds: int | None = None) -> BiasVarianceSpec:
    """Validate a fit spec plus its ``[bias_variance]`` table; `rounds` overrides the table's.

    Raises:
        InputError: an invalid fit spec, an unknown setting, rounds < 2, an unknown capacity
            axis, values without an axis (or an axis without values), or values the axis cannot take.
    """
    from trainlab.spec import format_validation_error, parse_spec

    table = raw.get("bias_variance", {})
    if not isinstance(table, Mapping):
        raise InputError(f"{source}: [bias_variance] must be a table (rounds, test_fraction, seed, capacity, "
                         f"values), got {type(table).__name__}")
    known = list(BiasVarianceSettings.model_fields)
    for key in table:
        if key not in known:
            raise InputError(f"{source}: bias_variance.{key} is not a bias-variance setting.{did_you_mean(key, known)}"
                             f" Known settings: {', '.join(known)}.")
    try:
        settings = BiasVarianceSettings.model_validate(dict(table))
    except ValidationError as error:
        message = format_validation_error(error, source)
        raise InputError(message.replace("is not a valid spec: ", "is not a valid bias-variance spec: "
                                         "bias_variance.")) from None
    if rounds is not None:
        settings = settings.model_copy(update={"rounds": rounds})
    check_rounds(f"{source}: bias_variance.rounds" if rounds is None else "--rounds", settings.rounds)
    check.in_range(f"{source}: bias_variance.test_fraction", settings.test_fraction, 0.0, 1.0, open_low=True,
                   open_high=True, hint="It is the fraction of rows held out as the fixed test set; 0.3 is usual.")
    _check_axis(settings, source)
    spec = parse_spec({k: copy.deepcopy(v) for k, v in raw.items() if k != "bias_variance"},
                      source=f"{source} (without [bias_variance])")
    if settings.capacity == "units":
        _hidden_dense(spec.model.layers, source)
    return BiasVarianceSpec(spec=spec, settings=settings, raw=dict(raw))


def _check_axis(settings: BiasVarianceSettings, source: str) -> None:
    axis, values = settings.capacity, settings.values
    where = f"{source}: bias_variance.capacity"
    if axis is None:
        if values:
            raise InputError(f"{source}: bias_variance.values is given without an axis to vary; add capacity = "
                             f"\"units\" (or {', '.join(repr(a) for a in CAPACITY_AXES)}), or remove values.")
        return
    if axis not in CAPACITY_AXES:
        listed = "; ".join(f"'{name}': {what}" for name, what in CAPACITY_AXES.items())
        raise InputError(f"{where}: unknown capacity axis '{axis}'.{did_you_mean(axis, CAPACITY_AXES)} A capacity "
                         f"axis is one of: {listed}. Each value of bias_variance.values gives one point of the "
                         "bias-variance curve.")
    if not values:
        raise InputError(f"{source}: bias_variance.values is empty: the capacity axis '{axis}' needs the values to "
                         "try, e.g. values = [2, 8, 32, 128].")
    for value in values:
        if axis in ("units", "num_epochs") and (value != int(value) or value < 1):
            raise InputError(f"{source}: bias_variance.values holds {value:g}, but '{axis}' takes whole numbers "
                             ">= 1.")
        if axis == "l2" and value < 0:
            raise InputError(f"{source}: bias_variance.values holds {value:g}, but an L2 strength is >= 0 "
                             "(0 for none).")
    if len({float(v) for v in values}) != len(values):
        raise InputError(f"{source}: bias_variance.values lists a value twice; each value makes one point.")


def _hidden_dense(layers: Sequence[Mapping[str, Any]], source: str) -> list[int]:
    dense = [i for i, layer in enumerate(layers) if layer.get("type") == "Dense"]
    if len(dense) < 2:
        raise InputError(f"{source}: the capacity axis 'units' changes the hidden Dense layers (every Dense layer "
                         f"but the last), and this model has {len(dense)} Dense layer(s) in all. Add a hidden "
                         "Dense layer, or vary 'num_epochs' or 'l2' instead.")
    return dense[:-1]


def run_bias_variance(config: BiasVarianceSpec, *, runs_dir: str | Path = "runs", report: bool = True,
                      stack: str = "auto",
                      progress: Callable[[int, int, float | None], None] | None = None) -> BiasVarianceResult:
    """Decompose at each capacity value; write ``bias_variance.json`` and ``report.html`` in runs_dir/<name>/.

    `progress(done, total, value)` is told before each point is trained.
    """
    from trainlab.api import dataset_from_spec
    from trainlab.models import Sequential
    from trainlab.runs import run_folder, write_json_atomic

    spec, settings = config.spec, config.settings
    dataset = dataset_from_spec(spec.data)  # bad data fails before anything is written
    known = known_noise(spec.data.name, spec.data.options) if spec.data.name is not None else None
    noise_free, noise_variance = known if known is not None else (None, None)
    axis = settings.capacity
    values: list[float | None] = list(settings.values) if axis is not None else [None]
    seed = spec.recipe.seed if settings.seed is None else settings.seed
    points = []
    for done, value in enumerate(values):
        if progress is not None:
            progress(done, len(values), value)
        layers = [dict(layer) for layer in spec.model.layers]
        recipe = spec.recipe
        l2 = None
        if axis == "units":
            for i in _hidden_dense(layers, "spec"):
                layers[i]["units"] = int(value)  # type: ignore[arg-type]
        elif axis == "num_epochs":
            recipe = recipe.model_copy(update={"num_epochs": int(value)})  # type: ignore[arg-type]
        elif axis == "l2":
            l2 = float(value)  # type: ignore[arg-type]
        start = time.perf_counter()
        made = _predictions(Sequential(layers, name=spec.name), dataset, recipe, rounds=settings.rounds,
                            test_fraction=settings.test_fraction, seed=seed, scaling=spec.data.scaling, l2=l2,
                            stack=stack)
        decomposition = made.decompose(noise_free=noise_free, noise_variance=noise_variance)
        points.append(CapacityPoint(value=None if value is None else (int(value) if axis != "l2" else value),
                                    decomposition=decomposition, seconds=time.perf_counter() - start))
    result = BiasVarianceResult(name=spec.name, axis=axis, task=dataset.task, points=points,
                                noise_known=known is not None,
                                settings={**settings.model_dump(), "seed": seed})
    folder = run_folder(Path(runs_dir), spec.name)
    folder.mkdir(parents=True, exist_ok=True)
    result.folder = folder
    if report:
        from trainlab.generalize._pages import bias_variance_page

        result.report = bias_variance_page(result, folder / "report.html", spec_raw=config.raw)
    write_json_atomic(folder / "bias_variance.json", result.to_dict())
    return result
