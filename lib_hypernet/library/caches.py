"""File descriptions cached by absolute path, valid while size, ``mtime_ns`` (and the ``.optim``'s) are unchanged.

Persisted as JSON like the hash cache (``sd-webui-hypernet-summaries.json`` beside
``sd-webui-hypernet-hashes.json``), so the tab, the dropdowns and the cards of a folder of
a thousand files appear without loading every file again after a restart.  Saving merges
with what another process wrote meanwhile and replaces the file atomically.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from typing import Any

from ..formats.fileio import atomic_write, file_lock, remove_stale_temp_files
from ..formats.hashing import SHORTHASH_LENGTH, ProgressCallback, sha256
from .description import SCHEMA_VERSION, FileDescription, optim_stamp

log = logging.getLogger(__name__)

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
        return cls(_read_description_entries(path))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically, keeping entries another process saved meanwhile (ours win on the same path)."""
        on_disk = _read_description_entries(path)
        with self._lock:
            merged = {k: v for k, v in on_disk.items() if k not in self._forgotten}
            merged.update(self._entries)
            self._entries = merged
            text = json.dumps({"version": CACHE_VERSION, "entries": merged}, sort_keys=True).encode("utf-8")
        atomic_write(path, lambda f: f.write(text))
        self.dirty = False


