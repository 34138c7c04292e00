"""The study report: one self-contained `report.html` in the study folder.

Everything is in the one file, and it opens offline:

- the verdict paragraph and the ranked table (`trainlab.study.compare`);
- interactive charts drawn by plotly, whose JavaScript is inlined once in
  the page: hover to read a value, click a case in a legend to hide it;
- the same charts as matplotlib PNGs (base64), shown instead where
  JavaScript is off;
- a section per case: every seed's values, a link to its run folder, and for
  classification the validation confusion matrix summed over seeds.

Charts:

- the compared value (final or best) per case: every seed as a dot, the mean
  with its 95% t-interval; the axis spans the data, not 0, and turns
  logarithmic where the cases differ by orders of magnitude;
- learning curves: training and validation loss and metric per case, the
  mean over seeds as a line with a min-max band over seeds;
- the learning rate of each case, per optimizer step: the case's schedule
  (`trainlab.schedules.schedule`) times the optimizer's base lr, with the lr
  the run logged at the end of each epoch as dots on it (a stateful schedule
  such as plateau is drawn from the logged values alone);
- for a two-axis grid, a heatmap of the compared value over the two axes.

`build_report(study_dir)` rebuilds the page from the stored runs at any time
(`trainlab report STUDY_DIR`).
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainlab.study.compare import (
    CaseSummary,
    Comparison,
    RunRecord,
    StudyRecords,
    compare,
    load_results,
)
from trainlab.study.spec import format_value

__all__ = ["build_report"]

_PALETTE = "tab10"


@dataclass(frozen=True)
class Chart:
    """One chart of the page: its title, caption, static PNG (base64) and interactive plotly figure."""

    title: str
    caption: str
    png: str
    figure: Any = None


def figures_html(charts: Sequence[Chart]) -> list[str]:
    """One <h2> + <figure> per chart: the interactive plotly div (plotly.js is inlined once by the page)
    and its static PNG, shown when scripts do not run."""
    out = []
    for index, chart in enumerate(charts):
        interactive = "" if chart.figure is None else chart.figure.to_html(
            full_html=False, include_plotlyjs=False, div_id=f"chart-{index}",
            config={"displaylogo": False, "responsive": True})
        out.append(
            f"<h2>{html.escape(chart.title)}</h2><figure><div class='chart'>{interactive}</div>"
            f"<div class='static'><img alt='{html.escape(chart.title)}' src='data:image/png;base64,{chart.png}'>"
            f"</div><figcaption>{html.escape(chart.caption)}</figcaption></figure>")
    return out


def build_report(study_dir: str | Path) -> Path:
    """Write ``study_dir/report.html`` from the study's stored runs; return its path.

    Raises:
        InputError: `study_dir` is not a study folder, or none of its runs has finished.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    stored = load_results(study_dir)
    settings = stored.info.get("settings", {})
    comparison = compare(stored.records, metric=settings.get("metric"), mode=settings.get("mode", "auto"),
                         rank_by=settings.get("rank_by", "final"), case_order=stored.case_labels)
    labels = [c for c in stored.case_labels if any(r.case == c for r in stored.records)]
    colours = _colours(labels)
    lr_series = _lr_series(stored, labels)
    charts = [
        Chart(f"{comparison.rank_by.capitalize()} {comparison.metric} per case",
              "Every seed is a dot; the mean (diamond) carries its 95% t-interval. The axis spans the data "
              "(logarithmic where cases differ by orders of magnitude); diverged runs are left out and "
              "named in the verdict.",
              _dots(comparison, colours), _plotly_dots(comparison, colours)),
        Chart("Learning curves", "Mean over seeds (line) with the min-max range over seeds (band), per epoch.",
              _curves(stored.records, labels, colours, comparison.metric),
              _plotly_curves(stored.records, labels, colours, comparison.metric)),
        Chart("Learning rate",
              "The lr before each optimizer step: the case's schedule times the optimizer's base lr "
              "(first seed); dots are the lr each run logged at the end of each epoch.",
              _learning_rates(lr_series, colours), _plotly_learning_rates(lr_series, colours)),
    ]
    heatmap = _heatmap(stored, comparison)
    if heatmap is not None:
        charts.append(heatmap)
    from trainlab.generalize._pages import sharpness_chart

    sharpness = sharpness_chart(study_dir)  # runs of a study with sharpness = true
    if sharpness is not None:
        charts.append(sharpness)
    details = _details(stored, comparison)
    page = _page(stored, comparison, charts, details)
    target = Path(study_dir) / "report.html"
    tmp = target.with_name(".report.html.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, target)
    return target


# --------------------------------------------------------------------------- figures


def _colours(labels: Sequence[str]) -> dict[str, Any]:
    import matplotlib

    cmap = matplotlib.colormaps[_PALETTE if len(labels) <= 10 else "tab20"]
    return {label: cmap(i % cmap.N) for i, label in enumerate(labels)}


def _png(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _stack(runs: Sequence[RunRecord], key: str) -> np.ndarray:
    """Runs x epochs, NaN-padded where a run stopped early."""
    length = max(len(r.history.get(key, [])) for r in runs)
    out = np.full((len(runs), length), np.nan)
    for i, run in enumerate(runs):
        values = np.asarray(run.history.get(key, []), dtype=float)
        out[i, :len(values)] = values
    return out


def _reduce(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    present = ~np.isnan(matrix)
    count = present.sum(axis=0)
    safe = np.where(present, matrix, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, safe.sum(axis=0) / np.maximum(count, 1), np.nan)
    low = np.where(count > 0, np.where(present, matrix, np.inf).min(axis=0), np.nan)
    high = np.where(count > 0, np.where(present, matrix, -np.inf).max(axis=0), np.nan)
    return mean, low, high


def _curves(records: Sequence[RunRecord], labels: Sequence[str], colours: dict[str, Any], metric: str) -> str:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    panels = _panels(records, metric)
    columns = 2
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(12, 3.6 * rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (key, title) in zip(axes.flat, panels, strict=False):
        finals, firsts, lows = [], [], []
        for label in labels:
            runs = [r for r in records if r.case == label and key in r.history]
            if not runs:
                continue
            mean, low, high = _reduce(_stack(runs, key))
            epochs = np.arange(1, len(mean) + 1)
            with np.errstate(invalid="ignore"):
                ax.fill_between(epochs, low, high, color=colours[label], alpha=0.18, linewidth=0)
            ax.plot(epochs, mean, color=colours[label], linewidth=1.8, label=label)
            finite = mean[np.isfinite(mean)]
            if finite.size:
                firsts.append(finite[0])
                finals.append(finite[-1])
                lows.append(float(np.nanmin(np.where(np.isfinite(low), low, np.nan))))
        clipped = _clip_axis(ax, key, firsts, finals, min(lows, default=0.0))
        ax.set_title(title + (" (axis clipped: some values lie above it)" if clipped else ""), fontsize=11)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    handles, names = axes.flat[0].get_legend_handles_labels()
    figure.legend(handles, names, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=9)
    figure.tight_layout()
    return _png(figure)


def _panels(records: Sequence[RunRecord], metric: str) -> list[tuple[str, str]]:
    """(history key, title) of the learning-curve panels: loss, val_loss, the metric and its val_."""
    keys = list(records[0].history)
    base = metric.removeprefix("val_")
    if base == "loss":
        base = next((k for k in keys if not k.startswith("val_") and k not in ("loss", "lr", "penalty")), "")
    return [(k, t) for k, t in (("loss", "training loss"), ("val_loss", "validation loss"),
                                (base, f"training {base}"), (f"val_{base}", f"validation {base}"))
            if k and any(k in r.history for r in records)]


def _clip_axis(ax: Any, key: str, firsts: list[float], finals: list[float], lowest: float) -> bool:
    """Keep a diverging case from flattening the others: cap a loss-like axis at twice the typical value.

    Typical is the larger of the median first-epoch and the median last-epoch value over cases, so the
    cases that learn and the cases that do not stay in view, and a case that blows up leaves the axis.
    """
    if not _lower_is_better(key) or not firsts:
        return False
    top = 2.0 * max(float(np.median(firsts)), float(np.median(finals)))
    _, current_top = ax.get_ylim()
    if not top > 0 or current_top <= top:
        return False
    ax.set_ylim(bottom=min(0.0, lowest), top=top)
    return True


def _lower_is_better(key: str) -> bool:
    from trainlab.callbacks import _direction
    from trainlab.errors import InputError

    try:
        return _direction(key, "auto", "report") == "min"
    except InputError:
        return False


@dataclass(frozen=True)
class _LrSeries:
    label: str
    x: np.ndarray | None  # epochs (fractional) of the schedule curve; None for a stateful schedule
    curve: np.ndarray | None
    ends: np.ndarray  # the end of each epoch, where the run logged its lr
    logged: np.ndarray


def _lr_series(stored: StudyRecords, labels: Sequence[str]) -> list[_LrSeries]:
    specs = {run["run_id"]: run["spec"] for run in stored.info.get("runs", [])}
    series = []
    for label in labels:
        run = sorted((r for r in stored.records if r.case == label), key=lambda r: r.seed)[0]
        logged = np.asarray(run.history.get("lr", []), dtype=float)
        steps_per_epoch = run.steps_per_epoch or 1
        curve = _schedule_curve(specs[run.run_id]["recipe"], steps_per_epoch, len(logged))
        x = None if curve is None else np.arange(len(curve)) / steps_per_epoch
        ends = (np.arange(1, len(logged) + 1) * steps_per_epoch - 1) / steps_per_epoch
        series.append(_LrSeries(label, x, curve, ends, logged))
    return series


def _lr_scale(series: Sequence[_LrSeries]) -> str:
    values = [v for s in series for v in [*(s.curve if s.curve is not None else []), *s.logged]]
    positive = [v for v in values if v > 0 and math.isfinite(v)]
    if positive and len(positive) == len(values) and max(positive) / min(positive) > 50:
        return "log"
    return "linear"


def _learning_rates(series: Sequence[_LrSeries], colours: dict[str, Any]) -> str:
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(12, 4))
    # Cases often share an lr curve (the same schedule and lr): vary the dashes so none hides another.
    dashes = ["-", "--", ":", "-."]
    values: list[float] = []
    for index, s in enumerate(series):
        style = dashes[index % len(dashes)]
        if s.curve is not None and s.x is not None:
            ax.plot(s.x, s.curve, style, color=colours[s.label], linewidth=1.8, label=s.label)
            values.extend(s.curve.tolist())
        else:  # a stateful schedule (plateau): only the logged values are known
            ax.step(np.arange(len(s.logged)), s.logged, style, where="post", color=colours[s.label],
                    linewidth=1.8, label=s.label)
        ax.plot(s.ends, s.logged, "o", color=colours[s.label], markersize=3)
        values.extend(s.logged.tolist())
    positive = [v for v in values if v > 0 and math.isfinite(v)]
    if _lr_scale(series) == "log":
        ax.set_yscale("log")
    elif positive and max(positive) == min(positive):
        ax.set_ylim(0, 1.25 * max(positive))  # one constant lr: show it against zero, not a zoomed band
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=9)
    figure.tight_layout()
    return _png(figure)


def _schedule_curve(recipe: dict[str, Any], steps_per_epoch: int, epochs: int) -> np.ndarray | None:
    import torch

    from trainlab.optimizers import optimizer as make_optimizer
    from trainlab.schedules import schedule as make_schedule

    base_lr = float(make_optimizer(recipe.get("optimizer", "adam"),
                                   [torch.nn.Parameter(torch.zeros(1))]).param_groups[0]["lr"])
    spec = recipe.get("schedule")
    steps = max(epochs, 1) * steps_per_epoch
    if spec is None:
        return np.full(steps, base_lr)
    built = make_schedule(spec, steps_per_epoch=steps_per_epoch, num_epochs=recipe["num_epochs"],
                          base_lr=base_lr)
    if _stateful(built.state_dict()):
        return None
    return np.asarray([base_lr * built(step) for step in range(steps)])


def _stateful(state: Any) -> bool:
    if isinstance(state, dict):
        return any(_stateful(v) for v in state.values())
    return True


def _dot_axis(comparison: Comparison) -> tuple[str, float, float] | None:
    """The value axis of the per-case chart: ("log" or "linear", low, high) around every finite seed."""
    cases = [c for c in comparison.cases if c.verdict != "diverged"]
    seeds = [v for c in cases for v in c.values if math.isfinite(v)]
    if not seeds:
        return None
    bounds = [v for c in cases for v in (c.low, c.high) if math.isfinite(v)]
    if min(seeds) > 0 and max(seeds) / min(seeds) > 30:  # orders of magnitude: a log axis, seeds in view
        positive = [v for v in [*seeds, *bounds] if v > 0]
        return "log", min(positive) / 1.5, max(positive) * 1.5
    values = seeds + bounds
    low, high = min(values), max(values)
    pad = 0.08 * (high - low) if high > low else 0.05 * max(abs(high), 1e-12)
    if comparison.points:
        return "linear", max(low - pad, 0.0), min(high + pad, 1.0)
    return "linear", low - pad, high + pad


def _dots(comparison: Comparison, colours: dict[str, Any]) -> str:
    import matplotlib.pyplot as plt

    cases = comparison.cases
    axis = _dot_axis(comparison)
    figure, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(cases) + 2), 4.2))
    for i, case in enumerate(cases):
        colour = colours.get(case.case, "grey")
        seeds = [v for v in case.values if math.isfinite(v)] if case.verdict != "diverged" else []
        jitter = np.linspace(-0.12, 0.12, len(seeds)) if len(seeds) > 1 else np.zeros(len(seeds))
        ax.plot(i + jitter, seeds, "o", color=colour, markersize=5, alpha=0.8)
        if case.verdict != "diverged" and math.isfinite(case.mean):
            below = case.mean - case.low if math.isfinite(case.low) else 0.0
            above = case.high - case.mean if math.isfinite(case.high) else 0.0
            ax.errorbar(i + 0.25, case.mean, yerr=[[below], [above]], fmt="D", color="black", capsize=4,
                        markersize=5)
        if axis is not None and case.note and not case.is_best:
            ax.annotate(case.note, (i, 1.0), xycoords=("data", "axes fraction"), xytext=(0, -4),
                        textcoords="offset points", ha="center", va="top", fontsize=8, color="#555",
                        rotation=90 if len(case.note) > 8 else 0)
    if axis is not None:
        scale, low, high = axis
        if scale == "log":
            ax.set_yscale("log")
        ax.set_ylim(low, high)
    ax.set_xticks(range(len(cases)), [c.case for c in cases], rotation=30, ha="right", fontsize=9)
    ax.set_ylabel(f"{comparison.rank_by} {comparison.metric}")
    ax.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return _png(figure)


