"""What the library keeps between runs: per-file caches keyed by absolute path, persisted as JSON files.

:class:`PersistedCache` is the one implementation; its subclasses say only what an entry holds and how
it is checked: :class:`HashCache` (the sha256 of each file) and :class:`DescriptionCache` (each file's
:class:`~lib_hypernet.library.description.FileDescription`, so the tab, the dropdowns and the cards of a
folder of a thousand files appear without loading every file again after a restart).  An entry is valid
while its file's size and ``mtime_ns`` are unchanged.  :class:`CacheFiles` keeps both in one folder
(``sd-webui-hypernet-hashes.json`` beside ``sd-webui-hypernet-summaries.json``).

A cache file is never trusted: only a regular file of at most :data:`MAX_CACHE_FILE_SIZE` is read (a FIFO
there never blocks), broken, huge or too deeply nested JSON gives an empty cache with one warning, and an
entry of the wrong shape or types is dropped on reading.  Saving happens under a lock file (never followed
when it is a link), merges with what another process saved meanwhile, prunes entries of files that are
gone or changed, and replaces the file atomically.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import re
import threading
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar, Union

from ..errors import HypernetError, HypernetFileError
from ..formats.fileio import atomic_write, file_lock, remove_stale_temp_files
from ..formats.fileview import open_regular
from ..formats.hashing import SHORTHASH_LENGTH, ProgressCallback, sha256
from .description import SCHEMA_VERSION, FileDescription, optim_stamp

log = logging.getLogger(__name__)

MAX_CACHE_FILE_SIZE = 64 * 1024 * 1024
"""A cache file larger than this is not read (a hash entry takes ~200 bytes, a description ~3 KB)."""

HASHES_FILE = "sd-webui-hypernet-hashes.json"
DESCRIPTIONS_FILE = "sd-webui-hypernet-summaries.json"

Entry = dict[str, Any]
Stamp = tuple[int, int]
"""A file's ``(size, mtime_ns)``."""
C = TypeVar("C", bound="PersistedCache")


