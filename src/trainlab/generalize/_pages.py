"""Report pages of the bias-variance and sharpness tools, in the study report's style.

One self-contained HTML file each (plotly inlined, the same CSS, a static PNG
drawn by matplotlib shown where JavaScript is off), built from the parts of
`trainlab.study.report`.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from trainlab.study.report import _CSS, Chart, _png, figures_html

_COLOURS = {"bias": "#1f77b4", "variance": "#ff7f0e", "noise": "#7f7f7f", "loss": "#000000",
            "gap": "#d62728"}


def write_page(path: Path, *, title: str, meta: str, body: str, charts: Sequence[Chart],
               spec_raw: Mapping[str, Any] | None = None) -> Path:
    """Write one page: a heading, a line of facts, `body` (HTML), the charts and the spec; return its path."""
    import plotly.offline
    import tomli_w

    chart_html = figures_html(charts)
    spec_html = ""
    if spec_raw is not None:
        try:
            spec_html = f"<h2>Spec</h2><pre>{html.escape(tomli_w.dumps(dict(spec_raw)))}</pre>"
        except (TypeError, ValueError):
            spec_html = f"<h2>Spec</h2><pre>{html.escape(repr(spec_raw))}</pre>"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{_CSS}</style>
<script>document.documentElement.className += " js";</script>
<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script></head>
<body>
<h1>{html.escape(title)}</h1>
<p class="meta">{meta}</p>
{body}
{"".join(chart_html)}
{spec_html}
</body></html>
"""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)
    return path


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], caption: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>{cap}</table>"


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


# --------------------------------------------------------------------------- bias-variance


def bias_variance_rows(result: Any) -> tuple[list[str], list[list[str]]]:
    """The table of a `BiasVarianceResult`: one row per capacity value (shared with the command line)."""
    squared = result.task != "classification"
    axis = result.axis or "capacity"
    if squared:
        header = [axis, "test MSE", "bias²", "variance", "noise", "sum", "residual", "time (s)"]
    else:
        header = [axis, "test error", "bias", "variance", "net variance", "bias + net", "residual", "time (s)"]
    rows = []
    for point in result.points:
        d = point.decomposition
        parts = [d.bias, d.variance, d.noise] if squared else [d.bias, d.variance, d.net_variance]
        total = d.bias + d.variance + (d.noise or 0.0) if squared else d.bias + (d.net_variance or 0.0)
        rows.append([_fmt(point.value if point.value is not None else "base"), _fmt(d.expected_loss),
                     *(_fmt(p) for p in parts), _fmt(total), f"{d.residual:.2g}", f"{point.seconds:.1f}"])
    return header, rows


