"""Sharpness of a trained model: how fast its loss rises around the weights it ended at.

Keskar et al. (2017) observed that large-batch training ends in *sharp*
minimizers (the loss rises steeply in some directions) and small-batch
training in *flat* ones, which generalize better. Three measures of the
training loss L(w) over a stated set of rows, at the trained weights w:

- the top Hessian eigenvalue, the curvature of L along its steepest direction,
  by Lanczos iteration (`scipy.sparse.linalg.eigsh`, ARPACK) or power
  iteration on Hessian-vector products; the Hessian is never formed;
- the Hessian trace, the sum of the curvatures, by Hutchinson's estimator
  tr(H) = E[v^T H v] over Rademacher vectors v, with its standard error;
- the epsilon-sharpness of Keskar et al.: the largest rise of the loss in a
  box of relative size epsilon around w, in percent of 1 + L(w),
  ``100 * (max_{|z_i| <= eps (|w_i| + 1)} L(w + z) - L(w)) / (1 + L(w))``,
  maximized with L-BFGS-B (`scipy.optimize.minimize`) as in the paper.

The loss is the data loss the model was trained with (the mean over the rows,
without weight penalties), in eval mode (no dropout; BatchNormalization uses
its running statistics). Hessian-vector products come from
`torch.func` (reverse over reverse: the vjp of grad); these are analysis calls
on a trained model, not training, which stays in `trainlab.engine`.

`run_sharpness(run_dir)` measures a finished run (`trainlab fit`, a study run)
on its own training rows and reports it beside the generalization gap (the
validation loss minus the training loss of the saved weights).

Example:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Linear(1, 1, bias=False)  # mse of w x against 0: the Hessian is 2 mean(x^2) = 18
    >>> m = measure_sharpness(model, torch.full((5, 1), 3.0), torch.zeros(5, 1), loss="mse", trace_samples=2)
    >>> round(m.top_eigenvalue, 3), round(m.trace, 3)
    (18.0, 18.0)

References:
    Keskar, Mudigere, Nocedal, Smelyanskiy, Tang, "On Large-Batch Training for
    Deep Learning: Generalization Gap and Sharp Minima", ICLR 2017.
    Hutchinson, "A stochastic estimator of the trace of the influence matrix
    for Laplacian smoothing splines", 1989.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from trainlab import check
from trainlab.errors import InputError

__all__ = ["EIGEN_METHODS", "HessianProbe", "RunSharpness", "Sharpness", "epsilon_sharpness", "hessian_trace",
           "measure_sharpness", "run_sharpness", "top_eigenvalue"]

#: The values of ``top_eigenvalue(method=...)``.
EIGEN_METHODS = ("lanczos", "power")


class _Logits(nn.Module):
    """Calls the wrapped model's logits forward, so that `torch.func.functional_call` reaches it."""

    def __init__(self, inner: nn.Module, forward: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.inner = inner
        self._forward = forward

    def forward(self, x: Tensor) -> Tensor:
        return self._forward(x)


class HessianProbe:
    """The data loss of `model` on fixed rows, as a function of its trainable weights flattened.

    Gives the loss, its gradient and Hessian-vector products at any weight
    vector without changing the model; the rows are evaluated in chunks of
    `batch_size` and the chunk results added with their row counts, so the
    values are those of the mean loss over all the rows.

    Args:
        model: a trained nn.Module (a trainlab Sequential or any module); it is put in eval mode.
        x, y: the rows, already scaled as the model was trained on them.
        loss: a loss spec (name or table), or "auto" to choose it from `task` and `y`
            as training does (a softmax/sigmoid output is fused with the cross-entropy).
        task: "classification" or "regression", for loss="auto".
        batch_size: rows per chunk (None: all rows at once).

    Example:
        >>> probe = HessianProbe(nn.Linear(2, 1), torch.ones(4, 2), torch.zeros(4, 1), loss="mse")
        >>> probe.num_params
        3
    """

    def __init__(self, model: nn.Module, x: Tensor, y: Tensor, *, loss: Any = "auto", task: str | None = None,
                 batch_size: int | None = None) -> None:
        from trainlab.engine import Technique, probe_outputs, resolve_loss, targets

        if x.shape[0] == 0:
            raise InputError("sharpness needs at least one row to measure the loss on; got none")
        if x.shape[0] != y.shape[0]:
            raise InputError(f"sharpness: x has {x.shape[0]} rows but y has {y.shape[0]}; they must match")
        if batch_size is not None:
            check.int_at_least("batch_size", batch_size, 1)
        model.eval()
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        self.x = x.to(device)
        out = probe_outputs(model, self.x)
        num_outputs = out.shape[-1] if out.dim() > 1 else 1
        loss_fn, forward, _ = resolve_loss(model, Technique(loss=loss, task=task), y, num_outputs)
        self.loss_fn = loss_fn
        self.y = targets(y, loss_fn, num_outputs, "sharpness", device)
        self.module = _Logits(model, forward)
        self.names = [f"inner.{n}" for n, p in model.named_parameters() if p.requires_grad]
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise InputError("sharpness: the model has no trainable weights, so its loss has no curvature to "
                             "measure")
        self.shapes = [p.shape for p in params]
        self.sizes = [p.numel() for p in params]
        self.weights = torch.cat([p.detach().reshape(-1) for p in params])
        self.buffers = {f"inner.{n}": b for n, b in model.named_buffers()}
        self.batch_size = batch_size or x.shape[0]
        self._products: list[tuple[float, Callable[[Tensor], tuple[Tensor]]]] | None = None

    @property
    def num_params(self) -> int:
        """The number of trainable weights (the Hessian is num_params x num_params)."""
        return int(self.weights.numel())

    def _unflatten(self, flat: Tensor) -> dict[str, Tensor]:
        parts = torch.split(flat, self.sizes)
        return {n: p.reshape(s) for n, p, s in zip(self.names, parts, self.shapes)}

    def _chunk_loss(self, flat: Tensor, x: Tensor, y: Tensor) -> Tensor:
        out = torch.func.functional_call(self.module, {**self._unflatten(flat), **self.buffers}, (x,))
        return self.loss_fn(out, y)

    def _chunks(self) -> list[tuple[Tensor, Tensor, float]]:
        n = self.x.shape[0]
        return [(self.x[s:s + self.batch_size], self.y[s:s + self.batch_size],
                 min(self.batch_size, n - s) / n) for s in range(0, n, self.batch_size)]

    def loss(self, flat: Tensor | None = None) -> float:
        """The mean loss over the rows at weights `flat` (default: the trained weights)."""
        at = self.weights if flat is None else flat
        with torch.no_grad():
            return float(sum(share * self._chunk_loss(at, x, y) for x, y, share in self._chunks()))

    def loss_and_gradient(self, flat: Tensor) -> tuple[float, Tensor]:
        """The mean loss and its gradient with respect to the flat weights."""
        total, grad = 0.0, torch.zeros_like(flat)
        for x, y, share in self._chunks():
            g, value = torch.func.grad_and_value(self._chunk_loss)(flat, x, y)
            total += share * float(value)
            grad += share * g
        return total, grad

    def hvp(self, vector: Tensor) -> Tensor:
        """H v at the trained weights: the vjp of the gradient (reverse over reverse; H is symmetric).

        The gradient's graph is built once per chunk and reused by every product.
        """
        if self._products is None:
            self._products = []
            for x, y, share in self._chunks():
                gradient = torch.func.grad(lambda w, x=x, y=y: self._chunk_loss(w, x, y))
                self._products.append((share, torch.func.vjp(gradient, self.weights)[1]))
        out = torch.zeros_like(self.weights)
        for share, product in self._products:
            out += share * product(vector)[0]
        return out


def _probe(model: nn.Module | HessianProbe, x: Tensor | None, y: Tensor | None, loss: Any,
           task: str | None, batch_size: int | None) -> HessianProbe:
    if isinstance(model, HessianProbe):
        return model
    if x is None or y is None:
        raise InputError("sharpness: give the rows x and y to measure the loss on")
    return HessianProbe(model, x, y, loss=loss, task=task, batch_size=batch_size)


def top_eigenvalue(model: nn.Module | HessianProbe, x: Tensor | None = None, y: Tensor | None = None, *,
                   loss: Any = "auto", task: str | None = None, method: str = "lanczos",
                   max_iterations: int = 200, tol: float = 1e-4, seed: int = 0,
                   batch_size: int | None = None) -> float:
    """The largest eigenvalue of the Hessian of the loss over (x, y), from Hessian-vector products.

    Args:
        model, x, y, loss, task, batch_size: as `HessianProbe` (or a probe in place of the model).
        method: "lanczos" (scipy's ARPACK ``eigsh``, largest algebraic
            eigenvalue) or "power" (power iteration: the eigenvalue of largest
            magnitude, which is the top one unless a negative curvature is larger).
        max_iterations: the most Lanczos restarts' iterations or power steps.
        tol: relative tolerance on the eigenvalue.
        seed: the start vector's random seed.

    Example:
        >>> model = nn.Linear(1, 1, bias=False)  # loss = mean (w x)^2: Hessian 2 mean(x^2)
        >>> round(top_eigenvalue(model, torch.full((5, 1), 3.0), torch.zeros(5, 1), loss="mse"), 4)
        18.0
    """
    check.choice("method", method, EIGEN_METHODS, "'lanczos' converges in fewer products; 'power' is simpler.")
    check.int_at_least("max_iterations", max_iterations, 1)
    probe = _probe(model, x, y, loss, task, batch_size)
    generator = torch.Generator().manual_seed(seed)
    start = torch.randn(probe.num_params, generator=generator, dtype=torch.float64)
    if method == "power" or probe.num_params < 3:
        return _power(probe, start, max_iterations, tol)
    from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

    dtype = probe.weights.dtype

    def matvec(v: np.ndarray) -> np.ndarray:
        vector = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64).reshape(-1)).to(
            device=probe.weights.device, dtype=dtype)
        return probe.hvp(vector).double().cpu().numpy()

    operator = LinearOperator((probe.num_params, probe.num_params), matvec=matvec, dtype=np.float64)
    try:
        values = eigsh(operator, k=1, which="LA", v0=start.numpy(), tol=tol, maxiter=max_iterations,
                       return_eigenvectors=False)
    except ArpackNoConvergence as error:
        if len(error.eigenvalues) == 0:
            raise InputError(f"the Lanczos iteration did not converge in {max_iterations} restarts to the "
                             f"relative tolerance {tol:g}; raise max_iterations or tol, or use method='power'") from None
        warnings.warn(f"the Lanczos iteration did not reach the relative tolerance {tol:g} in {max_iterations} "
                      "restarts; the top eigenvalue is its best estimate so far", RuntimeWarning, stacklevel=2)
        values = error.eigenvalues
    return float(np.max(values))


