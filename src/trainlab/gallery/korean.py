"""Korean text of the gallery: verdict words, entry titles and claims, and why each entry's data."""

from __future__ import annotations

KOREAN: dict[str, dict[str, str]] = {}