# --------------------------------------------------------------------------- interactive (plotly)


def _hex(colour: Any) -> str:
    import matplotlib.colors

    return str(matplotlib.colors.to_hex(colour))


def _rgba(colour: Any, alpha: float) -> str:
    import matplotlib.colors

    r, g, b, _ = matplotlib.colors.to_rgba(colour)
    return f"rgba({round(255 * r)}, {round(255 * g)}, {round(255 * b)}, {alpha})"


def _plotly_dots(comparison: Comparison, colours: dict[str, Any]) -> Any:
    import plotly.graph_objects as go

    figure = go.Figure()
    for i, case in enumerate(comparison.cases):
        colour = _hex(colours.get(case.case, "grey"))
        pairs = [(run_id, v) for run_id, v in zip(case.run_ids, case.values) if math.isfinite(v)] \
            if case.verdict != "diverged" else []
        if case.verdict == "diverged":  # no value to draw: say why the slot is empty
            figure.add_annotation(x=i, y=0.5, yref="paper", text=case.note, showarrow=False, textangle=-90,
                                  font={"color": "#b22222"})
        jitter = np.linspace(-0.12, 0.12, len(pairs)) if len(pairs) > 1 else np.zeros(len(pairs))
        figure.add_trace(go.Scatter(
            x=(i + jitter).tolist(), y=[v for _, v in pairs], mode="markers", name=case.case,
            legendgroup=case.case, marker={"color": colour, "size": 9, "opacity": 0.8},
            text=[run_id for run_id, _ in pairs],
            hovertemplate="%{text}<br>" + comparison.metric + " %{y:.4g}<extra>" + case.note + "</extra>"))
        if case.verdict != "diverged" and math.isfinite(case.mean):
            figure.add_trace(go.Scatter(
                x=[i + 0.25], y=[case.mean], mode="markers", name=f"{case.case} mean", legendgroup=case.case,
                showlegend=False, marker={"color": "black", "symbol": "diamond", "size": 9},
                error_y={"type": "data", "symmetric": False,
                         "array": [case.high - case.mean if math.isfinite(case.high) else 0.0],
                         "arrayminus": [case.mean - case.low if math.isfinite(case.low) else 0.0]},
                hovertemplate=(f"{case.case}<br>mean %{{y:.4g}}, 95% CI [{case.low:.4g}, {case.high:.4g}]"
                               f"<extra>{case.note}</extra>")))
    axis = _dot_axis(comparison)
    if axis is not None:
        scale, low, high = axis
        figure.update_yaxes(type=scale, range=[math.log10(low), math.log10(high)] if scale == "log"
                            else [low, high])
    figure.update_yaxes(title_text=f"{comparison.rank_by} {comparison.metric}")
    figure.update_xaxes(tickvals=list(range(len(comparison.cases))), ticktext=[c.case for c in comparison.cases],
                        range=[-0.5, len(comparison.cases) - 0.5])
    figure.update_layout(height=420, margin={"l": 60, "r": 20, "t": 20, "b": 80}, template="plotly_white",
                         legend={"title": {"text": "click to hide"}})
    return figure