class PersistedCache:
    """Thread-safe entries keyed by absolute path, each stamped with its file's size and ``mtime_ns``.

    Subclasses set :attr:`WHAT` (for messages), add their checks to :meth:`_valid` (applied to every
    entry read from disk) and, when more than the file's stat decides validity, extend :meth:`_fresh`.
    ``dirty`` says that entries were added or dropped since the last load or save.
    """

    VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "cache"

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}
        self._lock = threading.Lock()
        self.dirty = False

    # ------------------------------------------------------------------ entries
    @staticmethod
    def _key(path: str | os.PathLike[str]) -> str:
        return os.path.abspath(os.fspath(path))

    @staticmethod
    def _stat(path: str) -> Stamp | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return st.st_size, st.st_mtime_ns

    @classmethod
    def _valid(cls, key: object, entry: object) -> bool:
        """Whether an entry read from disk has the right shape: an absolute path as key, a non-negative
        integer ``size`` and ``mtime_ns`` (subclasses check what else their entries hold)."""
        return (
            isinstance(key, str) and os.path.isabs(key) and isinstance(entry, dict)
            and all(type(entry.get(k)) is int and entry[k] >= 0 for k in ("size", "mtime_ns"))
        )

    def _fresh(self, key: str, entry: Entry, stamp: Stamp) -> bool:
        """Whether ``entry`` still describes the file at ``key``, whose stat is ``stamp``."""
        return (entry["size"], entry["mtime_ns"]) == stamp

    def _entry(self, key: str, stamp: Stamp | None) -> Entry | None:
        """The entry of ``key`` if it is fresh for ``stamp`` (None when the file could not be stat-ed)."""
        with self._lock:
            entry = self._entries.get(key)
        return entry if entry is not None and stamp is not None and self._fresh(key, entry, stamp) else None

    def _put(self, key: str, entry: Entry) -> None:
        with self._lock:
            self._entries[key] = entry
            self.dirty = True

    def forget_missing(self) -> None:
        """Drop the entries of files that no longer exist."""
        with self._lock:
            gone = [p for p in self._entries if not os.path.exists(p)]
            for p in gone:
                del self._entries[p]
            self.dirty = self.dirty or bool(gone)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    # ------------------------------------------------------------------ persistence
    def to_json(self) -> str:
        with self._lock:
            return self._encode(self._entries)

    @classmethod
    def _encode(cls, entries: Mapping[str, Entry]) -> str:
        return json.dumps({"version": cls.VERSION, "entries": entries}, sort_keys=True)

    @classmethod
    def _with(cls: type[C], entries: dict[str, Entry]) -> C:
        cache = cls()
        cache._entries = entries
        return cache

    @classmethod
    def from_json(cls: type[C], text: str | bytes) -> C:
        """Parse a persisted cache; invalid entries are dropped, a hostile or broken text gives an empty cache.

        Never raises: a text too deeply nested (``RecursionError``), too large (``MemoryError``), not
        UTF-8 or not a cache at all starts empty, with a warning.
        """
        return cls._with(cls._parse(text, f"the {cls.WHAT}"))

    @classmethod
    def load(cls: type[C], path: str | os.PathLike[str]) -> C:
        """Read a cache file; a missing, unreadable or invalid one gives an empty cache (never raises, never blocks)."""
        return cls._with(cls._read(os.fspath(path)))

    @classmethod
    def _parse(cls, text: str | bytes, where: str, *, warn: bool = True) -> dict[str, Entry]:
        """The valid entries of a persisted cache (``where`` names it in the warnings)."""
        try:
            data = json.loads(text)
            entries = data.get("entries") if isinstance(data, dict) and data.get("version") == cls.VERSION else None
            if not isinstance(entries, dict):
                if warn and text.strip():
                    log.warning("hypernetworks: %s is not a version-%d %s; starting with an empty one",
                                where, cls.VERSION, cls.WHAT)
                return {}
            valid = {k: v for k, v in entries.items() if cls._valid(k, v)}
        except (ValueError, TypeError, RecursionError, MemoryError) as exc:  # hostile or broken JSON (and not UTF-8)
            if warn:
                log.warning("hypernetworks: cannot read %s (%s); starting with an empty one", where, type(exc).__name__)
            return {}
        if warn and len(valid) != len(entries):
            log.warning("hypernetworks: %s: ignored %d invalid entries", where, len(entries) - len(valid))
        return valid

    @classmethod
    def _read(cls, path: str, *, warn: bool = True) -> dict[str, Entry]:
        """The valid entries of the cache file at ``path`` (a missing file: none, quietly)."""
        where = f"the {cls.WHAT} {path}"
        if not os.path.exists(path):
            return {}
        try:
            with open_regular(path) as f:
                data = f.read(MAX_CACHE_FILE_SIZE + 1)
        except (HypernetFileError, OSError) as exc:
            if warn:
                log.warning("hypernetworks: cannot read %s (%s); starting with an empty one", where,
                            exc.reason if isinstance(exc, HypernetFileError) else exc)
            return {}
        if len(data) > MAX_CACHE_FILE_SIZE:
            if warn:
                log.warning("hypernetworks: %s is over %d MiB; starting with an empty one", where,
                            MAX_CACHE_FILE_SIZE // (1024 * 1024))
            return {}
        return cls._parse(data, where, warn=warn)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the cache to ``path``, merged with what another process saved there meanwhile.

        Under a lock file (``PATH.lock``, never followed when it is a link): re-read ``path``, merge
        (an entry still fresh for its file wins; ours win ties), drop entries of files that no longer
        exist or changed, and replace ``path`` atomically.  Two processes saving at once lose nothing.
        Raises :class:`HypernetFileError` when ``path`` cannot be written.
        """
        path = os.fspath(path)
        with file_lock(path + ".lock"):
            on_disk = self._read(path, warn=False)  # a broken file was reported when it was loaded
            with self._lock:
                ours = dict(self._entries)
            merged: dict[str, Entry] = {}
            for key in {*on_disk, *ours}:
                stamp = self._stat(key)
                if stamp is None:
                    continue  # the file is gone: prune
                for entry in (ours.get(key), on_disk.get(key)):
                    if entry is not None and self._fresh(key, entry, stamp):
                        merged[key] = entry
                        break
            text = self._encode(merged).encode("utf-8")
            folder = os.path.dirname(os.path.abspath(path))
            remove_stale_temp_files(folder, target=os.path.basename(path).__eq__)
            atomic_write(path, lambda f: f.write(text))
            with self._lock:
                for key, entry in ours.items():  # keep what was added while saving
                    if self._entries.get(key) is entry:
                        del self._entries[key]
                self._entries = {**merged, **self._entries}
                self.dirty = False


# ---------------------------------------------------------------------- hashes
_SHA256_RE = re.compile(r"[0-9a-f]{64}")


class HashCache(PersistedCache):
    """sha256 values keyed by absolute path, valid while size and ``mtime_ns`` are unchanged.

    An entry read from disk is kept only if ``sha256`` is 64 lowercase hex characters.
    """

    WHAT = "hash cache"

    @classmethod
    def _valid(cls, key: object, entry: object) -> bool:
        if not super()._valid(key, entry):
            return False
        digest = typing.cast(Entry, entry).get("sha256")
        return isinstance(digest, str) and _SHA256_RE.fullmatch(digest) is not None

    def get(self, path: str | os.PathLike[str]) -> str | None:
        """The cached sha256 if the file is unchanged since it was hashed, else ``None`` (never computes)."""
        key = self._key(path)
        entry = self._entry(key, self._stat(key))
        return None if entry is None else entry["sha256"]

    def sha256(self, path: str | os.PathLike[str], progress: ProgressCallback | None = None) -> str:
        """The file's sha256, from the cache when valid, else computed and stored."""
        cached = self.get(path)
        if cached is not None:
            return cached
        key = self._key(path)
        before = self._stat(key)
        value = sha256(key, progress)
        if before is not None and before == self._stat(key):
            self._put(key, {"size": before[0], "mtime_ns": before[1], "sha256": value})
        return value

    def shorthash(self, path: str | os.PathLike[str]) -> str:
        return self.sha256(path)[:SHORTHASH_LENGTH]

    def find(self, sha256_prefix: str) -> list[str]:
        """Paths whose cached (still valid) sha256 starts with ``sha256_prefix``."""
        prefix = sha256_prefix.lower()
        with self._lock:
            candidates = [p for p, e in self._entries.items() if e["sha256"].startswith(prefix)]
        return [p for p in candidates if self.get(p) is not None]


# ---------------------------------------------------------------------- descriptions
class DescriptionCache(PersistedCache):
    """``path → FileDescription``, valid while the file and its ``.optim`` are unchanged.

    An entry read from disk is kept only if its description has the types :class:`FileDescription`
    declares (a wrongly typed cached field would break the tab later, far from its cause).
    """

    WHAT = "description cache"

    @classmethod
    def _valid(cls, key: object, entry: object) -> bool:
        if not super()._valid(key, entry):
            return False
        entry = typing.cast(Entry, entry)
        if type(entry.get("schema")) is not int or not _conforms(entry.get("optim"), Union[list[int], None]):
            return False
        if entry["schema"] != SCHEMA_VERSION:
            return True  # another schema: never fresh, so never read (and pruned at the next save)
        try:
            desc = FileDescription.from_json(entry.get("description"))  # type: ignore[arg-type]
        except TypeError:
            return False
        return _conforms(desc, FileDescription)

    def _fresh(self, key: str, entry: Entry, stamp: Stamp) -> bool:
        return (super()._fresh(key, entry, stamp) and entry["schema"] == SCHEMA_VERSION
                and entry["optim"] == optim_stamp(key))

    def get(self, path: str | os.PathLike[str], size: int, mtime_ns: int) -> FileDescription | None:
        """The cached description if the file (``size``, ``mtime_ns``) and its ``.optim`` are unchanged."""
        entry = self._entry(self._key(path), (size, mtime_ns))
        return None if entry is None else FileDescription.from_json(entry["description"])

    def put(self, desc: FileDescription) -> None:
        """Remember ``desc`` (only descriptions of a file that could be stat-ed)."""
        if desc.size is None or desc.mtime_ns is None:
            return
        key = self._key(desc.path)
        self._put(key, {"size": desc.size, "mtime_ns": desc.mtime_ns, "optim": optim_stamp(key),
                        "schema": SCHEMA_VERSION, "description": desc.to_json()})


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _conforms(value: Any, hint: Any) -> bool:
    """Whether ``value`` (decoded JSON, or a dataclass built from it) has the type ``hint`` declares.

    ``Any`` accepts only a JSON scalar, so no cached value nests deeper than its declared type.
    """
    if hint is Any:
        return value is None or isinstance(value, (str, int, float))
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return any(_conforms(value, h) for h in args)
    if origin is list:
        return isinstance(value, list) and all(_conforms(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(_conforms(k, args[0]) and _conforms(v, args[1]) for k, v in value.items())
    if hint is type(None):
        return value is None
    if hint in (int, float):  # JSON: a float may be written as an integer; a boolean is neither
        return isinstance(value, (int, float) if hint is float else int) and not isinstance(value, bool)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return isinstance(value, hint) and all(
            _conforms(getattr(value, name), field_hint) for name, field_hint in _field_types(hint).items()
        )
    return isinstance(hint, type) and isinstance(value, hint)


# ---------------------------------------------------------------------- the files
class CacheFiles:
    """A host's hash and description caches, persisted side by side in ``folder`` (``None``: in memory only)."""

    def __init__(self, folder: str | os.PathLike[str] | None) -> None:
        self.folder = None if folder is None else os.fspath(folder)
        self.hashes = HashCache.load(self.path(HASHES_FILE)) if self.folder else HashCache()
        self.descriptions = DescriptionCache.load(self.path(DESCRIPTIONS_FILE)) if self.folder else DescriptionCache()

    def path(self, name: str) -> str:
        return os.path.join(self.folder or "", name)

    def save(self) -> None:
        """Write each cache that changed; a failure is logged, never raised (the caches only save time)."""
        if self.folder is None:
            return
        for cache, name in ((self.hashes, HASHES_FILE), (self.descriptions, DESCRIPTIONS_FILE)):
            if not cache.dirty:
                continue
            try:
                os.makedirs(self.folder, exist_ok=True)
                cache.save(self.path(name))
            except (OSError, HypernetError) as exc:
                log.warning("hypernetworks: cannot save the %s: %s", cache.WHAT, exc)
