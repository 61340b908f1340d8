"""A folder of hypernetwork files: discovery, unique names, a memory cache, hashes and descriptions.

Names are file stems.  When two files share a stem, each gets its relative path
(without suffix, or with it when only the suffix differs) as its name and the
clash is reported in :attr:`HypernetLibrary.duplicates` — nothing is silently
shadowed.  A ``.pt`` beside its converted ``.safetensors`` is no clash: the plain
name is the ``.safetensors``, the ``.pt`` is named by its relative path with suffix.
Loaded hypernetworks are cached by absolute path and validated by size
and ``mtime_ns``, so a changed file is reloaded and two files never share an entry
(A1111 caches by the name stored *inside* the file).
"""

from __future__ import annotations

import difflib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import HypernetError, HypernetNotFoundError, shorten
from ..formats import SUFFIXES, format_of
from ..formats.fileio import TEMP_FILE_RE, remove_stale_temp_files, resolves_inside
from ..formats.hashing import SHORTHASH_LENGTH
from ..model.hypernetwork import Hypernetwork, load
from ..prompt.grammar import format_items
from .caches import DescriptionCache, HashCache
from .description import FileDescription, describe_file

log = logging.getLogger(__name__)

MAX_NAME_LENGTH = 1024
"""Longer names are refused before any matching (no file name is this long; a fuzzy match would cost seconds)."""
ECHO_LENGTH = 100
"""How much of a name a message repeats."""


@dataclass(frozen=True)
class HypernetFile:
    """One hypernetwork file found in the library folder."""

    name: str
    path: str
    relpath: str
    format: str
    size: int
    mtime_ns: int

    @property
    def stem(self) -> str:
        return os.path.splitext(os.path.basename(self.path))[0]


