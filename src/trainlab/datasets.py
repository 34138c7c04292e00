"""`trainlab.datasets` is `trainlab.data` under its first name; existing imports keep working.

New code imports from `trainlab.data` (see its docstring for what is where).
"""

from __future__ import annotations

from trainlab.data import *  # noqa: F403  (the same public names, listed once in trainlab.data)
from trainlab.data import __all__ as __all__
