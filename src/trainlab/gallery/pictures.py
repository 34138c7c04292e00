"""The gallery's pictures, drawn with matplotlib (the entry page embeds them as PNG)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["bars", "curves", "figure"]


def figure(columns: int = 1, *, width: float = 6.0, height: float = 3.8, rows: int = 1) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows), squeeze=False)
    return fig, axes


def curves(context: Any, labels: Sequence[str], key: str, *, title: str, log: bool = False,
           names: Mapping[str, str] | None = None, ax: Any = None) -> Any:
    """Mean over seeds of history `key` per epoch, one line per case, with the min-max band over seeds."""
    fig = None
    if ax is None:
        fig, axes = figure()
        ax = axes[0][0]
    for label in labels:
        runs = context.runs(label)
        if not runs:
            continue
        length = max(len(r.history.get(key, [])) for r in runs)
        matrix = np.full((len(runs), length), np.nan)
        for i, run in enumerate(runs):
            values = np.asarray(run.history.get(key, []), dtype=float)
            values[~np.isfinite(values)] = np.nan
            matrix[i, :len(values)] = values
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.nanmean(matrix, axis=0)
                low, high = np.nanmin(matrix, axis=0), np.nanmax(matrix, axis=0)
        epochs = np.arange(1, length + 1)
        line, = ax.plot(epochs, mean, label=(names or {}).get(label, label), linewidth=1.6)
        ax.fill_between(epochs, low, high, color=line.get_color(), alpha=0.15, linewidth=0)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(key)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig if fig is not None else ax


def bars(values: Mapping[str, Sequence[float]], *, title: str, ylabel: str, ax: Any = None,
         log: bool = False) -> Any:
    """One bar per name at the mean, with every seed as a dot."""
    fig = None
    if ax is None:
        fig, axes = figure()
        ax = axes[0][0]
    names = list(values)
    for i, name in enumerate(names):
        finite = [v for v in values[name] if math.isfinite(v)]
        mean = sum(finite) / len(finite) if finite else math.nan
        ax.bar(i, mean, color=f"C{i % 10}", alpha=0.6)
        ax.scatter([i] * len(finite), finite, color="black", s=10, zorder=3)
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if log:
        ax.set_yscale("log")
    ax.grid(alpha=0.3, axis="y")
    return fig if fig is not None else ax
