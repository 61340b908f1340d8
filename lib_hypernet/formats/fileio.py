"""Atomic file writing: a save either completes or leaves the previous file untouched."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

from ..errors import HypernetFileError
from .fileview import NONBLOCK

log = logging.getLogger(__name__)

TEMP_FILE_RE = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp(?:\.pt|\.safetensors)?$")
"""The hidden temporary files our saves write beside their target (``tempfile.mkstemp``'s 8 random
characters): ``.NAME.XXXXXXXX.tmp`` (:func:`atomic_open`) and ``.NAME.XXXXXXXX.tmp.SUFFIX`` (conversions)."""

STALE_AFTER_S = 15 * 60
"""A temporary file of ours this old belongs to a save that was killed (saves take seconds)."""


def _default_mode() -> int:
    """The mode a new file gets (0o666 less the umask), read without changing the process umask:
    ``os.umask`` can only be read by setting it, a race with other threads creating files."""
    return 0o666 & ~_current_umask()


def _current_umask() -> int:
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    # No /proc (macOS, Windows, old kernels): a file created with mode 0o666 gets exactly the umask applied.
    folder = tempfile.mkdtemp(prefix=".umask-")
    try:
        probe = os.path.join(folder, "probe")
        os.close(os.open(probe, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o666))
        return 0o666 & ~stat.S_IMODE(os.stat(probe).st_mode)
    finally:
        with contextlib.suppress(OSError):
            os.remove(os.path.join(folder, "probe"))
        with contextlib.suppress(OSError):
            os.rmdir(folder)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path``; on success it replaces ``path`` with ``os.replace``.

    If the body raises, the temporary file is removed and ``path`` is unchanged.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    except OSError as exc:
        raise HypernetFileError(f"cannot write in its folder: {exc.strerror or exc}", path) from exc
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> None:
    """Call ``write(file)`` on a temporary file and move it over ``path`` only if it succeeds."""
    try:
        with atomic_open(path) as f:
            write(f)
    except HypernetFileError:
        raise
    except OSError as exc:
        raise HypernetFileError(f"could not save: {exc.strerror or exc}", path) from exc


def resolves_inside(path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> bool:
    """Whether ``path``, with every symbolic link resolved, lies in ``folder`` (resolved too) or is it."""
    root = os.path.realpath(os.fspath(folder))
    real = os.path.realpath(os.fspath(path))
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def remove_stale_temp_files(
    folder: str | os.PathLike[str],
    names: Iterable[str] | None = None,
    *,
    older_than_s: float = STALE_AFTER_S,
    target: Callable[[str], bool] | None = None,
) -> list[str]:
    """Delete the temporary files a killed save left in ``folder``; returns the paths removed.

    Only regular files (not links) whose name matches :data:`TEMP_FILE_RE` exactly and that were
    last modified more than ``older_than_s`` seconds ago; a save in progress is never touched.
    ``names`` are the folder's entries when the caller has listed it already; ``target`` limits it
    to temporary files of the targets (file names) it accepts.  Never raises.
    """
    folder = os.fspath(folder)
    try:
        entries = list(names) if names is not None else os.listdir(folder)
    except OSError:
        return []
    removed = []
    cutoff = time.time() - older_than_s
    for name in entries:
        match = TEMP_FILE_RE.match(name)
        if not match or (target is not None and not target(match.group("target"))):
            continue
        path = os.path.join(folder, name)
        try:
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode) or st.st_mtime > cutoff:
                continue
            os.remove(path)
        except OSError:
            continue
        removed.append(path)
        log.info("hypernetworks: removed %s, left by an interrupted save", path)
    return removed


LOCK_TIMEOUT_S = 10.0

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
"""``os.open`` flag: refuse a symlink as the last path component (0 where the platform has none)."""


@contextlib.contextmanager
def file_lock(path: str | os.PathLike[str], timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[bool]:
    """Hold an exclusive advisory lock on the file ``path`` (created if needed) across processes.

    Yields True when the lock was taken; after ``timeout_s`` without it (a process that hangs
    while holding it, or a file system without locks), logs a warning and yields False, so a
    caller goes on unlocked rather than hanging.  The lock file is opened without following a
    symlink (a ``.lock`` link never creates a file at its target) and must be a regular file
    (a FIFO there never blocks); otherwise the caller goes on unlocked, with a warning.
    """
    path = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | NOFOLLOW | NONBLOCK, 0o666)
    except OSError as exc:
        log.warning("hypernetworks: cannot create the lock file %s (%s); going on without it", path, exc)
        yield False
        return
    locked = False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            log.warning("hypernetworks: the lock file %s is not a regular file; going on without it", path)
            yield False
            return
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                _lock(fd)
                locked = True
                break
            except OSError:
                if time.monotonic() >= deadline:
                    log.warning("hypernetworks: %s stayed locked for %.0f s; going on without the lock", path, timeout_s)
                    break
                time.sleep(0.02)
        yield locked
    finally:
        if locked:
            with contextlib.suppress(OSError):
                _unlock(fd)
        os.close(fd)


if sys.platform == "win32":  # pragma: no cover - Windows
    import msvcrt

    def _lock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
