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

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from pydantic import ValidationError
from torch import nn

from trainlab import __version__, augment, check, engine
from trainlab.batches import from_torch, is_batch_stream
from trainlab.callbacks import Callback, EarlyStopping, History, as_callback_list
from trainlab.data import Dataset, as_dataset, split_validation
from trainlab.data import scaler as make_scaler
from trainlab.data_images import register_image_sets
from trainlab.errors import InputError, InputTypeError
from trainlab.layers import Layer
from trainlab.losses import loss as make_loss
from trainlab.models import Sequential, _scaling_note
from trainlab.optimizers import Optimizer
from trainlab.runs import CHECKPOINT_DIR, RunResult, run_folder, write_run
from trainlab.schedules import as_schedule
from trainlab.spec import DataSpec, FitSpec, ModelSpec, RecipeSpec, format_validation_error, spec_to_dict

if TYPE_CHECKING:
    from trainlab.scale.distributed import Shard


@dataclass
class Prepared:
    """Tensors ready for the engine, and the scaler fitted on the training part."""

    data: engine.TrainData
    scaler: Any
    dataset: Dataset


# Recipe fields that may hold Python objects (a torch optimizer, loss module or scheduler, a
# function) in `trainlab.fit`; a TOML spec holds names and tables only.
OBJECT_FIELDS = ("optimizer", "loss", "schedule")


@dataclass
class Objects:
    """The recipe's techniques given as objects, kept apart from the validated (JSON-able) recipe."""

    optimizer: Any = None
    loss: Any = None
    schedule: Any = None
    schedule_interval: str | None = None
    metrics: list[Any] | None = None


def as_recipe(recipe: RecipeSpec | dict[str, Any] | None) -> RecipeSpec:
    return split_recipe(recipe)[0]


def split_recipe(recipe: RecipeSpec | dict[str, Any] | None) -> tuple[RecipeSpec, Objects]:
    """The validated recipe, and the techniques given as objects (validated by their own builders).

    A torch optimizer, loss module or lr scheduler (or a factory or function)
    cannot be written to TOML, so it is checked where it is built, with
    trainlab's own message, instead of by the spec's schema.
    """
    objects = Objects()
    if recipe is None:
        return RecipeSpec(), objects
    if isinstance(recipe, RecipeSpec):
        return recipe, objects
    if not isinstance(recipe, dict):
        raise InputTypeError(f"recipe must be a dict or RecipeSpec, got {type(recipe).__name__}")
    plain = dict(recipe)
    objects.schedule_interval = plain.pop("schedule_interval", None)
    for key in OBJECT_FIELDS:
        value = plain.get(key)
        if value is not None and not isinstance(value, (str, dict)):
            setattr(objects, key, plain.pop(key))
    metrics = plain.get("metrics")
    if isinstance(metrics, (list, tuple)) and any(callable(m) for m in metrics):
        objects.metrics = list(plain.pop("metrics"))  # Metric objects; checked when built
    for key, value in plain.items():
        _check_plain(f"recipe.{key}", value)
    try:
        validated = RecipeSpec.model_validate(plain)
    except ValidationError as error:
        raise InputError(format_validation_error(error, "recipe")) from None
    if objects.loss is not None:
        make_loss(objects.loss, source="recipe.loss")
    return validated, objects


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
            stratify: bool = False, scaling: Any = "auto", seed: int = 0, sample_weight: Any = None,
            class_weight: Any = None) -> Prepared:
    """Split off validation data, fit the scaler on the training part, transform both parts.

    `sample_weight` (one per sample of `dataset`) follows its rows into the training part;
    `class_weight` multiplies it by each training sample's class weight (Keras).
    """
    x, y = dataset.x, dataset.y
    x_val = y_val = None
    weights = engine.config.check_weights(
        torch.as_tensor(np.asarray(sample_weight)) if sample_weight is not None and not isinstance(
            sample_weight, torch.Tensor) else sample_weight, x.shape[0], "sample_weight")
    if validation_data is not None:
        val = as_dataset(validation_data, source="validation_data")
        x_val, y_val = val.x, val.y
    elif validation_split:
        rows = torch.arange(x.shape[0]).unsqueeze(1)
        train_rows, y, val_rows, y_val = split_validation(rows, y, fraction=validation_split, stratify=stratify,
                                                          seed=seed)
        x, x_val = x[train_rows[:, 0]], x[val_rows[:, 0]]
        if weights is not None:
            weights = weights[train_rows[:, 0]]
    if class_weight is not None:
        weights = engine.config.class_weights_to_sample_weights(y, class_weight, weights)
    if scaling == "auto":
        scaling = "standardize" if x.is_floating_point() else None
    scaler = make_scaler(None if scaling == "none" else scaling, source="scaling")
    if scaler is not None:
        scaler.fit(x)
        x = scaler.transform(x)
        x_val = scaler.transform(x_val) if x_val is not None else None
    return Prepared(engine.TrainData(x, y, x_val, y_val, sample_weight=weights), scaler, dataset)