def _power(probe: HessianProbe, start: Tensor, max_iterations: int, tol: float) -> float:
    v = (start / start.norm()).to(device=probe.weights.device, dtype=probe.weights.dtype)
    value = 0.0
    for _ in range(max_iterations):
        hv = probe.hvp(v)
        new = float(torch.dot(v, hv))
        norm = hv.norm()
        if not torch.isfinite(norm) or float(norm) == 0.0:
            return new
        v = hv / norm
        if abs(new - value) <= tol * max(abs(new), 1e-12):
            return new
        value = new
    return value


def hessian_trace(model: nn.Module | HessianProbe, x: Tensor | None = None, y: Tensor | None = None, *,
                  loss: Any = "auto", task: str | None = None, num_samples: int = 100, seed: int = 0,
                  batch_size: int | None = None) -> tuple[float, float]:
    """Hutchinson's estimate of the Hessian's trace and its standard error.

    tr(H) = E[v^T H v] for v with independent Rademacher (+-1) entries; the
    estimate is the mean of `num_samples` such products, and the standard
    error is their standard deviation over sqrt(num_samples).

    Returns:
        (trace estimate, standard error)

    Example:
        >>> model = nn.Linear(1, 1, bias=False)
        >>> hessian_trace(model, torch.full((5, 1), 3.0), torch.zeros(5, 1), loss="mse", num_samples=4)
        (18.0, 0.0)
    """
    check.int_at_least("num_samples", num_samples, 2, "The standard error needs at least two samples.")
    probe = _probe(model, x, y, loss, task, batch_size)
    generator = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(num_samples):
        v = (torch.randint(0, 2, (probe.num_params,), generator=generator) * 2 - 1).to(
            device=probe.weights.device, dtype=probe.weights.dtype)
        values.append(float(torch.dot(v, probe.hvp(v))))
    samples = np.asarray(values)
    return float(samples.mean()), float(samples.std(ddof=1) / math.sqrt(num_samples))


