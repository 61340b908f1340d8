"""Random access to an open file's bytes by slicing, without reading it all and without ``mmap``.

A mapped file that another process truncates (``cp new.pt old.pt`` truncates before writing) kills
the reading process with SIGBUS; :class:`FileView` seeks and reads instead (on any OS) and turns a
file that shrank into :class:`~lib_hypernet.errors.HypernetFileError`.  Small reads are served from a
cached window, so a byte-by-byte scan costs one system call per window, not per byte.
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO, Union

from ..errors import HypernetFileError

_WINDOW = 1 << 20


class FileView:
    """``view[a:b]`` is ``bytes`` of the file between ``a`` and ``b``; ``len(view)`` its size when opened."""

    def __init__(self, f: BinaryIO, path: str) -> None:
        self._file = f
        self._size = os.fstat(f.fileno()).st_size
        self._path = path
        self._window_start = 0
        self._window = b""

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, key: slice) -> bytes:
        start, stop, step = key.indices(self._size)
        if step != 1:
            raise ValueError("FileView slices must be contiguous")
        if stop <= start:
            return b""
        w_start, window = self._window_start, self._window
        if w_start <= start and stop <= w_start + len(window):
            return window[start - w_start:stop - w_start]
        if stop - start <= _WINDOW // 2:
            self._window_start = start
            self._window = self._read(start, min(self._size, start + _WINDOW) - start)
            return self._window[:stop - start]
        return self._read(start, stop - start)

    def _read(self, offset: int, length: int) -> bytes:
        self._file.seek(offset)
        data = self._file.read(length)
        if len(data) != length:
            raise HypernetFileError("the file changed (shrank) while it was being read; try again", self._path)
        return data


NONBLOCK = getattr(os, "O_NONBLOCK", 0)
"""``os.open`` flag: opening a FIFO returns at once instead of waiting for a writer (0 where the platform has none)."""


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """Open ``path`` for reading, refusing anything but a regular file (a symlink to one is followed).

    Opened non-blocking and checked with ``fstat`` before anything is read: a FIFO, or a link to
    one, is refused at once (a plain ``open`` would wait forever for a writer).
    """
    path = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDONLY | NONBLOCK | getattr(os, "O_BINARY", 0))
    except FileNotFoundError as exc:
        raise HypernetFileError("file not found", path) from exc
    except OSError as exc:
        raise HypernetFileError(f"cannot open the file ({exc.strerror or exc})", path) from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise HypernetFileError("not a regular file", path)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


Buffer = Union[bytes, FileView]  # slicing either gives bytes
