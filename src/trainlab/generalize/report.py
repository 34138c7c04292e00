"""Report pages for cross-validation, bagging and boosting, in the study report's style.

One self-contained HTML file each (`trainlab.study.report`'s look: its CSS,
plotly charts with their JavaScript inlined once, the same charts as
matplotlib PNGs where JavaScript is off; nothing fetched):

- cross-validation: the fold scores (a dot per fold, the mean with its
  interval) and each fold's learning curves; the per-fold table;
- bagging: out-of-bag against members: each member's score on its own
  out-of-bag rows and on the held-out rows, with the ensemble's out-of-bag
  estimate and held-out score as lines;
- boosting: the ensemble's training and validation error by round, and the
  members' weights.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trainlab.study.report import _CSS, Chart, _png, figures_html

__all__ = ["cv_report", "ensemble_report"]

_BLUE, _ORANGE, _GREEN, _GREY = "#1f77b4", "#ff7f0e", "#2ca02c", "#7f7f7f"


def cv_report(result: Any, path: str | Path, *, spec_text: str = "", spread: Any = None) -> Path:
    """Write the cross-validation page for a `CVResult` to `path`; return it.

    With `spread` (a `SeedSpread`), the page also shows the CV against a single hold-out across seeds.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    metric = result.metric
    values = result.values()
    low, high = result.interval
    repeats = max(f.repeat for f in result.folds) + 1
    labels = [f"fold {f.fold + 1}" + (f", repeat {f.repeat + 1}" if repeats > 1 else "") for f in result.folds]
    charts = [
        Chart(f"Held-out {metric} per fold",
              f"Every fold's {metric} on the rows it did not train on (dot); the mean (diamond) with the "
              f"{result.interval_name}.",
              _fold_png(values, result.mean, low, high, metric), _fold_plotly(values, labels, result.mean, low, high,
                                                                               metric)),
        Chart("Learning curves per fold",
              "Each fold's training loss and validation loss per epoch (validation on its held-out fold, or with "
              "early stopping on the part of its training rows it stopped on).",
              _curves_png(result.folds), _curves_plotly(result.folds)),
    ]
    if spread is not None:
        charts.append(Chart(
            f"{metric}: single hold-out against {spread.folds}-fold CV, by seed",
            f"Each seed gives one hold-out estimate (its own random split) and one CV mean; the std over seeds is "
            f"{spread.spread('holdout'):.3g} for the hold-out and {spread.spread('cv'):.3g} for the CV. "
            + spread.summary(), _spread_png(spread), _spread_plotly(spread)))
    rows = "".join(
        f"<tr><td class=case>{html.escape(label)}</td><td>{len(f.train_rows)}</td><td>{len(f.test_rows)}</td>"
        f"<td>{f.epochs}</td>" + "".join(f"<td>{_cell(v)}</td>" for v in f.scores.values())
        + f"<td class=case>{html.escape(f.stop_reason or '')}</td></tr>"
        for label, f in zip(labels, result.folds))
    keys = list(result.folds[0].scores)
    head = "".join(f"<th>held-out {html.escape(k)}</th>" for k in keys)
    table = (f"<table><thead><tr><th class=case>fold</th><th>training rows</th><th>held-out rows</th>"
             f"<th>epochs</th>{head}<th class=case>stop reason</th></tr></thead><tbody>{rows}</tbody>"
             f"<caption>{html.escape(result.splitter)}; scaling fitted on each fold's training rows only; every "
             f"fold started from a fresh initialization.</caption></table>")
    verdict = (f"{metric}: {result.mean:.4g} ± {result.std:.2g} (mean ± sample std over {len(values)} folds); "
               f"95% interval [{low:.4g}, {high:.4g}]: the {result.interval_name}.")
    return _write(path, f"Cross-validation: {result.name}", verdict, table, charts, spec_text,
                  meta=f"{len(result.folds)} folds · {result.seconds:.1f} s of training · "
                       f"{'stacked' if result.stacked else 'one fold at a time'}")