#: trainlab.fit's validation split for in-memory data (streamed data has none: pass validation_data).
DEFAULT_VALIDATION_SPLIT = 0.2


def fit(model: Any, data: Any, recipe: RecipeSpec | dict[str, Any] | None = None, *,
        validation_split: float | None = DEFAULT_VALIDATION_SPLIT, validation_data: Any = None, stratify: bool = False,
        scaling: Any = "auto", callbacks: Callback | Sequence[Callback] | None = None,
        verbose: int = 0, checkpoint_dir: str | Path | None = None, resume: bool = False,
        sample_weight: Any = None, class_weight: dict[int, float] | None = None,
        distributed: Shard | None = None, steps_per_epoch: int | None = None,
        validation_steps: int | None = None) -> History:
    """Train `model` on `data` with `recipe`; return its History.

    Args:
        model: a torch.nn.Module, a trainlab.Sequential, or a list of layers.
        data: a bundled data set's name ("iris"), a .csv/.npz path, a pair (x, y), a Dataset,
            or a torch TensorDataset or DataLoader over one (its batch size and shuffling are used;
            the tensors train on the fast in-memory path). Data that does not fit in memory is
            streamed, never gathered: a DataLoader over any other torch Dataset (with its workers
            and sampler), a torch Dataset (read with the recipe's batch_size and shuffle), or a
            generator or iterable of ``(x, y)`` / ``(x, y, sample_weight)`` batches. Streamed data
            is used as given (no scaling, no validation_split; see `trainlab.batches`).
        recipe: a RecipeSpec or a dict of its fields (optimizer, schedule, loss, metrics,
            batch_size, num_epochs, early_stopping, seed, ...). In a dict, `optimizer`, `loss`
            and `schedule` may also be objects: a torch optimizer built on the model's
            parameters or a factory ``lambda params: SGD(params, ...)``, a torch loss module or a
            function ``(output, target) -> loss``, a `torch.optim.lr_scheduler` scheduler or
            factory; ``schedule_interval`` ("step" or "epoch") says when a torch scheduler steps.
        validation_split: last fraction of the samples held out (Keras semantics); None for none.
            Streamed data has no split (the default is not applied): pass `validation_data`.
        validation_data: an explicit validation set instead of the split.
        stratify: take a stratified random validation part instead of the last samples.
        scaling: "auto" (the default: standardize float features), "standardize", "minmax"
            or None; fitted on the training part only and kept on the model as `model.scaler`.
            Unlike `Sequential.fit`, which uses inputs as given (as Keras does), trainlab.fit
            standardizes by default; pass scaling=None to train on the raw inputs (as a
            hand-written PyTorch loop does). The run summary (`history.params["scaling"]`,
            printed with verbose) says which.
        callbacks: one callback or a list, in addition to the recipe's early stopping.
        verbose: 0 silent, 1 progress bar, 2 one line per epoch.
        checkpoint_dir: where the resumable state is saved after every epoch.
        resume: continue from the checkpoint in `checkpoint_dir`, if there is one.
        sample_weight: one weight per sample of `data` (Keras semantics: the batch loss is
            sum_i w_i * loss_i / batch size); the held-out part's weights are dropped.
        class_weight: {class index: weight}, training only; multiplies `sample_weight`.
        distributed: this process's part of a run shared by several processes
            (`trainlab.scale.distributed`, inside torchrun); None trains alone.
        steps_per_epoch: batches per epoch, drawn from one iterator continued across epochs
            (Keras 3); needed for a generator that repeats. In-memory data is then read as Keras
            reads arrays: batches of a seeded permutation, a new pass when one is used up, and
            without a batch_size in the recipe, steps_per_epoch batches to a pass.
        validation_steps: batches of streamed `validation_data` per validation.

    Returns:
        History with `.history` (loss, metrics, val_*, lr per epoch), `.seed`,
        `.stop_reason`, `.recipe`, `.model`, `.scaler` and `.version`.
    """
    recipe, objects = split_recipe(recipe)
    if from_torch(data, where="data") is None and is_batch_stream(data):
        return _fit_stream(model, data, recipe, objects, validation_split=validation_split,
                           validation_data=validation_data, scaling=scaling, callbacks=callbacks, verbose=verbose,
                           checkpoint_dir=checkpoint_dir, resume=resume, sample_weight=sample_weight,
                           class_weight=class_weight, steps_per_epoch=steps_per_epoch,
                           validation_steps=validation_steps)
    if validation_steps is not None:
        raise InputError("validation_steps applies to validation data given in batches (a DataLoader over a "
                         "Dataset, a generator); in-memory validation data is evaluated whole.")
    data, loader = _from_batches(data, recipe)
    recipe = loader or recipe
    register_image_sets()
    dataset = as_dataset(data, source="data")
    if recipe.early_stopping is not None:
        from trainlab.spec import check_monitor, recorded_names

        check_monitor("recipe.early_stopping.monitor", recipe.early_stopping.monitor,
                      recorded_names(recipe, dataset.task))
    module = as_model(model)
    prepared = prepare(dataset, validation_split=validation_split, validation_data=validation_data,
                       stratify=stratify, scaling=scaling, seed=recipe.seed, sample_weight=sample_weight,
                       class_weight=class_weight)
    module.scaler = prepared.scaler
    optimizer, technique, all_callbacks = _technique_and_callbacks(recipe, objects, dataset.task, callbacks)
    transforms = tuple(augment.batch_transforms(recipe, num_classes=dataset.num_classes))
    config = _loop_config(recipe, verbose, checkpoint_dir, resume, transforms)
    if distributed is not None:
        config, all_callbacks = distributed.adapt(config, all_callbacks)
    if isinstance(module, Sequential):
        module.optimizer = optimizer  # as after Keras's compile: callbacks may steer its learning_rate
    train_data: engine.TrainData | engine.StreamData = prepared.data
    if steps_per_epoch is not None:
        train_data, config = _arrays_by_steps(prepared.data, recipe, config, steps_per_epoch)
    history = engine.train(module, train_data, technique, config, callbacks=all_callbacks)
    history.recipe = recipe
    history.scaler = prepared.scaler
    history.version = __version__
    history.dataset = dataset.name
    history.params["scaling"] = _scaling_note(prepared.scaler, entry="trainlab.fit", default=scaling == "auto")
    if verbose:
        print(f"Scaling: {history.params['scaling']}")
    if isinstance(module, Sequential) and module.compiled is None:
        # Saved with the model, so that trainlab.load(run_dir) comes back ready to evaluate.
        technique.loss = _resolved_loss(technique, module, prepared.data)
        module.compiled = technique
    return history