def epsilon_sharpness(model: nn.Module | HessianProbe, x: Tensor | None = None, y: Tensor | None = None, *,
                      loss: Any = "auto", task: str | None = None, epsilon: float = 1e-3,
                      max_iterations: int = 10, batch_size: int | None = None) -> float:
    """Keskar et al.'s epsilon-sharpness, in percent.

    ``100 * (max_{z in C} L(w + z) - L(w)) / (1 + L(w))`` over the box
    C = {z : |z_i| <= epsilon * (|w_i| + 1)}, maximized with L-BFGS-B from
    z = 0 for `max_iterations` iterations (the paper uses 10, and epsilon 1e-3
    and 5e-4). The result is a lower bound of the true maximum, as in the paper.

    Example:
        >>> model = nn.Linear(1, 1, bias=False)  # loss w^2 at w0: the box's far corner is |w0| + eps (|w0| + 1)
        >>> with torch.no_grad():
        ...     _ = model.weight.fill_(0.5)
        >>> value = epsilon_sharpness(model, torch.ones(1, 1), torch.zeros(1, 1), loss="mse", epsilon=0.1)
        >>> round(value, 4), round(100 * ((0.5 + 0.1 * 1.5) ** 2 - 0.25) / 1.25, 4)
        (13.8, 13.8)
    """
    check.at_least("epsilon", epsilon, 0.0, "It is the box's half-width relative to |w| + 1; 1e-3 is usual.")
    check.int_at_least("max_iterations", max_iterations, 1)
    probe = _probe(model, x, y, loss, task, batch_size)
    from scipy.optimize import minimize

    w = probe.weights
    base = probe.loss()
    radius = (epsilon * (w.abs() + 1)).double().cpu().numpy()

    def negative(z: np.ndarray) -> tuple[float, np.ndarray]:
        step = torch.from_numpy(z).to(device=w.device, dtype=w.dtype)
        value, grad = probe.loss_and_gradient(w + step)
        return -value, -grad.double().cpu().numpy()

    found = minimize(negative, np.zeros(probe.num_params), jac=True, method="L-BFGS-B",
                     bounds=list(zip(-radius, radius)), options={"maxiter": max_iterations})
    highest = max(-float(found.fun), base)
    return 100.0 * (highest - base) / (1.0 + base)


