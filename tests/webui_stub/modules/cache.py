"""Stand-in of ``modules/cache.py``: in-memory ``cache(subsection)`` dicts instead of diskcache."""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

caches: dict[str, dict[str, Any]] = {}


def clear() -> None:
    caches.clear()


def cache(subsection: str) -> dict[str, Any]:
    return caches.setdefault(subsection, {})


def dump_cache() -> None:
    pass


def cached_data_for_file(subsection: str, title: str, filename: str, func: Callable[[], Any]) -> Any:
    """Return cached ``func()`` for ``title`` unless ``filename`` has a newer mtime (A1111 semantics)."""
    existing = cache(subsection)
    mtime = os.path.getmtime(filename)
    entry = existing.get(title)
    if entry is None or mtime > entry.get("mtime", 0):
        value = func()
        if value is None:
            return None
        entry = existing[title] = {"mtime": mtime, "value": value}
    return entry["value"]
