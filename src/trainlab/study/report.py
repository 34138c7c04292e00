"""The study report: one self-contained `report.html` in the study folder.

Everything is in the one file: the ranked table, and matplotlib figures
embedded as base64 PNG (no scripts, no fonts, nothing fetched), so it opens
offline and can be mailed around.

Figures:

- learning curves: training and validation loss and metric per case, the
  mean over seeds as a line with a min-max band over seeds;
- the learning rate of each case, per optimizer step: the case's schedule
  (`trainlab.schedules.schedule`) times the optimizer's base lr, with the lr
  the run logged at the end of each epoch as dots on it (a stateful schedule
  such as plateau is drawn from the logged values alone);
- a bar chart of the compared value (final or best) per case with error bars
  of one standard deviation over seeds and each seed as a dot;
- for a two-axis grid, a heatmap of that value over the two axes (for
  optimizer x lr, the width of each optimizer's good region).

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
from pathlib import Path
from typing import Any

import numpy as np

from trainlab.study.compare import (
    Comparison,
    RunRecord,
    StudyRecords,
    compare,
    load_results,
    mean_std,
)
from trainlab.study.spec import format_value

__all__ = ["build_report"]

_PALETTE = "tab10"


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
    figures = [
        ("Learning curves", _curves(stored.records, labels, colours, comparison.metric),
         "Mean over seeds (line) with the min-max range over seeds (band), per epoch."),
        ("Learning rate", _learning_rates(stored, labels, colours),
         "The lr before each optimizer step: the case's schedule times the optimizer's base lr "
         "(first seed); dots are the lr each run logged at the end of each epoch."),
        (f"{comparison.rank_by.capitalize()} {comparison.metric}", _bars(comparison, colours),
         "Mean over seeds with ±1 standard deviation (error bar); dots are the single seeds."),
    ]
    heatmap = _heatmap(stored, comparison)
    if heatmap is not None:
        figures.append(heatmap)
    page = _page(stored, comparison, figures)
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

    keys = list(records[0].history)
    base = metric.removeprefix("val_")
    if base == "loss":
        base = next((k for k in keys if not k.startswith("val_") and k not in ("loss", "lr", "penalty")), "")
    panels = [(k, t) for k, t in (("loss", "training loss"), ("val_loss", "validation loss"),
                                  (base, f"training {base}"), (f"val_{base}", f"validation {base}"))
              if k and any(k in r.history for r in records)]
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


def _learning_rates(stored: StudyRecords, labels: Sequence[str], colours: dict[str, Any]) -> str:
    import matplotlib.pyplot as plt

    specs = {run["run_id"]: run["spec"] for run in stored.info.get("runs", [])}
    figure, ax = plt.subplots(figsize=(12, 4))
    values: list[float] = []
    # Cases often share an lr curve (the same schedule and lr): vary the dashes so none hides another.
    dashes = ["-", "--", ":", "-."]
    for index, label in enumerate(labels):
        style = dashes[index % len(dashes)]
        runs = sorted((r for r in stored.records if r.case == label), key=lambda r: r.seed)
        run = runs[0]
        recipe = specs[run.run_id]["recipe"]
        logged = np.asarray(run.history.get("lr", []), dtype=float)
        steps_per_epoch = run.steps_per_epoch or 1
        curve = _schedule_curve(recipe, steps_per_epoch, len(logged))
        if curve is not None:
            x = np.arange(len(curve)) / steps_per_epoch
            ax.plot(x, curve, style, color=colours[label], linewidth=1.8, label=label)
            values.extend(curve.tolist())
        else:  # a stateful schedule (plateau): only the logged values are known
            ax.step(np.arange(len(logged)), logged, style, where="post", color=colours[label], linewidth=1.8,
                    label=label)
        ends = (np.arange(1, len(logged) + 1) * steps_per_epoch - 1) / steps_per_epoch
        ax.plot(ends, logged, "o", color=colours[label], markersize=3)
        values.extend(logged.tolist())
    positive = [v for v in values if v > 0 and math.isfinite(v)]
    if positive and len(positive) == len(values) and max(positive) / min(positive) > 50:
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


def _bars(comparison: Comparison, colours: dict[str, Any]) -> str:
    import matplotlib.pyplot as plt

    cases = comparison.cases
    use_final = comparison.rank_by == "final"
    means = [c.final_mean if use_final else c.best_mean for c in cases]
    finite = [m for m in means if math.isfinite(m)]
    cap = math.inf
    typical = 2.5 * float(np.median(finite)) if finite else 0.0
    if comparison.mode == "min" and finite and min(finite) >= 0 and max(finite) > typical > 0:
        cap = typical  # a diverged case would flatten every other bar
    figure, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(cases) + 2), 4.2))
    for i, (case, mean) in enumerate(zip(cases, means, strict=True)):
        std = case.final_std if use_final else case.best_std
        seeds = case.final_values if use_final else case.best_values
        if math.isfinite(mean):
            ax.bar(i, min(mean, cap), color=colours.get(case.case, "grey"), alpha=0.85,
                   yerr=None if math.isnan(std) or mean > cap else std, capsize=5,
                   edgecolor="black" if case.is_best else "none", linewidth=1.5 if case.is_best else 0)
        shown = [v for v in seeds if math.isfinite(v) and v <= cap]
        ax.plot([i] * len(shown), shown, "o", color="black", markersize=3)
        if math.isfinite(mean) and mean > cap:  # written inside the capped bar, reading upwards
            text = f"{mean:.3g} ↑" + (f"  {case.note}" if case.note else "")
            ax.text(i, cap * 0.97, text, rotation=90, ha="center", va="top", fontsize=8, color="white",
                    bbox={"boxstyle": "round", "fc": "black", "alpha": 0.55, "lw": 0})
        elif case.note:
            top = mean + (0 if math.isnan(std) else std) if math.isfinite(mean) else 0.0
            ax.annotate(case.note, (i, top), textcoords="offset points", xytext=(0, 4), ha="center",
                        va="bottom", fontsize=8, rotation=90 if "diverged" in case.note else 0)
    if math.isfinite(cap):
        ax.set_ylim(0, cap * 1.1)
    ax.set_xticks(range(len(cases)), [c.case for c in cases], rotation=30, ha="right", fontsize=9)
    ax.set_ylabel(f"{comparison.rank_by} {comparison.metric}")
    ax.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return _png(figure)


def _heatmap(stored: StudyRecords, comparison: Comparison) -> tuple[str, str, str] | None:
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
    return (f"{row_key} x {col_key}", _png(figure),
            f"Mean {comparison.rank_by} {comparison.metric} over seeds per cell ({better} is better; the "
            "best cell is framed in red; nan: the metric was not finite (diverged); n/a: no finished run).")


# --------------------------------------------------------------------------- the page


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1250px; color: #222; padding: 0 1em; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.meta { color: #555; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.95em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.35em 0.8em; text-align: right; }
th { background: #f3f3f3; } td.case, th.case { text-align: left; }
tr.best td { background: #e8f6e8; font-weight: bold; }
caption { caption-side: bottom; text-align: left; color: #555; padding-top: 0.5em; font-size: 0.9em; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: 0.85em; }
"""