def bias_variance_page(result: Any, path: Path, *, spec_raw: Mapping[str, Any] | None = None) -> Path:
    """The bias-variance page: the table and the bias²/variance/noise stack by capacity."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    squared = result.task != "classification"
    header, rows = bias_variance_rows(result)
    settings = result.settings
    noise_note = ("The noise is the data set's known noise variance, and bias² is measured against the "
                  "noise-free target." if result.noise_known else
                  "The noise is not known for this data: bias² is measured against the observed targets and "
                  "holds the noise." if squared else
                  "Domingos (2000) 0-1 loss: bias is the main (most frequent) prediction's error rate; the "
                  "variance adds to the loss where the main prediction is right and subtracts where it is wrong.")
    caption = (f"{settings.get('rounds')} bootstrap rounds (members) per point, a fixed test set of "
               f"{result.points[0].decomposition.test_rows} values ({settings.get('test_fraction')} of the rows), "
               f"the same bootstrap samples for every point. {noise_note}")
    body = f"<h2>Decomposition by {html.escape(result.axis or 'capacity')}</h2>" + _table(header, rows, caption)
    chart = Chart("Bias², variance and noise by capacity" if squared else "Bias and variance by capacity",
                  "Stacked bars: the parts of the expected test loss at each value of the capacity axis; the "
                  "black line is the measured expected test loss.",
                  _bias_variance_png(result), _bias_variance_plotly(result))
    meta = (f"{len(result.points)} points · axis: {html.escape(result.axis or 'none')} · task: "
            f"{html.escape(result.task)} · loss: {'squared' if squared else '0-1'}")
    return write_page(path, title=f"Bias-variance: {result.name}", meta=meta, body=body, charts=[chart],
                      spec_raw=spec_raw)


def _parts(result: Any) -> tuple[list[str], dict[str, list[float]], list[float]]:
    labels = [_fmt(p.value if p.value is not None else "base") for p in result.points]
    squared = result.task != "classification"
    parts: dict[str, list[float]] = {"bias²" if squared else "bias": [p.decomposition.bias for p in result.points]}
    if squared:
        parts["variance"] = [p.decomposition.variance for p in result.points]
        if result.noise_known:
            parts["noise"] = [p.decomposition.noise or 0.0 for p in result.points]
    else:
        parts["net variance"] = [p.decomposition.net_variance or 0.0 for p in result.points]
    return labels, parts, [p.decomposition.expected_loss for p in result.points]


def _colour(name: str) -> str:
    return _COLOURS["bias" if name.startswith("bias") else "noise" if name == "noise" else "variance"]


def _bias_variance_png(result: Any) -> str:
    import matplotlib.pyplot as plt
    import numpy as np

    labels, parts, expected = _parts(result)
    figure, ax = plt.subplots(figsize=(max(6.0, 0.8 * len(labels) + 2), 4.2))
    positions = np.arange(len(labels))
    up, down = np.zeros(len(labels)), np.zeros(len(labels))
    for name, values in parts.items():
        array = np.asarray(values)
        base = np.where(array >= 0, up, down)
        ax.bar(positions, array, bottom=base, color=_colour(name), label=name, width=0.6)
        up, down = up + np.clip(array, 0, None), down + np.clip(array, None, 0)
    ax.plot(positions, expected, "o-", color="black", label="expected test loss")
    ax.set_xticks(positions, labels)
    ax.set_xlabel(result.axis or "")
    ax.set_ylabel("test MSE" if result.task != "classification" else "test error")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return _png(figure)


def _bias_variance_plotly(result: Any) -> Any:
    import plotly.graph_objects as go

    labels, parts, expected = _parts(result)
    figure = go.Figure()
    for name, values in parts.items():
        figure.add_trace(go.Bar(x=labels, y=values, name=name, marker={"color": _colour(name)},
                                hovertemplate=name + " %{y:.4g}<extra>%{x}</extra>"))
    figure.add_trace(go.Scatter(x=labels, y=expected, mode="lines+markers", name="expected test loss",
                                line={"color": "black"}, hovertemplate="expected %{y:.4g}<extra>%{x}</extra>"))
    figure.update_layout(barmode="relative", height=420, template="plotly_white",
                         margin={"l": 60, "r": 20, "t": 20, "b": 60},
                         legend={"title": {"text": "click to hide"}})
    figure.update_xaxes(title_text=result.axis or "", type="category")
    figure.update_yaxes(title_text="test MSE" if result.task != "classification" else "test error")
    return figure


# --------------------------------------------------------------------------- sharpness in a study


def sharpness_records(study_dir: str | Path) -> list[dict[str, Any]]:
    """Per finished run of a study: its case, seed, batch size and the sharpness its result.json holds."""
    from trainlab.runs import read_json
    from trainlab.study.compare import read_result

    directory = Path(study_dir)
    info_file = directory / "study.json"
    if not info_file.is_file():
        return []
    info = read_json(info_file, "study.json")
    rows = []
    for run in info.get("runs", []):
        result = read_result(directory / str(run.get("run_id")))
        if result is None or not isinstance(result.get("sharpness"), dict):
            continue
        recipe = run.get("spec", {}).get("recipe", {})
        rows.append({"run_id": run["run_id"], "case": run.get("case"), "seed": run.get("seed"),
                     "batch_size": recipe.get("batch_size"), **result["sharpness"]})
    return rows


def sharpness_chart(study_dir: str | Path) -> Chart | None:
    """Sharpness against batch size, beside the generalization gap, for a study run with sharpness = true."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    rows = sharpness_records(study_dir)
    if not rows:
        return None
    return Chart("Sharpness against batch size",
                 "Each run: the top Hessian eigenvalue of the training loss (left axis, log) and the "
                 "generalization gap, validation loss minus training loss of the saved weights (right axis), "
                 "against the batch size; the line joins the means over seeds.",
                 _sharpness_png(rows), _sharpness_plotly(rows))


