"""Activation and gradient statistics, recorded by a callback on a fixed probe batch.

`TrainingStatistics` is an ordinary callback of the one engine. At the moments
it is asked to record (the start of training, chosen epochs, chosen optimizer
steps) it runs the model once on a fixed probe batch, in eval mode and without
gradients, and reads every hidden activation through forward hooks:

- the mean and standard deviation of each layer's outputs;
- a histogram whose range follows the activation: [0, 1] for sigmoid,
  [-1, 1] for tanh, [0, max] for the ReLU family, [min, max] otherwise (leaky
  ReLU and ELU negatives, linear layers), so negative and tanh activations are
  never cut off; an unbounded end stops at 4 standard deviations from the
  mean (the values beyond are counted in the end bin);
- for sigmoid and tanh, the saturated fraction: outputs within 1% of either
  end of the range, where the derivative is below 0.01;
- for the ReLU family, the dead fraction: units that are zero on every sample
  of the probe batch (no gradient flows through them for any of those inputs).

Gradients are read on training steps, in ``on_batch_end`` (after backward, before
the next step zeroes them): the gradient norm of each weight layer, the ratio
of the first weight layer's gradient norm to the last's, and the update-to-weight
ratio ||W_after - W_before|| / ||W_before|| of the step, with the weights
snapshotted in ``on_batch_begin``. In a recorded epoch `grad_batches` evenly
spaced batches are measured and averaged (root mean square for the norms).

Everything is reduced on the training device; each record waits for the
device once (one ``.tolist()`` of a packed vector). The forward hooks are added
in ``on_train_begin`` and removed in ``on_train_end``. The probe pass runs in
eval mode without gradients and draws no random numbers, so training with the
statistics on gives the same weights as training without them.

Records are plain JSON-safe dicts (see `TrainingStatistics.records`); with
`path`, each one is appended to a JSON-lines file as soon as it is taken. A
few headline numbers also go into each epoch's logs, and so into the run's
History and history.jsonl: ``grad_ratio``, ``relative_grad_ratio``,
``median_update_ratio``, ``max_dead_fraction`` (ReLU layers) and
``max_saturated_fraction`` (sigmoid/tanh layers); NaN in epochs not recorded.

Example:
    >>> import torch, trainlab
    >>> from trainlab.layers import Dense
    >>> iris = trainlab.datasets.load("iris")
    >>> model = trainlab.Sequential([Dense(8, activation="tanh"), Dense(3, activation="softmax")])
    >>> stats = TrainingStatistics(probe=iris.x[:64])
    >>> history = trainlab.fit(model, "iris", {"num_epochs": 2, "seed": 0}, callbacks=stats,
    ...                        scaling=None)
    >>> [r["epoch"] for r in stats.records], stats.records[0]["layers"][0]["kind"]
    ([-1, 0, 1], 'tanh')
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from trainlab import check
from trainlab.callbacks import Callback
from trainlab.errors import InputError, InputTypeError

__all__ = ["RELU_FAMILY", "SATURATING", "TrainingStatistics", "activation_kind", "read_statistics"]

#: Activations whose outputs are exactly zero for negative inputs: their units can die.
RELU_FAMILY = ("relu", "relu6", "thresholded_relu")
#: Activations with a bounded output range, where a unit can saturate: (low, high).
SATURATING = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0), "hard_sigmoid": (0.0, 1.0)}
#: Output activations that are not hidden-unit statistics (a distribution over classes).
_OUTPUT_ONLY = ("softmax", "log_softmax")
_SATURATION_MARGIN = 0.01  # outputs within 1% of the range's ends count as saturated

_TORCH_KINDS: dict[type[nn.Module], str] = {
    nn.ReLU: "relu", nn.ReLU6: "relu6", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh", nn.LeakyReLU: "leaky_relu",
    nn.ELU: "elu", nn.SELU: "selu", nn.GELU: "gelu", nn.SiLU: "silu", nn.Softplus: "softplus",
    nn.PReLU: "prelu", nn.Hardsigmoid: "hard_sigmoid", nn.Hardtanh: "hard_tanh", nn.Identity: "linear",
    nn.Softmax: "softmax", nn.LogSoftmax: "log_softmax",
}


def activation_kind(module: nn.Module) -> str | None:
    """The activation a module applies ('relu', 'sigmoid', ...), or None if it is not an activation."""
    name = getattr(module, "name", None)
    if isinstance(name, str) and not list(module.children()):
        from trainlab.activations import ACTIVATIONS

        if name in ACTIVATIONS.names():
            return name
    for cls, kind in _TORCH_KINDS.items():
        if type(module) is cls or (isinstance(module, cls) and cls is not nn.Identity):
            return kind
    return None


def _activation_modules(model: nn.Module) -> list[tuple[str, str, nn.Module]]:
    """(layer name, kind, module) for each hidden activation, input to output."""
    from trainlab.layers import Layer

    owners: dict[int, str] = {}
    for _path, module in model.named_modules():
        if isinstance(module, Layer):
            for child in module.modules():
                owners.setdefault(id(child), module.display_name)
    found = []
    for path, module in model.named_modules():
        kind = activation_kind(module)
        if kind is None or kind in _OUTPUT_ONLY:
            continue
        found.append((owners.get(id(module), path or "model"), kind, module))
    output = _output_layer(model)
    if output is not None:
        inside = {id(m) for m in output.modules()}
        found = [f for f in found if id(f[2]) not in inside]
    return found


def _output_layer(model: nn.Module) -> nn.Module | None:
    """The model's last weight layer when the model says which it is (a Sequential does)."""
    layers = getattr(model, "layers", None)
    if isinstance(layers, nn.ModuleList) and len(layers) > 0:
        weighted = [m for m in layers if _own_weight(m) is not None]
        return weighted[-1] if weighted else None
    return None