class HypernetLibrary:
    """Hypernetworks under one folder (recursively), loaded on demand and cached in memory."""

    def __init__(
        self,
        root: str | os.PathLike[str] | None,
        *,
        hash_cache: HashCache | None = None,
        description_cache: DescriptionCache | None = None,
        memory_limit: int = 3,
        include_hidden: bool = False,
    ) -> None:
        self.root = os.path.abspath(os.fspath(root)) if root else None
        self.hash_cache = hash_cache if hash_cache is not None else HashCache()  # an empty cache is falsy
        self.description_cache = description_cache if description_cache is not None else DescriptionCache()
        self.memory_limit = memory_limit
        self.include_hidden = include_hidden
        self.files: dict[str, HypernetFile] = {}
        self.duplicates: dict[str, list[str]] = {}
        self._aliases: dict[str, HypernetFile] = {}
        self._converted: dict[str, list[str]] = {}
        self._loaded: OrderedDict[str, tuple[tuple[int, int], Hypernetwork]] = OrderedDict()
        self._lock = threading.RLock()
        self.refreshed = False

    # ------------------------------------------------------------------ discovery
    def refresh(self) -> list[HypernetFile]:
        """Rescan the folder; returns the files sorted by name (case-insensitive)."""
        found = list(self._scan())
        by_stem: dict[str, list[HypernetFile]] = {}
        for f in found:
            by_stem.setdefault(f.stem, []).append(f)
        files: dict[str, HypernetFile] = {}
        duplicates: dict[str, list[str]] = {}
        clashes: dict[str, list[str]] = {}  # stem -> the names its files got
        converted: dict[str, list[str]] = {}  # stem -> the names of a .pt and its converted .safetensors
        for stem, group in by_stem.items():
            named = _name_group(stem, group)
            if len(group) > 1 and _is_clash(group):
                duplicates[stem] = sorted(f.relpath for f in group)
                clashes[stem] = sorted(name for _, name in named)
            elif len(group) > 1:
                converted[stem] = sorted(name for _, name in named)
            for f, name in named:
                files[name] = _renamed(f, name)
        aliases: dict[str, HypernetFile] = {}
        for f in files.values():
            aliases.setdefault(f.relpath, f)
            if f.name == f.stem or f.name == os.path.splitext(f.relpath)[0]:
                aliases.setdefault(os.path.splitext(f.relpath)[0], f)
        with self._lock:
            newly_duplicated = {stem: paths for stem, paths in duplicates.items() if self.duplicates.get(stem) != paths}
            newly_converted = {stem: names for stem, names in converted.items() if self._converted.get(stem) != names}
            self.files = dict(sorted(files.items(), key=lambda kv: kv[0].casefold()))
            self.duplicates = duplicates
            self._converted = converted
            self._aliases = aliases
            self.refreshed = True
            current = {f.path for f in files.values()}
            for path in [p for p in self._loaded if p not in current]:
                del self._loaded[path]
        for stem in newly_duplicated:
            names = clashes[stem]  # the names _name_group gave them: each suggested tag resolves to its own file
            log.warning("hypernetworks: %d files are named %r; in tags use %s", len(names), stem,
                        ", ".join(f"{format_items([name])} ({files[name].relpath})" for name in names))
        for names in newly_converted.values():
            pt, safetensors = sorted((files[name] for name in names), key=lambda f: f.format)
            log.info("hypernetworks: %s is %s (converted from %s, which is %s)",
                     format_items([safetensors.name]), safetensors.relpath, pt.relpath, format_items([pt.name]))
        return list(self.files.values())

    def _scan(self) -> Any:
        if not self.root or not os.path.isdir(self.root):
            return
        seen: set[str] = set()
        for folder, dirs, names in os.walk(self.root, followlinks=True):
            real = os.path.realpath(folder)
            if real in seen:
                dirs[:] = []
                continue
            seen.add(real)
            dirs[:] = sorted(d for d in dirs if self.include_hidden or not d.startswith("."))
            if any(TEMP_FILE_RE.match(n) for n in names) and self._writable_folder(folder):
                remove_stale_temp_files(folder, names, target=_is_our_target)  # left by a save that was killed
            for filename in sorted(names):
                stem, suffix = os.path.splitext(filename)
                if suffix.lower() not in SUFFIXES or stem == "None" or filename.startswith("."):
                    continue
                path = os.path.join(folder, filename)
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                relpath = os.path.relpath(path, self.root).replace(os.sep, "/")
                yield HypernetFile(stem, path, relpath, format_of(path), st.st_size, st.st_mtime_ns)

    def names(self) -> list[str]:
        if not self.refreshed:
            self.refresh()
        return list(self.files)

    def find(self, name: str, *, refresh_on_miss: bool = True) -> HypernetFile:
        """The file a tag name refers to (exact name, relative path, or a unique case-insensitive match).

        An unknown name triggers one rescan of the folder (a file added since the last
        refresh is found without a manual refresh).
        """
        if not self.refreshed:
            self.refresh()
            refresh_on_miss = False
        try:
            found = self._find(name)
        except HypernetNotFoundError:
            if not refresh_on_miss:
                raise
        else:
            if not refresh_on_miss or os.path.exists(found.path):
                return found
            # the file was deleted or moved since the last scan (e.g. a .pt removed after its conversion)
        self.refresh()
        return self._find(name)

    def _find(self, name: str) -> HypernetFile:
        echo = shorten(name, ECHO_LENGTH)
        if len(name) > MAX_NAME_LENGTH:
            raise HypernetNotFoundError(
                f"hypernetwork name {echo!r} is too long (at most {MAX_NAME_LENGTH} characters)", name=echo
            )
        with self._lock:
            found = self.files.get(name) or self._aliases.get(name) or self._aliases.get(name.replace("\\", "/"))
            if found is not None:
                return found
            if name in self.duplicates:
                choices = [n for n, f in self.files.items() if f.stem == name]
                raise HypernetNotFoundError(
                    f"hypernetwork name {echo!r} is ambiguous: {len(choices)} files have it; "
                    f"use one of {', '.join(choices)}",
                    name=name,
                    candidates=choices,
                )
            folded = [f for n, f in self.files.items() if n.casefold() == name.casefold()]
            if len(folded) == 1:
                return folded[0]
            close = difflib.get_close_matches(name, list(self.files), n=3, cutoff=0.6)
            where = self.root or "(no hypernetwork folder)"
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise HypernetNotFoundError(
                f"hypernetwork {echo!r} not found in {where}{hint}", name=echo, candidates=close
            )

    def converted_source(self, file: HypernetFile) -> HypernetFile | None:
        """The ``.pt`` a ``.safetensors`` was converted from when it lies beside it (same path, other suffix)."""
        if file.format != "safetensors":
            return None
        bare = os.path.splitext(file.path)[0]
        with self._lock:
            return next((f for f in self.files.values() if f.format == "pt" and os.path.splitext(f.path)[0] == bare), None)

    # ------------------------------------------------------------------ symlink policy
    def is_inside(self, path: str | os.PathLike[str]) -> bool:
        """Whether ``path``, with every symlink resolved, lies inside the (resolved) library folder.

        Reading follows symlinked sub-folders (linked model folders are common); writing through a
        link to a place outside the folder is refused (:func:`lib_hypernet.library.actions.check_target`).
        """
        return bool(self.root) and resolves_inside(path, self.root or "")

    def _writable_folder(self, folder: str) -> bool:
        return self.is_inside(folder)

    # ------------------------------------------------------------------ loading
    def get(self, name_or_file: str | HypernetFile) -> Hypernetwork:
        """The loaded hypernetwork (from memory when the file is unchanged, else from disk)."""
        file = self.find(name_or_file) if isinstance(name_or_file, str) else name_or_file
        try:
            st = os.stat(file.path)
        except OSError as exc:
            raise HypernetNotFoundError(
                f"hypernetwork file {file.path} disappeared; refresh the list", name=file.name
            ) from exc
        stamp = (st.st_size, st.st_mtime_ns)
        with self._lock:
            cached = self._loaded.get(file.path)
            if cached is not None and cached[0] == stamp:
                self._loaded.move_to_end(file.path)
                return cached[1]
        hn = load(file.path)
        with self._lock:
            self._loaded[file.path] = (stamp, hn)
            self._loaded.move_to_end(file.path)
            self._trim()
        return hn

    def _trim(self) -> None:
        limit = max(int(self.memory_limit), 0)
        while len(self._loaded) > limit:
            self._loaded.popitem(last=False)

    def set_memory_limit(self, limit: int) -> None:
        with self._lock:
            self.memory_limit = limit
            self._trim()

    def loaded_paths(self) -> list[str]:
        with self._lock:
            return list(self._loaded)

    # ------------------------------------------------------------------ hashes
    def sha256(self, file: HypernetFile, progress: Callable[[int], None] | None = None) -> str:
        return self.hash_cache.sha256(file.path, progress)

    def shorthash(self, file: HypernetFile) -> str:
        return self.sha256(file)[:SHORTHASH_LENGTH]

    def find_by_hash(self, prefix: str) -> list[HypernetFile]:
        """Files whose sha256 (or, for converted ``.safetensors``, whose source ``.pt``'s) starts with ``prefix``.

        Hashes every file not hashed yet (once; the cache keeps them).
        """
        prefix = prefix.strip().lower()
        if len(prefix) < 8:
            return []
        if not self.refreshed:
            self.refresh()
        found = []
        for file in self.files.values():
            try:
                if self.sha256(file).startswith(prefix):
                    found.append(file)
                    continue
            except HypernetError as exc:
                log.warning("hypernetworks: cannot hash %s: %s", file.path, exc.reason)
                continue
            if file.format == "safetensors":
                source = self.describe(file).source_sha256
                if isinstance(source, str) and source.startswith(prefix):
                    found.append(file)
        return found

    # ------------------------------------------------------------------ descriptions
    def describe(self, file: HypernetFile, *, with_hash: bool = False, read: bool = True) -> FileDescription:
        """The :class:`FileDescription` of ``file`` (never raises; problems go into ``error``).

        Cached by path, size and ``mtime_ns`` (in :attr:`description_cache`, which the host
        persists).  The hash comes from the hash cache when known; ``with_hash`` computes a
        missing one.  With ``read`` false the file is neither read nor hashed: a file not described
        yet gives :func:`describe_pending` (its stat, and its hash when known).
        """
        try:
            desc = self.description_cache.get(file.path, file.size, file.mtime_ns)
            if desc is None and not read:
                desc = describe_pending(file)
            elif desc is None:
                desc = describe_file(file.path, name=file.name, relpath=file.relpath, hash_file=False,
                                     digest=self.hash_cache.get(file.path), loaded=self._loaded_now(file))
                self.description_cache.put(desc)
            desc = desc.copy(name=file.name, relpath=file.relpath)  # names change when other files appear
            if desc.sha256 is None and desc.size is not None:
                digest = self.hash_cache.sha256(file.path) if with_hash and read else self.hash_cache.get(file.path)
                if digest:
                    desc.sha256, desc.shorthash = digest, digest[:SHORTHASH_LENGTH]
        except HypernetError as exc:
            desc = describe_failure(file, exc.reason if exc.path == file.path else str(exc))
        except Exception as exc:  # one bad file never breaks a listing
            log.warning("hypernetworks: cannot describe %s", file.path, exc_info=True)
            desc = describe_failure(file, f"cannot describe: {type(exc).__name__}: {exc}")
        return desc

    def summary(self, file: HypernetFile, *, with_hash: bool = True) -> dict[str, Any]:
        """:meth:`describe` as plain JSON (what the HTTP API returns)."""
        return self.describe(file, with_hash=with_hash).to_json()

    def describe_all(self, *, with_hash: bool = False) -> list[FileDescription]:
        """Descriptions of every file (refreshing the folder on first use), in name order."""
        if not self.refreshed:
            self.refresh()
        return [self.describe(f, with_hash=with_hash) for f in list(self.files.values())]

    def _loaded_now(self, file: HypernetFile) -> Hypernetwork | None:
        with self._lock:
            cached = self._loaded.get(file.path)
        return cached[1] if cached is not None and cached[0] == (file.size, file.mtime_ns) else None


