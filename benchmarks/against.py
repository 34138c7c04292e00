"""A benchmark's ratios for this tree and for another revision, measured interleaved.

A figure from another day, or another machine, cannot tell whether a change
made trainlab slower: the same script varies 2x on a shared machine. This runs
one benchmark script (from this tree, so both sides measure the same thing)
with trainlab imported from a git worktree of REV and from this tree,
alternating process by process (base, this, this, base, ...), one round each,
and prints each figure's median ratio per tree.

    python benchmarks/against.py REV [--rounds 6] [--script overhead.py] [-- script arguments]

For example, `python benchmarks/against.py e4d91ec --script overhead.py` compares
the overhead ratios with those of the commit before the one engine. The
script's own arguments go after `--`; `--rounds 1` is passed to it unless given
there. The worktree is made in a temporary folder and removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
#: A figure line: its label (up to the first run of two spaces) and its ratio.
FIGURE = re.compile(r"^(?P<label>\S.*?)\s{2,}.*?\bratio\s+(?P<ratio>[0-9]+(?:\.[0-9]+)?)")


def figures(output: str) -> dict[str, float]:
    """Each figure line's label and ratio in a benchmark's output.

    >>> figures("digits MLP, batch 32   reference  9.0 ms   ratio 0.658 (rounds: 0.658)\\nnoise")
    {'digits MLP, batch 32': 0.658}
    """
    found = {}
    for line in output.splitlines():
        match = FIGURE.match(line)
        if match:
            found[match["label"]] = float(match["ratio"])
    return found


def run_once(source: Path, script: Path, arguments: list[str]) -> dict[str, float]:
    environment = {**os.environ, "PYTHONPATH": str(source)}
    done = subprocess.run([sys.executable, str(script), *arguments], env=environment, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{script.name} failed with trainlab from {source}:\n{done.stderr.strip()[-2000:]}")
    return figures(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revision", help="the git revision to compare with (a commit, tag or branch)")
    parser.add_argument("--rounds", type=int, default=6, help="processes per tree (default 6)")
    parser.add_argument("--script", default="overhead.py", help="a script in benchmarks/ (default overhead.py)")
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:cut])
    extra = argv[cut + 1:]
    script = HERE / args.script
    if not script.is_file():
        parser.error(f"no script {args.script!r} in {HERE}")
    if "--rounds" not in extra:
        extra = ["--rounds", "1", *extra]
    with tempfile.TemporaryDirectory(prefix="trainlab-against-") as folder:
        tree = Path(folder) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(tree), args.revision],
                       check=True)
        try:
            sources = {args.revision: tree / "src", "this tree": ROOT / "src"}
            results: dict[str, list[dict[str, float]]] = {name: [] for name in sources}
            for r in range(args.rounds):
                order = list(sources) if r % 2 == 0 else list(sources)[::-1]
                for name in order:
                    results[name].append(run_once(sources[name], script, extra))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    print(f"{args.script} {' '.join(extra)}: {args.rounds} processes per tree, interleaved; median ratio per figure")
    labels = list(dict.fromkeys(label for runs in results.values() for found in runs for label in found))
    for label in labels:
        cells = []
        for name, runs in results.items():
            values = [found[label] for found in runs if label in found]
            shown = ", ".join(f"{v:.3f}" for v in values)
            cells.append(f"{name} {statistics.median(values):.3f} ({shown})" if values else f"{name} -")
        print(f"{label}\n    " + "\n    ".join(cells))


if __name__ == "__main__":
    main()
