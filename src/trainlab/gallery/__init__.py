"""The gallery: each claim of the notes reproduced on real data, with an honest verdict.

An entry is a study spec shipped in the package (``specs/C4.toml``) plus a
verdict function (`trainlab.gallery.verdicts`): it trains the study, measures
what the claim is about, and says "holds", "does not hold here" (naming when
the literature says it holds) or "inconclusive", with the effect, its 95%
interval, the test, the number of seeds and the conditions.

    trainlab gallery                   # the entries and their last verdicts
    trainlab gallery C4                # run one in full
    trainlab gallery C4 --quick        # a small version (seconds)
    trainlab gallery --all             # every entry; writes runs/gallery/index.html
    trainlab gallery C4 --export my_c4.toml
    trainlab gallery --lang ko         # in Korean

Entries live in modules by theme (`claims_lr`, `claims_init`, ...); each
registers itself in `ENTRIES` when `load_entries` imports it.
"""

from __future__ import annotations

import importlib

from trainlab.gallery.entry import (
    ENTRIES,
    Entry,
    EntryContext,
    Measured,
    entry,
    register,
    sorted_ids,
    spec_text,
)
from trainlab.gallery.runner import run_all, run_entry
from trainlab.gallery.verdicts import FAILS, HOLDS, INCONCLUSIVE, Finding, Verdict, combine, expect_better

__all__ = ["ENTRIES", "FAILS", "HOLDS", "INCONCLUSIVE", "Entry", "EntryContext", "Finding", "Measured",
           "Verdict", "combine", "entry", "expect_better", "load_entries", "register", "run_all", "run_entry",
           "sorted_ids", "spec_text"]

#: The modules that register entries, in order.
ENTRY_MODULES = ("claims_lr", "claims_init", "claims_regularize", "claims_optim", "c11_sharpness",
                 "c12_cross_validation", "c13_bagging", "c14_boosting", "claims_data", "claims_activation")


def load_entries() -> None:
    """Import every entry module once (each registers its entries)."""
    for name in ENTRY_MODULES:
        importlib.import_module(f"trainlab.gallery.{name}")