def _plotly_curves(records: Sequence[RunRecord], labels: Sequence[str], colours: dict[str, Any],
                   metric: str) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    panels = _panels(records, metric)
    columns = 2
    rows = math.ceil(len(panels) / columns)
    figure = make_subplots(rows=rows, cols=columns, subplot_titles=[t for _, t in panels],
                           horizontal_spacing=0.08, vertical_spacing=0.12)
    for index, (key, _) in enumerate(panels):
        row, col = index // columns + 1, index % columns + 1
        for label in labels:
            runs = [r for r in records if r.case == label and key in r.history]
            if not runs:
                continue
            mean, low, high = _reduce(_stack(runs, key))
            epochs = np.arange(1, len(mean) + 1)
            band = np.isfinite(low) & np.isfinite(high)
            colour = colours[label]
            figure.add_trace(go.Scatter(
                x=np.concatenate([epochs[band], epochs[band][::-1]]).tolist(),
                y=np.concatenate([high[band], low[band][::-1]]).tolist(), fill="toself", mode="lines",
                fillcolor=_rgba(colour, 0.15), line={"width": 0}, hoverinfo="skip", legendgroup=label,
                showlegend=False, name=label), row=row, col=col)
            figure.add_trace(go.Scatter(
                x=epochs.tolist(), y=[v if math.isfinite(v) else None for v in mean], mode="lines",
                name=label, legendgroup=label, showlegend=index == 0, line={"color": _hex(colour), "width": 2},
                hovertemplate=f"{label}<br>epoch %{{x}}: {key} %{{y:.4g}}<extra></extra>"), row=row, col=col)
        if _lower_is_better(key):
            finite = [v for r in records if key in r.history for v in r.history[key] if math.isfinite(v)]
            if finite and min(finite) > 0 and max(finite) / min(finite) > 100:
                figure.update_yaxes(type="log", row=row, col=col)
        figure.update_xaxes(title_text="epoch", row=row, col=col)
    figure.update_layout(height=360 * rows, margin={"l": 60, "r": 20, "t": 40, "b": 40}, template="plotly_white",
                         legend={"title": {"text": "click to hide"}}, hovermode="closest")
    return figure