def _arrays_by_steps(data: engine.TrainData, recipe: RecipeSpec, config: engine.LoopConfig,
                     steps_per_epoch: int) -> tuple[engine.StreamData, engine.LoopConfig]:
    """In-memory data read as Keras 3 reads arrays with steps_per_epoch: the batches of a seeded
    permutation, continued across epochs; without a batch_size in the recipe, a pass takes
    steps_per_epoch batches."""
    check.int_at_least("steps_per_epoch", steps_per_epoch, 1)
    batch_size = (recipe.batch_size if "batch_size" in recipe.model_fields_set
                  else math.ceil(data.x.shape[0] / steps_per_epoch))
    rows = engine.TensorBatches(data.x, data.y, batch_size=batch_size, shuffle=recipe.shuffle, seed=recipe.seed,
                                sample_weight=data.sample_weight)
    validation = None
    if data.x_val is not None and data.y_val is not None:
        validation = engine.BatchSource(engine.TensorBatches(
            data.x_val, data.y_val, batch_size=max(batch_size, 1024), shuffle=False, seed=recipe.seed,
            sample_weight=data.val_sample_weight), where="validation_data")
    stream = engine.StreamData(engine.BatchSource(rows, steps_per_epoch=steps_per_epoch, where="data"), validation)
    return stream, dataclasses.replace(config, batch_size=batch_size)


