"""`trainlab.fit`: data + model + recipe -> a trained model and its History.

The same engine as `Sequential.fit`; this entry point adds what a recipe
describes: the validation split, scaling fitted on the training part only,
default loss and metrics chosen from the task, and early stopping.

Example:
    >>> import trainlab
    >>> from trainlab.layers import Dense
    >>> model = trainlab.Sequential([Dense(16, activation="relu"), Dense(3, activation="softmax")])
    >>> history = trainlab.fit(model, "iris", {"num_epochs": 3, "seed": 0})
    >>> sorted(history.history)
    ['accuracy', 'loss', 'lr', 'val_accuracy', 'val_loss']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from torch import nn

from trainlab import __version__, augment, engine
from trainlab.callbacks import Callback, EarlyStopping, History, as_callback_list
from trainlab.data_images import register_image_sets
from trainlab.datasets import Dataset, as_dataset, split_validation
from trainlab.datasets import scaler as make_scaler
from trainlab.errors import InputError
from trainlab.layers import Layer
from trainlab.models import Sequential
from trainlab.runs import RunResult, write_run
from trainlab.spec import DataSpec, FitSpec, ModelSpec, RecipeSpec, format_validation_error, spec_to_dict


@dataclass
class Prepared:
    """Tensors ready for the engine, and the scaler fitted on the training part."""

    data: engine.TrainData
    scaler: Any
    dataset: Dataset


def as_recipe(recipe: RecipeSpec | dict[str, Any] | None) -> RecipeSpec:
    if recipe is None:
        return RecipeSpec()
    if isinstance(recipe, RecipeSpec):
        return recipe
    if not isinstance(recipe, dict):
        raise InputError(f"recipe must be a dict or RecipeSpec, got {type(recipe).__name__}")
    try:
        return RecipeSpec.model_validate(recipe)
    except ValidationError as error:
        raise InputError(format_validation_error(error, "recipe")) from None


def as_model(model: Any) -> nn.Module:
    """An nn.Module as is; a list of layers (objects or ``{type = ...}`` tables) as a Sequential."""
    if isinstance(model, nn.Module):
        return model
    if isinstance(model, ModelSpec):
        return Sequential(model.layers)
    if isinstance(model, (list, tuple)) and all(isinstance(m, (dict, Layer, nn.Module)) for m in model):
        return Sequential(model)
    raise InputError(f"model must be a torch.nn.Module, a trainlab.Sequential or a list of layers, "
                     f"got {type(model).__name__}")


def prepare(dataset: Dataset, *, validation_split: float | None, validation_data: Any = None,
            stratify: bool = False, scaling: Any = "auto", seed: int = 0) -> Prepared:
    """Split off validation data, fit the scaler on the training part, transform both parts."""
    x, y = dataset.x, dataset.y
    x_val = y_val = None
    if validation_data is not None:
        val = as_dataset(validation_data, source="validation_data")
        x_val, y_val = val.x, val.y
    elif validation_split:
        x, y, x_val, y_val = split_validation(x, y, fraction=validation_split, stratify=stratify, seed=seed)
    if scaling == "auto":
        scaling = "standardize" if x.is_floating_point() else None
    scaler = make_scaler(None if scaling == "none" else scaling, source="scaling")
    if scaler is not None:
        scaler.fit(x)
        x = scaler.transform(x)
        x_val = scaler.transform(x_val) if x_val is not None else None
    return Prepared(engine.TrainData(x, y, x_val, y_val), scaler, dataset)


def fit(model: Any, data: Any, recipe: RecipeSpec | dict[str, Any] | None = None, *,
        validation_split: float | None = 0.2, validation_data: Any = None, stratify: bool = False,
        scaling: Any = "auto", callbacks: Callback | Sequence[Callback] | None = None,
        verbose: int = 0, checkpoint_dir: str | Path | None = None, resume: bool = False) -> History:
    """Train `model` on `data` with `recipe`; return its History.

    Args:
        model: a torch.nn.Module, a trainlab.Sequential, or a list of layers.
        data: a bundled data set's name ("iris"), a .csv/.npz path, a pair (x, y), or a Dataset.
        recipe: a RecipeSpec or a dict of its fields (optimizer, schedule, loss, metrics,
            batch_size, num_epochs, early_stopping, seed, ...).
        validation_split: last fraction of the samples held out (Keras semantics); None for none.
        validation_data: an explicit validation set instead of the split.
        stratify: take a stratified random validation part instead of the last samples.
        scaling: "auto" (standardize float features), "standardize", "minmax" or None;
            fitted on the training part only and kept on the model as `model.scaler`.
        callbacks: one callback or a list, in addition to the recipe's early stopping.
        verbose: 0 silent, 1 progress bar, 2 one line per epoch.
        checkpoint_dir: where the resumable state is saved after every epoch.
        resume: continue from the checkpoint in `checkpoint_dir`, if there is one.

    Returns:
        History with `.history` (loss, metrics, val_*, lr per epoch), `.seed`,
        `.stop_reason`, `.recipe`, `.model`, `.scaler` and `.version`.
    """
    recipe = as_recipe(recipe)
    register_image_sets()
    dataset = as_dataset(data, source="data")
    module = as_model(model)
    prepared = prepare(dataset, validation_split=validation_split, validation_data=validation_data,
                       stratify=stratify, scaling=scaling, seed=recipe.seed)
    module.scaler = prepared.scaler
    technique = engine.Technique(
        loss=recipe.loss if recipe.loss is not None else "auto",
        optimizer=recipe.optimizer,
        metrics=recipe.metrics if recipe.metrics is not None else
        (["accuracy"] if dataset.task == "classification" else ["mae"]),
        schedule=recipe.schedule,
        task=dataset.task,
    )
    all_callbacks = as_callback_list(callbacks)
    if recipe.early_stopping is not None:
        all_callbacks = [EarlyStopping(**recipe.early_stopping.model_dump()), *all_callbacks]
    noise = augment.weight_noise(recipe)
    if noise is not None:
        all_callbacks = [noise, *all_callbacks]
    if augment.batch_transforms(recipe, num_classes=dataset.num_classes):
        raise InputError(
            "recipe: augment, input_noise, mixup and cutmix are applied by the training loop's batch "
            "transforms (LoopConfig(batch_transforms=...)), which this version of the engine does not "
            "have; leave them out, or use the Keras layers (RandomFlip, GaussianNoise, ...) in the model."
        )
    config = engine.LoopConfig(batch_size=recipe.batch_size, num_epochs=recipe.num_epochs,
                               shuffle=recipe.shuffle, seed=recipe.seed, device=recipe.device,
                               verbose=verbose, clip_grad_norm=recipe.clip_grad_norm,
                               clip_grad_value=recipe.clip_grad_value,
                               divergence_factor=recipe.divergence_factor,
                               checkpoint_dir=checkpoint_dir, resume=resume)
    history = engine.train(module, prepared.data, technique, config, callbacks=all_callbacks)
    history.recipe = recipe
    history.scaler = prepared.scaler
    history.version = __version__
    history.dataset = dataset.name
    return history


def dataset_from_spec(spec: DataSpec) -> Dataset:
    register_image_sets()
    if spec.name is not None:
        return as_dataset({"name": spec.name, **spec.options} if spec.options else spec.name,
                          source="data.name")
    from trainlab.datasets import from_csv, from_npz

    path = str(spec.path)
    if path.endswith(".csv"):
        return from_csv(path, target=spec.target)
    if path.endswith(".npz"):
        return from_npz(path, **spec.options)
    raise InputError(f"data.path must end in .csv or .npz, got '{path}'")


def run_spec(spec: FitSpec, *, runs_dir: str | Path = "runs", verbose: int = 1,
             callbacks: Sequence[Callback] = (), resume: bool = False) -> RunResult:
    """Train what a validated spec describes and write the run folder (see `trainlab.runs`).

    With `resume`, the newest unfinished run of the same spec continues from its
    last checkpoint and ends with the same weights as an uninterrupted run.
    """
    dataset = dataset_from_spec(spec.data)  # loaded before anything is written

    def train(staging: Path, resuming: bool, history_file: Callback) -> tuple[History, nn.Module]:
        model = Sequential(spec.model.layers, name=spec.name)
        history = fit(model, dataset, spec.recipe, validation_split=spec.data.validation_split,
                      stratify=spec.data.stratify, scaling=spec.data.scaling,
                      callbacks=[*callbacks, history_file], verbose=verbose,
                      checkpoint_dir=staging / "checkpoint", resume=resuming)
        return history, model

    return write_run(Path(runs_dir), spec.name, spec_to_dict(spec), train, resume=resume)
