"""Feature scalings, fitted on the training part only and stored with the model as JSON.

`SCALERS` holds them by name (standardize, minmax, none); `scaler` builds one
from a spec and `scaler_from_dict` rebuilds a stored one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, TypeVar, runtime_checkable

import torch
from torch import Tensor

from trainlab.data.dataset import _check_finite
from trainlab.errors import InputError, InputTypeError
from trainlab.registry import Registry

# --------------------------------------------------------------------------- scaling

_S = TypeVar("_S", bound="_AffineScaler")


@runtime_checkable
class Scaler(Protocol):
    """Anything that learns a feature scaling from training inputs and applies it."""

    name: str

    def fit(self, x: Tensor) -> Any: ...

    def transform(self, x: Tensor) -> Tensor: ...

    def to_dict(self) -> dict[str, Any]: ...


SCALERS: Registry[Any] = Registry("scaler")


class _AffineScaler:
    """Per-feature ``(x - shift) / scale``, with shift and scale learned by `_stats`.

    Stats are computed in float64 on the CPU (exact in JSON, and fine on devices
    without float64) and cached per device and dtype for `transform`.
    """

    name = ""
    shift_key = "shift"
    scale_key = "scale"

    def __init__(self) -> None:
        self.shift: Tensor | None = None
        self.scale: Tensor | None = None
        self._cache: dict[tuple[torch.device, torch.dtype], tuple[Tensor, Tensor]] = {}

    @property
    def fitted(self) -> bool:
        return self.shift is not None

    def fit(self: _S, x: Tensor) -> _S:
        """Learn the per-feature statistics from `x` (the training part only), and return self."""
        self._check_input(x, "fit")
        if x.shape[0] == 0:
            raise InputError(f"{self.name}: cannot fit on 0 rows.")
        _check_finite(x, "x", f"{self.name}: fit")
        values = x.detach().to("cpu", torch.float64)
        low, high = values.amin(0), values.amax(0)
        shift, scale = self._stats(values, low, high)
        self._set(shift, torch.where(low == high, torch.ones_like(scale), scale))
        return self

    def transform(self, x: Tensor) -> Tensor:
        """``(x - shift) / scale`` per feature, in x's dtype and on x's device."""
        self._check_input(x, "transform")
        if self.shift is None or self.scale is None:
            raise InputError(
                f"{self.name}: transform called before fit; fit it on the training inputs first."
            )
        if tuple(x.shape[1:]) != tuple(self.shift.shape):
            raise InputError(
                f"{self.name}: fitted on samples of shape {tuple(self.shift.shape)}, got x of shape "
                f"{tuple(x.shape)}. Scale data with the same features as the training data."
            )
        key = (x.device, x.dtype)
        if key not in self._cache:
            self._cache[key] = (self.shift.to(x.device, x.dtype), self.scale.to(x.device, x.dtype))
        shift, scale = self._cache[key]
        return (x - shift) / scale

    def fit_transform(self, x: Tensor) -> Tensor:
        """`fit` on x, then `transform` x."""
        return self.fit(x).transform(x)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state: the name, and the statistics as (nested) lists of floats once fitted."""
        state: dict[str, Any] = {"name": self.name}
        if self.shift is not None and self.scale is not None:
            state[self.shift_key] = self.shift.tolist()
            state[self.scale_key] = self.scale.tolist()
        return state

    def load_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `to_dict` wrote."""
        keys = {self.shift_key, self.scale_key}
        present = keys & set(state)
        extra = set(state) - keys - {"name"}
        if extra or len(present) == 1:
            raise InputError(
                f"scaler '{self.name}' state must hold 'name' and either no statistics or both "
                f"'{self.shift_key}' and '{self.scale_key}', got keys {sorted(state)}."
            )
        if not present:
            return
        try:
            shift = torch.tensor(state[self.shift_key], dtype=torch.float64)
            scale = torch.tensor(state[self.scale_key], dtype=torch.float64)
        except (TypeError, ValueError) as error:
            raise InputError(
                f"scaler '{self.name}' state: statistics must be lists of numbers ({error})."
            ) from error
        if shift.shape != scale.shape or shift.ndim == 0:
            raise InputError(
                f"scaler '{self.name}' state: '{self.shift_key}' and '{self.scale_key}' must be lists of the "
                f"same shape, got {tuple(shift.shape)} and {tuple(scale.shape)}."
            )
        finite = bool(torch.isfinite(shift).all()) and bool(torch.isfinite(scale).all())
        if not (finite and bool((scale > 0).all())):
            raise InputError(
                f"scaler '{self.name}' state: statistics must be finite and '{self.scale_key}' > 0."
            )
        self._set(shift, scale)

    def _set(self, shift: Tensor, scale: Tensor) -> None:
        self.shift, self.scale, self._cache = shift, scale, {}

    def _check_input(self, x: Any, step: str) -> None:
        if not isinstance(x, Tensor):
            raise InputTypeError(f"{self.name}: {step} needs a torch.Tensor, got {type(x).__name__}.")
        if not x.is_floating_point():
            raise InputTypeError(
                f"{self.name}: cannot scale {x.dtype} input; only float features are scaled. Integer inputs "
                "are token ids for Embedding layers: use scaler 'none' (or no scaler) for them."
            )
        if x.ndim < 2:
            raise InputError(
                f"{self.name}: x must have one row per sample, shape (num_samples, num_features, ...), "
                f"got {tuple(x.shape)}."
            )

    def _stats(self, values: Tensor, low: Tensor, high: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def __repr__(self) -> str:
        state = f"{tuple(self.shift.shape)} features" if self.shift is not None else "not fitted"
        return f"{type(self).__name__}({state})"


class Standardize(_AffineScaler):
    """Per feature: subtract the training mean, divide by the training standard deviation.

    Gradient descent converges faster when inputs are centred and on one scale
    (LeCun et al., "Efficient BackProp", 1998). The standard deviation is the
    population one (ddof=0), as in scikit-learn's StandardScaler. A feature that
    is constant in the training part is centred and left with scale 1, so it
    becomes exactly 0 there instead of 0/0.

    Example:
        >>> x = torch.tensor([[1.0, 5.0], [3.0, 5.0]])
        >>> Standardize().fit_transform(x).tolist()
        [[-1.0, 0.0], [1.0, 0.0]]
    """

    name = "standardize"
    shift_key = "mean"
    scale_key = "std"

    def _stats(self, values: Tensor, low: Tensor, high: Tensor) -> tuple[Tensor, Tensor]:
        # In float64 the mean of a constant float32 feature is its value exactly, so it centres to 0.
        return values.mean(0), values.std(0, correction=0)


class MinMax(_AffineScaler):
    """Per feature: map the training minimum to 0 and the training maximum to 1.

    Puts every feature in the same bounded range whatever its units, e.g. for
    pixel intensities; one outlier squeezes the other values of its feature
    together. Values outside the training range map outside [0, 1]. A feature
    that is constant in the training part maps to 0.

    Example:
        >>> MinMax().fit_transform(torch.tensor([[0.0, 7.0], [4.0, 7.0], [2.0, 7.0]])).tolist()
        [[0.0, 0.0], [1.0, 0.0], [0.5, 0.0]]
    """

    name = "minmax"
    shift_key = "min"
    scale_key = "range"

    def _stats(self, values: Tensor, low: Tensor, high: Tensor) -> tuple[Tensor, Tensor]:
        return low, high - low


class NoScaling:
    """The identity: inputs are used as they are (e.g. already scaled, or int64 token ids).

    Example:
        >>> x = torch.tensor([[1, 2]])
        >>> NoScaling().fit(x).transform(x) is x
        True
    """

    name = "none"
    fitted = True

    def fit(self, x: Tensor) -> NoScaling:
        return self

    def transform(self, x: Tensor) -> Tensor:
        return x

    def fit_transform(self, x: Tensor) -> Tensor:
        return x

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name}

    def load_dict(self, state: Mapping[str, Any]) -> None:
        extra = set(state) - {"name"}
        if extra:
            raise InputError(f"scaler 'none' state holds only 'name', got extra keys {sorted(extra)}.")

    def __repr__(self) -> str:
        return "NoScaling()"


@SCALERS.register(
    "standardize",
    summary="Per feature: subtract the training mean, divide by the training std "
    "(constant features: scale 1).",
    claim="Centred, unit-variance inputs make the loss surface better conditioned, so gradient descent "
    "converges faster than on raw features of mixed scales.",
)
def standardize() -> Standardize:
    """An unfitted `Standardize` scaler."""
    return Standardize()


@SCALERS.register(
    "minmax",
    summary="Per feature: map the training range to [0, 1] (constant features map to 0).",
    claim="Bounded inputs in [0, 1] on the training data, whatever the units of each feature.",
)
def minmax() -> MinMax:
    """An unfitted `MinMax` scaler."""
    return MinMax()


@SCALERS.register(
    "none",
    summary="No scaling: inputs are used as they are.",
    claim="The baseline: what the network sees is exactly the data given.",
)
def none() -> NoScaling:
    """The identity scaler."""
    return NoScaling()


def scaler(spec: Any, *, source: str | None = None) -> Any:
    """Build an (unfitted) scaler from a name, ``{"name": ...}``, or a scaler object; None gives None.

    Example:
        >>> scaler("minmax")
        MinMax(not fitted)
        >>> scaler(None) is None
        True
    """
    if spec is None:
        return None
    built = SCALERS.build(spec, source=source)
    if not isinstance(built, Scaler) or isinstance(built, type):
        origin = f" (from {source})" if source else ""
        raise InputTypeError(
            f"a scaler must be a name ({', '.join(SCALERS.names())}), a mapping with a 'name', or an object "
            f"with fit, transform and to_dict{origin}; got {type(spec).__name__} {spec!r}."
        )
    return built


def scaler_from_dict(state: Mapping[str, Any]) -> Any:
    """Rebuild a (fitted) scaler from `to_dict` output, e.g. read back from model.json.

    Example:
        >>> fitted = scaler("standardize").fit(torch.tensor([[0.0], [2.0]]))
        >>> scaler_from_dict(fitted.to_dict()).transform(torch.tensor([[4.0]])).tolist()
        [[3.0]]
    """
    if not isinstance(state, Mapping):
        raise InputTypeError(f"scaler state must be a mapping (from to_dict), got {type(state).__name__}")
    if "name" not in state:
        raise InputError(f"scaler state needs a 'name' key, got keys {sorted(state)}.")
    built = SCALERS.get(state["name"], source="scaler state")()
    built.load_dict(state)
    return built
