"""The gallery: verdict functions on synthetic result tables, every entry in --quick mode, the CLI.

Verdicts: for every entry, a result table is built from what its verdict function
predicts (each finding names the values it orders and the direction): a clear
effect in the claimed direction must give "holds", the same effect reversed
"does not hold here", and seeds of pure noise "inconclusive".
"""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from scipy.optimize import linprog

from trainlab.gallery import ENTRIES, load_entries, run_all, run_entry
from trainlab.gallery.entry import entry, spec_text
from trainlab.gallery.verdicts import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    WORDS,
    combine,
    expect_better,
    expect_larger_gain,
)

load_entries()
IDS = sorted(ENTRIES, key=lambda i: int(i[1:]))


class _Recording(dict):  # type: ignore[type-arg]
    """A table that has every name: it records the names a verdict function reads."""

    def __contains__(self, name: object) -> bool:
        return True

    def __getitem__(self, name: str) -> list[float]:
        self.setdefault(name, [1.0, 1.1, 0.9])
        return dict.__getitem__(self, name)


def _findings(verdict_function):  # type: ignore[no-untyped-def]
    table = _Recording()
    return verdict_function(table).findings


def _levels(findings) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Values per name that satisfy every finding's claimed order with a margin of 1 (a linear program)."""
    findings = [f for f in findings if f.kind != "spread"]
    names = sorted({k for f in findings for k in f.keys})
    if not names:
        return {}
    index = {n: i for i, n in enumerate(names)}
    rows, bounds = [], []
    for f in findings:
        row = np.zeros(len(names))
        sign = 1.0 if f.higher else -1.0
        if len(f.keys) == 2:
            row[index[f.keys[0]]] -= sign
            row[index[f.keys[1]]] += sign
        else:
            a1, b1, a2, b2 = f.keys
            for name, weight in ((a1, 1), (b1, -1), (a2, -1), (b2, 1)):
                row[index[name]] -= sign * weight
        rows.append(row)
        bounds.append(-1.0)
    solved = linprog(np.zeros(len(names)), A_ub=np.array(rows), b_ub=np.array(bounds),
                     bounds=[(0, 10)] * len(names))
    assert solved.success, "the findings' claimed orders contradict each other"
    return dict(zip(names, solved.x))


def _table(levels: dict[str, float], *, effect: float, noise: float, seed: int, n: int = 10,
           spreads: tuple[set[str], set[str]] = (set(), set())) -> dict[str, list[float]]:
    """Values per seed: `levels` scaled by `effect` plus noise; for spread findings, the steadier names get
    `noise` and the noisier ones 20 times as much when `effect` > 0 (the other way round when < 0)."""
    rng = np.random.default_rng(seed)
    table = {name: list(0.5 + effect * level + noise * rng.standard_normal(n)) for name, level in levels.items()}
    steadier, noisier = spreads
    for name in steadier | noisier:
        wide = (name in noisier) == (effect > 0) and effect != 0
        table[name] = list(0.5 + noise * (20 if wide else 1) * rng.standard_normal(n))
    return table


@pytest.mark.parametrize("entry_id", IDS)
def test_verdict_holds_on_a_clear_effect_fails_on_its_reverse_and_is_inconclusive_on_noise(entry_id: str) -> None:
    verdict_function = ENTRIES[entry_id].verdict
    findings = _findings(verdict_function)
    levels = _levels(findings)
    spreads = ({f.keys[0] for f in findings if f.kind == "spread"}, {f.keys[1] for f in findings if f.kind == "spread"})
    clear = verdict_function(_table(levels, effect=0.03, noise=0.003, seed=1, spreads=spreads))
    assert clear.word == HOLDS, clear.sentence()
    assert all(f.word == HOLDS for f in clear.findings)
    reversed_ = verdict_function(_table(levels, effect=-0.03, noise=0.003, seed=2, spreads=spreads))
    assert reversed_.word == FAILS, reversed_.sentence()
    noise = verdict_function(_table({k: 0.0 for k in levels}, effect=0.0, noise=0.05, seed=3, spreads=spreads))
    assert noise.word == INCONCLUSIVE, noise.sentence()


