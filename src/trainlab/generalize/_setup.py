"""What cross-validation, bagging and boosting share: data, recipe and model made ready for members.

Each tool turns its rows (folds, bootstrap samples, weighted rounds) into
`trainlab.stacked.MemberConfig`s and trains them with
`trainlab.stacked.fit_members`; the loop is the engine's. This module reads
the user's data, recipe and model once, and holds the settings every member
shares (loss, metrics, batch size, epochs, batch transforms).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from trainlab import augment, engine
from trainlab.data import Dataset, as_dataset
from trainlab.errors import InputError
from trainlab.spec import RecipeSpec


@dataclass
class Setup:
    """The data as tensors, the validated recipe, the base model and the members' shared settings."""

    dataset: Dataset
    recipe: RecipeSpec
    template: nn.Module
    scaling: str | None
    loss: Any
    metrics: list[Any]
    optimizer: Any
    schedule: Any
    stack: str = "auto"
    transforms: list[Any] = field(default_factory=list)

    @property
    def x(self) -> Tensor:
        return self.dataset.x

    @property
    def y(self) -> Tensor:
        return self.dataset.y

    @property
    def task(self) -> str:
        return self.dataset.task

    @property
    def num_rows(self) -> int:
        return int(self.dataset.x.shape[0])

    def labels(self) -> np.ndarray:
        """Class labels as a 1-D integer array (the argmax of one-hot rows)."""
        y = self.y
        if y.dim() > 1 and y.shape[-1] > 1:
            y = y.argmax(dim=-1)
        return y.reshape(-1).cpu().numpy().astype(np.int64)

    def member(self, *, seed: int, train_indices: Any = None, val_indices: Any = None,
               sample_weight: Any = None, early_stopping: bool = True) -> Any:
        """One member with the recipe's optimizer, schedule and (optionally) early stopping."""
        from trainlab.stacked import MemberConfig

        stopping = self.recipe.early_stopping
        return MemberConfig(seed=seed, optimizer=self.optimizer, schedule=self.schedule,
                            train_indices=train_indices, val_indices=val_indices, sample_weight=sample_weight,
                            early_stopping=stopping.model_dump() if (stopping is not None and early_stopping)
                            else None)

    def fit(self, members: Sequence[Any], data: engine.TrainData, *, loss: Any = None) -> list[Any]:
        """Train `members` on `data` through the one engine; one History each."""
        from trainlab.stacked import fit_members

        recipe = self.recipe
        return fit_members(self.template, members, data, loss=self.loss if loss is None else loss,
                           metrics=self.metrics, task=self.task, batch_size=recipe.batch_size,
                           num_epochs=recipe.num_epochs, device=recipe.device, stack=self.stack,
                           shuffle=recipe.shuffle, clip_grad_norm=recipe.clip_grad_norm,
                           clip_grad_value=recipe.clip_grad_value, divergence_factor=recipe.divergence_factor,
                           batch_transforms=self.transforms, scaling=self.scaling)


def setup(model: Any, data: Any, recipe: Any, *, scaling: Any = "auto", stack: str = "auto",
          tool: str) -> Setup:
    """Read and check the model, data and recipe once, before anything trains.

    Raises:
        InputError: bad data, recipe or model; a recipe with weight noise (it perturbs one
            module's own weights in its forward, which members trained together do not have).
    """
    from trainlab.api import as_model, split_recipe
    from trainlab.data_images import register_image_sets
    from trainlab.spec import check_monitor, recorded_names

    validated, objects = split_recipe(recipe)
    register_image_sets()
    dataset = as_dataset(data, source="data")
    if validated.early_stopping is not None:
        check_monitor("recipe.early_stopping.monitor", validated.early_stopping.monitor,
                      recorded_names(validated, dataset.task))
    if augment.weight_noise(validated) is not None:
        raise InputError(f"recipe.weight_noise is not available in {tool}: it perturbs one model's own weights "
                         "in its forward pass, and the members here train together. Remove weight_noise, or "
                         "use input_noise or dropout instead.")
    if scaling == "auto":
        scaling = "standardize" if dataset.x.is_floating_point() else None
    elif scaling == "none":
        scaling = None
    metrics = (objects.metrics if objects.metrics is not None else validated.metrics if validated.metrics
               is not None else (["accuracy"] if dataset.task == "classification" else ["mae"]))
    loss = objects.loss if objects.loss is not None else validated.loss if validated.loss is not None else "auto"
    return Setup(dataset=dataset, recipe=validated, template=fresh(as_model(model)), scaling=scaling, loss=loss,
                 metrics=list(metrics), optimizer=objects.optimizer if objects.optimizer is not None
                 else validated.optimizer, schedule=objects.schedule if objects.schedule is not None
                 else validated.schedule, stack=stack,
                 transforms=list(augment.batch_transforms(validated, num_classes=dataset.num_classes)))