def _plotly_learning_rates(series: Sequence[_LrSeries], colours: dict[str, Any]) -> Any:
    import plotly.graph_objects as go

    figure = go.Figure()
    dashes = ["solid", "dash", "dot", "dashdot"]
    for index, s in enumerate(series):
        colour = _hex(colours[s.label])
        if s.curve is not None and s.x is not None:
            figure.add_trace(go.Scatter(x=s.x.tolist(), y=s.curve.tolist(), mode="lines", name=s.label,
                                        legendgroup=s.label, line={"color": colour, "dash": dashes[index % 4]},
                                        hovertemplate=f"{s.label}<br>epoch %{{x:.2f}}: lr %{{y:.3g}}"
                                                      "<extra></extra>"))
        figure.add_trace(go.Scatter(x=s.ends.tolist(), y=s.logged.tolist(), mode="markers", name=s.label,
                                    legendgroup=s.label, showlegend=s.curve is None,
                                    marker={"color": colour, "size": 5},
                                    hovertemplate=f"{s.label}<br>logged at epoch end: lr %{{y:.3g}}"
                                                  "<extra></extra>"))
    figure.update_yaxes(type=_lr_scale(series), title_text="learning rate")
    figure.update_xaxes(title_text="epoch")
    figure.update_layout(height=380, margin={"l": 60, "r": 20, "t": 20, "b": 40}, template="plotly_white",
                         legend={"title": {"text": "click to hide"}})
    return figure