def test_a_tie_within_the_margin_does_not_hold_and_a_diverged_loser_is_ranked_last() -> None:
    tied = {"a": [0.900, 0.901, 0.899, 0.900, 0.9005], "b": [0.900, 0.9, 0.9005, 0.8995, 0.900]}
    finding = expect_better(tied, "a", "b", what="acc", points=True, margin=0.005)
    assert combine([finding]).word == FAILS
    losses = {"ok": [0.1, 0.12, 0.11, 0.1, 0.13], "blown": [math.nan, math.inf, math.nan, math.nan, math.nan]}
    finding = expect_better(losses, "ok", "blown", what="loss", higher=False)
    verdict = combine([finding])
    assert verdict.word == HOLDS and finding.test == "Mann-Whitney U"
    assert "blown diverged in 5 of 5 seeds" in verdict.sentence()


def test_a_difference_of_differences_matches_its_hand_computed_welch_statistic() -> None:
    table = {"a1": [3.0, 3.2, 2.8], "b1": [1.0, 1.1, 0.9], "a2": [1.5, 1.6, 1.4], "b2": [1.0, 1.2, 0.8]}
    finding = expect_larger_gain(table, ("a1", "b1"), ("a2", "b2"), what="x", statement="gain")
    assert finding.effect == pytest.approx((3.0 - 1.0) - (1.5 - 1.0))
    se = math.sqrt(0.04 / 3 + 0.01 / 3 + 0.01 / 3 + 0.04 / 3)
    df = se ** 4 / sum((v / 3) ** 2 / 2 for v in (0.04, 0.01, 0.01, 0.04))
    from scipy import stats

    assert finding.p == pytest.approx(2 * stats.t.sf(1.5 / se, df))


def test_holm_adjusts_an_entrys_findings_together() -> None:
    table = {"a": [1.0, 1.1, 1.2], "b": [0.0, 0.1, 0.2], "c": [0.9, 1.0, 1.1]}
    one = expect_better(table, "a", "b", what="x")
    two = expect_better(table, "c", "b", what="x")
    verdict = combine([one, two])
    assert verdict.findings[0].p_holm == pytest.approx(min(1.0, 2 * min(one.p, two.p)))  # type: ignore[operator]


# --------------------------------------------------------------------------- quick runs

#: Findings whose direction is robust even in the quick version (few epochs, two seeds).
ROBUST = {
    "C1": ["too low a rate (1e-4) ends far above a usual one (0.1)"],
    "C4": ["a standard-normal init saturates sigmoid layers; Xavier does not",
           "a standard-normal init saturates tanh layers; Xavier does not"],
    "C5": ["the gradient reaching the first layer is smaller, relative to the last, through sigmoid than "
           "through ReLU"],
    "C9": ["momentum goes faster than plain SGD"],
    "C18": ["with SGD, tanh hidden layers train faster than sigmoid ones"],
    "C19": ["mini-batches (32) get further per epoch than the whole batch (1437)",
            "mini-batches (32) take less time per epoch than single examples (1)"],
}


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    runs_dir = tmp_path_factory.mktemp("gallery")
    results: dict[str, object] = {"runs_dir": runs_dir, "seconds": {}}
    drawn = ("C5", "C9")

    def record(result) -> None:  # type: ignore[no-untyped-def]
        results[result.entry.id] = result
        results["seconds"][result.entry.id] = time.perf_counter() - clock[0]  # type: ignore[index]
        clock[0] = time.perf_counter()

    clock = [time.perf_counter()]
    cpu = time.process_time()
    try:
        run_all(quick=True, runs_dir=runs_dir, ids=[i for i in IDS if i not in drawn], told=record, draw=False)
        for entry_id in drawn:
            record(run_entry(entry_id, quick=True, runs_dir=runs_dir, draw=True))
    finally:
        torch.set_num_threads(threads)
    print("gallery quick seconds:", {k: round(v, 1) for k, v in results["seconds"].items()},  # type: ignore[union-attr]
          f"CPU {time.process_time() - cpu:.0f} s")
    return results


@pytest.mark.parametrize("entry_id", IDS)
def test_every_entry_runs_in_quick_mode_and_ends_in_a_verdict(entry_id: str, quick_runs: dict[str, object]) -> None:
    assert ENTRIES[entry_id].available() is None  # every entry's tools ship with trainlab
    result = quick_runs[entry_id]
    assert result.verdict.word in WORDS  # type: ignore[attr-defined]
    stored = json.loads((result.folder / "verdict.json").read_text())  # type: ignore[attr-defined]
    assert stored["word"] == result.verdict.word and stored["quick"] is True  # type: ignore[attr-defined]
    assert stored["findings"] and all(f["n"][0] >= 2 for f in stored["findings"])
    page = result.page.read_text()  # type: ignore[attr-defined]
    assert entry_id in page and result.verdict.word in page  # type: ignore[attr-defined]
    for statement in ROBUST.get(entry_id, []):
        finding = next(f for f in result.verdict.findings if f.statement == statement)  # type: ignore[attr-defined]
        assert finding.effect > 0, finding.sentence()


