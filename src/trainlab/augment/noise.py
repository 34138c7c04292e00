"""Noise robustness: Gaussian noise on the inputs (a batch transform) and on the weights (a callback).

Input noise adds N(0, stddev^2) to every input value of each training batch;
it is the recipe setting ``input_noise = 0.1`` (or ``{stddev = 0.1}``). Weight
noise perturbs the weights during each training forward pass: the loss and its
gradient are evaluated at W + N(0, stddev^2), and the optimizer updates the
clean W, which is never stored perturbed (An, 1996; Graves, 2011). Both are off
in evaluation. The Keras layers GaussianNoise and GaussianDropout are in
`trainlab.augment.layers`.

Example:
    >>> import torch
    >>> noise = GaussianInputNoise(stddev=0.5)
    >>> x = torch.zeros(2000, 10)
    >>> noisy, _ = noise(x, torch.zeros(2000), generator=torch.Generator().manual_seed(0))
    >>> round(float(noisy.std()), 1)
    0.5
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from trainlab import check
from trainlab.augment import AUGMENTATIONS
from trainlab.callbacks import Callback

__all__ = ["GaussianInputNoise", "WeightNoise"]


@AUGMENTATIONS.register(
    "gaussian_noise",
    claim="Adding Gaussian noise to the inputs in training is, to first order, a Tikhonov (L2) "
    "penalty on the model's input gradient: it smooths the learned function.",
)
class GaussianInputNoise:
    """Add N(0, stddev^2) noise to every input value of a training batch; the targets are kept.

    References:
        Bishop, "Training with Noise is Equivalent to Tikhonov Regularization", 1995.
    """

    name = "gaussian_noise"

    def __init__(self, *, stddev: float = 0.1) -> None:
        self.stddev = check.positive(f"{self.name}: stddev", stddev)

    def __call__(self, x: Tensor, y: Tensor, *, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return x + self.stddev * noise, y

    def __repr__(self) -> str:
        return f"GaussianInputNoise(stddev={self.stddev})"


class _AdditiveNoise(nn.Module):
    """A parametrization: W + stddev * N(0, 1) while the owning module trains, W itself otherwise."""

    def __init__(self, owner: nn.Module, stddev: float) -> None:
        super().__init__()
        self.stddev = stddev
        self._owner = [owner]  # a list, so the owner is not registered as a submodule (no cycle)

    def forward(self, weight: Tensor) -> Tensor:
        if not self._owner[0].training:
            return weight
        return weight + self.stddev * torch.randn_like(weight)


class WeightNoise(Callback):
    """Perturb the weights with N(0, stddev^2) noise in every training forward pass, never storing it.

    Added to every parameter named ``weight`` or ``kernel`` with at least 2
    dimensions (biases and normalization scales are left alone) through
    `torch.nn.utils.parametrize` for the duration of training: the forward pass
    reads W + noise (a fresh draw from torch's random stream each time, which
    the engine seeds from the run's seed), the gradient flows to W, and at the
    end of training the parametrization is removed and W is left exactly as the
    optimizer made it. Evaluation (eval mode) uses W.

    Example:
        >>> import torch
        >>> layer = torch.nn.Linear(3, 2)
        >>> cb = WeightNoise(stddev=0.1); cb.set_model(layer); cb.on_train_begin()
        >>> _ = layer.train(); bool((layer.weight != layer.weight).any())   # two draws differ
        True
        >>> _ = layer.eval(); bool((layer.weight == layer.weight).all())
        True
        >>> cb.on_train_end(); sorted(layer.state_dict())
        ['bias', 'weight']

    References:
        Graves, "Practical Variational Inference for Neural Networks", 2011.
    """

    def __init__(self, *, stddev: float = 0.01) -> None:
        self.stddev = check.positive("weight_noise: stddev", stddev,
                                     "It is the std of the noise added to each weight; 0.01 is typical.")
        self._added: list[tuple[nn.Module, str]] = []
        self._handles: list[Any] = []

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        for module in self.model.modules():
            for name in ("weight", "kernel"):
                param = module._parameters.get(name)
                if param is not None and param.ndim >= 2 and not parametrize.is_parametrized(module, name):
                    parametrize.register_parametrization(module, name, _AdditiveNoise(module, self.stddev))
                    self._added.append((module, name))
                    # The state dict keeps its plain keys ("weight"), so checkpoints, best-weight copies
                    # and saved models look the same with or without weight noise.
                    self._handles.append(module.register_state_dict_post_hook(_plain_keys(name)))  # type: ignore[no-untyped-call]
                    self._handles.append(module.register_load_state_dict_pre_hook(_parametrized_keys(name)))  # type: ignore[no-untyped-call]

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        for handle in self._handles:
            handle.remove()
        for module, name in reversed(self._added):
            parametrize.remove_parametrizations(module, name, leave_parametrized=False)
        self._added.clear()
        self._handles.clear()


def _plain_keys(name: str) -> Any:
    def hook(module: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: Any) -> None:
        key = f"{prefix}parametrizations.{name}.original"
        if key in state_dict:
            state_dict[f"{prefix}{name}"] = state_dict.pop(key)

    return hook


def _parametrized_keys(name: str) -> Any:
    def hook(module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        key = f"{prefix}{name}"
        if key in state_dict:
            state_dict[f"{prefix}parametrizations.{name}.original"] = state_dict.pop(key)

    return hook

