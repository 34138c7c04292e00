"""`Sequential`: a Keras-style stack of layers with compile / fit / evaluate / predict.

It is a plain `torch.nn.Module`, so anything that trains a module trains it,
and its `fit` is sugar over the one engine (`trainlab.engine.train`), the same
loop `trainlab.fit` drives.

Example:
    >>> import numpy as np
    >>> from trainlab import Sequential
    >>> from trainlab.layers import Dense
    >>> model = Sequential([Dense(8, activation="relu"), Dense(1)])
    >>> model.compile(optimizer="adam", loss="mse")
    >>> x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    >>> history = model.fit(x, x.sum(axis=1), epochs=2, batch_size=16, verbose=0, seed=0)
    >>> sorted(history.history)
    ['loss', 'lr']
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import secrets
import warnings
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import load_file, save_file
from safetensors.torch import save as save_safetensors
from torch import Tensor, nn

from trainlab import __version__, check, engine
from trainlab.batches import Gathered, as_source, from_torch, is_batch_stream
from trainlab.callbacks import Callback, History, as_callback_list
from trainlab.datasets import Dataset, from_arrays, scaler_from_dict, split_validation
from trainlab.datasets import scaler as make_scaler
from trainlab.errors import InputError, InputTypeError, did_you_mean
from trainlab.layers import Embedding, Layer, layer_config, layer_from_config
from trainlab.optimizers import Optimizer
from trainlab.schedules import as_schedule


class Sequential(nn.Module):
    """A linear stack of layers (Keras `Sequential`)."""

    def __init__(self, layers: Iterable[Any] | None = None, *, name: str | None = None) -> None:
        super().__init__()
        self.name = name or "sequential"
        self.layers = nn.ModuleList()
        self.compiled: engine.Technique | None = None
        self.optimizer: Optimizer | None = None  # set by compile, as in Keras
        self.scaler: Any = None
        self.stop_training = False
        for layer in layers or []:
            self.add(layer)

    # -- structure ------------------------------------------------------------
    def add(self, layer: Any) -> None:
        """Append a layer (a trainlab layer, any nn.Module, or a ``{type = ...}`` table)."""
        if isinstance(layer, dict):
            layer = layer_from_config(layer, source=f"layer {len(self.layers) + 1}")
        if not isinstance(layer, nn.Module):
            raise InputTypeError(
                f"Sequential takes layers (trainlab.layers or torch.nn modules); item {len(self.layers) + 1} "
                f"is a {type(layer).__name__}"
            )
        self.layers.append(layer)
        self._name_layers()

    def get_layer(self, name: str | None = None, index: int | None = None) -> nn.Module:
        """The layer called `name` (automatic names too: 'dense', 'dense_1', ...) or at `index`."""
        if (name is None) == (index is None):
            raise InputError("get_layer takes a name or an index, exactly one of them")
        if index is not None:
            if not -len(self.layers) <= index < len(self.layers):
                raise InputError(f"get_layer(index={index}): the model has {len(self.layers)} layers")
            return self.layers[index]
        names = [_layer_name(layer) for layer in self.layers]
        if name not in names:
            raise InputError(f"no layer named '{name}'. Layers: {', '.join(names)}.{did_you_mean(str(name), names)}")
        return self.layers[names.index(name)]

    @property
    def trainable(self) -> bool:
        """False freezes every layer (Keras's `model.trainable`); True unfreezes them all."""
        return all(p.requires_grad for p in self.parameters())

    @trainable.setter
    def trainable(self, value: bool) -> None:
        for layer in self.layers:
            if isinstance(layer, Layer):
                layer.trainable = value
            else:
                layer.requires_grad_(value)

    def _name_layers(self) -> None:
        counts: dict[str, int] = {}
        for layer in self.layers:
            if isinstance(layer, Layer) and layer.layer_name is None:
                base = _snake(type(layer).__name__)
                k = counts.get(base, 0)
                counts[base] = k + 1
                layer.auto_name = base if k == 0 else f"{base}_{k}"

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def forward_logits(self, x: Tensor) -> Tensor:
        """The output before the last layer's activation (for a fused softmax/sigmoid + cross-entropy)."""
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer.call_logits(x) if i == last else layer(x)  # type: ignore[operator]
        return x

    def output_activation(self) -> str | None:
        """Name of the final activation ('softmax', 'sigmoid', ...), or None."""
        if not self.layers:
            return None
        last = self.layers[-1]
        return getattr(last, "activation_name", None) if hasattr(last, "call_logits") else None

    def has_penalties(self) -> bool:
        return any(
            getattr(layer, attr, None) is not None
            for layer in self.modules() if isinstance(layer, Layer)
            for attr in ("kernel_regularizer", "bias_regularizer", "activity_regularizer",
                         "embeddings_regularizer")
        )

    def penalty(self) -> Tensor | None:
        """Sum of the layers' regularization penalties (weights, and the last forward's outputs)."""
        total: Tensor | None = None
        for layer in self.layers:
            if isinstance(layer, Layer):
                term = layer.penalty()
                if term is not None:
                    total = term if total is None else total + term
        return total

    @property
    def built(self) -> bool:
        return all(getattr(layer, "built", True) for layer in self.layers)

    def build(self, input_shape: Sequence[int] | None = None) -> None:
        """Create every layer's weights for inputs of `input_shape` (no batch dim)."""
        if self.built:
            return
        shape = tuple(input_shape) if input_shape is not None else self._declared_input_shape()
        if shape is None:
            raise InputError(
                "the model does not know its input shape yet: give the first layer input_shape=(...), "
                "call build(input_shape), or fit it on data first"
            )
        dtype = torch.long if self._takes_tokens() else torch.float32
        device = next((p.device for p in self.parameters()), torch.device("cpu"))
        engine.probe_outputs(self, torch.zeros((2, *shape), dtype=dtype, device=device))

    def _declared_input_shape(self) -> tuple[int, ...] | None:
        first = self.layers[0] if self.layers else None
        return getattr(first, "declared_input_shape", None)

    def summary(self, print_fn: Any = print) -> None:
        """Print each layer's name, output shape and parameter count, then the totals."""
        self.build()
        rows = []
        for layer in self.layers:
            name = _layer_name(layer)
            shape = getattr(layer, "output_shape", None)
            shown = "(None, " + ", ".join(map(str, shape)) + ")" if shape is not None else "?"
            count = _count(layer)
            rows.append((f"{name} ({type(layer).__name__})", shown, f"{count:,}"))
        widths = [max(len(r[i]) for r in [("Layer (type)", "Output Shape", "Param #"), *rows]) + 2
                  for i in range(3)]
        line = "-" * sum(widths)
        print_fn(f'Model: "{self.name}"')
        print_fn(line)
        print_fn("".join(h.ljust(w) for h, w in zip(("Layer (type)", "Output Shape", "Param #"), widths)))
        print_fn("=" * sum(widths))
        for r in rows:
            print_fn("".join(c.ljust(w) for c, w in zip(r, widths)))
        print_fn("=" * sum(widths))
        total = _count(self)
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        print_fn(f"Total params: {total:,}")
        print_fn(f"Trainable params: {trainable:,}")
        print_fn(f"Non-trainable params: {total - trainable:,}")

    def count_params(self) -> int:
        """All weights, as Keras counts them: parameters plus running statistics."""
        self.build()
        return _count(self)

    # -- Keras-style training ---------------------------------------------------
    def compile(self, optimizer: Any = "rmsprop", loss: Any = None, metrics: Sequence[Any] | None = None,
                schedule: Any = None, *, schedule_interval: str | None = None) -> None:
        """Choose optimizer, loss and metrics (names, tables or objects), as in Keras.

        Args:
            optimizer: a name ("adam"), a table ``{"name": "adam", "learning_rate": 1e-3}``
                (``lr`` or ``learning_rate``), a `trainlab.optimizers` object
                (``Adam(learning_rate=1e-3)``), a torch optimizer built on this
                model's parameters, an optimizer class, or a factory
                ``lambda params: torch.optim.SGD(params, lr=0.1)``. Afterwards
                `model.optimizer` holds it; callbacks read and set
                ``self.model.optimizer.learning_rate``.
            loss: a name, a table, a `trainlab.losses.Loss`, a torch loss module
                (``nn.CrossEntropyLoss(label_smoothing=0.1)``) or a function
                ``(output, target) -> loss``. A torch loss takes what the last
                layer outputs: with ``nn.CrossEntropyLoss``, end the model without
                a softmax (logits), as in PyTorch.
            metrics: names, tables or Metric objects.
            schedule: a trainlab schedule (name, table, object, ``step -> multiplier``)
                or a `torch.optim.lr_scheduler` scheduler or factory ``optimizer -> scheduler``.
            schedule_interval: for a torch scheduler, ``"step"`` (once per batch)
                or ``"epoch"``; see `trainlab.schedules.TorchSchedule`.
        """
        if loss is None:
            raise InputError("compile() needs a loss, e.g. loss='sparse_categorical_crossentropy' or 'mse'")
        # Resolve the names now so a typo fails at compile time, as in Keras.
        from trainlab.losses import loss as make_loss
        from trainlab.metrics import metric as make_metric

        resolved = make_loss(loss, source="compile(loss=...)")
        for m in metrics or []:
            make_metric(m, loss=resolved, source="compile(metrics=...)")
        _warn_logits(loss, self.output_activation())
        self.optimizer = Optimizer(optimizer, source="compile(optimizer=...)")
        self.compiled = engine.Technique(loss=loss, optimizer=self.optimizer, metrics=list(metrics or []),
                                         schedule=as_schedule(schedule, schedule_interval, self.optimizer))

    def compile_config(self) -> dict[str, Any] | None:
        """The compile arguments as JSON (saved with the model), or None when one of them is an object."""
        technique = self.compiled
        if technique is None:
            return None
        named = (str, dict)
        parts = [technique.loss, technique.schedule, *technique.metrics]
        optimizer = technique.optimizer
        if not all(p is None or isinstance(p, named) for p in parts) or not (
                isinstance(optimizer, named) or (isinstance(optimizer, Optimizer)
                                                 and isinstance(optimizer.spec, named))):
            return None
        config = optimizer.get_config() if isinstance(optimizer, Optimizer) else optimizer
        return {"optimizer": config, "loss": technique.loss, "metrics": list(technique.metrics),
                "schedule": technique.schedule}

    def _technique(self) -> engine.Technique:
        if self.compiled is None:
            raise InputError("call model.compile(optimizer=..., loss=...) before fit/evaluate")
        return self.compiled

    def fit(self, x: Any = None, y: Any = None, batch_size: int | None = None, epochs: int = 1,
            verbose: int | str = "auto", callbacks: Callback | Sequence[Callback] | None = None,
            validation_split: float = 0.0, validation_data: Any = None, shuffle: bool = True,
            *, initial_epoch: int = 0, steps_per_epoch: int | None = None, validation_steps: int | None = None,
            seed: int | None = None, stratify: bool = False, scaling: Any = None,
            device: str = "auto", sample_weight: Any = None,
            class_weight: dict[int, float] | None = None) -> History:
        """Train for `epochs` epochs (Keras semantics); returns the History.

        Inputs are used as given, as in Keras: no scaling unless `scaling`
        ("standardize", "minmax") is passed. (`trainlab.fit` standardizes float
        features by default.) A scaler is fitted on the training part only and
        kept on the model, so `predict` and `evaluate` use it.

        `x` may be arrays or tensors with `y`; a Dataset; a torch TensorDataset
        or a DataLoader over one (in memory, the fast path); or data read while
        training, never gathered: a DataLoader over any other torch Dataset, a
        torch Dataset, a generator or iterable of ``(x, y)`` or
        ``(x, y, sample_weight)`` batches (see `trainlab.batches`). As in Keras 3,
        `steps_per_epoch` batches make an epoch, drawn from one iterator that
        continues across epochs; with arrays and no `batch_size`, a pass takes
        `steps_per_epoch` batches. `validation_split` takes the last fraction of
        the samples before any shuffling (Keras); `stratify=True` takes a
        stratified random part instead. `validation_data` may be batches too,
        `validation_steps` of them. `initial_epoch` is the epoch to start at
        (to continue an earlier fit): epochs initial_epoch .. epochs - 1 run.
        """
        technique = self._technique()
        if batch_size is not None:
            check.int_at_least("batch_size", batch_size, 1, "Leave it None for Keras's default of 32.")
        check.int_at_least("fit: initial_epoch", initial_epoch, 0)
        tokens = self._takes_tokens()
        split_seed = seed or 0
        seed = seed if seed is not None else secrets.randbits(31)
        config = engine.LoopConfig(batch_size=batch_size or 32, num_epochs=epochs, shuffle=shuffle,
                                   seed=seed, device=device, verbose=_verbosity(verbose),
                                   initial_epoch=initial_epoch)
        found = from_torch(x, where="fit") if y is None else None
        if found is None and y is None and is_batch_stream(x):
            return self._fit_stream(x, technique, config, batch_size=batch_size, steps_per_epoch=steps_per_epoch,
                                    validation_split=validation_split, validation_data=validation_data,
                                    validation_steps=validation_steps, scaling=scaling, sample_weight=sample_weight,
                                    class_weight=class_weight, callbacks=callbacks)
        train = found or Gathered(x, y)
        if train.batch_size is not None:
            if batch_size is not None and batch_size != train.batch_size:
                raise InputError(f"fit(batch_size={batch_size}) but the data comes in batches of "
                                 f"{train.batch_size}; leave batch_size out when x gives batches")
            batch_size = train.batch_size
        if train.shuffle is not None:
            shuffle = train.shuffle
        data = _as_xy(train.x, train.y, "fit", tokens=tokens)
        x_val = y_val = None
        xt, yt = data.x, data.y
        weights = engine.config.check_weights(
            None if sample_weight is None else torch.as_tensor(np.asarray(sample_weight)), xt.shape[0],
            "sample_weight")
        val_stream = None
        if validation_data is not None:
            if validation_split:
                raise InputError("give validation_split or validation_data, not both")
            val_found = from_torch(validation_data, where="validation_data")
            if val_found is not None:
                val = _as_xy(val_found.x, val_found.y, "validation_data", tokens=tokens)
                x_val, y_val = val.x, val.y
            elif is_batch_stream(validation_data):
                val_stream = as_source(validation_data, steps_per_epoch=validation_steps, num_epochs=1,
                                       where="validation_data", tokens=tokens)
            else:
                val = _as_xy(*_pair(validation_data), "validation_data", tokens=tokens)
                x_val, y_val = val.x, val.y
        elif validation_split:
            rows = torch.arange(xt.shape[0]).unsqueeze(1)
            train_rows, yt, val_rows, y_val = split_validation(rows, yt, fraction=validation_split,
                                                               stratify=stratify, seed=split_seed)
            xt, x_val = xt[train_rows[:, 0]], xt[val_rows[:, 0]]
            weights = weights[train_rows[:, 0]] if weights is not None else None
        if class_weight is not None:
            weights = engine.config.class_weights_to_sample_weights(yt, class_weight, weights)
        if scaling is not None:
            if val_stream is not None:
                raise InputError("fit: scaling applies to arrays; validation_data given in batches is used as "
                                 "given. Scale the batches in the Dataset, or pass validation arrays.")
            self.scaler = make_scaler(scaling, source="scaling")
            if self.scaler is not None:
                self.scaler.fit(xt)
        xt = self._scale(xt)
        x_val = self._scale(x_val) if x_val is not None else None
        if steps_per_epoch is not None or val_stream is not None:
            # Keras 3: with steps_per_epoch and no batch_size, one pass over the arrays takes steps_per_epoch
            # batches; the batches continue across epochs, and a new (reshuffled) pass begins when one ends.
            if batch_size is None and steps_per_epoch is not None:
                check.int_at_least("fit: steps_per_epoch", steps_per_epoch, 1)
                batch_size = math.ceil(xt.shape[0] / steps_per_epoch)
            config = dataclasses.replace(config, batch_size=batch_size or 32)
            arrays = engine.TensorBatches(xt, yt, batch_size=config.batch_size, shuffle=shuffle, seed=seed,
                                        sample_weight=weights)
            if val_stream is None and x_val is not None and y_val is not None:
                val_stream = engine.BatchSource(engine.TensorBatches(
                    x_val, y_val, batch_size=max(config.batch_size, 1024), shuffle=False, seed=seed),
                    where="validation_data", tokens=tokens)
            stream = engine.StreamData(engine.BatchSource(arrays, steps_per_epoch=steps_per_epoch, where="fit",
                                                          tokens=tokens), val_stream)
            return self._train(stream, technique, config, callbacks)
        config = dataclasses.replace(config, batch_size=batch_size or 32, shuffle=shuffle)
        return self._train(engine.TrainData(xt, yt, x_val, y_val, sample_weight=weights), technique, config,
                           callbacks)

    def _train(self, data: engine.TrainData | engine.StreamData, technique: engine.Technique,
               config: engine.LoopConfig, callbacks: Callback | Sequence[Callback] | None) -> History:
        history = engine.train(self, data, technique, config, callbacks=as_callback_list(callbacks))
        history.params["scaling"] = _scaling_note(self.scaler, entry="Sequential.fit", default=False)
        if config.verbose:
            print(f"Scaling: {history.params['scaling']}")
        return history

    def _fit_stream(self, x: Any, technique: engine.Technique, config: engine.LoopConfig, *,
                    batch_size: int | None, steps_per_epoch: int | None, validation_split: float,
                    validation_data: Any, validation_steps: int | None, scaling: Any, sample_weight: Any,
                    class_weight: dict[int, float] | None,
                    callbacks: Callback | Sequence[Callback] | None) -> History:
        """fit on batches read while training (a DataLoader, a torch Dataset, a generator): see trainlab.batches."""
        tokens = self._takes_tokens()
        if validation_split:
            raise InputError("fit: validation_split takes the last samples of arrays; data given in batches "
                             "has no last samples to take. Pass validation_data (arrays or batches) instead.")
        if sample_weight is not None:
            raise InputError("fit: with data given in batches, give the weights in the batches, as "
                             "(x, y, sample_weight); sample_weight= is for arrays.")
        if scaling is not None or self.scaler is not None:
            raise InputError("fit: scaling applies to arrays; batches are used as given (as Keras does). "
                             "Scale inside the Dataset or generator, or add a Normalization step to the model.")
        source = as_source(x, steps_per_epoch=steps_per_epoch, num_epochs=config.num_epochs - config.initial_epoch,
                           where="fit", batch_size=batch_size, shuffle=config.shuffle, tokens=tokens)
        validation = None
        if validation_data is not None:
            val_found = from_torch(validation_data, where="validation_data")
            if val_found is not None or not is_batch_stream(validation_data):
                val = (_as_xy(val_found.x, val_found.y, "validation_data", tokens=tokens) if val_found is not None
                       else _as_xy(*_pair(validation_data), "validation_data", tokens=tokens))
                validation = engine.BatchSource(engine.TensorBatches(
                    val.x, val.y, batch_size=max(batch_size or 32, 1024), shuffle=False, seed=0),
                    steps_per_epoch=validation_steps, where="validation_data", tokens=tokens)
            else:
                validation = as_source(validation_data, steps_per_epoch=validation_steps, num_epochs=1,
                                       where="validation_data", tokens=tokens)
        return self._train(engine.StreamData(source, validation, class_weight), technique, config, callbacks)

    def _takes_tokens(self) -> bool:
        return bool(self.layers) and isinstance(self.layers[0], Embedding)

    def _scale(self, x: Tensor) -> Tensor:
        return self.scaler.transform(x) if self.scaler is not None else x

    def evaluate(self, x: Any = None, y: Any = None, batch_size: int | None = None, verbose: Any = "auto",
                 sample_weight: Any = None, return_dict: bool = False, *, steps: int | None = None) -> Any:
        """Loss (and metrics) on (x, y); a float, a list [loss, *metrics], or a dict.

        With `sample_weight`, the loss is sum_i w_i * loss_i / N (Keras).
        `x` may also be batches (a DataLoader, a TensorDataset, a generator of
        ``(x, y)``: `steps` of them, or until it ends).
        """
        technique = self._technique()
        gathered = from_torch(x, where="evaluate") if y is None else None
        if gathered is None and y is None and is_batch_stream(x):
            return self._evaluate_stream(x, technique, batch_size=batch_size, steps=steps,
                                         sample_weight=sample_weight, return_dict=return_dict)
        if steps is not None:
            raise InputError("evaluate: steps applies to data given in batches (a generator, a list of (x, y) "
                             "batches, a DataLoader); with arrays, every sample is evaluated")
        gathered = gathered or Gathered(x, y)
        data = _as_xy(gathered.x, gathered.y, "evaluate", tokens=self._takes_tokens())
        device = _device_of(self)
        xs = self._scale(data.x.to(device))
        out = engine.probe_outputs(self, xs)
        num_outputs = out.shape[-1] if out.dim() > 1 else 1
        loss_fn, forward, from_logits = engine.resolve_loss(self, technique, data.y, num_outputs)
        yt = engine._targets(data.y, loss_fn, num_outputs, "evaluation", device)
        metrics = engine._metrics(technique.metrics, loss_fn, num_outputs)
        weights = engine.config.check_weights(
            None if sample_weight is None else torch.as_tensor(np.asarray(sample_weight)), xs.shape[0],
            "sample_weight")
        logs = engine.evaluate_tensors(self, forward, loss_fn, metrics, xs, yt,
                                       batch_size=batch_size or 1024, from_logits=from_logits,
                                       sample_weight=weights.to(device) if weights is not None else None)
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def _evaluate_stream(self, x: Any, technique: engine.Technique, *, batch_size: int | None,
                         steps: int | None, sample_weight: Any, return_dict: bool) -> Any:
        if sample_weight is not None:
            raise InputError("evaluate: with data given in batches, give the weights in the batches, as "
                             "(x, y, sample_weight); sample_weight= is for arrays.")
        source = as_source(x, steps_per_epoch=steps, num_epochs=1, where="evaluate", batch_size=batch_size,
                           tokens=self._takes_tokens())
        device = _device_of(self)
        first = source.peek()
        if first[1] is None:
            raise InputError("evaluate: the batches must hold targets, (x, y) or (x, y, sample_weight)")
        xs = self._scale(first[0].to(device))
        out = engine.probe_outputs(self, xs)
        num_outputs = out.shape[-1] if out.dim() > 1 else 1
        loss_fn, forward, from_logits = engine.resolve_loss(self, technique, first[1], num_outputs)
        metrics = engine._metrics(technique.metrics, loss_fn, num_outputs)
        logs = engine.source.evaluate_stream(self, lambda xb: forward(self._scale(xb)), loss_fn, metrics,
                                             source.epoch(), num_outputs=num_outputs, from_logits=from_logits,
                                             device=device)
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict(self, x: Any, batch_size: int | None = None, verbose: Any = "auto", *,
                steps: int | None = None) -> np.ndarray:
        """The model's outputs on x as a NumPy array (scaling applied, eval mode).

        `x` may also be batches (a DataLoader, a TensorDataset, a generator of
        ``x`` or ``(x, y)``: `steps` of them, or until it ends).
        """
        found = from_torch(x, where="predict")
        if found is not None:
            x = found.x
        elif is_batch_stream(x):
            source = as_source(x, steps_per_epoch=steps, num_epochs=1, where="predict", batch_size=batch_size,
                               tokens=self._takes_tokens())
            return engine.source.predict_stream(self, source.epoch(), device=_device_of(self),
                                                transform=self._scale).numpy()
        elif steps is not None:
            raise InputError("predict: steps applies to data given in batches (a generator, a DataLoader); "
                             "with arrays, every sample is predicted")
        tensor = _as_x(x, tokens=self._takes_tokens())
        xs = self._scale(tensor.to(_device_of(self)))
        if not self.built:
            engine.probe_outputs(self, xs)
        return engine.predict_tensors(self, xs, batch_size=batch_size or 1024).cpu().numpy()

    # -- weights and config -----------------------------------------------------
    def get_weights(self) -> list[np.ndarray]:
        return [t.detach().cpu().numpy().copy() for t in self.state_dict().values()]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        state = self.state_dict()
        if len(weights) != len(state):
            raise InputError(f"set_weights got {len(weights)} arrays; the model has {len(state)}")
        self.load_state_dict({k: torch.as_tensor(np.asarray(w)) for k, w in zip(state, weights)})

    def get_config(self) -> dict[str, Any]:
        """JSON-safe description that `Sequential.from_config` rebuilds."""
        layers = []
        for layer in self.layers:
            if not isinstance(layer, Layer):
                raise InputError(f"layer {type(layer).__name__} is not a trainlab layer and cannot be "
                                 "described in a config")
            layers.append(layer_config(layer))
        config: dict[str, Any] = {"name": self.name, "layers": layers}
        first = self.layers[0] if self.layers else None
        if isinstance(first, Layer) and first.input_shape is not None:
            config["input_shape"] = list(first.input_shape)
        if self.scaler is not None:
            config["scaler"] = self.scaler.to_dict()
        compiled = self.compile_config()
        if compiled is not None:
            config["compile"] = compiled
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Sequential:
        model = cls([layer_from_config(c, source=f"layer {i + 1}") for i, c in enumerate(config["layers"])],
                    name=config.get("name"))
        if config.get("scaler") is not None:
            model.scaler = scaler_from_dict(config["scaler"])
        if config.get("input_shape") is not None:
            model.build(config["input_shape"])
        if config.get("compile") is not None:
            model.compile(**{k: v for k, v in config["compile"].items() if v is not None})
        return model

    # -- files (no pickle: JSON for the config, safetensors for the weights) ----
    def save(self, filepath: str | Path) -> None:
        """Write the model to a ``.keras`` file: a zip of JSON config and safetensors weights.

        As Keras's format, it holds the architecture, the compile arguments
        (when they are names or tables) and the weights, and
        `trainlab.models.load_model` rebuilds it, compiled; unlike Keras's, the
        weights are safetensors and nothing in it is executable. The optimizer's
        moments are not saved: a loaded model's next fit starts them afresh.
        """
        path = Path(filepath)
        _refuse_h5(path, "save", ".keras")
        if path.suffix != ".keras":
            raise InputError(f"save('{path}'): a model file ends in .keras (a zip of JSON config and safetensors "
                             "weights); for the weights alone use save_weights('....weights.safetensors')")
        self.build()
        config = {"format": MODEL_FORMAT, "trainlab_version": __version__, **self.get_config()}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(CONFIG_ENTRY, json.dumps(config, indent=2))
            archive.writestr(WEIGHTS_ENTRY, save_safetensors(_state(self)))
            archive.writestr("metadata.json", json.dumps({"trainlab_version": __version__,
                                                          "weights_format": "safetensors"}))
        os.replace(tmp, path)

    def save_weights(self, filepath: str | Path) -> None:
        """Write the weights alone to a ``.safetensors`` file (Keras: ``.weights.h5``)."""
        path = Path(filepath)
        _refuse_h5(path, "save_weights", ".weights.safetensors")
        if path.suffix != ".safetensors":
            raise InputError(f"save_weights('{path}'): weights files end in .safetensors, e.g. "
                             "'model.weights.safetensors'")
        self.build()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        save_file(_state(self), str(tmp), metadata={"format": "pt", "trainlab": __version__})
        os.replace(tmp, path)

    def load_weights(self, filepath: str | Path) -> None:
        """Read weights written by `save_weights` (or the weights inside a ``.keras`` file)."""
        path = Path(filepath)
        _refuse_h5(path, "load_weights", ".weights.safetensors")
        if not path.is_file():
            raise InputError(f"load_weights: '{path}' does not exist")
        if path.suffix == ".keras":
            state = _read_keras(path)[1]
        else:
            try:
                state = load_file(str(path))
            except Exception as error:  # safetensors raises its own error types on a bad header
                raise InputError(f"{path} is not a valid safetensors file: {error}") from None
        self._load_state(state, str(path))

    def _load_state(self, state: dict[str, Tensor], where: str) -> None:
        if not self.built and self._declared_input_shape() is not None:
            self.build()
        if not self.built:
            raise InputError(f"load weights from {where}: the model is not built yet; call model.build(input_shape) "
                             "or give the first layer input_shape=(...) first")
        mine = self.state_dict()
        if set(state) != set(mine) or any(state[k].shape != mine[k].shape for k in mine):
            raise InputError(f"the weights in {where} do not fit this model: it has "
                             f"{[(k, tuple(v.shape)) for k, v in mine.items()]}, the file has "
                             f"{[(k, tuple(v.shape)) for k, v in state.items()]}")
        self.load_state_dict(state)

    def to_json(self) -> str:
        return json.dumps(self.get_config())


MODEL_FORMAT = "trainlab.Sequential"
CONFIG_ENTRY = "config.json"
WEIGHTS_ENTRY = "model.weights.safetensors"


def load_model(filepath: str | Path, *, compile: bool = True) -> Sequential:
    """Rebuild a model saved by `Sequential.save` (a ``.keras`` file), or a run or model folder.

    It comes back compiled when it was saved compiled (pass ``compile=False``
    to skip that), so `evaluate` works at once. Only JSON and safetensors are
    read: loading a file from someone else runs none of their code.

    Example:
        >>> import tempfile, os
        >>> from trainlab.layers import Dense
        >>> model = Sequential([Dense(2, input_shape=(3,))])
        >>> model.compile(optimizer="sgd", loss="mse")
        >>> path = os.path.join(tempfile.mkdtemp(), "m.keras")
        >>> model.save(path)
        >>> loaded = load_model(path)
        >>> loaded.optimizer.name, [w.shape for w in loaded.get_weights()]
        ('sgd', [(2, 3), (2,)])
    """
    path = Path(filepath)
    _refuse_h5(path, "load_model", ".keras")
    if path.suffix != ".keras":
        from trainlab.runs import load

        model = load(path)
        if not isinstance(model, Sequential):
            raise InputError(f"load_model: '{path}' holds an ensemble, not one model; load it with trainlab.load")
        if not compile:
            model.compiled = model.optimizer = None
        return model
    if not path.is_file():
        raise InputError(f"load_model: '{path}' does not exist")
    config, state = _read_keras(path)
    if not compile:
        config.pop("compile", None)
    model = Sequential.from_config(config)
    model._load_state(state, str(path))
    model.eval()
    return model


def _read_keras(path: Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if CONFIG_ENTRY not in names or WEIGHTS_ENTRY not in names:
                raise InputError(f"{path} is not a trainlab .keras file: it needs {CONFIG_ENTRY} and {WEIGHTS_ENTRY}"
                                 + (" (a Keras-written .keras file holds HDF5 weights, which trainlab does not read)"
                                    if "model.weights.h5" in names else ""))
            config = json.loads(archive.read(CONFIG_ENTRY))
            state = load_safetensors(archive.read(WEIGHTS_ENTRY))
    except zipfile.BadZipFile:
        raise InputError(f"{path} is not a .keras file (not a zip archive)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: {CONFIG_ENTRY} is not valid JSON: {error}") from None
    except InputError:
        raise
    except Exception as error:  # safetensors raises its own error types on a bad header
        raise InputError(f"{path}: the weights are not a valid safetensors file: {error}") from None
    if not isinstance(config, dict) or config.get("format") != MODEL_FORMAT:
        raise InputError(f"{path}: {CONFIG_ENTRY} does not describe a {MODEL_FORMAT}")
    return config, state


def _refuse_h5(path: Path, where: str, alternative: str) -> None:
    if path.suffix.lower() in (".h5", ".hdf5"):
        raise InputError(
            f"{where}('{path}'): trainlab does not write or read HDF5 (.h5) files. Use '{path.stem.removesuffix('.weights')}"
            f"{alternative}' instead: JSON for the configuration and safetensors for the weights, so that "
            "loading a file never runs code."
        )


def _state(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def _warn_logits(loss: Any, activation: str | None) -> None:
    """A torch loss that takes logits after a softmax/sigmoid layer trains on the wrong numbers."""
    takes_logits = (nn.CrossEntropyLoss, nn.BCEWithLogitsLoss)
    if isinstance(loss, takes_logits) and activation in ("softmax", "sigmoid"):
        warnings.warn(
            f"compile(loss={type(loss).__name__}()) takes logits, but the model ends in a {activation}, so the loss "
            f"would get probabilities. Remove the last layer's activation (PyTorch's convention), or use "
            f"loss='sparse_categorical_crossentropy' / 'binary_crossentropy', which fuse the {activation} stably.",
            stacklevel=3,
        )


def _layer_name(layer: nn.Module) -> str:
    return str(getattr(layer, "layer_name", None) or getattr(layer, "auto_name", None) or type(layer).__name__)


def _scaling_note(scaler: Any, *, entry: str, default: bool) -> str:
    """What the run did to the inputs, for the run summary (`history.params["scaling"]`)."""
    if scaler is not None:
        kind = type(scaler).__name__.lower()
        note = "; trainlab.fit's default" if default else ""
        return f"{kind} (fitted on the training part{note})"
    if entry == "Sequential.fit":
        return "none (Sequential.fit uses inputs as given, as Keras does)"
    return "none (inputs used as given)"


def _count(module: nn.Module) -> int:
    # Keras counts BatchNormalization's moving mean and variance as non-trainable params.
    return (sum(p.numel() for p in module.parameters())
            + sum(b.numel() for b in module.buffers() if b.is_floating_point()))


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and (not name[i - 1].isupper() or (i + 1 < len(name) and name[i + 1].islower())):
            out.append("_")
        out.append(ch.lower())
    return "".join(out).replace("2_d", "2d").replace("1_d", "1d")


def _verbosity(verbose: int | str) -> int:
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2):
        raise InputError(f"verbose must be 'auto', 0, 1 or 2, got {verbose!r}")
    return int(verbose)


def _pair(validation_data: Any) -> tuple[Any, Any]:
    if isinstance(validation_data, Dataset):
        return validation_data.x, validation_data.y
    if isinstance(validation_data, (tuple, list)) and len(validation_data) == 2:
        return validation_data[0], validation_data[1]
    raise InputError("validation_data must be a pair (x_val, y_val) or a Dataset")


def _as_xy(x: Any, y: Any, where: str, *, tokens: bool = False) -> Dataset:
    if isinstance(x, Dataset) and y is None:
        return x
    if x is None or y is None:
        raise InputError(f"{where}() needs x and y (arrays or tensors), or a Dataset as x")
    return from_arrays(x, y, name=where, tokens=tokens)


def _as_x(x: Any, *, tokens: bool = False) -> Tensor:
    if isinstance(x, Dataset):
        return x.x
    tensor = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x)
    if not tokens or tensor.is_floating_point():
        tensor = tensor.float()
        if not check.all_finite(tensor):
            raise InputError("predict() got NaN or inf in x")
    return tensor


def _device_of(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))
