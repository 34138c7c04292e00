"""`trainlab gallery`: the claims of the notes, each a study with a verdict.

    trainlab gallery                      # list the entries with their last verdicts
    trainlab gallery C4                   # run one in full: verdict, findings, runs/gallery/C4-init/entry.html
    trainlab gallery C4 --quick           # a small version (seconds; not a verdict to quote)
    trainlab gallery --all                # every entry; writes runs/gallery/index.html
    trainlab gallery C4 --export my_c4.toml   # copy its study spec; `trainlab study my_c4.toml` runs it
    trainlab gallery --lang ko            # in Korean
    trainlab gallery --all --ray HOST:6379    # the entries' studies trained on a Ray cluster

`register(app)` adds the command to the main typer app (see `trainlab.cli`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from trainlab.errors import InputError

out = Console(markup=False)

LANGUAGES = ("en", "ko")


def register(app: typer.Typer) -> None:
    """Add `gallery` to `app`."""
    app.command("gallery")(gallery)


def gallery(
    entry_id: str | None = typer.Argument(None, metavar="ID", help="An entry, C1 ... C20 (none: list them)."),
    quick: bool = typer.Option(False, "--quick", help="A small version: few epochs, seeds and rows."),
    run_all: bool = typer.Option(False, "--all", help="Run every entry and write runs/gallery/index.html."),
    export: Path | None = typer.Option(None, "--export", metavar="FILE",
                                       help="Write the entry's study spec to FILE instead of running it."),
    lang: str = typer.Option("en", "--lang", help="Language of the verdicts and summaries: en or ko."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="The gallery writes under RUNS_DIR/gallery/."),
    fresh: bool = typer.Option(False, "--fresh", help="Retrain the runs an earlier call finished."),
    json_output: bool = typer.Option(False, "--json", help="Print the verdicts as JSON (for scripts)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    ray_address: str | None = typer.Option(None, "--ray", metavar="[ADDRESS]",
                                           help="Train the entries' studies on a Ray cluster, one task per group "
                                                "of stackable runs (as `trainlab study --ray`); the measurements, "
                                                "and C12-C14's own fits, run here. ADDRESS as for `trainlab study "
                                                "--ray`."),
) -> None:
    """Reproduce a claim of the notes on real data and say whether it holds here, with statistics."""
    from trainlab.gallery import load_entries
    from trainlab.gallery.entry import entry, sorted_ids

    if lang not in LANGUAGES:
        raise InputError(f"--lang must be one of {', '.join(LANGUAGES)}, got '{lang}'. Use --lang ko for Korean.")
    load_entries()
    if run_all and entry_id is not None:
        raise InputError(f"give an entry id ({entry_id}) or --all, not both: --all runs every entry")
    if export is not None:
        if entry_id is None:
            raise InputError("--export needs an entry id: `trainlab gallery C4 --export my_c4.toml`")
        _export(entry(entry_id).id, export, lang)
        return
    if entry_id is None and not run_all:
        _list(sorted_ids(), runs_dir, lang, json_output)
        return
    chosen = [entry(entry_id).id] if entry_id is not None else None
    executor = None
    if ray_address is not None:
        from trainlab.scale.ray import RayExecutor

        executor = RayExecutor(ray_address or None)  # no Ray, or no answer: stops here, nothing written
    progress = None
    if not (quiet or json_output):
        from trainlab.study.progress import RichStudyProgress

        progress = RichStudyProgress(out)
    from trainlab.gallery.runner import run_all as run_every
    from trainlab.gallery.runner import run_entry, write_index

    if chosen is not None:
        result = run_entry(chosen[0], quick=quick, runs_dir=runs_dir, fresh=fresh, progress=progress,
                           executor=executor)
        write_index(runs_dir)
        if json_output:
            print(json.dumps(_as_json(result)))
            return
        _print_result(result, lang)
        return
    results = run_every(quick=quick, runs_dir=runs_dir, fresh=fresh, progress=progress, executor=executor,
                        told=None if (quiet or json_output) else lambda r: _print_result(r, lang, brief=True))
    if json_output:
        print(json.dumps([_as_json(r) for r in results]))
        return
    _print_summary(results, lang)
    folder = Path(runs_dir) / "gallery"
    out.print(f"index: {folder / 'index.html'}; the verdicts as a Markdown table: {folder / 'verdicts.md'}",
              highlight=False, soft_wrap=True)


def _export(entry_id: str, target: Path, lang: str) -> None:
    from trainlab.gallery.entry import spec_text
    from trainlab.gallery.korean import text

    if target.is_dir():
        raise InputError(f"--export {target}: that is a folder; give a file name such as my_{entry_id.lower()}.toml")
    if target.suffix.lower() != ".toml":
        raise InputError(f"--export {target}: the spec is TOML; give a file name ending in .toml, such as "
                         f"my_{entry_id.lower()}.toml")
    if not target.parent.exists():
        raise InputError(f"--export {target}: the folder {target.parent} does not exist; create it first")
    target.write_text(spec_text(entry_id), encoding="utf-8")
    out.print(text("exported", lang).format(entry=entry_id, path=target), highlight=False, soft_wrap=True)


def _list(ids: list[str], runs_dir: Path, lang: str, json_output: bool) -> None:
    from trainlab.gallery.entry import entry
    from trainlab.gallery.korean import entry_text, text, word
    from trainlab.gallery.runner import entry_status

    rows = []
    for entry_id in ids:
        chosen = entry(entry_id)
        status = entry_status(entry_id, runs_dir=runs_dir)
        rows.append({"id": chosen.id, "title": entry_text(chosen, "title", lang),
                     "claim": entry_text(chosen, "claim", lang), "status": status["status"],
                     "quick": status.get("quick"), "why": status.get("why"),
                     "seconds": (status.get("stored") or {}).get("seconds")})
    if json_output:
        print(json.dumps(rows))
        return
    table = Table(title=Text(text("list_title", lang)), box=box.SIMPLE_HEAD, show_lines=False)
    table.add_column("id", no_wrap=True)
    table.add_column(text("claim", lang), ratio=1)
    table.add_column(text("status", lang), no_wrap=True)
    for row in rows:
        status = row["status"]
        if status in ("not run", "unavailable"):
            shown = text(status.replace(" ", "_"), lang)
        else:
            shown = word(status, lang) + (f" ({text('quick', lang)})" if row["quick"] else "")
            if row["seconds"] is not None:
                shown += f", {row['seconds']:.0f} s"
        table.add_row(Text(row["id"]), Text(f"{row['title']}: {row['claim']}"), Text(shown))
    out.print(table)
    out.print(text("list_hint", lang), highlight=False, soft_wrap=True)


def _print_result(result: Any, lang: str, *, brief: bool = False) -> None:
    from trainlab.gallery.korean import entry_text, finding_sentence, text, verdict_sentence

    chosen = result.entry
    out.print(Text.assemble((f"{chosen.id} {entry_text(chosen, 'title', lang)}", "bold"),
                            f" ({result.seconds:.0f} s)"), soft_wrap=True)
    out.print(Text(verdict_sentence(result.verdict, chosen, lang)), soft_wrap=True)
    if brief:
        return
    for finding in result.verdict.findings:
        out.print(Text("  - " + finding_sentence(finding, lang)), soft_wrap=True)
    out.print(Text(text("data", lang) + ": " + entry_text(chosen, "data", lang)), soft_wrap=True)
    out.print(text("page", lang).format(path=result.page), highlight=False, soft_wrap=True)


def _print_summary(results: list[Any], lang: str) -> None:
    from trainlab.gallery.korean import entry_text, text, word
    from trainlab.gallery.runner import headline_numbers

    table = Table(title=Text(text("summary_title", lang)), box=box.SIMPLE_HEAD)
    for column in ("id", text("claim", lang), text("verdict", lang), text("effect", lang), "p",
                   text("seeds", lang), text("time", lang)):
        table.add_column(Text(column))
    for result in results:
        numbers = headline_numbers(result)
        table.add_row(Text(result.entry.id), Text(entry_text(result.entry, "title", lang)),
                      Text(word(result.verdict.word, lang)), Text(str(numbers["effect"])), Text(str(numbers["p"])),
                      Text(str(numbers["seeds"])), Text(f"{result.seconds:.0f}"))
    out.print(table)


def _as_json(result: Any) -> dict[str, Any]:
    return {"id": result.entry.id, "title": result.entry.title, "quick": result.quick, "seconds": result.seconds,
            "page": str(result.page), **result.verdict.to_dict()}