def _technique_and_callbacks(recipe: RecipeSpec, objects: Objects, task: str,
                             callbacks: Callback | Sequence[Callback] | None
                             ) -> tuple[Optimizer, engine.Technique, list[Callback]]:
    """The recipe's optimizer, technique (loss, metrics chosen from the task) and callbacks."""
    optimizer = Optimizer(objects.optimizer if objects.optimizer is not None else recipe.optimizer,
                          source="recipe.optimizer")
    technique = engine.Technique(
        loss=objects.loss if objects.loss is not None else recipe.loss if recipe.loss is not None else "auto",
        optimizer=optimizer,
        metrics=objects.metrics if objects.metrics is not None else recipe.metrics if recipe.metrics is not None
        else (["accuracy"] if task == "classification" else ["mae"]),
        schedule=as_schedule(objects.schedule if objects.schedule is not None else recipe.schedule,
                             objects.schedule_interval, optimizer),
        task=task,
    )
    all_callbacks = as_callback_list(callbacks)
    if recipe.early_stopping is not None:
        all_callbacks = [EarlyStopping(**recipe.early_stopping.model_dump()), *all_callbacks]
    noise = augment.weight_noise(recipe)
    if noise is not None:
        all_callbacks = [noise, *all_callbacks]
    return optimizer, technique, all_callbacks


def _loop_config(recipe: RecipeSpec, verbose: int, checkpoint_dir: str | Path | None, resume: bool,
                 transforms: tuple[Any, ...]) -> engine.LoopConfig:
    return engine.LoopConfig(batch_size=recipe.batch_size, num_epochs=recipe.num_epochs,
                             shuffle=recipe.shuffle, seed=recipe.seed, device=recipe.device,
                             verbose=verbose, clip_grad_norm=recipe.clip_grad_norm,
                             clip_grad_value=recipe.clip_grad_value,
                             divergence_factor=recipe.divergence_factor,
                             checkpoint_dir=checkpoint_dir, resume=resume, batch_transforms=transforms)