@dataclass(frozen=True)
class Sharpness:
    """The sharpness measures of one model on one set of rows (see the module docstring)."""

    top_eigenvalue: float
    trace: float
    trace_std_error: float
    epsilon_sharpness: float
    epsilon: float
    loss: float
    rows: int
    num_params: int
    method: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure_sharpness(model: nn.Module, x: Tensor, y: Tensor, *, loss: Any = "auto", task: str | None = None,
                      method: str = "lanczos", trace_samples: int = 30, epsilon: float = 1e-3,
                      seed: int = 0, batch_size: int | None = None) -> Sharpness:
    """All three measures on (x, y): top eigenvalue, Hutchinson trace and epsilon-sharpness.

    Example:
        >>> m = measure_sharpness(nn.Linear(1, 1, bias=False), torch.full((5, 1), 3.0), torch.zeros(5, 1),
        ...                       loss="mse", trace_samples=2)
        >>> round(m.top_eigenvalue, 3), round(m.trace, 3), m.rows
        (18.0, 18.0, 5)
    """
    probe = HessianProbe(model, x, y, loss=loss, task=task, batch_size=batch_size)
    trace, error = hessian_trace(probe, num_samples=trace_samples, seed=seed)
    return Sharpness(top_eigenvalue=top_eigenvalue(probe, method=method, seed=seed), trace=trace,
                     trace_std_error=error, epsilon_sharpness=epsilon_sharpness(probe, epsilon=epsilon),
                     epsilon=epsilon, loss=probe.loss(), rows=int(x.shape[0]), num_params=probe.num_params,
                     method=method)


@dataclass(frozen=True)
class RunSharpness:
    """A finished run's sharpness beside its generalization gap.

    ``train`` and ``val`` hold the saved weights' loss and metrics in eval mode
    on the run's training rows and its validation rows; ``gap`` is the
    validation loss minus the training loss (and, for each metric, training
    minus validation for a higher-is-better metric such as accuracy).
    """

    run_dir: str
    sharpness: Sharpness
    train: dict[str, float]
    val: dict[str, float]
    gap: dict[str, float]
    rows: str

    def to_dict(self) -> dict[str, Any]:
        return {"run_dir": self.run_dir, "measured_on": self.rows, **self.sharpness.to_dict(), "train": self.train,
                "val": self.val, "gap": self.gap}