def test_drawn_pictures_are_saved_and_the_index_links_every_entry(quick_runs: dict[str, object]) -> None:
    from trainlab.gallery.runner import write_index

    for entry_id in ("C5", "C9"):
        folder = quick_runs[entry_id].folder  # type: ignore[attr-defined]
        assert (folder / "picture.png").read_bytes()[:4] == b"\x89PNG"
        assert "data:image/png;base64," in (folder / "entry.html").read_text()
    index = write_index(quick_runs["runs_dir"]).read_text()  # type: ignore[arg-type]
    for entry_id in IDS:
        if ENTRIES[entry_id].available() is None:
            assert f">{entry_id}</a>" in index
    table = (quick_runs["runs_dir"] / "gallery" / "verdicts.md").read_text()  # type: ignore[operator]
    rows = [line for line in table.splitlines() if line.startswith("| C")]
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows] == IDS
    assert "(quick)" in rows[0]


# --------------------------------------------------------------------------- specs, export, CLI


@pytest.mark.parametrize("entry_id", IDS)
def test_every_shipped_spec_is_a_valid_study_that_names_its_claim(entry_id: str) -> None:
    from trainlab.study import parse_study

    chosen = entry(entry_id)
    study = parse_study(chosen.raw_spec(), source=chosen.spec_file)
    quick = parse_study(chosen.raw_spec(quick=True), source=chosen.spec_file)
    assert len(quick.runs) < len(study.runs) or quick.base.recipe.num_epochs < study.base.recipe.num_epochs
    assert spec_text(entry_id).startswith(f"# {entry_id}.")
    assert study.settings.seeds >= 5


def test_cli_exports_a_spec_that_trainlab_study_accepts(tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from trainlab.cli import main
    from trainlab.study import load_study

    monkeypatch.chdir(tmp_path)
    main(["gallery", "C4", "--export", "my_c4.toml"])
    assert "my_c4.toml" in capsys.readouterr().out
    assert [c.label for c in load_study(tmp_path / "my_c4.toml").cases][0] == "sigmoid, normal(1)"


@pytest.mark.parametrize("argv, message", [
    (["gallery", "C99"], "unknown gallery entry 'C99'"),
    (["gallery", "C4", "--all"], "not both"),
    (["gallery", "--lang", "fr"], "--lang must be one of en, ko"),
    (["gallery", "C4", "--export", "out.txt"], "ending in .toml"),
    (["gallery", "--export", "x.toml"], "--export needs an entry id"),
])
def test_cli_bad_input_exits_2_with_a_message_and_writes_nothing(argv, message, tmp_path, monkeypatch,  # type: ignore[no-untyped-def]
                                                                 capsys) -> None:
    from trainlab.cli import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_cli_lists_the_entries_in_korean(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from trainlab.cli import main

    main(["gallery", "--lang", "ko", "--runs-dir", str(tmp_path), "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == IDS
    assert rows[0]["title"] == "너무 작거나 너무 큰 학습률" and rows[0]["status"] == "not run"


@pytest.mark.parametrize("entry_id", IDS)
def test_every_entry_and_every_finding_has_korean_text(entry_id: str) -> None:
    from trainlab.gallery.korean import KOREAN, MEASURES, STATEMENTS

    assert {"title", "claim", "data", "literature"} <= set(KOREAN[entry_id])
    for finding in _findings(ENTRIES[entry_id].verdict):
        assert finding.statement in STATEMENTS, finding.statement
        assert finding.what.removesuffix(" (std over seeds)") in MEASURES, finding.what


def test_every_catalog_entry_has_a_korean_summary() -> None:
    from trainlab.catalog import entries
    from trainlab.catalog_ko import SUMMARIES

    missing = [f"{row['kind']}/{row['name']}" for row in entries() if row["name"] not in SUMMARIES.get(row["kind"], {})]
    assert not missing, missing
    assert all(any("\uac00" <= ch <= "\ud7a3" for ch in text) for kind in SUMMARIES.values() for text in kind.values())


def test_cli_catalog_prints_korean_summaries(capsys) -> None:  # type: ignore[no-untyped-def]
    from trainlab.cli import main

    main(["catalog", "optimizer", "--lang", "ko", "--json"])
    rows = json.loads(capsys.readouterr().out)
    sgd = next(r for r in rows if r["name"] == "sgd")
    assert sgd["summary"].startswith("순수 (확률적) 경사 하강법")
