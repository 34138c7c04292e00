"""Run gallery entries: train the study, measure, decide the verdict, write the entry's page.

Folders (``runs_dir`` is ``runs`` by default)::

    runs/gallery/index.html           every entry: its verdict, effect, p, seeds, time; links below
    runs/gallery/verdicts.md          the same as a Markdown table (docs/gallery.md)
    runs/gallery/C4/                  the entry's study folder (C4-quick/ for --quick)
        study.json, <run>/...         the study's runs, as `trainlab study` writes them
        report.html                   the study report (full runs): curves, ranked table, every seed
        entry.html                    the entry's page: claim, verdict, findings, the picture
        picture.png                   the picture on its own
        verdict.json                  the verdict, its findings and the time it took

Finished runs are reused (a second call only measures again); ``fresh``
retrains them.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainlab.errors import InputError
from trainlab.gallery.entry import Entry, EntryContext, Measured, entry, sorted_ids
from trainlab.gallery.verdicts import FAILS, HOLDS, Verdict

if TYPE_CHECKING:
    from trainlab.study.runner import GroupExecutor

__all__ = ["EntryResult", "entry_status", "gallery_dir", "run_all", "run_entry", "verdict_table", "write_index"]


@dataclass(frozen=True)
class EntryResult:
    """One entry's outcome: its verdict, the seconds it took, and where its page is."""

    entry: Entry
    verdict: Verdict
    seconds: float
    folder: Path
    page: Path
    quick: bool
    measured: Measured


def gallery_dir(runs_dir: str | Path = "runs") -> Path:
    return Path(runs_dir) / "gallery"


def run_entry(entry_id: str, *, quick: bool = False, runs_dir: str | Path = "runs", fresh: bool = False,
              progress: Any = None, report: bool | None = None, draw: bool = True,
              executor: GroupExecutor | None = None) -> EntryResult:
    """Run one entry (see the module docstring).

    `report` writes the study's report.html (default: not in quick mode); `draw=False` builds the
    picture's figure but does not render it (tests: rendering is matplotlib's, and slow). `executor`
    trains the entry's study as `run_study` would with it (`trainlab.scale.ray.RayExecutor`: its groups
    of runs as Ray tasks); entries that train no study (C12-C14 fit their own probes) run here.
    """
    from trainlab.study import load_results, parse_study, run_study

    chosen = entry(entry_id)
    missing = chosen.available()
    if missing is not None:
        raise InputError(f"gallery entry {chosen.id} cannot run here: it {missing}. "
                         "Install the full trainlab to run it.")
    raw = chosen.raw_spec(quick=quick)
    study = parse_study(raw, source=f"gallery {chosen.id}{' (quick)' if quick else ''}")
    root = gallery_dir(runs_dir)
    start = time.perf_counter()
    folder = root / study.name
    records = None
    reused = 0
    if chosen.train:
        result = run_study(study, runs_dir=root, resume=True, fresh=fresh, progress=progress,
                           report=not quick if report is None else report, executor=executor)
        folder = result.study_dir
        records = load_results(folder)
        reused = len(result.reused)
    folder.mkdir(parents=True, exist_ok=True)
    context = EntryContext(entry=chosen, quick=quick, study=study, study_dir=folder, records=records)
    measured = chosen.measure(context)
    verdict = chosen.verdict(measured.table)
    epochs = study.base.recipe.num_epochs
    conditions = chosen.conditions.format(epochs=epochs, seeds=study.settings.seeds)
    if quick:
        conditions += " (quick version: fewer epochs, seeds and rows; not a verdict to quote)"
    verdict = replace(verdict, conditions=conditions, literature=verdict.literature or chosen.literature)
    picture = None
    if chosen.picture is not None:
        figure = chosen.picture(context, measured)
        if figure is not None and draw:
            picture = _save_png(figure, folder / "picture.png")
        elif figure is not None:
            import matplotlib.pyplot as plt

            plt.close(figure)
    seconds = time.perf_counter() - start
    from trainlab.runs import write_json_atomic

    write_json_atomic(folder / "verdict.json", {
        "id": chosen.id, "title": chosen.title, "quick": quick, "seconds": seconds, "reused_runs": reused,
        "seeds": study.settings.seeds, "epochs": epochs, "finished": time.time(), **verdict.to_dict()})
    page = _write_page(folder, chosen, verdict, seconds, picture, quick=quick)
    return EntryResult(entry=chosen, verdict=verdict, seconds=seconds, folder=folder, page=page, quick=quick,
                       measured=measured)