def ensemble_report(result: Any, path: str | Path, *, spec_text: str = "") -> Path:
    """Write the bagging or boosting page for an `EnsembleResult` to `path`; return it."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    if result.method == "bagging":
        charts = [Chart(f"Out-of-bag {result.metric} against the members",
                        "Each member's score on its own out-of-bag rows (dots) and on the held-out rows "
                        "(squares); the lines are the ensemble's out-of-bag estimate and its held-out score.",
                        _bagging_png(result), _bagging_plotly(result))]
    else:
        charts = [Chart("Error by round",
                        "The ensemble's training and validation error after each round (for regression the mean "
                        "squared error); bars are the members' weights in the ensemble.",
                        _rounds_png(result), _rounds_plotly(result))]
    metric = result.metric
    bagged = result.method == "bagging"
    member_rows = []
    source = result.member_scores or result.member_oob_scores
    for k in range(len(result.ensemble)):
        cells = [f"member {k + 1}", _cell(result.weights[k])]
        if bagged:
            cells.append(_cell(result.member_oob_scores[k][metric]) if k < len(result.member_oob_scores) else "")
        cells.append(_cell(result.member_scores[k][metric]) if k < len(result.member_scores) else "")
        if result.rounds:
            entry = result.rounds[k]
            cells += [_cell(entry.get("train_error", entry.get("train_mse", math.nan))),
                      _cell(entry.get("val_error", entry.get("val_mse", math.nan)))]
        member_rows.append("<tr>" + "".join(f"<td{' class=case' if i == 0 else ''}>{html.escape(c)}</td>"
                                            for i, c in enumerate(cells)) + "</tr>")
    extra = ("<th>ensemble train error</th><th>ensemble val error</th>" if result.task == "classification"
             else "<th>ensemble train mse</th><th>ensemble val mse</th>") if result.rounds else ""
    oob_head = f"<th>out-of-bag {metric}</th>" if bagged else ""
    table = (f"<table><thead><tr><th class=case>member</th><th>weight</th>{oob_head}"
             f"<th>held-out {metric}</th>{extra}</tr></thead><tbody>{''.join(member_rows)}</tbody>"
             f"<caption>{len(source)} members; combine rule: {html.escape(result.ensemble.combine)}"
             f"{'; ' + html.escape(result.stop_reason) if result.stop_reason else ''}.</caption></table>")
    return _write(path, f"{result.method.capitalize()}: {result.name}", result.summary(), table, charts, spec_text,
                  meta=f"{len(result.ensemble)} members · {result.seconds:.1f} s of training")


# --------------------------------------------------------------------------- the page


def _write(path: str | Path, title: str, verdict: str, table: str, charts: Sequence[Chart], spec_text: str,
           *, meta: str) -> Path:
    import plotly.offline

    from trainlab import __version__

    chart_html = figures_html(charts)
    spec = f"<h2>Spec</h2><pre>{html.escape(spec_text)}</pre>" if spec_text else ""
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{_CSS}</style>
<script>document.documentElement.className += " js";</script>
<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script></head>
<body>
<h1>{html.escape(title)}</h1>
<p class="meta">{html.escape(meta)} · trainlab {html.escape(__version__)}</p>
<p class="verdict">{html.escape(verdict)}</p>
{table}
{"".join(chart_html)}
{spec}
</body></html>
"""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, target)
    return target


def _cell(value: Any) -> str:
    if isinstance(value, (int, float)):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


# --------------------------------------------------------------------------- cross-validation


def _fold_png(values: np.ndarray, mean: float, low: float, high: float, metric: str) -> str:
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(7, 3.6))
    ax.scatter(np.arange(1, len(values) + 1), values, color=_BLUE, zorder=3, label="fold")
    ax.axhline(mean, color="black", lw=1, label="mean")
    ax.axhspan(low, high, color=_BLUE, alpha=0.12, label="interval")
    ax.set_xlabel("fold")
    ax.set_ylabel(f"held-out {metric}")
    ax.set_xticks(np.arange(1, len(values) + 1))
    ax.legend(loc="best", fontsize=8)
    return _png(figure)


