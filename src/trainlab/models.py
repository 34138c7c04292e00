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

import json
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from trainlab import check, engine
from trainlab.callbacks import Callback, History, as_callback_list
from trainlab.datasets import Dataset, from_arrays, scaler_from_dict, split_validation
from trainlab.datasets import scaler as make_scaler
from trainlab.errors import InputError, InputTypeError
from trainlab.layers import Embedding, Layer, layer_config, layer_from_config


class Sequential(nn.Module):
    """A linear stack of layers (Keras `Sequential`)."""

    def __init__(self, layers: Iterable[Any] | None = None, *, name: str | None = None) -> None:
        super().__init__()
        self.name = name or "sequential"
        self.layers = nn.ModuleList()
        self.compiled: engine.Technique | None = None
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
            name = (getattr(layer, "layer_name", None) or getattr(layer, "auto_name", None)
                    or type(layer).__name__)
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
                schedule: Any = None) -> None:
        """Choose optimizer, loss and metrics (names, tables or objects), as in Keras."""
        if loss is None:
            raise InputError("compile() needs a loss, e.g. loss='sparse_categorical_crossentropy' or 'mse'")
        # Resolve the names now so a typo fails at compile time, as in Keras.
        from trainlab.losses import loss as make_loss
        from trainlab.metrics import metric as make_metric
        from trainlab.optimizers import OPTIMIZERS

        resolved = make_loss(loss, source="compile(loss=...)")
        for m in metrics or []:
            make_metric(m, loss=resolved, source="compile(metrics=...)")
        if isinstance(optimizer, (str, dict)):
            OPTIMIZERS.entry(optimizer if isinstance(optimizer, str) else optimizer.get("name", ""),
                             source="compile(optimizer=...)")
        self.compiled = engine.Technique(loss=loss, optimizer=optimizer, metrics=list(metrics or []),
                                         schedule=schedule)

    def _technique(self) -> engine.Technique:
        if self.compiled is None:
            raise InputError("call model.compile(optimizer=..., loss=...) before fit/evaluate")
        return self.compiled

    def fit(self, x: Any = None, y: Any = None, batch_size: int | None = None, epochs: int = 1,
            verbose: int | str = "auto", callbacks: Callback | Sequence[Callback] | None = None,
            validation_split: float = 0.0, validation_data: Any = None, shuffle: bool = True,
            *, seed: int | None = None, stratify: bool = False, scaling: Any = None,
            device: str = "auto", sample_weight: Any = None, class_weight: dict[int, float] | None = None,
            initial_epoch: int = 0) -> History:
        """Train for `epochs` epochs (Keras semantics); returns the History.

        `validation_split` takes the last fraction of the samples before any
        shuffling (Keras); `stratify=True` takes a stratified random part
        instead. `scaling` ("standardize", "minmax") is fitted on the training
        part only and kept on the model, so `predict` and `evaluate` use it.
        """
        technique = self._technique()
        if batch_size is not None:
            check.int_at_least("batch_size", batch_size, 1, "Leave it None for Keras's default of 32.")
        data = _as_xy(x, y, "fit", tokens=self._takes_tokens())
        x_val = y_val = None
        xt, yt = data.x, data.y
        weights = engine.config.check_weights(
            None if sample_weight is None else torch.as_tensor(np.asarray(sample_weight)), xt.shape[0],
            "sample_weight")
        if validation_data is not None:
            if validation_split:
                raise InputError("give validation_split or validation_data, not both")
            val = _as_xy(*_pair(validation_data), "validation_data", tokens=self._takes_tokens())
            x_val, y_val = val.x, val.y
        elif validation_split:
            rows = torch.arange(xt.shape[0]).unsqueeze(1)
            train_rows, yt, val_rows, y_val = split_validation(rows, yt, fraction=validation_split,
                                                               stratify=stratify, seed=seed or 0)
            xt, x_val = xt[train_rows[:, 0]], xt[val_rows[:, 0]]
            weights = weights[train_rows[:, 0]] if weights is not None else None
        if class_weight is not None:
            weights = engine.config.class_weights_to_sample_weights(yt, class_weight, weights)
        if scaling is not None:
            self.scaler = make_scaler(scaling, source="scaling")
            if self.scaler is not None:
                self.scaler.fit(xt)
        xt = self._scale(xt)
        x_val = self._scale(x_val) if x_val is not None else None
        config = engine.LoopConfig(batch_size=batch_size or 32, num_epochs=epochs, shuffle=shuffle,
                                   seed=seed, device=device, verbose=_verbosity(verbose),
                                   initial_epoch=initial_epoch)
        history = engine.train(self, engine.TrainData(xt, yt, x_val, y_val, sample_weight=weights), technique, config,
                               callbacks=as_callback_list(callbacks))
        return history

    def _takes_tokens(self) -> bool:
        return bool(self.layers) and isinstance(self.layers[0], Embedding)

    def _scale(self, x: Tensor) -> Tensor:
        return self.scaler.transform(x) if self.scaler is not None else x

    def evaluate(self, x: Any = None, y: Any = None, batch_size: int | None = None, verbose: Any = "auto",
                 sample_weight: Any = None, return_dict: bool = False) -> Any:
        """Loss (and metrics) on (x, y); a float, a list [loss, *metrics], or a dict.

        With `sample_weight`, the loss is sum_i w_i * loss_i / N (Keras)."""
        technique = self._technique()
        data = _as_xy(x, y, "evaluate", tokens=self._takes_tokens())
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

    def predict(self, x: Any, batch_size: int | None = None, verbose: Any = "auto") -> np.ndarray:
        """The model's outputs on x as a NumPy array (scaling applied, eval mode)."""
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
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Sequential:
        model = cls([layer_from_config(c, source=f"layer {i + 1}") for i, c in enumerate(config["layers"])],
                    name=config.get("name"))
        if config.get("scaler") is not None:
            model.scaler = scaler_from_dict(config["scaler"])
        if config.get("input_shape") is not None:
            model.build(config["input_shape"])
        return model

    def to_json(self) -> str:
        return json.dumps(self.get_config())


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
        if not torch.isfinite(tensor).all():
            raise InputError("predict() got NaN or inf in x")
    return tensor


def _device_of(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))
