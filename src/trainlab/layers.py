"""Keras-style layers on PyTorch, with input shapes inferred on first use.

Each layer is a `torch.nn.Module` whose weights are created by `build` the first
time it sees an input (so `Dense(64)` needs no input size), or right away when
`input_shape=` is given, as in Keras. Data layout follows Keras: features last,
images as (batch, height, width, channels), sequences as (batch, steps,
features). Weight layers take `activation=`, `kernel_initializer=`,
`bias_initializer=`, `kernel_regularizer=`, `bias_regularizer=` and
`activity_regularizer=`, each by registry name, by ``{"name": ..., **settings}``
table, or by object.

`LAYERS` is the registry that a model written in TOML is read through: the
entry names are the class names (``{type = "Dense", units = 64}``).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainlab import check
from trainlab.activations import activation as make_activation
from trainlab.errors import InputError
from trainlab.initializers import initializer as make_initializer
from trainlab.registry import Registry
from trainlab.regularizers import regularizer as make_regularizer

LAYERS: Registry[Any] = Registry("layer")

Shape = tuple[int, ...]


def _pair(field: str, value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    pair = tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair):
        raise InputError(f"{field} must be an int or a pair of ints, got {value!r}")
    return (int(pair[0]), int(pair[1]))


def _same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """Keras/TensorFlow 'same' padding: output = ceil(size / stride), extra pad at the end."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class Layer(nn.Module):
    """Base of the Keras-style layers: lazy `build`, `call`, a config that rebuilds it.

    Subclasses implement `build(input_shape)` (shape without the batch dim) when
    they own weights, and `call(x)`. `get_config()` returns the constructor
    arguments, so a model can be written to JSON and rebuilt.
    """

    def __init__(self, *, name: str | None = None, input_shape: Sequence[int] | None = None,
                 trainable: bool = True, **config: Any) -> None:
        super().__init__()
        if not isinstance(trainable, bool):
            raise InputError(f"{type(self).__name__}: trainable must be true or false, got {trainable!r}")
        self._trainable = trainable
        self.layer_name = name
        self.auto_name: str | None = None
        self.built = False
        self.input_shape: Shape | None = None
        self.output_shape: Shape | None = None
        self._config = {k: v for k, v in config.items()}
        if name is not None:
            self._config["name"] = name
        if not trainable:
            self._config["trainable"] = False
        if input_shape is not None:
            if isinstance(input_shape, int):
                input_shape = (input_shape,)
            shape = tuple(input_shape)
            if not all(isinstance(d, int) and d > 0 for d in shape):
                raise InputError(
                    f"{type(self).__name__}: input_shape must be a tuple of positive ints without "
                    f"the batch dimension, e.g. (4,), got {input_shape!r}"
                )
            self._config["input_shape"] = list(shape)
            self.declared_input_shape: Shape | None = shape
        else:
            self.declared_input_shape = None

    @classmethod
    def accepted_settings(cls) -> list[str]:
        """Every named constructor argument along the class chain (for typo checks)."""
        names: list[str] = []
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None or klass is nn.Module or klass is object:
                continue
            for name, param in inspect.signature(init).parameters.items():
                if name != "self" and param.kind not in (param.VAR_KEYWORD, param.VAR_POSITIONAL) \
                        and name not in names:
                    names.append(name)
        return names

    # -- building -------------------------------------------------------------
    def build(self, input_shape: Shape) -> None:  # noqa: B027 - optional override
        """Create the weights for inputs of `input_shape` (no batch dim)."""

    def call(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        if not self.built:
            self._build_for(x)
            y = self.call(x)
            self.output_shape = tuple(y.shape[1:])
            return y
        return self.call(x)

    def _build_for(self, x: Tensor) -> None:
        shape = tuple(x.shape[1:])
        if self.declared_input_shape is not None and shape != self.declared_input_shape:
            raise InputError(
                f"layer '{self.display_name}' ({type(self).__name__}) was declared with "
                f"input_shape={self.declared_input_shape} but received inputs of shape {shape} "
                f"(batch dimension left out). Check the data's shape or the layer's input_shape."
            )
        self.check_input(shape)
        self.input_shape = shape
        self.build(shape)
        self.to(device=x.device)
        self.built = True
        if not self._trainable:
            self.trainable = False  # weights made by build are frozen too

    def check_input(self, shape: Shape) -> None:
        """Raise InputError when inputs of `shape` cannot go through this layer."""

    def penalty(self) -> Tensor | None:
        """The regularization penalty of this layer's weights and last outputs, or None."""
        return None

    @property
    def display_name(self) -> str:
        return self.layer_name or self.auto_name or type(self).__name__.lower()

    @property
    def name(self) -> str:
        """Keras's layer name: the one given, else the automatic one (dense, dense_1, ... in a model)."""
        return self.display_name

    @property
    def trainable(self) -> bool:
        """Whether training updates this layer's weights (Keras's `layer.trainable`).

        Setting it to False freezes the weights: they get no gradient, and the
        optimizer of the next fit leaves them out. A frozen BatchNormalization
        also runs in inference mode (its moving statistics stay as they are),
        as in Keras.
        """
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise InputError(f"layer '{self.display_name}': trainable must be True or False, got {value!r}")
        self._trainable = value
        for param in self.parameters():
            param.requires_grad_(value)
        for sub in self.modules():
            if isinstance(sub, Layer) and sub is not self:
                sub._trainable = value
        if value:
            self._config.pop("trainable", None)
        else:
            self._config["trainable"] = False

    def get_weights(self) -> list[Any]:
        """The layer's weights (parameters, then running statistics) as NumPy arrays, torch layout.

        The order and shapes are those of the layer's `state_dict`: a Dense
        kernel is (units, input features), torch's layout, where Keras's is the
        transpose. `Sequential.get_weights` is the concatenation over layers.
        """
        return [t.detach().cpu().numpy().copy() for t in self.state_dict().values()]

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Set the weights from arrays in `get_weights`'s order and shapes."""
        state = self.state_dict()
        if not state and not self.built:
            raise InputError(f"layer '{self.display_name}' has no weights yet: it is built on its first input. "
                             "Build the model first (model.build(input_shape) or a fit).")
        if len(weights) != len(state):
            raise InputError(f"layer '{self.display_name}'.set_weights got {len(weights)} arrays; "
                             f"the layer has {len(state)} ({', '.join(state)})")
        new = {}
        for (key, current), value in zip(state.items(), weights):
            tensor = torch.as_tensor(value, dtype=current.dtype)
            if tuple(tensor.shape) != tuple(current.shape):
                raise InputError(f"layer '{self.display_name}'.set_weights: '{key}' has shape "
                                 f"{tuple(current.shape)}, got an array of shape {tuple(tensor.shape)}")
            new[key] = tensor
        self.load_state_dict(new)

    def get_config(self) -> dict[str, Any]:
        return dict(self._config)

    def extra_repr(self) -> str:
        shown = {k: v for k, v in self._config.items() if k != "name"}
        return ", ".join(f"{k}={v!r}" for k, v in shown.items())


def _expect_rank(layer: Layer, shape: Shape, ranks: Sequence[int], what: str) -> None:
    if len(shape) + 1 not in ranks:
        raise InputError(
            f"layer '{layer.display_name}' ({type(layer).__name__}) expects {what}, but received inputs "
            f"of shape (batch, {', '.join(map(str, shape))}). Add a Flatten or Reshape before it, or "
            f"check the data's shape."
        )


class _WeightLayer(Layer):
    """Shared handling of activation, initializers and regularizers."""

    def __init__(self, *, activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 activity_regularizer: Any = None, name: str | None = None,
                 input_shape: Sequence[int] | None = None, **config: Any) -> None:
        where = f"{type(self).__name__}"
        super().__init__(
            name=name, input_shape=input_shape, activation=_plain(activation), use_bias=use_bias,
            kernel_initializer=_plain(kernel_initializer), bias_initializer=_plain(bias_initializer),
            kernel_regularizer=_plain(kernel_regularizer), bias_regularizer=_plain(bias_regularizer),
            activity_regularizer=_plain(activity_regularizer), **config,
        )
        self.activation = make_activation(activation, source=f"{where} activation")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = make_initializer(kernel_initializer, source=f"{where} kernel_initializer")
        self.bias_initializer = make_initializer(bias_initializer, source=f"{where} bias_initializer")
        self.kernel_regularizer = make_regularizer(kernel_regularizer, source=f"{where} kernel_regularizer")
        self.bias_regularizer = make_regularizer(bias_regularizer, source=f"{where} bias_regularizer")
        self.activity_regularizer = make_regularizer(
            activity_regularizer, source=f"{where} activity_regularizer"
        )
        self._activity_penalty: Tensor | None = None

    @property
    def activation_name(self) -> str | None:
        return getattr(self.activation, "name", None)

    def linear_part(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def call(self, x: Tensor) -> Tensor:
        y = self.activation(self.linear_part(x))
        if self.activity_regularizer is not None:
            # Divided by the batch size so the penalty's weight does not depend on it.
            self._activity_penalty = self.activity_regularizer(y) / y.shape[0]
        return y  # type: ignore[no-any-return]

    def call_logits(self, x: Tensor) -> Tensor:
        """The output before the activation (for a fused softmax/sigmoid + cross-entropy)."""
        if not self.built:
            self._build_for(x)
            self.output_shape = tuple(self.activation(self.linear_part(x)).shape[1:])
        z = self.linear_part(x)
        if self.activity_regularizer is not None:
            self._activity_penalty = self.activity_regularizer(self.activation(z)) / z.shape[0]
        return z

    def _init_weights(self, kernel: Tensor, bias: Tensor | None) -> None:
        self.kernel_initializer(kernel)
        if bias is not None:
            self.bias_initializer(bias)

    def penalty(self) -> Tensor | None:
        total: Tensor | None = None
        for reg, weight in ((self.kernel_regularizer, getattr(self, "weight", None)),
                            (self.bias_regularizer, getattr(self, "bias", None))):
            if reg is not None and weight is not None:
                term = reg(weight)
                total = term if total is None else total + term
        if self._activity_penalty is not None:
            total = self._activity_penalty if total is None else total + self._activity_penalty
        return total


def _plain(value: Any) -> Any:
    """The JSON-safe form of a constructor argument (names and tables as they are)."""
    if value is None or isinstance(value, (str, int, float, bool, dict, list)):
        return value
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    return repr(value)


@LAYERS.register("Dense", claim="A fully connected layer: y = activation(x W^T + b).")
class Dense(_WeightLayer):
    """Fully connected layer; acts on the last axis (Keras `Dense`)."""

    def __init__(self, units: int, activation: Any = None, **kwargs: Any) -> None:
        check.int_at_least("Dense.units", units, 1)
        super().__init__(activation=activation, units=units, **kwargs)
        self.units = units
        self.weight: nn.Parameter | None = None
        self.bias: nn.Parameter | None = None

    def build(self, input_shape: Shape) -> None:
        fan_in = input_shape[-1]
        self.weight = nn.Parameter(torch.empty(self.units, fan_in))
        self.bias = nn.Parameter(torch.empty(self.units)) if self.use_bias else None
        self._init_weights(self.weight, self.bias)

    def check_input(self, shape: Shape) -> None:
        if len(shape) == 0:
            raise InputError(
                f"layer '{self.display_name}' (Dense) needs inputs with a feature axis, got shape (batch,). "
                "Reshape the data to (samples, features)."
            )

    def linear_part(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.weight.shape[1]:  # type: ignore[union-attr]
            raise InputError(
                f"layer '{self.display_name}' (Dense) was built for {self.weight.shape[1]} input "  # type: ignore[union-attr]
                f"features but received shape {tuple(x.shape[1:])}"
            )
        return F.linear(x, self.weight, self.bias)  # type: ignore[arg-type]


@LAYERS.register("Activation", claim="Applies an activation function on its own.")
class Activation(Layer):
    """Applies an activation by name (`Activation("relu")`)."""

    def __init__(self, activation: Any, **kwargs: Any) -> None:
        super().__init__(activation=_plain(activation), **kwargs)
        self.activation = make_activation(activation, source="Activation")
        self.built = True

    def forward(self, x: Tensor) -> Tensor:
        if self.output_shape is None:
            self.input_shape = self.output_shape = tuple(x.shape[1:])
        return self.activation(x)  # type: ignore[no-any-return]

    @property
    def activation_name(self) -> str | None:
        return getattr(self.activation, "name", None)

    def call_logits(self, x: Tensor) -> Tensor:
        return x


@LAYERS.register("Dropout", claim="Zeroing a random fraction of units in training reduces co-adaptation "
                 "and overfitting; inputs are scaled by 1/(1-rate) so inference needs no change.")
class Dropout(Layer):
    """Randomly zero a fraction `rate` of inputs during training (inverted dropout).

    Inside trainlab's loop the mask is drawn from a counter-based stream keyed by
    (run seed, step, this layer's position, element) (`trainlab.engine.streams`),
    so a run draws the same masks alone or stacked with others; outside it, from
    torch's global stream, like ``torch.nn.Dropout``.
    """

    #: Draws from the loop's counter-based streams (see `trainlab.engine.streams`).
    counter_random = True

    def __init__(self, rate: float, **kwargs: Any) -> None:
        check.in_range("Dropout.rate", rate, 0.0, 1.0, open_high=True,
                       hint="rate is the fraction of units dropped.")
        super().__init__(rate=rate, **kwargs)
        self.rate = float(rate)
        self.built = True

    def forward(self, x: Tensor) -> Tensor:
        if self.output_shape is None:
            self.input_shape = self.output_shape = tuple(x.shape[1:])
        if not self.training or self.rate == 0.0:
            return x
        from trainlab.engine import streams

        key = streams.layer_key(self)
        if key is None:
            return F.dropout(x, self.rate, True)
        return streams.dropout(x, self.rate, torch.tensor(key, device=x.device))


@LAYERS.register("BatchNormalization", claim="Normalizing each feature over the batch stabilizes and "
                 "speeds up training and allows larger learning rates.")
class BatchNormalization(Layer):
    """Batch normalization over the last axis, with Keras defaults (momentum 0.99, epsilon 1e-3).

    Keras's `momentum` is the weight of the old running value, so torch's
    momentum is `1 - momentum`. Works on (batch, features), (batch, steps,
    features) and (batch, height, width, channels).
    """

    def __init__(self, momentum: float = 0.99, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, **kwargs: Any) -> None:
        check.in_range("BatchNormalization.momentum", momentum, 0.0, 1.0)
        check.positive("BatchNormalization.epsilon", epsilon)
        super().__init__(momentum=momentum, epsilon=epsilon, center=center, scale=scale, **kwargs)
        self.momentum, self.epsilon, self.center, self.scale = float(momentum), float(epsilon), center, scale
        self.weight: nn.Parameter | None = None
        self.bias: nn.Parameter | None = None

    def build(self, input_shape: Shape) -> None:
        channels = input_shape[-1]
        self.weight = nn.Parameter(torch.ones(channels)) if self.scale else None
        self.bias = nn.Parameter(torch.zeros(channels)) if self.center else None
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def check_input(self, shape: Shape) -> None:
        if len(shape) == 0:
            raise InputError(f"layer '{self.display_name}' (BatchNormalization) needs a feature axis")

    def call(self, x: Tensor) -> Tensor:
        moved = x.movedim(-1, 1) if x.dim() > 2 else x
        # A frozen BatchNormalization runs in inference mode (Keras 3): moving statistics stay put.
        training = self.training and self.trainable
        y = F.batch_norm(moved, self.running_mean, self.running_var,  # type: ignore[arg-type]
                         self.weight, self.bias, training, 1.0 - self.momentum, self.epsilon)
        return y.movedim(1, -1) if x.dim() > 2 else y


@LAYERS.register("Flatten", claim="Flattens all but the batch axis.")
class Flatten(Layer):
    """Flatten every axis but the batch axis."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    def call(self, x: Tensor) -> Tensor:
        return x.flatten(1)


@LAYERS.register("Reshape", claim="Reshapes the non-batch axes.")
class Reshape(Layer):
    """Reshape the non-batch axes to `target_shape` (one entry may be -1)."""

    def __init__(self, target_shape: Sequence[int], **kwargs: Any) -> None:
        super().__init__(target_shape=list(target_shape), **kwargs)
        self.target_shape = tuple(int(d) for d in target_shape)

    def check_input(self, shape: Shape) -> None:
        size = math.prod(shape)
        known = math.prod(d for d in self.target_shape if d != -1)
        ok = size % known == 0 if -1 in self.target_shape else size == known
        if not ok:
            raise InputError(
                f"layer '{self.display_name}' (Reshape) cannot reshape inputs of shape {shape} "
                f"({size} values) to {self.target_shape}"
            )

    def call(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], *self.target_shape)


class _Conv(_WeightLayer):
    rank = 2

    def __init__(self, filters: int, kernel_size: int | Sequence[int], strides: int | Sequence[int] = 1,
                 padding: str = "valid", dilation_rate: int | Sequence[int] = 1,
                 data_format: str = "channels_last", activation: Any = None, **kwargs: Any) -> None:
        kind = type(self).__name__
        check.int_at_least(f"{kind}.filters", filters, 1)
        check.choice(f"{kind}.padding", padding, ("valid", "same"))
        check.choice(f"{kind}.data_format", data_format, ("channels_last", "channels_first"))
        norm = (lambda f, v: (v,) if isinstance(v, int) else tuple(v)) if self.rank == 1 else _pair
        super().__init__(activation=activation, filters=filters, kernel_size=_listed(kernel_size),
                         strides=_listed(strides), padding=padding, dilation_rate=_listed(dilation_rate),
                         data_format=data_format, **kwargs)
        self.filters = filters
        self.kernel_size = norm(f"{kind}.kernel_size", kernel_size)
        self.strides = norm(f"{kind}.strides", strides)
        self.dilation = norm(f"{kind}.dilation_rate", dilation_rate)
        self.padding = padding
        self.channels_last = data_format == "channels_last"
        self.weight: nn.Parameter | None = None
        self.bias: nn.Parameter | None = None

    def check_input(self, shape: Shape) -> None:
        _expect_rank(self, shape, (self.rank + 2,),
                     f"{self.rank + 2}-D inputs (batch, {'steps' if self.rank == 1 else 'height, width'}, channels)")

    def build(self, input_shape: Shape) -> None:
        channels = input_shape[-1] if self.channels_last else input_shape[0]
        self.weight = nn.Parameter(torch.empty(self.filters, channels, *self.kernel_size))
        self.bias = nn.Parameter(torch.empty(self.filters)) if self.use_bias else None
        self._init_weights(self.weight, self.bias)

    def linear_part(self, x: Tensor) -> Tensor:
        # A channels-last tensor permuted to NC... is a strided view that conv reads without a copy.
        if self.channels_last:
            x = x.movedim(-1, 1)
        if self.padding == "same":
            pads: list[int] = []
            for size, k, s, d in reversed(list(zip(x.shape[2:], self.kernel_size, self.strides,
                                                     self.dilation))):
                pads.extend(_same_padding(size, k, s, d))
            if any(pads):
                x = F.pad(x, pads)
        conv = F.conv1d if self.rank == 1 else F.conv2d
        y = conv(x, self.weight, self.bias, self.strides, 0, self.dilation)  # type: ignore[arg-type]
        return y.movedim(1, -1) if self.channels_last else y


def _listed(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


@LAYERS.register("Conv1D", claim="A 1-D convolution shares weights across time steps.")
class Conv1D(_Conv):
    """1-D convolution over (batch, steps, channels) inputs."""

    rank = 1


@LAYERS.register("Conv2D", claim="A 2-D convolution shares weights across image positions.")
class Conv2D(_Conv):
    """2-D convolution over (batch, height, width, channels) inputs (Keras layout)."""

    rank = 2


class _Pool2D(Layer):
    def __init__(self, pool_size: int | Sequence[int] = 2, strides: int | Sequence[int] | None = None,
                 padding: str = "valid", data_format: str = "channels_last", **kwargs: Any) -> None:
        kind = type(self).__name__
        check.choice(f"{kind}.padding", padding, ("valid", "same"))
        check.choice(f"{kind}.data_format", data_format, ("channels_last", "channels_first"))
        super().__init__(pool_size=_listed(pool_size), strides=_listed(strides), padding=padding,
                         data_format=data_format, **kwargs)
        self.pool_size = _pair(f"{kind}.pool_size", pool_size)
        self.strides = _pair(f"{kind}.strides", strides) if strides is not None else self.pool_size
        self.padding = padding
        self.channels_last = data_format == "channels_last"

    def check_input(self, shape: Shape) -> None:
        _expect_rank(self, shape, (4,), "4-D inputs (batch, height, width, channels)")

    def pool(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def call(self, x: Tensor) -> Tensor:
        if self.channels_last:
            x = x.movedim(-1, 1)
        if self.padding == "same":
            pads: list[int] = []
            for size, k, s in reversed(list(zip(x.shape[2:], self.pool_size, self.strides))):
                pads.extend(_same_padding(size, k, s))
            if any(pads):
                x = F.pad(x, pads, value=self.pad_value)
        y = self.pool(x)
        return y.movedim(1, -1) if self.channels_last else y

    pad_value = 0.0


@LAYERS.register("MaxPooling2D", claim="Max pooling keeps the strongest response in each window.")
class MaxPooling2D(_Pool2D):
    """Max over `pool_size` windows."""

    pad_value = -math.inf

    def pool(self, x: Tensor) -> Tensor:
        return F.max_pool2d(x, self.pool_size, self.strides)


@LAYERS.register("AveragePooling2D", claim="Average pooling smooths each window to its mean.")
class AveragePooling2D(_Pool2D):
    """Mean over `pool_size` windows."""

    def pool(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, self.pool_size, self.strides)


@LAYERS.register("GlobalAveragePooling2D", claim="Averages each channel over the whole image.")
class GlobalAveragePooling2D(Layer):
    """Mean over height and width: (batch, h, w, c) -> (batch, c)."""

    def __init__(self, data_format: str = "channels_last", **kwargs: Any) -> None:
        check.choice("GlobalAveragePooling2D.data_format", data_format, ("channels_last", "channels_first"))
        super().__init__(data_format=data_format, **kwargs)
        self.dims = (1, 2) if data_format == "channels_last" else (2, 3)

    def check_input(self, shape: Shape) -> None:
        _expect_rank(self, shape, (4,), "4-D inputs (batch, height, width, channels)")

    def call(self, x: Tensor) -> Tensor:
        return x.mean(dim=self.dims)


@LAYERS.register("Embedding", claim="Maps token ids to learned dense vectors.")
class Embedding(Layer):
    """Token ids (int64) -> vectors; Keras's default init is uniform(-0.05, 0.05)."""

    def __init__(self, input_dim: int, output_dim: int, embeddings_initializer: Any = "uniform",
                 embeddings_regularizer: Any = None, **kwargs: Any) -> None:
        check.int_at_least("Embedding.input_dim", input_dim, 1)
        check.int_at_least("Embedding.output_dim", output_dim, 1)
        super().__init__(input_dim=input_dim, output_dim=output_dim,
                         embeddings_initializer=_plain(embeddings_initializer),
                         embeddings_regularizer=_plain(embeddings_regularizer), **kwargs)
        self.input_dim, self.output_dim = input_dim, output_dim
        self.embeddings_initializer = make_initializer(embeddings_initializer,
                                                       source="Embedding embeddings_initializer")
        self.embeddings_regularizer = make_regularizer(embeddings_regularizer,
                                                       source="Embedding embeddings_regularizer")
        self.weight: nn.Parameter | None = None

    def build(self, input_shape: Shape) -> None:
        self.weight = nn.Parameter(torch.empty(self.input_dim, self.output_dim))
        self.embeddings_initializer(self.weight)

    def _build_for(self, x: Tensor) -> None:
        if x.dtype.is_floating_point:
            raise InputError(
                f"layer '{self.display_name}' (Embedding) needs integer token ids, got {x.dtype}. "
                "Pass the data as int64, or do not scale it."
            )
        super()._build_for(x)

    def call(self, x: Tensor) -> Tensor:
        return F.embedding(x, self.weight)  # type: ignore[arg-type]

    def penalty(self) -> Tensor | None:
        if self.embeddings_regularizer is None or self.weight is None:
            return None
        return self.embeddings_regularizer(self.weight)


class _Recurrent(_WeightLayer):
    """Keras-style recurrent layer over torch.nn.RNN/LSTM/GRU (batch_first)."""

    torch_class: type[nn.RNNBase] = nn.RNN
    gates = 1

    def __init__(self, units: int, activation: Any = "tanh", return_sequences: bool = False,
                 recurrent_initializer: Any = "orthogonal", **kwargs: Any) -> None:
        kind = type(self).__name__
        check.int_at_least(f"{kind}.units", units, 1)
        super().__init__(activation=None, units=units, return_sequences=return_sequences,
                         recurrent_initializer=_plain(recurrent_initializer), **kwargs)
        self._config["activation"] = activation
        if type(self) is SimpleRNN:
            check.choice("SimpleRNN.activation", activation, ("tanh", "relu"))
        elif activation != "tanh":
            raise InputError(f"{kind}: only activation='tanh' is supported (the cuDNN/torch kernel), "
                             f"got {activation!r}")
        self.nonlinearity = activation
        self.units = units
        self.return_sequences = bool(return_sequences)
        self.recurrent_initializer = make_initializer(recurrent_initializer,
                                                      source=f"{kind} recurrent_initializer")
        self.bidirectional = False
        self.rnn: nn.RNNBase | None = None

    def check_input(self, shape: Shape) -> None:
        _expect_rank(self, shape, (3,), "3-D inputs (batch, steps, features)")

    def build(self, input_shape: Shape) -> None:
        extra = {"nonlinearity": self.nonlinearity} if self.torch_class is nn.RNN else {}
        self.rnn = self.torch_class(input_shape[-1], self.units,  # type: ignore[arg-type]
                                    batch_first=True, bias=self.use_bias,
                                    bidirectional=self.bidirectional, **extra)
        with torch.no_grad():
            for pname, param in self.rnn.named_parameters():
                if pname.startswith("weight_ih"):
                    self.kernel_initializer(param)
                elif pname.startswith("weight_hh"):
                    self.recurrent_initializer(param)
                elif pname.startswith("bias"):
                    param.zero_()
                    if self.torch_class is nn.LSTM and pname.startswith("bias_ih"):
                        # Keras's unit_forget_bias: the forget gate starts open (bias 1).
                        param[self.units: 2 * self.units] = 1.0

    def linear_part(self, x: Tensor) -> Tensor:
        out, state = self.rnn(x)  # type: ignore[misc]
        if self.return_sequences:
            return out  # type: ignore[no-any-return]
        h = state[0] if isinstance(state, tuple) else state
        return torch.cat([h[-2], h[-1]], dim=-1) if self.bidirectional else h[-1]

    def penalty(self) -> Tensor | None:
        total: Tensor | None = None
        if self.rnn is None:
            return None
        for pname, param in self.rnn.named_parameters():
            reg = (self.kernel_regularizer if pname.startswith("weight_ih") else
                   self.bias_regularizer if pname.startswith("bias") else None)
            if reg is not None:
                term = reg(param)
                total = term if total is None else total + term
        if self._activity_penalty is not None:
            total = self._activity_penalty if total is None else total + self._activity_penalty
        return total


@LAYERS.register("SimpleRNN", claim="A plain recurrent layer: h_t = tanh(W x_t + U h_{t-1} + b).")
class SimpleRNN(_Recurrent):
    """Fully connected recurrent layer."""

    torch_class = nn.RNN


@LAYERS.register("LSTM", claim="Gated memory cells carry information over long sequences.")
class LSTM(_Recurrent):
    """Long short-term memory layer (Keras init: glorot kernel, orthogonal recurrent, forget bias 1)."""

    torch_class = nn.LSTM


@LAYERS.register("GRU", claim="Gated recurrent unit: an LSTM-like gate with fewer parameters.")
class GRU(_Recurrent):
    """Gated recurrent unit (torch's formulation equals Keras's reset_after=True)."""

    torch_class = nn.GRU


@LAYERS.register("Bidirectional", claim="Reads the sequence both ways and concatenates the two outputs.")
class Bidirectional(Layer):
    """Run a recurrent layer forwards and backwards and concatenate (Keras merge_mode='concat')."""

    def __init__(self, layer: Any, **kwargs: Any) -> None:
        if isinstance(layer, dict):
            layer = layer_from_config(layer, source="Bidirectional.layer")
        if not isinstance(layer, _Recurrent):
            raise InputError(f"Bidirectional wraps a SimpleRNN, LSTM or GRU layer, got {type(layer).__name__}")
        super().__init__(layer=layer_config(layer), **kwargs)
        if layer.built:
            raise InputError("Bidirectional needs an unbuilt recurrent layer")
        layer.bidirectional = True
        self.layer = layer

    def check_input(self, shape: Shape) -> None:
        self.layer.check_input(shape)

    def call(self, x: Tensor) -> Tensor:
        return self.layer(x)  # type: ignore[no-any-return]


def layer_config(layer: Layer) -> dict[str, Any]:
    """``{"type": class name, **constructor arguments}``: the TOML/JSON form of a layer."""
    return {"type": type(layer).__name__, **layer.get_config()}


def layer_from_config(config: dict[str, Any], *, source: str | None = None) -> Layer:
    """Build a layer from ``{"type": "Dense", "units": 64, ...}`` (the TOML form)."""
    if not isinstance(config, dict) or "type" not in config:
        raise InputError(
            f"a layer{f' ({source})' if source else ''} must be a table with a 'type' key, "
            f"e.g. {{type = \"Dense\", units = 64}}; got {config!r}"
        )
    settings = {k: v for k, v in config.items() if k != "type"}
    if "input_shape" in settings and isinstance(settings["input_shape"], list):
        settings["input_shape"] = tuple(settings["input_shape"])
    return LAYERS.build({"name": config["type"], **settings}, source=source)  # type: ignore[no-any-return]


# The Keras preprocessing and noise layers (RandomFlip, ..., GaussianNoise) register themselves here.
from trainlab.augment import layers as _augment_layers  # noqa: E402,F401