def _read_description_entries(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as f:
            return DescriptionCache._parse(f.read())
    except (OSError, UnicodeDecodeError):
        return {}


class HashCache:
    """sha256 values keyed by absolute path, valid while size and ``mtime_ns`` are unchanged.

    Thread-safe.  ``to_json``/``from_json`` (or ``save``/``load``) persist it.
    """

    def __init__(self, entries: dict[str, dict[str, Any]] | None = None) -> None:
        self._entries: dict[str, dict[str, Any]] = {
            k: v for k, v in (entries or {}).items() if _valid_entry(k, v)
        }
        self._lock = threading.Lock()
        self.dirty = False

    @staticmethod
    def _key(path: str | os.PathLike[str]) -> str:
        return os.path.abspath(os.fspath(path))

    @staticmethod
    def _stat(path: str) -> tuple[int, int] | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return st.st_size, st.st_mtime_ns

    def get(self, path: str | os.PathLike[str]) -> str | None:
        """The cached sha256 if the file is unchanged since it was hashed, else ``None`` (never computes)."""
        key = self._key(path)
        stat = self._stat(key)
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or stat is None or (entry.get("size"), entry.get("mtime_ns")) != stat:
            return None
        return entry.get("sha256")

    def sha256(self, path: str | os.PathLike[str], progress: ProgressCallback | None = None) -> str:
        """The file's sha256, from the cache when valid, else computed and stored."""
        cached = self.get(path)
        if cached is not None:
            return cached
        key = self._key(path)
        before = self._stat(key)
        value = sha256(key, progress)
        if before is not None and before == self._stat(key):
            with self._lock:
                self._entries[key] = {"size": before[0], "mtime_ns": before[1], "sha256": value}
                self.dirty = True
        return value

    def shorthash(self, path: str | os.PathLike[str]) -> str:
        return self.sha256(path)[:SHORTHASH_LENGTH]

    def find(self, sha256_prefix: str) -> list[str]:
        """Paths whose cached (still valid) sha256 starts with ``sha256_prefix``."""
        prefix = sha256_prefix.lower()
        with self._lock:
            candidates = [p for p, e in self._entries.items() if str(e.get("sha256", "")).startswith(prefix)]
        return [p for p in candidates if self.get(p) is not None]

    def forget_missing(self) -> None:
        with self._lock:
            gone = [p for p in self._entries if not os.path.exists(p)]
            for p in gone:
                del self._entries[p]
            self.dirty = self.dirty or bool(gone)

    def to_json(self) -> str:
        with self._lock:
            return json.dumps({"version": 1, "entries": self._entries}, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> HashCache:
        """Parse a persisted cache; invalid entries are dropped, and a hostile or broken text gives an empty cache.

        An entry is kept only if its key is an absolute path, ``sha256`` is 64 lowercase hex
        characters and ``size``/``mtime_ns`` are non-negative integers.  Never raises: a text too
        large, too deeply nested (``RecursionError``) or not a cache at all starts empty, with a warning.
        """
        return cls(_parse_entries(text, "the hash cache"))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> HashCache:
        """Read a cache file; a missing, unreadable or invalid one gives an empty cache (never raises)."""
        return cls(_read_entries(path))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the cache to ``path``, merged with what another process saved there meanwhile.

        Under a lock file (``PATH.lock``): re-read ``path``, merge (an entry that matches its file's
        current size and mtime wins; ours win ties), drop entries of files that no longer exist or
        changed, and replace ``path`` atomically.  Two processes saving at once lose nothing.
        Raises :class:`HypernetFileError` when ``path`` cannot be written.
        """
        path = os.fspath(path)
        with file_lock(path + ".lock"):
            on_disk = _read_entries(path) if os.path.exists(path) else {}
            with self._lock:
                ours = dict(self._entries)
            merged: dict[str, dict[str, Any]] = {}
            for key in {*on_disk, *ours}:
                stamp = self._stat(key)
                if stamp is None:
                    continue  # the file is gone: prune
                for entry in (ours.get(key), on_disk.get(key)):
                    if entry is not None and (entry["size"], entry["mtime_ns"]) == stamp:
                        merged[key] = entry
                        break
            text = json.dumps({"version": 1, "entries": merged}, indent=1, sort_keys=True).encode("utf-8")
            folder = os.path.dirname(os.path.abspath(path))
            remove_stale_temp_files(folder, target=os.path.basename(path).__eq__)
            atomic_write(path, lambda f: f.write(text))
            with self._lock:
                for key, entry in ours.items():  # keep what was added while saving
                    if self._entries.get(key) is entry:
                        del self._entries[key]
                self._entries = {**merged, **self._entries}
                self.dirty = False


MAX_CACHE_FILE_SIZE = 64 * 1024 * 1024
"""A hash cache file larger than this is not read (an entry takes ~200 bytes; 64 MiB is 300,000 files)."""

_SHA256_RE = re.compile(r"[0-9a-f]{64}")


def _valid_entry(key: object, entry: object) -> bool:
    if not isinstance(key, str) or not os.path.isabs(key) or not isinstance(entry, dict):
        return False
    digest, size, mtime = entry.get("sha256"), entry.get("size"), entry.get("mtime_ns")
    return (
        isinstance(digest, str) and _SHA256_RE.fullmatch(digest) is not None
        and all(type(v) is int and v >= 0 for v in (size, mtime))
    )


def _parse_entries(text: str | bytes, what: str) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(text)
        entries = data.get("entries") if isinstance(data, dict) and data.get("version") == 1 else None
        if not isinstance(entries, dict):
            if text.strip():
                log.warning("hypernetworks: %s is not a version-1 hash cache; starting with an empty one", what)
            return {}
        valid = {k: {"size": v["size"], "mtime_ns": v["mtime_ns"], "sha256": v["sha256"]}
                 for k, v in entries.items() if _valid_entry(k, v)}
    except (ValueError, TypeError, RecursionError, MemoryError) as exc:  # hostile or broken JSON
        log.warning("hypernetworks: cannot read %s (%s); starting with an empty one", what, type(exc).__name__)
        return {}
    if len(valid) != len(entries):
        log.warning("hypernetworks: %s: ignored %d invalid entries", what, len(entries) - len(valid))
    return valid


def _read_entries(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CACHE_FILE_SIZE + 1)
    except OSError:
        return {}
    if len(data) > MAX_CACHE_FILE_SIZE:
        log.warning("hypernetworks: the hash cache %s is over %d MiB; starting with an empty one",
                    os.fspath(path), MAX_CACHE_FILE_SIZE // (1024 * 1024))
        return {}
    return _parse_entries(data, os.fspath(path))