def _fit_stream(model: Any, data: Any, recipe: RecipeSpec, objects: Objects, *, validation_split: float | None,
                validation_data: Any, scaling: Any, callbacks: Callback | Sequence[Callback] | None, verbose: int,
                checkpoint_dir: str | Path | None, resume: bool, sample_weight: Any,
                class_weight: dict[int, float] | None, steps_per_epoch: int | None,
                validation_steps: int | None) -> History:
    """trainlab.fit on batches read while training (see `trainlab.engine.source`)."""
    from trainlab.batches import as_source
    from trainlab.engine.driver import seeded

    if scaling not in ("auto", None, "none"):
        raise InputError(f"scaling={scaling!r}: streamed batches are used as given, since fitting a scaler "
                         "would need a pass over data that does not fit in memory. Scale inside the Dataset "
                         "(its __getitem__ or a transform), or pass scaling=None.")
    if sample_weight is not None:
        raise InputError("sample_weight: with data given in batches, give the weights in the batches, as "
                         "(x, y, sample_weight); sample_weight= is for in-memory data.")
    given = recipe.model_fields_set
    loader_size = getattr(data, "batch_size", None)
    if isinstance(data, torch.utils.data.DataLoader) and "batch_size" in given and loader_size != recipe.batch_size:
        raise InputError(f"recipe.batch_size={recipe.batch_size} but the DataLoader gives batches of "
                         f"{loader_size}; leave batch_size out of the recipe, or change the DataLoader")
    source = as_source(data, steps_per_epoch=steps_per_epoch, num_epochs=recipe.num_epochs, where="data",
                       batch_size=recipe.batch_size if isinstance(data, torch.utils.data.Dataset) else None,
                       shuffle=recipe.shuffle)
    validation = None
    if validation_data is not None:
        if is_batch_stream(validation_data) and from_torch(validation_data, where="validation_data") is None:
            validation = as_source(validation_data, steps_per_epoch=validation_steps, num_epochs=1,
                                   where="validation_data")
        else:
            val = as_dataset(validation_data, source="validation_data")
            validation = engine.BatchSource(engine.TensorBatches(val.x, val.y, batch_size=1024, shuffle=False,
                                                                 seed=0), where="validation_data")
    elif validation_split not in (None, 0, 0.0, DEFAULT_VALIDATION_SPLIT):
        raise InputError(f"validation_split={validation_split} takes the last samples of in-memory data; streamed "
                         "batches have none to take. Pass validation_data (a DataLoader or arrays) instead.")
    module = as_model(model)
    device = engine.resolve_device(recipe.device)
    with seeded(recipe.seed, device), torch.random.fork_rng(devices=[]):
        first = source.peek()
    if first[1] is None:
        raise InputError("data: the batches must hold targets, (x, y) or (x, y, sample_weight)")
    task = "regression" if first[1].is_floating_point() and first[1].dim() == 1 else "classification"
    with seeded(recipe.seed, device):
        out = engine.probe_outputs(module.to(device), first[0].to(device))
    num_classes = (out.shape[-1] if out.dim() > 1 and out.shape[-1] > 1 else 2) if task == "classification" else None
    if recipe.early_stopping is not None:
        from trainlab.spec import check_monitor, recorded_names

        check_monitor("recipe.early_stopping.monitor", recipe.early_stopping.monitor, recorded_names(recipe, task))
    optimizer, technique, all_callbacks = _technique_and_callbacks(recipe, objects, task, callbacks)
    transforms = tuple(augment.batch_transforms(recipe, num_classes=num_classes))
    config = _loop_config(recipe, verbose, checkpoint_dir, resume, transforms)
    if isinstance(module, Sequential):
        module.optimizer = optimizer
    history = engine.train(module, engine.StreamData(source, validation, class_weight), technique, config,
                           callbacks=all_callbacks)
    history.recipe = recipe
    history.scaler = None
    history.version = __version__
    history.dataset = type(data).__name__
    history.params["scaling"] = "none (streamed batches are used as given)"
    if verbose:
        print(f"Scaling: {history.params['scaling']}")
    if isinstance(module, Sequential) and module.compiled is None:
        if technique.loss == "auto":
            technique.loss = engine.auto_loss(task, first[1], out.shape[-1] if out.dim() > 1 else 1)
        module.compiled = technique
    return history


def _check_plain(path: str, value: Any) -> None:
    """A recipe field other than optimizer/loss/schedule holds what TOML can: names, numbers, tables."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return
    if isinstance(value, dict):
        for key, item in value.items():
            _check_plain(f"{path}.{key}", item)
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(f"{path}[{i}]", item)
        return
    hint = ", e.g. a metric name such as 'accuracy'" if "metrics" in path else ""
    raise InputTypeError(
        f"{path} is a {type(value).__name__}; recipe fields hold names, numbers, true/false, lists and "
        f"tables (as in a TOML spec). Only optimizer, loss and schedule may be Python objects. Give "
        f"{path} as a plain value{hint}."
    )


def _resolved_loss(technique: engine.Technique, module: nn.Module, data: engine.TrainData) -> Any:
    if technique.loss != "auto":
        return technique.loss
    out = engine.probe_outputs(module, data.x[:2].to(next(module.parameters()).device))
    return engine.auto_loss(technique.task, data.y, out.shape[-1] if out.dim() > 1 else 1)


def _from_batches(data: Any, recipe: RecipeSpec) -> tuple[Any, RecipeSpec | None]:
    """A TensorDataset or a DataLoader over one as (x, y); the loader's batch size and shuffling join the recipe."""
    found = from_torch(data, where="data")
    if found is None:
        return data, None
    if found.y is None:
        raise InputError("data: the TensorDataset holds inputs only; trainlab.fit needs (x, y)")
    if found.batch_size is None:
        return (found.x, found.y), None
    given = recipe.model_fields_set
    if "batch_size" in given and recipe.batch_size != found.batch_size:
        raise InputError(f"recipe.batch_size={recipe.batch_size} but the DataLoader gives batches of "
                         f"{found.batch_size}; leave batch_size out of the recipe, or change the DataLoader")
    if "shuffle" in given and recipe.shuffle != found.shuffle:
        raise InputError(f"recipe.shuffle={recipe.shuffle} but the DataLoader has shuffle={found.shuffle}; "
                         "say it in one place")
    return (found.x, found.y), recipe.model_copy(update={"batch_size": found.batch_size,
                                                         "shuffle": bool(found.shuffle)})