def fresh(model: nn.Module) -> nn.Module:
    """A trainlab Sequential that has weights (trained, or built by a call) as a new, unbuilt one.

    Every member must start from its own fresh initialization, drawn under its seed, as
    scikit-learn clones an estimator before each fold; a model that was already trained
    would carry what it learned (from the held-out rows too) into every member. A plain
    torch module is used as given: pass it untrained.
    """
    from trainlab.models import Sequential

    if not isinstance(model, Sequential) or not model.built:
        return model
    config = model.get_config()
    for key in ("input_shape", "scaler", "compile"):
        config.pop(key, None)
    return Sequential.from_config(config)


def holdout(setup: Setup, fraction: float | None, *, stratify: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Training rows and held-out rows (None without a fraction), split as `trainlab.fit` splits.

    Stratified splits draw from scikit-learn's ``train_test_split`` with the recipe's seed;
    otherwise the last `fraction` of the rows is held out (Keras's ``validation_split``).
    """
    n = setup.num_rows
    rows = np.arange(n)
    if not fraction:
        return rows, None
    if not 0.0 < fraction < 1.0:
        raise InputError(f"validation_split must be in (0, 1), got {fraction}: it is the fraction of the rows "
                         "held out, e.g. 0.2; pass None to hold out nothing.")
    if stratify and setup.task == "classification":
        from sklearn.model_selection import train_test_split

        train, held = train_test_split(rows, test_size=fraction, stratify=setup.labels(),
                                       random_state=setup.recipe.seed)
        return np.sort(train), np.sort(held)
    split_at = n - int(round(n * fraction))
    if split_at <= 0 or split_at >= n:
        raise InputError(f"validation_split={fraction} of {n} rows leaves one part empty; give a fraction that "
                         "keeps rows on both sides.")
    return rows[:split_at], rows[split_at:]


def outputs(model: nn.Module, x: Tensor, *, batch_size: int = 1024) -> Tensor:
    """The model's outputs on raw inputs `x`: its own scaler first (as `Sequential.predict` does)."""
    scaler = getattr(model, "scaler", None)
    device = next((p.device for p in model.parameters()), x.device)
    xs = x.to(device)
    if scaler is not None:
        xs = scaler.transform(xs)
    return engine.predict_tensors(model, xs, batch_size=batch_size)


def probabilities(model: nn.Module, out: Tensor) -> Tensor:
    """Class probabilities (N, K) from a classifier's outputs.

    A trainlab model ending in softmax or sigmoid returns probabilities already; a plain
    torch module returns logits (PyTorch's convention), which softmax (or sigmoid) turns into
    probabilities. One sigmoid output p becomes the two columns (1 - p, p).
    """
    activation = engine.output_activation(model)
    declares = callable(getattr(model, "output_activation", None))
    if out.dim() == 1:
        out = out.unsqueeze(-1)
    if out.shape[-1] == 1:
        p = out if (declares and activation == "sigmoid") else torch.sigmoid(out)
        return torch.cat([1.0 - p, p], dim=-1)
    if declares and activation == "softmax":
        return out
    return torch.softmax(out, dim=-1)


def scores(task: str, prediction: Tensor, y: Tensor) -> dict[str, float]:
    """The scores every ensemble tool reports, from combined predictions (scikit-learn's metrics).

    Classification (`prediction` holds class probabilities or vote shares, shape (N, K)):
    ``accuracy`` and ``error`` (1 - accuracy). Regression: ``mse`` and ``mae``.
    """
    from sklearn.metrics import accuracy_score, mean_absolute_error, mean_squared_error

    if task == "classification":
        truth = y.argmax(dim=-1) if (y.dim() > 1 and y.shape[-1] > 1) else y.reshape(-1)
        accuracy = float(accuracy_score(truth.cpu().numpy(), prediction.argmax(dim=-1).cpu().numpy()))
        return {"accuracy": accuracy, "error": 1.0 - accuracy}
    pred = prediction.detach().cpu().reshape(y.shape[0], -1).numpy()
    true = y.detach().cpu().reshape(y.shape[0], -1).numpy()
    return {"mse": float(mean_squared_error(true, pred)), "mae": float(mean_absolute_error(true, pred))}


def primary(task: str) -> str:
    """The score an ensemble tool ranks by: accuracy for classes, mse for regression."""
    return "accuracy" if task == "classification" else "mse"
