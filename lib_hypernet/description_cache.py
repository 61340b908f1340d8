"""File descriptions cached by absolute path, valid while size, ``mtime_ns`` (and the ``.optim``'s) are unchanged.

Persisted as JSON like the hash cache (``sd-webui-hypernet-summaries.json`` beside
``sd-webui-hypernet-hashes.json``), so the tab, the dropdowns and the cards of a folder of
a thousand files appear without loading every file again after a restart.  Saving merges
with what another process wrote meanwhile and replaces the file atomically.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from .description import SCHEMA_VERSION, FileDescription, optim_stamp
from .fileio import atomic_write

CACHE_VERSION = 1


class DescriptionCache:
    """Thread-safe map ``path → FileDescription`` checked against the file's stat on every read."""

    def __init__(self, entries: dict[str, dict[str, Any]] | None = None) -> None:
        self._entries: dict[str, dict[str, Any]] = dict(entries or {})
        self._lock = threading.Lock()
        self._forgotten: set[str] = set()
        self.dirty = False

    @staticmethod
    def _key(path: str | os.PathLike[str]) -> str:
        return os.path.abspath(os.fspath(path))

    @staticmethod
    def stamp(path: str, size: int, mtime_ns: int) -> dict[str, Any]:
        return {"size": size, "mtime_ns": mtime_ns, "optim": optim_stamp(path), "schema": SCHEMA_VERSION}

    def get(self, path: str | os.PathLike[str], size: int, mtime_ns: int) -> FileDescription | None:
        """The cached description if the file (``size``, ``mtime_ns``) and its ``.optim`` are unchanged."""
        key = self._key(path)
        with self._lock:
            entry = self._entries.get(key)
        if entry is None:
            return None
        want = self.stamp(key, size, mtime_ns)
        if any(entry.get(k) != v for k, v in want.items()):
            return None
        try:
            return FileDescription.from_json(entry["description"])
        except (KeyError, TypeError):
            return None

    def put(self, desc: FileDescription) -> None:
        """Remember ``desc`` (only descriptions of a file that could be stat-ed)."""
        if desc.size is None or desc.mtime_ns is None:
            return
        key = self._key(desc.path)
        entry = {**self.stamp(key, desc.size, desc.mtime_ns), "description": desc.to_json()}
        with self._lock:
            self._entries[key] = entry
            self._forgotten.discard(key)
            self.dirty = True

    def forget_missing(self) -> None:
        with self._lock:
            gone = [p for p in self._entries if not os.path.exists(p)]
            for p in gone:
                del self._entries[p]
            self._forgotten.update(gone)
            self.dirty = self.dirty or bool(gone)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    # ------------------------------------------------------------------ persistence
    def to_json(self) -> str:
        with self._lock:
            return json.dumps({"version": CACHE_VERSION, "entries": self._entries}, sort_keys=True)

    @staticmethod
    def _parse(text: str) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(text)
            entries = data["entries"] if data.get("version") == CACHE_VERSION else {}
        except (ValueError, AttributeError, KeyError, TypeError):
            return {}
        if not isinstance(entries, dict):
            return {}
        return {k: v for k, v in entries.items() if isinstance(k, str) and isinstance(v, dict)}

    @classmethod
    def from_json(cls, text: str) -> DescriptionCache:
        return cls(cls._parse(text))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DescriptionCache:
        """Read a cache file; a missing or unreadable one gives an empty cache."""
        return cls(_read_entries(path))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically, keeping entries another process saved meanwhile (ours win on the same path)."""
        on_disk = _read_entries(path)
        with self._lock:
            merged = {k: v for k, v in on_disk.items() if k not in self._forgotten}
            merged.update(self._entries)
            self._entries = merged
            text = json.dumps({"version": CACHE_VERSION, "entries": merged}, sort_keys=True).encode("utf-8")
        atomic_write(path, lambda f: f.write(text))
        self.dirty = False


def _read_entries(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as f:
            return DescriptionCache._parse(f.read())
    except (OSError, UnicodeDecodeError):
        return {}
