"""The diagnosis page: one self-contained HTML file with the verdicts and their figures.

Figures (matplotlib, embedded as base64 PNG; no scripts, nothing fetched):

- activation histograms by depth: one column per hidden layer, one row per
  recorded moment (the start, the middle and the end of training), each panel
  on the range its activation allows, with the layer's std and its saturated
  or dead fraction: the Xavier/He figure of the course notes;
- gradient norms by layer and epoch (log scale), and the update-to-weight ratio;
- the learning curves, with each verdict marked at the epoch where it shows.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trainlab.diagnose.verdicts import Verdict

__all__ = ["HISTOGRAM_COLOUR", "render_report", "write_report"]

#: The histogram bars' colour (tab:purple); no other figure uses it, so a screenshot can find the figure.
HISTOGRAM_COLOUR = "#9467bd"
_SEVERITY_COLOURS = {"error": "#d62728", "warning": "#ff7f0e", "info": "#7f7f7f", "ok": "#2ca02c"}

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1250px; color: #222; padding: 0 1em; }
h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.95em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.35em 0.8em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.error { color: #b00; font-weight: bold; } .warning { color: #b60; font-weight: bold; }
.ok { color: #270; font-weight: bold; } .info { color: #555; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
code { font-size: 0.9em; }
"""


def _png(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _moments(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    usable = [r for r in records if r.get("layers") and r.get("moment") != "step"]
    if len(usable) <= 3:
        return usable
    return [usable[0], usable[len(usable) // 2], usable[-1]]


def _label(record: dict[str, Any]) -> str:
    return "at the start" if record["epoch"] == -1 else f"after epoch {record['epoch'] + 1}"


def histogram_figure(records: Sequence[dict[str, Any]]) -> str | None:
    """Per-layer activation histograms by depth (columns) at the start, middle and end (rows)."""
    import matplotlib.pyplot as plt
    import numpy as np

    moments = _moments(records)
    if not moments:
        return None
    columns = max(len(r["layers"]) for r in moments)
    figure, axes = plt.subplots(len(moments), columns, figsize=(2.6 * columns + 1, 2.1 * len(moments) + 0.6),
                                squeeze=False)
    for row, record in enumerate(moments):
        for col in range(columns):
            ax = axes[row][col]
            if col >= len(record["layers"]):
                ax.axis("off")
                continue
            layer = record["layers"][col]
            counts = np.asarray(layer["hist"], dtype=float)
            low, high = layer["range"]
            if not (math.isfinite(low) and math.isfinite(high)) or counts.sum() == 0:
                ax.text(0.5, 0.5, "not finite", ha="center", va="center", transform=ax.transAxes)
            else:
                edges = np.linspace(low, high if high > low else low + 1.0, len(counts) + 1)
                ax.bar(edges[:-1], counts / counts.sum(), width=np.diff(edges), align="edge",
                       color=HISTOGRAM_COLOUR, edgecolor=HISTOGRAM_COLOUR)
            note = f"std {layer['std']:.2g}"
            if "saturated" in layer:
                note += f", sat {layer['saturated']:.0%}"
            if "dead" in layer:
                note += f", dead {layer['dead']:.0%}"
            ax.set_title(f"{layer['name']} ({layer['kind']})\n{note}", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(_label(record), fontsize=8)
    figure.tight_layout()
    return _png(figure)


def gradient_figure(records: Sequence[dict[str, Any]]) -> str | None:
    """Gradient norm and update-to-weight ratio per layer, by epoch (log scale)."""
    import matplotlib.pyplot as plt

    with_grads = [r for r in records if r.get("grads") and r.get("moment") != "step"]
    if not with_grads:
        return None
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    names = [g["name"] for g in with_grads[0]["grads"]]
    colours = plt.get_cmap("viridis")
    for depth, name in enumerate(names):
        epochs, norms, ratios = [], [], []
        for record in with_grads:
            entry = next((g for g in record["grads"] if g["name"] == name), None)
            if entry is not None and math.isfinite(entry["grad_norm"]) and entry["grad_norm"] > 0:
                epochs.append(record["epoch"] + 1)
                norms.append(entry["grad_norm"])
                ratios.append(max(entry["update_ratio"], 1e-12))
        colour = colours(depth / max(len(names) - 1, 1))
        left.plot(epochs, norms, marker="o", ms=3, color=colour, label=f"{depth + 1}: {name}")
        right.plot(epochs, ratios, marker="o", ms=3, color=colour)
    for ax, title in ((left, "gradient norm by layer"), (right, "update / weight norm per step")):
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    right.axhline(1e-3, color="grey", ls=":", lw=1)
    left.legend(fontsize=7, loc="best")
    figure.tight_layout()
    return _png(figure)


def curves_figure(history: dict[str, list[float]], verdicts: Sequence[Verdict]) -> str | None:
    """Training and validation loss by epoch, each verdict marked where it shows."""
    import matplotlib.pyplot as plt

    losses = history.get("loss", [])
    if not losses:
        return None
    figure, ax = plt.subplots(figsize=(9, 3.6))
    epochs = list(range(1, len(losses) + 1))
    ax.plot(epochs, losses, color="#1f77b4", label="loss")
    if history.get("val_loss"):
        ax.plot(list(range(1, len(history["val_loss"]) + 1)), history["val_loss"], color="#ff7f0e",
                label="val_loss")
    finite = [v for v in losses + history.get("val_loss", []) if math.isfinite(v)]
    if finite and min(finite) > 0 and max(finite) / min(finite) > 30:
        ax.set_yscale("log")
    for verdict in verdicts:
        if verdict.epoch is None or verdict.severity == "ok":
            continue
        x = max(verdict.epoch + 1, 0.5)
        ax.axvline(x, color=_SEVERITY_COLOURS[verdict.severity], ls="--", lw=1)
        ax.annotate(verdict.name, (x, 0.97), xycoords=("data", "axes fraction"), rotation=90, fontsize=8,
                    va="top", ha="right", color=_SEVERITY_COLOURS[verdict.severity])
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    figure.tight_layout()
    return _png(figure)


def _evidence(evidence: dict[str, Any]) -> str:
    def show(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        if isinstance(value, dict):
            return "{" + ", ".join(f"{k}: {show(v)}" for k, v in value.items()) + "}"
        return str(value)

    return "; ".join(f"{k} = {show(v)}" for k, v in evidence.items())


def render_report(diagnosis: Any) -> str:
    """The page's HTML for a `Diagnosis`."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    figures = [
        ("Activation histograms by depth", histogram_figure(diagnosis.statistics),
         "Each hidden layer's outputs on the fixed probe batch (columns: input to output; rows: start, "
         "middle and end of training). Ranges follow the activation: [0, 1] sigmoid, [-1, 1] tanh, [0, max] "
         "ReLU, [min, max] otherwise."),
        ("Gradients by layer and epoch", gradient_figure(diagnosis.statistics),
         "Root mean square of each weight layer's gradient norm over the measured steps of each recorded "
         "epoch (left), and the update's norm over the weights' norm per step (right; dotted: 1e-3)."),
        ("Learning curves", curves_figure(diagnosis.history, diagnosis.verdicts),
         "Training and validation loss per epoch; dashed lines mark the epoch of each verdict."),
    ]
    rows = "".join(
        f"<tr><td class='{html.escape(v.severity)}'>{html.escape(v.severity)}</td><td><b>{html.escape(v.name)}"
        f"</b><br>{html.escape(v.summary)}</td><td>{html.escape(_evidence(v.evidence))}<br><i>threshold:</i> "
        f"{html.escape(v.threshold)}</td><td>{html.escape(v.layer or '')}</td>"
        f"<td>{'' if v.epoch is None else ('start' if v.epoch < 0 else v.epoch + 1)}</td>"
        f"<td>{html.escape(v.suggestion)}</td></tr>"
        for v in diagnosis.verdicts)
    figure_html = "".join(
        f"<h2>{html.escape(title)}</h2><figure><img alt='{html.escape(title)}' "
        f"src='data:image/png;base64,{data}'><figcaption>{html.escape(caption)}</figcaption></figure>"
        for title, data, caption in figures if data is not None)
    baseline = ("" if diagnosis.baseline_loss is None else
                f" · baseline loss (inputs ignored) {diagnosis.baseline_loss:.4g}")
    stop = f"<p>Stopped: {html.escape(diagnosis.stop_reason)}</p>" if diagnosis.stop_reason else ""
    name = html.escape(str(diagnosis.name))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>diagnosis {name}</title><style>{_CSS}</style></head>
<body>
<h1>Diagnosis: {name}</h1>
<p>{len(diagnosis.history.get('loss', []))} epochs · {len(diagnosis.statistics)} statistics records{baseline}</p>
{stop}
<h2>Verdicts</h2>
<table><thead><tr><th>severity</th><th>verdict</th><th>evidence</th><th>layer</th><th>epoch</th>
<th>what usually fixes it</th></tr></thead><tbody>{rows}</tbody></table>
{figure_html}
</body></html>
"""


def write_report(diagnosis: Any, path: str | Path) -> Path:
    """Write the page to `path`; return the path."""
    target = Path(path)
    target.write_text(render_report(diagnosis))
    return target