def run_sharpness(run_dir: str | Path, *, rows: int | None = 2000, method: str = "lanczos",
                  trace_samples: int = 30, epsilon: float = 1e-3, seed: int = 0) -> RunSharpness:
    """Sharpness of a finished run folder on its first `rows` training rows, with its generalization gap.

    The run's spec.toml says how its data was split and scaled; the same split
    and scaling are made again, so the rows are the ones the run trained on.

    Raises:
        InputError: the folder holds no saved model (model.safetensors and model.json) or no spec.toml.
    """
    from trainlab.api import dataset_from_spec, prepare
    from trainlab.runs import load
    from trainlab.spec import load_spec

    folder = Path(run_dir)
    if not folder.is_dir():
        raise InputError(f"'{folder}' is not a folder: give a finished run folder (runs/<name>/<run-id>/, "
                         "listed by `trainlab runs`) that holds model.safetensors, model.json and spec.toml.")
    missing = [f for f in ("model.safetensors", "model.json", "spec.toml") if not (folder / f).is_file()]
    if missing and (folder / "study.json").is_file():
        raise InputError(f"'{folder}' is a study folder, which holds no model itself: give one of its run folders "
                         f"({folder}/<case>-s<seed>/), or add sharpness = true to the study's [study] table to "
                         "measure every run.")
    if missing:
        raise InputError(f"'{folder}' holds no trained model to measure: {', '.join(missing)} "
                         f"{'is' if len(missing) == 1 else 'are'} missing. `trainlab sharpness` reads a finished "
                         "run folder as `trainlab fit` or `trainlab study` writes it (runs/<name>/<run-id>/); an "
                         "unfinished run has no model yet, so finish it first (`trainlab fit SPEC --resume`).")
    if rows is not None:
        check.int_at_least("rows", rows, 1, "It is how many training rows the loss is measured on.")
    spec = load_spec(folder / "spec.toml")
    dataset = dataset_from_spec(spec.data)
    prepared = prepare(dataset, validation_split=spec.data.validation_split, stratify=spec.data.stratify,
                       scaling=spec.data.scaling, seed=spec.recipe.seed)
    model = load(folder)
    measured = measure_gap_and_sharpness(model, prepared.data, loss=spec.recipe.loss or "auto",
                                         metrics=spec.recipe.metrics, task=dataset.task, rows=rows,
                                         method=method, trace_samples=trace_samples, epsilon=epsilon, seed=seed)
    return RunSharpness(run_dir=str(folder), **measured)


def measure_gap_and_sharpness(model: nn.Module, data: Any, *, loss: Any, metrics: Any, task: str | None,
                              rows: int | None, method: str = "lanczos", trace_samples: int = 30,
                              epsilon: float = 1e-3, seed: int = 0) -> dict[str, Any]:
    """Sharpness on the first `rows` training rows of `data` (a TrainData), and the train/val gap."""
    from trainlab.engine import (
        Technique,
        evaluate_tensors,
        make_metrics,
        probe_outputs,
        resolve_loss,
        targets,
    )

    x, y = data.x, data.y
    count = x.shape[0] if rows is None else min(rows, x.shape[0])
    measured = measure_sharpness(model, x[:count], y[:count], loss=loss, task=task, method=method,
                                 trace_samples=trace_samples, epsilon=epsilon, seed=seed)
    out = probe_outputs(model, x)
    num_outputs = out.shape[-1] if out.dim() > 1 else 1
    loss_fn, forward, from_logits = resolve_loss(model, Technique(loss=loss, task=task), y, num_outputs)
    specs = metrics if metrics is not None else (["accuracy"] if task == "classification" else ["mae"])
    device = out.device

    def evaluate(xs: Tensor, ys: Tensor) -> dict[str, float]:
        return evaluate_tensors(model, forward, loss_fn, make_metrics(specs, loss_fn, num_outputs), xs.to(device),
                                targets(ys, loss_fn, num_outputs, "sharpness", device), batch_size=1024,
                                from_logits=from_logits)

    train = evaluate(x, y)
    val = evaluate(data.x_val, data.y_val) if data.x_val is not None else {}
    gap: dict[str, float] = {}
    if val:
        from trainlab.callbacks import _direction

        for key, value in train.items():
            if key not in val:
                continue
            try:
                lower_better = _direction(key, "auto", "gap") == "min"
            except InputError:
                continue
            gap[key] = val[key] - value if lower_better else value - val[key]
    return {"sharpness": measured, "train": train, "val": val, "gap": gap,
            "rows": f"the first {count} of {x.shape[0]} training rows"}