def _fold_plotly(values: np.ndarray, labels: Sequence[str], mean: float, low: float, high: float,
                 metric: str) -> Any:
    import plotly.graph_objects as go

    figure = go.Figure()
    xs = list(range(1, len(values) + 1))
    figure.add_trace(go.Scatter(x=xs, y=values.tolist(), mode="markers", name="fold", text=list(labels),
                                marker={"color": _BLUE, "size": 10},
                                hovertemplate="%{text}<br>" + metric + " %{y:.4g}<extra></extra>"))
    figure.add_trace(go.Scatter(x=[xs[0], xs[-1]], y=[mean, mean], mode="lines", name=f"mean {mean:.4g}",
                                line={"color": "black"}))
    figure.add_hrect(y0=low, y1=high, fillcolor=_BLUE, opacity=0.12, line_width=0)
    figure.update_xaxes(title_text="fold", tickvals=xs)
    figure.update_yaxes(title_text=f"held-out {metric}")
    figure.update_layout(height=380, margin={"l": 60, "r": 20, "t": 20, "b": 50}, template="plotly_white")
    return figure


def _curves_png(folds: Sequence[Any]) -> str:
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(7, 3.6))
    for k, f in enumerate(folds):
        history = f.history.history
        epochs = np.arange(1, len(history.get("loss", [])) + 1)
        ax.plot(epochs, history.get("loss", []), color=_BLUE, alpha=0.6, label="training loss" if k == 0 else None)
        if "val_loss" in history:
            ax.plot(epochs, history["val_loss"], color=_ORANGE, alpha=0.6, label="validation loss" if k == 0 else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend(loc="best", fontsize=8)
    return _png(figure)


def _curves_plotly(folds: Sequence[Any]) -> Any:
    import plotly.graph_objects as go

    figure = go.Figure()
    for k, f in enumerate(folds):
        history = f.history.history
        epochs = list(range(1, len(history.get("loss", [])) + 1))
        for key, colour in (("loss", _BLUE), ("val_loss", _ORANGE)):
            if key in history:
                figure.add_trace(go.Scatter(x=epochs, y=history[key], mode="lines", name=f"fold {k + 1} {key}",
                                            legendgroup=key, line={"color": colour}, opacity=0.6))
    figure.update_xaxes(title_text="epoch")
    figure.update_yaxes(title_text="loss")
    figure.update_layout(height=380, margin={"l": 60, "r": 20, "t": 20, "b": 50}, template="plotly_white")
    return figure


def _spread_png(spread: Any) -> str:
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(7, 3.6))
    for k, (label, values, colour) in enumerate((("single hold-out", spread.holdout, _ORANGE),
                                                  (f"{spread.folds}-fold CV mean", spread.cv, _BLUE))):
        ax.scatter(np.full(len(values), k) + np.linspace(-0.1, 0.1, len(values)), values, color=colour, label=label)
    ax.set_xticks([0, 1])
    ax.set_xticklabels(["single hold-out", f"{spread.folds}-fold CV mean"])
    ax.set_xlim(-0.5, 1.5)
    ax.set_ylabel(spread.metric)
    return _png(figure)


def _spread_plotly(spread: Any) -> Any:
    import plotly.graph_objects as go

    figure = go.Figure()
    for k, (label, values, colour) in enumerate((("single hold-out", spread.holdout, _ORANGE),
                                                  (f"{spread.folds}-fold CV mean", spread.cv, _BLUE))):
        jitter = np.linspace(-0.1, 0.1, len(values))
        figure.add_trace(go.Scatter(x=(k + jitter).tolist(), y=list(values), mode="markers", name=label,
                                    text=[f"seed {s}" for s in spread.seeds], marker={"color": colour, "size": 10},
                                    hovertemplate="%{text}<br>%{y:.4g}<extra>" + label + "</extra>"))
    figure.update_xaxes(tickvals=[0, 1], ticktext=["single hold-out", f"{spread.folds}-fold CV mean"],
                        range=[-0.5, 1.5])
    figure.update_yaxes(title_text=spread.metric)
    figure.update_layout(height=380, margin={"l": 60, "r": 20, "t": 20, "b": 50}, template="plotly_white")
    return figure


# --------------------------------------------------------------------------- bagging


