"""The search report: one self-contained `report.html` in the search folder.

It reuses the study report's page style, and Optuna's own figures
(`optuna.visualization`, plotly), with plotly's JavaScript inlined once so the
page opens offline:

- optimization history: each trial's value and the best so far;
- intermediate values: each trial's metric per epoch, where pruned trials stop;
- parameter importances (fANOVA, Optuna's default evaluator);
- slice plots: the value against each searched setting;
- parallel coordinates: every finished trial across all settings.

Then the best trial's values and its spec (best.toml), every trial in a table
(state, value, epochs, time, the values it tried, why it failed), and the
search spec. A figure Optuna cannot draw yet (importances need two finished
trials) is replaced by a line saying why.
"""

from __future__ import annotations

import html
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainlab.search.spec import PRUNERS, SearchPlan, format_params

__all__ = ["build_report"]


def build_report(study: Any, plan: SearchPlan, search_dir: str | Path, *, seconds: float | None = None) -> Path:
    """Write ``search_dir/report.html`` from the Optuna study; return its path."""
    import optuna.visualization as vis
    import plotly.offline
    import tomli_w

    from trainlab import __version__
    from trainlab.runs import write_text_atomic
    from trainlab.study.report import _CSS

    folder = Path(search_dir)
    trials = study.get_trials(deepcopy=False)
    counts = {s: sum(t.state.name == s for t in trials) for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING")}
    figures: list[tuple[str, str, Callable[[], Any]]] = [
        ("Optimization history", "Each finished trial's value (dots) and the best value so far (line).",
         lambda: vis.plot_optimization_history(study, target_name=plan.metric)),
        ("Intermediate values", f"Each trial's {plan.metric} per epoch (step counted from 0), as reported to the "
         "pruner; a pruned trial's line ends where it was stopped.",
         lambda: vis.plot_intermediate_values(study)),
        ("Parameter importances", "How much of the value's variation each setting explains (fANOVA over the "
         "finished trials).", lambda: vis.plot_param_importances(study, target_name=plan.metric)),
        ("Slice", "The value against each searched setting; darker dots are later trials.",
         lambda: vis.plot_slice(study, target_name=plan.metric)),
        ("Parallel coordinates", "Every finished trial across the settings, coloured by its value.",
         lambda: vis.plot_parallel_coordinate(study, target_name=plan.metric)),
    ]
    sections = []
    for index, (title, caption, draw) in enumerate(figures):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                figure = draw()
            if not figure.data:
                raise ValueError("no finished trials to draw")
            body = figure.to_html(full_html=False, include_plotlyjs=False, div_id=f"chart-{index}",
                                  config={"displaylogo": False, "responsive": True})
            body = (f"<div class='chart'>{body}</div><div class='static'>This chart needs JavaScript.</div>"
                    f"<figcaption>{html.escape(caption)}</figcaption>")
        except (ValueError, RuntimeError, ZeroDivisionError) as error:
            body = f"<p class='meta'>Not drawn: {html.escape(str(error))}.</p>"
        sections.append(f"<h2>{html.escape(title)}</h2><figure>{body}</figure>")

    best = _best_html(study, plan, folder)
    ordered = sorted(trials, key=lambda t: _order(t, plan))
    rows = "".join(
        f"<tr class='{'best' if best and t.state.name == 'COMPLETE' and t.number == study.best_trial.number else ''}'>"
        f"<td>{t.number}</td><td class='case'>{t.state.name.lower()}</td><td>{_cell(t.value)}</td>"
        f"<td>{t.user_attrs.get('epochs', '')}</td><td>{_cell(t.user_attrs.get('seconds'))}"
        f"{'*' if (t.user_attrs.get('stacked_with') or 1) > 1 else ''}</td>"
        f"<td class='case'>{html.escape(format_params(plan.values_of(t.params)))}</td>"
        f"<td class='case'>{html.escape(str(t.user_attrs.get('failure') or t.user_attrs.get('stop_reason') or ''))}"
        "</td></tr>" for t in ordered)
    pruner = plan.pruner_name + (f" ({', '.join(f'{k}={v}' for k, v in plan.pruner_settings.items())})"
                                 if plan.pruner_settings else "")
    took = "" if seconds is None else f" · wall time of the last call {seconds:.1f} s"
    try:
        spec_text = tomli_w.dumps(plan.raw)
    except (TypeError, ValueError):
        spec_text = repr(plan.raw)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>search {html.escape(plan.name)}</title><style>{_CSS}</style>
<script>document.documentElement.className += " js";</script>
<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script></head>
<body>
<h1>Search: {html.escape(plan.name)}</h1>
<p class="meta">{len(trials)} trials: {counts['COMPLETE']} complete, {counts['PRUNED']} pruned, {counts['FAIL']} failed
{f", {counts['RUNNING']} running or left running" if counts['RUNNING'] else ""} · {plan.direction}
{html.escape(plan.metric)} ({plan.settings.rank_by} epoch) · sampler TPE, seed {plan.base.recipe.seed} ·
pruner {html.escape(pruner)} (Optuna's {PRUNERS[plan.pruner_name]}){took} · trainlab {html.escape(__version__)}</p>
{best}
{"".join(sections)}
<h2>Trials</h2>
<table><thead><tr><th>#</th><th class="case">state</th><th>{html.escape(plan.metric)}</th><th>epochs</th>
<th>time (s)</th><th class="case">values</th><th class="case">stop reason or failure</th></tr></thead>
<tbody>{rows}</tbody><caption>Best first; * trained as a member of a stacked pass, its time is the pass's
time split evenly.</caption></table>
<h2>Search spec</h2>
<pre>{html.escape(spec_text)}</pre>
</body></html>
"""
    path = folder / "report.html"
    write_text_atomic(path, page)
    return path


def _best_html(study: Any, plan: SearchPlan, folder: Path) -> str:
    try:
        trial = study.best_trial
    except ValueError:
        return "<p class='verdict'>No trial has finished with a value yet.</p>"
    values = plan.values_of(trial.params)
    rows = "".join(f"<tr><td class='case'>{html.escape(k)}</td><td class='case'>{html.escape(repr(v))}</td></tr>"
                   for k, v in values.items())
    link = ("<a href='best.toml'>best.toml</a>" if (folder / "best.toml").is_file() else "best.toml")
    return (f"<p class='verdict'>Best: trial {trial.number}, {html.escape(plan.metric)} = {trial.value:.6g}. Its "
            f"spec is written as a plain fit spec, {link}: <code>trainlab fit {html.escape(str(folder / 'best.toml'))}"
            f"</code> trains it again.</p><table><thead><tr><th class='case'>setting</th><th class='case'>value</th>"
            f"</tr></thead><tbody>{rows}</tbody></table>")


def _order(trial: Any, plan: SearchPlan) -> tuple[int, float, int]:
    states = {"COMPLETE": 0, "PRUNED": 1, "FAIL": 2}
    value = trial.value if trial.value is not None and math.isfinite(trial.value) else math.inf
    if plan.direction == "maximize" and value != math.inf:
        value = -value
    return states.get(trial.state.name, 3), value, trial.number


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else html.escape(str(value))
    return html.escape(str(value))
