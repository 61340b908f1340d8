"""Atomic file writing: a save either completes or leaves the previous file untouched."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from typing import BinaryIO

from .errors import HypernetFileError


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