PREVIEW_SUFFIXES = ("png", "jpg", "jpeg", "webp", "gif")
"""The image types A1111's Extra Networks cards take as a file's preview."""


def find_preview(path: str | os.PathLike[str]) -> str | None:
    """The preview image A1111's cards show for the hypernetwork at ``path``: ``<stem>.<ext>`` or
    ``<stem>.preview.<ext>`` beside it (A1111's order); ``None`` when there is none."""
    base = os.path.splitext(os.fspath(path))[0]
    for suffix in PREVIEW_SUFFIXES:
        for candidate in (f"{base}.{suffix}", f"{base}.preview.{suffix}"):
            if os.path.isfile(candidate):
                return candidate
    return None


def describe_pending(file: HypernetFile) -> FileDescription:
    """A description of a file not read yet: only what the folder scan saw (see :func:`is_pending`)."""
    return FileDescription(path=file.path, name=file.name, relpath=file.relpath, format=file.format,
                           size=file.size, mtime_ns=file.mtime_ns)


def is_pending(desc: FileDescription) -> bool:
    """Whether ``desc`` says nothing about the file's content yet (a description always ends ``ok`` or with an ``error``)."""
    return not desc.ok and desc.error is None


def describe_failure(file: HypernetFile, reason: str) -> FileDescription:
    """A description that only says what failed."""
    return describe_pending(file).copy(error=f"{file.path}: {reason}")