def run_all(*, quick: bool = False, runs_dir: str | Path = "runs", fresh: bool = False,
            ids: Sequence[str] | None = None, progress: Any = None,
            told: Any = None, draw: bool = True, executor: GroupExecutor | None = None) -> list[EntryResult]:
    """Run every entry that can run here (or `ids`), then write ``runs/gallery/index.html``.

    `told(result)` is called as each entry ends; `draw` and `executor` as in `run_entry`.
    """
    from trainlab.gallery import load_entries

    load_entries()
    results = []
    for entry_id in ids or sorted_ids():
        if entry(entry_id).available() is not None:
            continue
        result = run_entry(entry_id, quick=quick, runs_dir=runs_dir, fresh=fresh, progress=progress, draw=draw,
                           executor=executor)
        results.append(result)
        if told is not None:
            told(result)
    write_index(runs_dir, quick=quick)
    return results


def entry_status(entry_id: str, *, runs_dir: str | Path = "runs") -> dict[str, Any]:
    """What is known of an entry here: its last verdict (full, else quick) and time, or why it cannot run."""
    chosen = entry(entry_id)
    missing = chosen.available()
    if missing is not None:
        return {"status": "unavailable", "why": missing}
    raw = chosen.raw_spec()
    for name, quick in ((raw["name"], False), (f"{raw['name']}-quick", True)):
        file = gallery_dir(runs_dir) / name / "verdict.json"
        if file.is_file():
            try:
                stored = json.loads(file.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            return {"status": stored.get("word", "?"), "quick": quick, "stored": stored,
                    "page": str(file.with_name("entry.html"))}
    return {"status": "not run"}


# --------------------------------------------------------------------------- pages


def _save_png(figure: Any, path: Path) -> str:
    import base64
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    path.write_bytes(buffer.getvalue())
    return base64.b64encode(buffer.getvalue()).decode("ascii")


_COLOURS = {HOLDS: "#1a7f37", FAILS: "#b42318"}


def _word_html(word: str) -> str:
    return f"<b style='color: {_COLOURS.get(word, '#9a6700')}'>{html.escape(word)}</b>"


def _write_page(folder: Path, chosen: Entry, verdict: Verdict, seconds: float, picture: str | None, *,
                quick: bool) -> Path:
    from trainlab.gallery.korean import KOREAN
    from trainlab.runs import write_text_atomic
    from trainlab.study.report import _CSS

    rows = "".join(
        f"<tr><td>{_word_html(f.word)}</td><td class='case'>{html.escape(f.statement)}"
        f"{' (second condition)' if f.context else ''}</td><td class='case'>{html.escape(f.what)}</td>"
        f"<td class='case'>{html.escape(f.better)} vs {html.escape(f.worse)}</td>"
        f"<td>{html.escape(f.effect_text())}</td><td>{html.escape(f.p_text())}</td>"
        f"<td class='case'>{html.escape(f.test)}</td><td>{f.n[0]}/{f.n[1]}</td></tr>"
        for f in verdict.findings)
    report = folder / "report.html"
    link = ("<p><a href='report.html'>The study report</a>: learning curves, the ranked table and every "
            "seed.</p>" if report.is_file() else
            "<p class='meta'>No study report (quick runs, or an entry that trains its own probes).</p>")
    image = (f"<figure><img alt='the picture of {html.escape(chosen.id)}' "
             f"src='data:image/png;base64,{picture}'></figure>" if picture else "")
    korean = KOREAN.get(chosen.id, {})
    from trainlab.gallery.entry import spec_text

    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>gallery {html.escape(chosen.id)}</title>
<style>{_CSS}</style></head><body>
<p><a href='../index.html'>gallery</a></p>
<h1>{html.escape(chosen.id)}: {html.escape(chosen.title)}</h1>
<p><b>Claim.</b> {html.escape(chosen.claim)}</p>
<p lang="ko" class="meta">{html.escape(korean.get('claim', ''))}</p>
<p class="verdict">{_word_html(verdict.word)} — {html.escape(verdict.sentence())}</p>
<p class="meta">{'quick version · ' if quick else ''}{seconds:.0f} s</p>
<h2>Findings</h2>
<table><thead><tr><th>word</th><th class='case'>prediction</th><th class='case'>measured</th>
<th class='case'>compared</th><th>effect (as claimed: +), 95% CI</th><th>p (Holm)</th><th class='case'>test</th>
<th>seeds</th></tr></thead><tbody>{rows}</tbody></table>
{"".join(f"<p class='meta'>{html.escape(n)}</p>" for n in verdict.notes)}
<h2>The picture</h2>{image}
<p><b>Data.</b> {html.escape(chosen.data)}</p>
<p><b>Literature.</b> The claim is reported to hold when {html.escape(chosen.literature)}.</p>
{link}
<h2>Spec</h2><p class="meta">Copy it with <code>trainlab gallery {html.escape(chosen.id)} --export
my_{html.escape(chosen.id.lower())}.toml</code>, then <code>trainlab study my_{html.escape(chosen.id.lower())}.toml</code>.</p>
<pre>{html.escape(spec_text(chosen.id))}</pre>
</body></html>
"""
    target = folder / "entry.html"
    write_text_atomic(target, page)
    return target


def write_index(runs_dir: str | Path = "runs", *, quick: bool = False) -> Path:
    """Write ``runs/gallery/index.html`` (one row per entry with its latest verdict and a link to its page)
    and ``runs/gallery/verdicts.md`` (the same as a Markdown table, `verdict_table`)."""
    from trainlab.gallery import load_entries
    from trainlab.runs import write_text_atomic
    from trainlab.study.report import _CSS

    load_entries()
    root = gallery_dir(runs_dir)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    total = 0.0
    for entry_id in sorted_ids():
        chosen = entry(entry_id)
        status = entry_status(entry_id, runs_dir=runs_dir)
        stored = status.get("stored")
        if stored is None:
            rows.append(f"<tr><td>{chosen.id}</td><td class='case'>{html.escape(chosen.title)}</td>"
                        f"<td class='case' colspan=5>{html.escape(status.get('why', status['status']))}</td></tr>")
            continue
        head = _headline(stored)
        seconds = float(stored.get("seconds") or 0.0)
        total += seconds
        page = Path(status["page"]).relative_to(root).as_posix()
        rows.append(
            f"<tr><td><a href='{html.escape(page)}'>{chosen.id}</a></td>"
            f"<td class='case'>{html.escape(chosen.title)}{' (quick)' if status.get('quick') else ''}</td>"
            f"<td class='case'>{_word_html(str(stored.get('word')))}</td>"
            f"<td>{html.escape(head.get('effect', ''))}</td><td>{html.escape(head.get('p', ''))}</td>"
            f"<td>{stored.get('seeds', '')}</td><td>{seconds:.0f}{'*' if stored.get('reused_runs') else ''}</td></tr>")
    page_text = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>trainlab gallery</title><style>{_CSS}</style></head><body>
<h1>trainlab gallery: the claims of the notes, measured</h1>
<p class="meta">Each entry is a study with a verdict: holds, does not hold here, or inconclusive, with
the effect (+: as the claim predicts) and its 95% interval, the Holm-adjusted p-value and the seeds.
Total time {total:.0f} s (* : runs reused from an earlier call; only their measurement is counted).</p>
<table><thead><tr><th>id</th><th class='case'>claim</th><th class='case'>verdict</th>
<th>effect</th><th>p</th><th>seeds</th><th>time (s)</th></tr></thead><tbody>{''.join(rows)}</tbody></table>
</body></html>
"""
    target = root / "index.html"
    write_text_atomic(target, page_text)
    write_text_atomic(root / "verdicts.md", verdict_table(runs_dir))
    return target


def verdict_table(runs_dir: str | Path = "runs") -> str:
    """The verdicts stored under ``runs/gallery/`` as a Markdown table (what docs/gallery.md quotes):
    per entry its word, the deciding finding's effect with its 95% interval, Holm-adjusted p, test,
    seeds and time; "(quick)" marks a verdict of the quick version, and a time with * excludes runs
    reused from an earlier call (only their measurement is counted)."""
    from trainlab.gallery import load_entries

    load_entries()
    lines = ["| id | claim | verdict | deciding finding | effect (+: as claimed) | p (Holm) | test | seeds | "
             "time (s) |", "|---|---|---|---|---|---|---|---|---|"]
    for entry_id in sorted_ids():
        chosen = entry(entry_id)
        status = entry_status(entry_id, runs_dir=runs_dir)
        stored = status.get("stored")
        if stored is None:
            lines.append(f"| {chosen.id} | {chosen.title} | {status.get('why', status['status'])} | | | | | | |")
            continue
        head = _headline(stored)
        findings = [f for f in stored.get("findings", []) if not f.get("context")]
        deciding = next((f for f in findings if f.get("word") == stored.get("word")), findings[0] if findings else {})
        word = str(stored.get("word")) + (" (quick)" if status.get("quick") else "")
        lines.append(f"| {chosen.id} | {chosen.title} | {word} | {deciding.get('statement', '')} | "
                     f"{head.get('effect', '')} | {head.get('p', '')} | {deciding.get('test', '')} | "
                     f"{stored.get('seeds', '')} | {float(stored.get('seconds') or 0.0):.0f}"
                     f"{'*' if stored.get('reused_runs') else ''} |")
    return "\n".join(lines) + "\n"


def _headline(stored: dict[str, Any]) -> dict[str, str]:
    """The effect and p of the finding that decided a stored verdict."""
    findings = [f for f in stored.get("findings", []) if not f.get("context")]
    word = stored.get("word")
    chosen = next((f for f in findings if f.get("word") == word), findings[0] if findings else None)
    if chosen is None:
        return {}
    scale = 100.0 if chosen.get("points") else 1.0
    effect, low, high = (chosen.get(k) for k in ("effect", "low", "high"))
    diverged, n = chosen.get("diverged") or [0, 0], chosen.get("n") or [0, 0]
    if effect is None and any(diverged):  # no finite difference to state: say how many runs diverged
        text = f"diverged {diverged[0]}/{n[0]} vs {diverged[1]}/{n[1]}"
    else:
        text = "n/a" if effect is None else f"{scale * effect:+.3g}"
        if effect is not None and low is not None and high is not None:
            text += f" ± {scale * (high - low) / 2:.2g}"
        text += " pts" if chosen.get("points") else (f" {chosen.get('unit')}" if chosen.get("unit") else "")
    p = chosen.get("p_holm")
    return {"effect": text, "p": "" if p is None else ("< 0.001" if p < 0.001 else f"{p:.2g}")}


def headline_numbers(result: EntryResult) -> dict[str, Any]:
    """Effect text, p and seeds of a result's deciding finding (for tables)."""
    head = result.verdict.headline
    if head is None:
        return {"effect": "", "p": "", "seeds": ""}
    return {"effect": head.effect_text(), "p": head.p_text(), "seeds": head.n[0]}