def _heatmap(stored: StudyRecords, comparison: Comparison) -> Chart | None:
    import matplotlib
    import matplotlib.pyplot as plt

    axes = stored.info.get("axes", {})
    cases = stored.info.get("cases", [])
    if len(axes) != 2 or any("case" in c["values"] for c in cases):
        return None
    (row_key, row_values), (col_key, col_values) = axes.items()
    by_label = {c.case: c for c in comparison.cases}
    use_final = comparison.rank_by == "final"
    grid = np.full((len(row_values), len(col_values)), np.nan)
    seen = np.full(grid.shape, np.nan)  # 1 where the cell's case has finished runs
    for case in cases:
        summary = by_label.get(case["label"])
        if summary is None:
            continue
        i = [format_value(v) for v in row_values].index(format_value(case["values"][row_key]))
        j = [format_value(v) for v in col_values].index(format_value(case["values"][col_key]))
        grid[i, j] = summary.final_mean if use_final else summary.best_mean
        seen[i, j] = 1.0
    finite = grid[np.isfinite(grid)]
    if not finite.size:
        return None
    lower_is_better = comparison.mode == "min"
    cmap = matplotlib.colormaps["viridis_r" if lower_is_better else "viridis"].with_extremes(bad="#bbbbbb")
    vmin, vmax = float(finite.min()), float(finite.max())
    if lower_is_better and vmax > 3 * float(np.median(finite)) > 0:
        vmax = 3 * float(np.median(finite))  # one diverged cell should not wash out the others
    figure, ax = plt.subplots(figsize=(1.3 * len(col_values) + 3, 0.8 * len(row_values) + 2))
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=vmin, vmax=max(vmax, vmin + 1e-12),
                      aspect="auto")
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            value = float(grid[i, j])
            text = f"{value:.3g}" if math.isfinite(value) else ("n/a" if np.isnan(seen[i, j]) else "nan")
            # Where the cell's colour sits on the colour bar, to write on it in black or white.
            shade = (min(value, vmax) - vmin) / max(vmax - vmin, 1e-12) if math.isfinite(value) else 0.5
            light = shade > 0.55 if not lower_is_better else shade < 0.45
            ax.text(j, i, text, ha="center", va="center", fontsize=9, color="black" if light else "white")
    best = comparison.best.case
    for case in cases:
        if case["label"] == best:
            i = [format_value(v) for v in row_values].index(format_value(case["values"][row_key]))
            j = [format_value(v) for v in col_values].index(format_value(case["values"][col_key]))
            ax.add_patch(matplotlib.patches.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red",
                                                      linewidth=2.5))
    ax.set_xticks(range(len(col_values)), [format_value(v) for v in col_values])
    ax.set_yticks(range(len(row_values)), [format_value(v) for v in row_values])
    ax.set_xlabel(col_key)
    ax.set_ylabel(row_key)
    figure.colorbar(image, ax=ax, label=f"mean {comparison.rank_by} {comparison.metric}")
    figure.tight_layout()
    better = "lower" if lower_is_better else "higher"
    import plotly.graph_objects as go

    columns, rows = [format_value(v) for v in col_values], [format_value(v) for v in row_values]
    cell_text = [[f"{v:.3g}" if math.isfinite(v) else "" for v in line] for line in grid.tolist()]
    interactive = go.Figure(go.Heatmap(
        z=[[min(v, vmax) if math.isfinite(v) else None for v in line] for line in grid.tolist()],
        x=columns, y=rows, text=cell_text, texttemplate="%{text}", zmin=vmin, zmax=max(vmax, vmin + 1e-12),
        colorscale="Viridis", reversescale=lower_is_better,
        hovertemplate=f"{row_key} %{{y}}, {col_key} %{{x}}<br>mean {comparison.metric} %{{text}}<extra></extra>",
        colorbar={"title": {"text": f"mean {comparison.metric}"}}))
    interactive.update_xaxes(title_text=col_key, type="category")
    interactive.update_yaxes(title_text=row_key, type="category", autorange="reversed")
    interactive.update_layout(height=120 + 60 * len(rows), margin={"l": 80, "r": 20, "t": 20, "b": 50},
                              template="plotly_white")
    return Chart(f"{row_key} x {col_key}",
                 f"Mean {comparison.rank_by} {comparison.metric} over seeds per cell ({better} is better; the "
                 "best cell is framed in red in the static figure; nan: the metric was not finite (diverged); "
                 "n/a: no finished run).", _png(figure), interactive)