def dataset_from_spec(spec: DataSpec) -> Dataset:
    register_image_sets()
    if spec.name is not None:
        return as_dataset({"name": spec.name, **spec.options} if spec.options else spec.name,
                          source="data.name")
    from trainlab.data import from_csv, from_npz

    path = str(spec.path)
    if path.lower().endswith(".csv"):
        return from_csv(path, target=spec.target, **spec.options)
    if path.lower().endswith(".npz"):
        return from_npz(path, **spec.options)
    raise InputError(f"data.path must end in .csv or .npz, got '{path}'")


def check_before_training(spec: FitSpec, dataset: Dataset) -> None:
    """Check what can fail once the data is known, before anything is written.

    The split (no empty part), the model on two samples of the data (input
    shapes), the targets against the loss and the model's output width (labels
    out of range, binary_crossentropy with 3 classes), the metrics, the device
    and the monitored name. It works on a throwaway copy of the model, inside
    its own random state, so the run itself is unchanged.

    Raises:
        InputError: with the message training would have stopped with.
    """
    import torch

    from trainlab.metrics import metric as make_metric
    from trainlab.spec import check_monitor, recorded_names

    recipe = spec.recipe
    if recipe.early_stopping is not None:
        check_monitor("recipe.early_stopping.monitor", recipe.early_stopping.monitor,
                      recorded_names(recipe, dataset.task))
    engine.resolve_device(recipe.device)
    prepared = prepare(dataset, validation_split=spec.data.validation_split, stratify=spec.data.stratify,
                       scaling=spec.data.scaling, seed=recipe.seed)
    data = prepared.data
    with torch.random.fork_rng(devices=[]):
        model = Sequential(spec.model.layers, name=spec.name)
        out = engine.probe_outputs(model, data.x)
    num_outputs = out.shape[-1] if out.dim() > 1 else 1
    technique = _technique(recipe, dataset)
    loss_fn, _, _ = engine.resolve_loss(model, technique, data.y, num_outputs)
    for part, y in (("training", data.y), ("validation", data.y_val)):
        if y is None:
            continue
        try:
            loss_fn.check_target(y, num_outputs)
        except InputError as error:
            raise InputError(f"{part} targets: {error}") from None
    for m in technique.metrics:
        make_metric(m, loss=loss_fn, num_outputs=num_outputs, source="recipe.metrics")


def _technique(recipe: RecipeSpec, dataset: Dataset) -> engine.Technique:
    return engine.Technique(
        loss=recipe.loss if recipe.loss is not None else "auto",
        optimizer=recipe.optimizer,
        metrics=recipe.metrics if recipe.metrics is not None else
        (["accuracy"] if dataset.task == "classification" else ["mae"]),
        schedule=recipe.schedule,
        task=dataset.task,
    )


def run_spec(spec: FitSpec, *, runs_dir: str | Path = "runs", verbose: int = 1,
             callbacks: Sequence[Callback] = (), resume: bool = False,
             keep_checkpoint: bool = False) -> RunResult:
    """Train what a validated spec describes and write the run folder (see `trainlab.runs`).

    The data is loaded and every check that needs it (`check_before_training`)
    passes before anything is written, index row included. With `resume`, the
    newest unfinished run of the same spec continues from its last checkpoint
    and ends with the same weights as an uninterrupted run. A finished run drops
    its resume state unless `keep_checkpoint`.
    """
    run_folder(runs_dir, spec.name)  # the name stays inside the runs directory
    dataset = dataset_from_spec(spec.data)
    check_before_training(spec, dataset)

    def train(staging: Path, resuming: bool, history_file: Callback) -> tuple[History, nn.Module]:
        model = Sequential(spec.model.layers, name=spec.name)
        history = fit(model, dataset, spec.recipe, validation_split=spec.data.validation_split,
                      stratify=spec.data.stratify, scaling=spec.data.scaling,
                      callbacks=[*callbacks, history_file], verbose=verbose,
                      checkpoint_dir=staging / CHECKPOINT_DIR, resume=resuming)
        return history, model

    return write_run(Path(runs_dir), spec.name, spec_to_dict(spec), train, resume=resume,
                     keep_checkpoint=keep_checkpoint, recipe=spec.recipe)