def _bagging_png(result: Any) -> str:
    import matplotlib.pyplot as plt

    metric = result.metric
    figure, ax = plt.subplots(figsize=(7, 3.6))
    oob = [s[metric] for s in result.member_oob_scores]
    ax.scatter(np.arange(1, len(oob) + 1), oob, color=_BLUE, label="member, out-of-bag rows")
    if result.member_scores:
        held = [s[metric] for s in result.member_scores]
        ax.scatter(np.arange(1, len(held) + 1), held, color=_ORANGE, marker="s", label="member, held-out rows")
    if result.oob_score is not None:
        ax.axhline(result.oob_score[metric], color=_BLUE, lw=1.5, label="ensemble, out-of-bag estimate")
    if result.ensemble_score is not None:
        ax.axhline(result.ensemble_score[metric], color=_ORANGE, lw=1.5, ls="--", label="ensemble, held-out")
    ax.set_xlabel("member")
    ax.set_ylabel(metric)
    ax.legend(loc="best", fontsize=8)
    return _png(figure)


def _bagging_plotly(result: Any) -> Any:
    import plotly.graph_objects as go

    metric = result.metric
    figure = go.Figure()
    oob = [s[metric] for s in result.member_oob_scores]
    xs = list(range(1, len(oob) + 1))
    figure.add_trace(go.Scatter(x=xs, y=oob, mode="markers", name="member, out-of-bag rows",
                                marker={"color": _BLUE, "size": 10}))
    if result.member_scores:
        figure.add_trace(go.Scatter(x=xs, y=[s[metric] for s in result.member_scores], mode="markers",
                                    name="member, held-out rows", marker={"color": _ORANGE, "size": 10,
                                                                          "symbol": "square"}))
    if result.oob_score is not None:
        figure.add_trace(go.Scatter(x=[xs[0], xs[-1]], y=[result.oob_score[metric]] * 2, mode="lines",
                                    name="ensemble, out-of-bag estimate", line={"color": _BLUE}))
    if result.ensemble_score is not None:
        figure.add_trace(go.Scatter(x=[xs[0], xs[-1]], y=[result.ensemble_score[metric]] * 2, mode="lines",
                                    name="ensemble, held-out", line={"color": _ORANGE, "dash": "dash"}))
    figure.update_xaxes(title_text="member", tickvals=xs)
    figure.update_yaxes(title_text=metric)
    figure.update_layout(height=380, margin={"l": 60, "r": 20, "t": 20, "b": 50}, template="plotly_white")
    return figure


# --------------------------------------------------------------------------- boosting


def _round_series(result: Any) -> tuple[str, list[float], list[float]]:
    key = "error" if result.task == "classification" else "mse"
    train = [r[f"train_{key}"] for r in result.rounds]
    val = [r[f"val_{key}"] for r in result.rounds if f"val_{key}" in r]
    return key, train, val


def _rounds_png(result: Any) -> str:
    import matplotlib.pyplot as plt

    key, train, val = _round_series(result)
    rounds = np.arange(1, len(train) + 1)
    figure, ax = plt.subplots(figsize=(7, 3.6))
    ax.plot(rounds, train, marker="o", color=_BLUE, label=f"training {key}")
    if val:
        ax.plot(rounds[:len(val)], val, marker="o", color=_ORANGE, label=f"validation {key}")
    ax.set_xlabel("round")
    ax.set_ylabel(key)
    twin = ax.twinx()
    twin.bar(rounds, result.weights, color=_GREY, alpha=0.25, label="member weight")
    twin.set_ylabel("member weight")
    ax.set_zorder(twin.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.legend(loc="upper right", fontsize=8)
    return _png(figure)


def _rounds_plotly(result: Any) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    key, train, val = _round_series(result)
    rounds = list(range(1, len(train) + 1))
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    figure.add_trace(go.Bar(x=rounds, y=result.weights, name="member weight", marker={"color": _GREY},
                            opacity=0.3), secondary_y=True)
    figure.add_trace(go.Scatter(x=rounds, y=train, mode="lines+markers", name=f"training {key}",
                                line={"color": _BLUE}), secondary_y=False)
    if val:
        figure.add_trace(go.Scatter(x=rounds[:len(val)], y=val, mode="lines+markers", name=f"validation {key}",
                                    line={"color": _ORANGE}), secondary_y=False)
    figure.update_xaxes(title_text="round")
    figure.update_yaxes(title_text=key, secondary_y=False)
    figure.update_yaxes(title_text="member weight", secondary_y=True)
    figure.update_layout(height=380, margin={"l": 60, "r": 60, "t": 20, "b": 50}, template="plotly_white")
    return figure