# --------------------------------------------------------------------------- per-case details


@dataclass(frozen=True)
class _Detail:
    case: CaseSummary
    runs: list[RunRecord]
    confusion: np.ndarray | None  # true x predicted, summed over seeds
    classes: list[str]
    confusion_note: str


def _details(stored: StudyRecords, comparison: Comparison) -> list[_Detail]:
    specs = {run["run_id"]: run["spec"] for run in stored.info.get("runs", [])}
    details = []
    datasets: dict[str, Any] = {}  # each data set loads once for the whole report
    for case in comparison.cases:
        runs = sorted((r for r in stored.records if r.case == case.case), key=lambda r: r.seed)
        matrix, classes, note = _confusion(stored.study_dir, runs, specs, datasets)
        details.append(_Detail(case, runs, matrix, classes, note))
    return details


def _confusion(study_dir: Path, runs: Sequence[RunRecord], specs: dict[str, Any],
               datasets: dict[str, Any]) -> tuple[np.ndarray | None, list[str], str]:
    """The validation confusion matrix of a classification case, summed over its seeds.

    Each run's saved model predicts its own validation part (the split its spec
    describes, made again from the data), so the matrix is what the saved models do.
    """
    from trainlab.api import dataset_from_spec, prepare
    from trainlab.errors import InputError
    from trainlab.runs import load
    from trainlab.spec import parse_spec

    total: np.ndarray | None = None
    classes: list[str] = []
    try:
        for run in runs:
            spec = parse_spec(specs[run.run_id], source=run.run_id)
            key = spec.data.model_dump_json()
            if key not in datasets:
                datasets[key] = dataset_from_spec(spec.data)
            dataset = datasets[key]
            if dataset.task != "classification" or not spec.data.validation_split:
                return None, [], ""
            prepared = prepare(dataset, validation_split=spec.data.validation_split,
                               stratify=spec.data.stratify, scaling="none", seed=spec.recipe.seed)
            x_val, y_val = prepared.data.x_val, prepared.data.y_val
            if x_val is None or y_val is None:
                return None, [], ""
            probabilities = load(study_dir / run.run_id).predict(x_val)
            num_classes = int(dataset.num_classes or probabilities.shape[-1])
            predicted = (probabilities[:, 0] > 0.5).astype(int) if probabilities.shape[-1] == 1 \
                else probabilities.argmax(axis=-1)
            truth = np.asarray(y_val).reshape(-1).astype(int) if np.asarray(y_val).ndim == 1 \
                else np.asarray(y_val).argmax(axis=-1)
            matrix = np.zeros((num_classes, num_classes), dtype=int)
            np.add.at(matrix, (truth, predicted), 1)
            total = matrix if total is None else total + matrix
            classes = [str(c) for c in range(num_classes)]
    except (InputError, OSError, KeyError, ValueError, RuntimeError) as error:
        return None, [], f"no confusion matrix: {error}"
    return total, classes, f"validation part, summed over {len(runs)} seeds"


