"""Descriptions of the library's files for dropdown labels and cards, without blocking the UI.

Reading what is known is instant: :meth:`HypernetLibrary.describe` with ``read=False`` answers from the
description and hash caches.  What is missing (a file not described or not hashed yet) is computed by one
background thread, into those same caches (hashing a 100 MB file takes a while, a 1,000-file folder much
longer); nothing is kept here.  No gradio.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from .description import FileDescription
from .folder import HypernetFile, HypernetLibrary

log = logging.getLogger(__name__)


class FileFacts:
    """What the library's caches know per file; :meth:`compute_missing` fills the gaps in a thread."""

    def __init__(self, library: HypernetLibrary, *, on_computed: Callable[[], None] | None = None) -> None:
        self.library = library
        self.on_computed = on_computed  # e.g. save the caches
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def get(self, file: HypernetFile) -> FileDescription:
        """What is known now (never reads or hashes a file; :func:`~.folder.is_pending` when not read yet)."""
        return self.library.describe(file, read=False)

    def label(self, file: HypernetFile) -> str:
        """``name [0123456789 · SD1]`` (the parts that are known)."""
        desc = self.get(file)
        return desc.copy(name=file.name).label()

    def compute(self, file: HypernetFile) -> FileDescription:
        """Describe and hash the file now (in the calling thread), filling the library's caches."""
        return self.library.describe(file, with_hash=True)

    def missing(self, files: Iterable[HypernetFile]) -> list[HypernetFile]:
        """The files whose description or hash is not cached yet."""
        return [f for f in files if self.library.description_cache.get(f.path, f.size, f.mtime_ns) is None
                or self.library.hash_cache.get(f.path) is None]

    def compute_missing(self, files: Iterable[HypernetFile] | None = None, *, background: bool = True) -> threading.Thread | None:
        """Compute what is missing of every file; in one daemon thread unless ``background`` is False.

        Returns the thread (None when nothing was missing or it ran in the foreground).  A call while the
        thread runs only returns it (the next call after it ends picks up newer files).
        """
        todo = self.missing(self.library.files.values() if files is None else files)
        if not todo:
            return None
        if not background:
            self._run(todo, None)
            return None
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return self._thread
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, args=(todo, self._stop), name="sd-hypernet-facts",
                                            daemon=True)
            self._thread.start()
            return self._thread

    def stop(self, timeout: float | None = None) -> None:
        """Ask the background thread to stop after the file it is on, and wait for it (the extension unloads)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self, files: list[HypernetFile], stop: threading.Event | None) -> None:
        for file in files:
            if stop is not None and stop.is_set():
                return
            self.compute(file)
        if self.on_computed is not None:
            try:
                self.on_computed()
            except Exception:
                log.warning("hypernetworks: saving computed facts failed", exc_info=True)