def _by_batch(rows: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    sizes = sorted({float(r["batch_size"]) for r in rows})
    means = []
    for size in sizes:
        values = [_value(r, key) for r in rows if float(r["batch_size"]) == size]
        finite = [v for v in values if math.isfinite(v)]
        means.append(sum(finite) / len(finite) if finite else math.nan)
    return sizes, means


def _value(row: Mapping[str, Any], key: str) -> float:
    if key == "gap":
        gap = row.get("gap", {})
        value = gap.get("loss") if isinstance(gap, dict) else None
    else:
        value = row.get(key)
    return float(value) if isinstance(value, (int, float)) else math.nan


def _sharpness_png(rows: Sequence[dict[str, Any]]) -> str:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator

    figure, ax = plt.subplots(figsize=(7.0, 4.2))
    other = ax.twinx()
    ax.plot([r["batch_size"] for r in rows], [_value(r, "top_eigenvalue") for r in rows], "o",
            color=_COLOURS["bias"], alpha=0.6)
    sizes, means = _by_batch(rows, "top_eigenvalue")
    ax.plot(sizes, means, "-", color=_COLOURS["bias"], label="top Hessian eigenvalue")
    other.plot([r["batch_size"] for r in rows], [_value(r, "gap") for r in rows], "s", color=_COLOURS["gap"],
               alpha=0.6)
    sizes, gaps = _by_batch(rows, "gap")
    other.plot(sizes, gaps, "--", color=_COLOURS["gap"], label="generalization gap (loss)")
    ax.set_xscale("log", base=2)
    ticks = sorted({float(r["batch_size"]) for r in rows})
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    if all(_value(r, "top_eigenvalue") > 0 for r in rows):
        ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("top Hessian eigenvalue", color=_COLOURS["bias"])
    other.set_ylabel("val loss - train loss", color=_COLOURS["gap"])
    lines = ax.get_legend_handles_labels()
    more = other.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left")
    ax.grid(alpha=0.3)
    figure.tight_layout()
    return _png(figure)


def _sharpness_plotly(rows: Sequence[dict[str, Any]]) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figure = make_subplots(specs=[[{"secondary_y": True}]])
    text = [str(r["run_id"]) for r in rows]
    figure.add_trace(go.Scatter(x=[r["batch_size"] for r in rows], y=[_value(r, "top_eigenvalue") for r in rows],
                                mode="markers", name="top eigenvalue (runs)", text=text,
                                marker={"color": _COLOURS["bias"]},
                                hovertemplate="%{text}<br>top eigenvalue %{y:.4g}<extra></extra>"),
                     secondary_y=False)
    sizes, means = _by_batch(rows, "top_eigenvalue")
    figure.add_trace(go.Scatter(x=sizes, y=means, mode="lines", name="top eigenvalue (mean)",
                                line={"color": _COLOURS["bias"]}), secondary_y=False)
    figure.add_trace(go.Scatter(x=[r["batch_size"] for r in rows], y=[_value(r, "gap") for r in rows],
                                mode="markers", name="gap (runs)", text=text,
                                marker={"color": _COLOURS["gap"], "symbol": "square"},
                                hovertemplate="%{text}<br>gap %{y:.4g}<extra></extra>"), secondary_y=True)
    sizes, gaps = _by_batch(rows, "gap")
    figure.add_trace(go.Scatter(x=sizes, y=gaps, mode="lines", name="gap (mean)",
                                line={"color": _COLOURS["gap"], "dash": "dash"}), secondary_y=True)
    figure.update_xaxes(title_text="batch size", type="log")
    positive = all(_value(r, "top_eigenvalue") > 0 for r in rows)
    figure.update_yaxes(title_text="top Hessian eigenvalue", type="log" if positive else "linear", secondary_y=False)
    figure.update_yaxes(title_text="val loss - train loss", secondary_y=True)
    figure.update_layout(height=420, template="plotly_white", margin={"l": 60, "r": 60, "t": 20, "b": 60},
                         legend={"title": {"text": "click to hide"}})
    return figure