# --------------------------------------------------------------------------- the page


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1250px; color: #222; padding: 0 1em; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.meta { color: #555; }
.verdict { font-size: 1.08em; line-height: 1.5; background: #f4f8fc; border-left: 4px solid #1f77b4;
           padding: 0.6em 1em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.95em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.35em 0.8em; text-align: right; }
th { background: #f3f3f3; } td.case, th.case { text-align: left; }
tr.best td { background: #e8f6e8; font-weight: bold; }
caption { caption-side: bottom; text-align: left; color: #555; padding-top: 0.5em; font-size: 0.9em; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
.js .static { display: none; } .chart { display: none; } .js .chart { display: block; }
table.confusion td { text-align: center; min-width: 2.2em; padding: 0.2em 0.4em; }
.details { display: flex; flex-wrap: wrap; gap: 2em; align-items: flex-start; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: 0.85em; }
"""


def _page(stored: StudyRecords, comparison: Comparison, charts: Sequence[Chart],
          details: Sequence[_Detail]) -> str:
    import plotly.offline
    import tomli_w

    info = stored.info
    name = html.escape(str(info.get("name", stored.study_dir.name)))
    planned = len(info.get("runs", []))
    seeds = info.get("settings", {}).get("seeds")
    anchors = {c.case: f"case-{k}" for k, c in enumerate(comparison.cases)}
    table_rows = "".join(
        f"<tr class='{'best' if c.is_best else ''}'>"
        + "".join(f"<td class=case><a href='#{anchors[c.case]}'>{html.escape(cell)}</a></td>" if k == 1 else
                  f"<td{' class=case' if k == 6 else ''}>{html.escape(cell)}</td>"
                  for k, cell in enumerate(comparison.cells(c)))
        + "</tr>"
        for c in comparison.cases
    )
    missing = (f"<p><b>Missing runs:</b> cases {html.escape(', '.join(comparison.missing))} have no finished "
               "run yet (continue with <code>trainlab study SPEC</code>).</p>"
               if comparison.missing or len(stored.records) < planned else "")
    chart_html = figures_html(charts)
    try:
        spec_text = tomli_w.dumps(info.get("spec", {}))
    except (TypeError, ValueError):
        spec_text = repr(info.get("spec", {}))
    metric = html.escape(comparison.metric)
    status = html.escape(str(info.get("status", "")))
    version = html.escape(str(info.get("version", "")))
    delta = "Δ vs best (points)" if comparison.points else "Δ vs best"
    details_html = "".join(_detail_html(d, comparison, anchors[d.case.case]) for d in details)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>study {name}</title><style>{_CSS}</style>
<script>document.documentElement.className += " js";</script>
<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script></head>
<body>
<h1>Study: {name}</h1>
<p class="meta">{len(stored.records)} of {planned} runs finished · {len(comparison.cases)} cases ·
{seeds} seeds per case · status: {status} · trainlab {version}</p>
<p class="verdict">{html.escape(comparison.verdict())}</p>
{missing}
<h2>Ranked cases</h2>
<table><thead><tr><th>#</th><th class="case">case</th><th>{comparison.rank_by} {metric}, mean ± 95% CI</th>
<th>{delta}</th><th>p (Holm)</th><th>time (s)</th><th class="case">verdict</th></tr></thead>
<tbody>{table_rows}</tbody><caption>{html.escape(comparison.caption())}</caption></table>
{"".join(chart_html)}
<h2>Cases in detail</h2>
{details_html}
<h2>Study spec</h2>
<pre>{html.escape(spec_text)}</pre>
</body></html>
"""


def _detail_html(detail: _Detail, comparison: Comparison, anchor: str) -> str:
    case = detail.case
    rows = "".join(
        f"<tr><td class='case'><a href='{html.escape(r.run_id)}/'>{html.escape(r.run_id)}</a></td>"
        f"<td>{r.seed}</td><td>{_cell(final)}</td><td>{_cell(best)}</td><td>{len(r.history.get('loss', []))}</td>"
        f"<td>{r.seconds:.3g}{'*' if r.seconds_shared_by > 1 else ''}</td>"
        f"<td class='case'>{html.escape(r.stop_reason or '')}</td></tr>"
        for r, final, best in zip(detail.runs, case.final_values, case.best_values)
    )
    seeds = (f"<table><thead><tr><th class='case'>run folder</th><th>seed</th>"
             f"<th>final {html.escape(comparison.metric)}</th><th>best</th><th>epochs</th><th>time (s)</th>"
             f"<th class='case'>stop reason</th></tr></thead><tbody>{rows}</tbody></table>")
    confusion = ""
    if detail.confusion is not None:
        matrix = detail.confusion
        peak = max(int(matrix.max()), 1)
        body = "".join(
            f"<tr><th>{html.escape(label)}</th>" + "".join(
                f"<td title='true {html.escape(label)}, predicted {html.escape(detail.classes[j])}: {int(v)}' "
                f"style='background: rgba(31, 119, 180, {0.05 + 0.85 * v / peak:.2f}); "
                f"color: {'white' if v / peak > 0.5 else 'black'}'>{int(v)}</td>"
                for j, v in enumerate(line)) + "</tr>"
            for label, line in zip(detail.classes, matrix.tolist()))
        head = "".join(f"<th>{html.escape(c)}</th>" for c in detail.classes)
        confusion = (f"<table class='confusion'><caption>Confusion matrix: rows are the true class, columns "
                     f"the predicted class ({html.escape(detail.confusion_note)}).</caption>"
                     f"<thead><tr><th>true \\ predicted</th>{head}</tr></thead><tbody>{body}</tbody></table>")
    elif detail.confusion_note:
        confusion = f"<p class='meta'>{html.escape(detail.confusion_note)}</p>"
    cells = comparison.cells(case)
    return (f"<h3 id='{anchor}'>{html.escape(case.case)}</h3><p>{html.escape(cells[2])} "
            f"({comparison.rank_by} {html.escape(comparison.metric)}, mean ± 95% CI) · verdict: "
            f"{html.escape(case.note)}</p><div class='details'>{seeds}{confusion}</div>")


def _cell(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else html.escape(str(value))