def _is_clash(group: list[HypernetFile]) -> bool:
    """Whether files sharing a stem are a clash to report, not just a ``.pt`` beside its converted ``.safetensors``
    (the README's normal case: the plain name is the ``.safetensors``, the ``.pt`` is named with its suffix)."""
    bare = {os.path.splitext(f.relpath)[0] for f in group}
    return len(bare) > 1 or sorted(f.format for f in group) != ["pt", "safetensors"]


def _name_group(stem: str, group: list[HypernetFile]) -> list[tuple[HypernetFile, str]]:
    """Unique names for files sharing a stem.

    A ``.pt`` beside a ``.safetensors`` of the same name (a converted copy) leaves the
    plain name to the ``.safetensors`` and is itself named with its suffix.  Other
    clashes are named by their relative path (without suffix where that is unique).
    """
    if len(group) == 1:
        return [(group[0], stem)]
    by_bare: dict[str, list[HypernetFile]] = {}
    for f in group:
        by_bare.setdefault(os.path.splitext(f.relpath)[0], []).append(f)
    primaries: list[HypernetFile] = []
    named: list[tuple[HypernetFile, str]] = []
    for files in by_bare.values():
        formats = sorted(f.format for f in files)
        if formats == ["pt", "safetensors"]:
            primaries += [f for f in files if f.format == "safetensors"]
            named += [(f, f.relpath) for f in files if f.format == "pt"]
        elif len(files) == 1:
            primaries.append(files[0])
        else:
            named += [(f, f.relpath) for f in files]
    if len(primaries) == 1 and not named:
        return [(primaries[0], stem)]
    if len(primaries) == 1 and all(n != stem for _, n in named):
        named.append((primaries[0], stem))
    else:
        named += [(f, os.path.splitext(f.relpath)[0]) for f in primaries]
    return named


def _is_our_target(name: str) -> bool:
    """A file name our saves write in a hypernetwork folder (a hypernetwork, its ``.optim``, or a temporary one)."""
    lower = name.lower()
    return name.startswith(".") or lower.endswith((".optim", *SUFFIXES))


def _renamed(file: HypernetFile, name: str) -> HypernetFile:
    return HypernetFile(name, file.path, file.relpath, file.format, file.size, file.mtime_ns)