def _own_weight(module: nn.Module) -> Tensor | None:
    weight = module._parameters.get("weight")
    return weight if weight is not None and weight.dim() >= 2 and weight.requires_grad else None


def _weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) for each module that owns a weight matrix or kernel, input to output."""
    from trainlab.layers import Layer

    names: dict[int, str] = {}
    for _path, module in model.named_modules():
        if isinstance(module, Layer):
            for child in module.modules():
                names.setdefault(id(child), module.display_name)
    return [(names.get(id(m), path or "model"), m) for path, m in model.named_modules()
            if _own_weight(m) is not None]


def _chosen(field: str, values: Iterable[int] | None) -> frozenset[int] | None:
    if values is None:
        return None
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise InputTypeError(f"{field} must be a list of ints (0-based), got {values!r}")
    chosen = []
    for v in values:
        chosen.append(check.int_at_least(f"{field} entries", v, 0))
    return frozenset(chosen)


class TrainingStatistics(Callback):
    """Per-layer activation and gradient statistics on a fixed probe batch (off unless added).

    Args:
        probe: the inputs the activations are measured on, scaled as the model
            sees them. None: the first training batch is kept as the probe (the
            record at initialization is then taken just before the first step).
        probe_size: at most this many rows of `probe` are used.
        epochs: the 0-based epochs after which a record is taken; None: every
            `every` epochs (and the last one).
        every: record every `every` epochs when `epochs` is None.
        steps: optimizer steps (0-based) after which a record is also taken,
            with that step's gradients and update.
        bins: histogram bins per layer.
        grad_batches: batches measured for gradients and updates in a recorded epoch.
        path: a JSON-lines file each record is appended to as it is taken.

    Each record: ``{"epoch", "step", "moment", "layers": [...], "grads": [...],
    "grad_ratio"}``; ``epoch`` is -1 at initialization. A layer entry has
    ``name, kind, mean, std, hist, range`` and, where they apply, ``saturated``
    and ``dead``; a gradient entry has ``name, grad_norm, weight_norm,
    update_ratio``. ``grad_ratio`` is the first weight layer's gradient norm over
    the last's; ``relative_grad_ratio`` the same for ||grad|| / ||W||, which is
    what sets how fast a layer learns under SGD.
    """

    def __init__(self, probe: Tensor | None = None, *, probe_size: int = 128,
                 epochs: Iterable[int] | None = None, every: int = 1, steps: Iterable[int] = (),
                 bins: int = 40, grad_batches: int = 4, path: str | Path | None = None) -> None:
        if probe is not None and not isinstance(probe, Tensor):
            raise InputTypeError(f"TrainingStatistics: probe must be a torch.Tensor of inputs, "
                                 f"got {type(probe).__name__}")
        if probe is not None and probe.shape[0] == 0:
            raise InputError("TrainingStatistics: the probe batch is empty; give at least one sample")
        self.probe_size = check.int_at_least("TrainingStatistics.probe_size", probe_size, 1)
        self.probe = probe[:probe_size] if probe is not None else None
        self.epochs = _chosen("TrainingStatistics.epochs", epochs)
        self.every = check.int_at_least("TrainingStatistics.every", every, 1)
        self.steps = _chosen("TrainingStatistics.steps", steps) or frozenset()
        self.bins = check.int_at_least("TrainingStatistics.bins", bins, 2)
        self.grad_batches = check.int_at_least("TrainingStatistics.grad_batches", grad_batches, 1)
        self.path = Path(path) if path is not None else None
        self.records: list[dict[str, Any]] = []
        self._handles: list[Any] = []
        self._capturing = False
        self._pending: dict[int, Tensor] = {}
        self._acts: list[tuple[str, str, nn.Module]] = []
        self._layers: list[tuple[str, nn.Module]] = []
        self._params: list[Tensor] = []
        self._owner: Tensor | None = None
        self._weights: list[Tensor] = []
        self._grad_sq: Tensor | None = None
        self._ratio_sum: Tensor | None = None
        self._measured = 0
        self._snapshot: list[Tensor] | None = None
        self._measure_batches: frozenset[int] = frozenset()
        self._epoch_recorded = False
        self._probe: Tensor | None = None
        self._weight_norm: Tensor | None = None

    # -- which moments are recorded ---------------------------------------------
    def records_epoch(self, epoch: int) -> bool:
        if self.epochs is not None:
            return epoch in self.epochs
        return (epoch + 1) % self.every == 0 or epoch == self.run.num_epochs - 1

    # -- hooks -----------------------------------------------------------------
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.records = []
        model = self.model
        self._acts = _activation_modules(model)
        self._layers = _weight_layers(model)
        self._params, owner = [], []
        for i, (_, module) in enumerate(self._layers):
            for p in module._parameters.values():
                if p is not None and p.requires_grad:
                    self._params.append(p)
                    owner.append(i)
        self._weights = [_own_weight(m) for _, m in self._layers]  # type: ignore[misc]
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        self._owner = torch.tensor(owner, dtype=torch.long, device=device)
        for index, (_, kind, module) in enumerate(self._acts):
            self._handles.append(module.register_forward_hook(self._hook(index, kind)))
        if self.probe is not None:
            self._probe = self.probe.to(device)
            self._record(epoch=-1, moment="init")
        else:
            self._probe = None
            first = self._first_module()
            if first is not None:
                self._handles.append(first.register_forward_pre_hook(self._capture_probe))

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._snapshot = None

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch_recorded = self.records_epoch(epoch)
        self._reset_grads()
        spe = self.run.steps_per_epoch
        count = min(self.grad_batches, spe)
        self._measure_batches = (frozenset(int(i * spe / count) for i in range(count))
                                 if self._epoch_recorded else frozenset())

    def on_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        step = self.run.epoch * self.run.steps_per_epoch + batch
        if batch in self._measure_batches or step in self.steps:
            self._snapshot = [w.detach().clone() for w in self._weights]

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self._snapshot is None:
            return
        step = self.run.epoch * self.run.steps_per_epoch + batch
        if step in self.steps:
            # A step record carries that step's own gradients and update, apart from the epoch's sums.
            saved = (self._grad_sq, self._ratio_sum, self._measured)
            self._reset_grads()
            self._measure()
            self._record(epoch=self.run.epoch, moment="step", step=step + 1)
            self._grad_sq, self._ratio_sum, self._measured = saved
        if batch in self._measure_batches:
            self._measure()
        self._snapshot = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self._epoch_recorded:
            self._record(epoch=epoch, moment="epoch", step=(epoch + 1) * self.run.steps_per_epoch)
        if logs is not None:
            # A few per-epoch numbers go into the epoch's logs, so the run's History (and history.jsonl)
            # carries them; NaN in epochs that were not recorded keeps the lists aligned with the epochs.
            logs.update(self.summary(self.records[-1] if self._epoch_recorded and self.records else None))

    def summary(self, record: dict[str, Any] | None) -> dict[str, float]:
        """The record's headline numbers, as they appear in the epoch logs (NaN without a record)."""
        kinds = [kind for _, kind, _ in self._acts]
        keys = ["grad_ratio", "relative_grad_ratio", "median_update_ratio"]
        if any(k in RELU_FAMILY for k in kinds):
            keys.append("max_dead_fraction")
        if any(k in SATURATING for k in kinds):
            keys.append("max_saturated_fraction")
        values = dict.fromkeys(keys, math.nan)
        if record is None:
            return values
        for key in ("grad_ratio", "relative_grad_ratio"):
            if record.get(key) is not None:
                values[key] = float(record[key])
        updates = sorted(g["update_ratio"] for g in record.get("grads", []))
        if updates:
            values["median_update_ratio"] = updates[len(updates) // 2]
        for key, field in (("max_dead_fraction", "dead"), ("max_saturated_fraction", "saturated")):
            found = [layer[field] for layer in record.get("layers", []) if field in layer]
            if key in values and found:
                values[key] = max(found)
        return values

    # -- measuring ---------------------------------------------------------------
    def _first_module(self) -> nn.Module | None:
        layers = getattr(self.model, "layers", None)
        if isinstance(layers, nn.ModuleList) and len(layers) > 0:
            first: nn.Module = layers[0]
            return first
        return self.model

    def _capture_probe(self, module: nn.Module, inputs: tuple[Any, ...]) -> None:
        if self._probe is not None or self._capturing or not inputs or not isinstance(inputs[0], Tensor):
            return
        self._probe = inputs[0].detach()[:self.probe_size].clone()
        if not self.records:  # a resumed run has its records back already
            # Still the initial weights: the first forward of the first step is under way.
            self._record(epoch=-1, moment="init")

    def _hook(self, index: int, kind: str) -> Any:
        bins = self.bins
        low_high = SATURATING.get(kind)

        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if not self._capturing or not isinstance(output, Tensor):
                return
            out = output.detach().float().reshape(output.shape[0], -1)
            mean, std = out.mean(), out.std(unbiased=False)
            if low_high is not None:
                low, high = out.new_full((), low_high[0]), out.new_full((), low_high[1])
                margin = _SATURATION_MARGIN * (high - low)
                saturated = ((out <= low + margin) | (out >= high - margin)).float().mean()
            else:
                # Up to 4 std around the mean (values beyond go to the end bins): a long tail
                # would otherwise squeeze the bulk of the distribution into one bin.
                spread = 4.0 * std
                high = torch.minimum(out.max(), mean + spread)
                low = (out.new_zeros(()) if kind in RELU_FAMILY
                       else torch.maximum(out.min(), mean - spread).clamp(max=0.0))
                saturated = out.new_full((), math.nan)
            dead = ((out > 0).any(dim=0).logical_not().float().mean() if kind in RELU_FAMILY
                    else out.new_full((), math.nan))
            width = (high - low).clamp(min=1e-12)
            index_of = ((out - low) / width * bins).long().clamp(0, bins - 1).flatten()
            hist = torch.bincount(index_of, minlength=bins).float()
            # Keyed by the layer's depth: a module called twice keeps its last output's statistics.
            self._pending[index] = torch.cat([torch.stack([mean, std, saturated, dead, low, high]), hist])

        return hook

    def _reset_grads(self) -> None:
        self._grad_sq = None
        self._ratio_sum = None
        self._measured = 0

    def _measure(self) -> None:
        """Add this step's per-layer gradient norms and update ratios to the epoch's sums (on device)."""
        if not self._params or self._owner is None or self._snapshot is None:
            return
        zero = self._params[0].new_zeros(())
        grads = [p.grad.detach() if p.grad is not None else zero for p in self._params]
        norms = torch.stack(torch._foreach_norm(grads)).float()
        squares = torch.zeros(len(self._layers), device=norms.device).index_add_(0, self._owner, norms * norms)
        now = [w.detach() for w in self._weights]
        change = torch.stack(torch._foreach_norm(torch._foreach_sub(now, self._snapshot))).float()
        before = torch.stack(torch._foreach_norm(self._snapshot)).float().clamp(min=1e-12)
        ratio = change / before
        self._weight_norm = before
        self._grad_sq = squares if self._grad_sq is None else self._grad_sq + squares
        self._ratio_sum = ratio if self._ratio_sum is None else self._ratio_sum + ratio
        self._measured += 1

    def _record(self, *, epoch: int, moment: str, step: int = 0) -> None:
        if self._probe is None:
            return
        model = self.model
        was_training = model.training
        self._pending = {}
        self._capturing = True
        model.eval()
        try:
            with torch.no_grad():
                model(self._probe)
        finally:
            self._capturing = False
            model.train(was_training)
        present = sorted(self._pending)
        parts = [self._pending[i] for i in present]
        self._pending = {}
        grads_measured = self._measured > 0 and self._grad_sq is not None and self._ratio_sum is not None
        if grads_measured:
            assert self._grad_sq is not None and self._ratio_sum is not None
            assert self._weight_norm is not None
            parts += [(self._grad_sq / self._measured).sqrt(), self._ratio_sum / self._measured,
                      self._weight_norm]
        flat = torch.cat([p.flatten() for p in parts]).tolist() if parts else []  # the one device sync
        record = self._unpack(flat, present, grads_measured)
        record.update(epoch=epoch, step=step, moment=moment, probe_size=int(self._probe.shape[0]))
        self.records.append(record)
        if self.path is not None:
            with open(self.path, "a") as f:
                f.write(json.dumps(record, allow_nan=True) + "\n")

    def _unpack(self, flat: list[float], present: list[int], grads_measured: bool) -> dict[str, Any]:
        width = 6 + self.bins
        layers = []
        for i, depth in enumerate(present):
            name, kind, _ = self._acts[depth]
            chunk = flat[i * width:(i + 1) * width]
            mean, std, saturated, dead, low, high = chunk[:6]
            entry: dict[str, Any] = {"name": name, "kind": kind, "depth": depth, "mean": mean, "std": std,
                                     "range": [low, high], "hist": [int(c) for c in chunk[6:]]}
            if kind in SATURATING:
                entry["saturated"] = saturated
            if kind in RELU_FAMILY:
                entry["dead"] = dead
            layers.append(entry)
        used = len(layers) * width
        grads: list[dict[str, Any]] = []
        grad_ratio: float | None = None
        relative_ratio: float | None = None
        if grads_measured:
            count = len(self._layers)
            norms = flat[used:used + count]
            ratios = flat[used + count:used + 2 * count]
            weights = flat[used + 2 * count:used + 3 * count]
            grads = [{"name": name, "depth": i, "grad_norm": g, "weight_norm": w, "update_ratio": r}
                     for i, ((name, _), g, r, w) in enumerate(zip(self._layers, norms, ratios, weights))]
            if len(norms) >= 2:
                grad_ratio = _ratio(norms[0], norms[-1])
                relative_ratio = _ratio(norms[0] / weights[0], norms[-1] / weights[-1])
        return {"layers": layers, "grads": grads, "grad_ratio": grad_ratio,
                "relative_grad_ratio": relative_ratio}

    def state_dict(self) -> dict[str, Any]:
        return {"records": json.dumps(self.records)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.records = json.loads(state.get("records", "[]"))


def _ratio(a: float, b: float) -> float:
    if b > 0:
        return a / b
    return math.inf if a > 0 else math.nan


def read_statistics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a statistics JSON-lines file (as `TrainingStatistics(path=...)` writes it)."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"'{file}' holds no statistics: the file does not exist")
    records = []
    for number, line in enumerate(file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise InputError(f"{file} line {number} is not valid JSON: {error}") from None
    return records


def layer_names(records: Sequence[dict[str, Any]]) -> list[str]:
    """The activation layers named in the records, by depth."""
    names: list[str] = []
    for record in records:
        for layer in record.get("layers", []):
            if layer["name"] not in names:
                names.append(layer["name"])
    return names