def _page(stored: StudyRecords, comparison: Comparison, figures: Sequence[tuple[str, str, str]]) -> str:
    import tomli_w

    info = stored.info
    name = html.escape(str(info.get("name", stored.study_dir.name)))
    planned = len(info.get("runs", []))
    seeds = info.get("settings", {}).get("seeds")
    best = comparison.best
    runs_rows = "".join(
        f"<tr><td class='case'>{html.escape(r.run_id)}</td><td class='case'>{html.escape(r.case)}</td>"
        f"<td>{r.seed}</td><td>{len(r.history.get('loss', []))}</td><td>{r.seconds:.2f}</td>"
        f"<td class='case'>{html.escape(r.stop_reason or '')}</td></tr>"
        for r in stored.records
    )
    table_rows = "".join(
        f"<tr class='{'best' if c.is_best else ''}'>"
        + "".join(f"<td{' class=case' if k in (1, 7) else ''}>{html.escape(cell)}</td>"
                  for k, cell in enumerate(comparison.cells(c)))
        + "</tr>"
        for c in comparison.cases
    )
    missing = (f"<p><b>Missing runs:</b> cases {html.escape(', '.join(comparison.missing))} have no finished "
               "run yet (continue with <code>trainlab study SPEC --resume</code>).</p>"
               if comparison.missing or len(stored.records) < planned else "")
    figure_html = "".join(
        f"<h2>{html.escape(title)}</h2><figure><img alt='{html.escape(title)}' "
        f"src='data:image/png;base64,{data}'><figcaption>{html.escape(caption)}</figcaption></figure>"
        for title, data, caption in figures
    )
    try:
        spec_text = tomli_w.dumps(info.get("spec", {}))
    except (TypeError, ValueError):
        spec_text = repr(info.get("spec", {}))
    metric = html.escape(comparison.metric)
    status = html.escape(str(info.get("status", "")))
    version = html.escape(str(info.get("version", "")))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>study {name}</title><style>{_CSS}</style></head>
<body>
<h1>Study: {name}</h1>
<p class="meta">{len(stored.records)} of {planned} runs finished · {len(comparison.cases)} cases ·
{seeds} seeds per case · status: {status} · trainlab {version}</p>
<p><b>Best:</b> {html.escape(best.case)} with {comparison.rank_by} {metric}
{mean_std(best.final_mean if comparison.rank_by == "final" else best.best_mean,
          best.final_std if comparison.rank_by == "final" else best.best_std)}.</p>
{missing}
<h2>Ranked cases</h2>
<table><thead><tr><th>#</th><th class="case">case</th><th>final {metric}</th><th>best {metric}</th>
<th>best epoch</th><th>time (s)</th><th>p vs best</th><th class="case">note</th></tr></thead>
<tbody>{table_rows}</tbody><caption>{html.escape(comparison.caption())}</caption></table>
{figure_html}
<h2>Runs</h2>
<table><thead><tr><th class="case">run</th><th class="case">case</th><th>seed</th><th>epochs</th>
<th>time (s)</th><th class="case">stop reason</th></tr></thead><tbody>{runs_rows}</tbody></table>
<h2>Study spec</h2>
<pre>{html.escape(spec_text)}</pre>
</body></html>
"""
