"""Short hash and SD version of each library file, for dropdown labels and cards, without blocking the UI.

Reading what is known is instant (the hash cache, summaries computed earlier); what is missing is computed
by one background thread (hashing a 100 MB file takes a while, a 1,000-file folder much longer).  No gradio.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import HypernetError
from ..library import HypernetFile, HypernetLibrary

log = logging.getLogger(__name__)

CONTEXT_FAMILIES = {768: "SD1", 1024: "SD2", 2048: "SDXL"}
SELF_ATTENTION_WIDTHS = frozenset((320, 640, 1280))


def sd_version(widths: Iterable[int]) -> str | None:
    """``SD1``/``SD2``/``SDXL`` from the text-context width; ``SD1/SDXL`` for self-attention widths only."""
    widths = list(widths)
    families = sorted({CONTEXT_FAMILIES[w] for w in widths if w in CONTEXT_FAMILIES}, key=["SD1", "SD2", "SDXL"].index)
    if families:
        return "+".join(families)
    return "SD1/SDXL" if any(w in SELF_ATTENTION_WIDTHS for w in widths) else None


BROKEN = "⚠ broken"
"""Added to the label of a file that cannot be loaded (truncated, corrupt, refused), as the tab says "error"."""


@dataclass(frozen=True)
class Facts:
    shorthash: str | None
    sd_version: str | None
    summary: dict[str, Any] | None  # JSON-plain, None until read

    @property
    def error(self) -> str | None:
        """Why the file cannot be used (None when it loads, or before it was read)."""
        error = (self.summary or {}).get("error")
        return str(error) if error else None


class FileFacts:
    """Known facts per file (validated by size and mtime); :meth:`compute_missing` fills the gaps in a thread."""

    def __init__(self, library: HypernetLibrary, *, on_computed: Callable[[], None] | None = None) -> None:
        self.library = library
        self.on_computed = on_computed  # e.g. save the hash cache
        self._known: dict[str, tuple[tuple[int, int], Facts]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def get(self, file: HypernetFile) -> Facts:
        """What is known now (never reads or hashes a file)."""
        with self._lock:
            entry = self._known.get(file.path)
        digest = self.library.hash_cache.get(file.path)
        shorthash = digest[:10] if digest else None
        if entry is not None and entry[0] == (file.size, file.mtime_ns):
            facts = entry[1]
            return facts if facts.shorthash or not shorthash else Facts(shorthash, facts.sd_version, facts.summary)
        cached = self._from_description_cache(file)
        if cached is not None:
            return Facts(shorthash or cached.shorthash, cached.sd_version, cached.summary)
        return Facts(shorthash, None, None)

    def _from_description_cache(self, file: HypernetFile) -> Facts | None:
        """The library's cached description (persisted by hosts that keep one), without reading the file."""
        try:
            desc = self.library.description_cache.get(file.path, file.size, file.mtime_ns)
        except Exception:  # a damaged cache entry is only a miss
            return None
        if desc is None:
            return None
        summary = _plain(desc.copy(name=file.name, relpath=file.relpath).to_json())
        version = desc.sd_version or sd_version(desc.widths)
        return Facts(desc.shorthash, version, summary)

    def label(self, file: HypernetFile) -> str:
        """``name [0123456789 · SD1]`` (the parts that are known), ``… ⚠ broken`` for a file that cannot load."""
        facts = self.get(file)
        extra = " · ".join(x for x in (facts.shorthash, facts.sd_version) if x)
        label = f"{file.name} [{extra}]" if extra else file.name
        return f"{label} {BROKEN}" if facts.error else label

    def compute(self, file: HypernetFile) -> Facts:
        """Read the summary and hash the file now (in the calling thread)."""
        summary: dict[str, Any] | None
        try:
            summary = self.library.summary(file, with_hash=False)
        except Exception as exc:  # one bad file never breaks a listing
            log.warning("hypernetworks: cannot read %s: %s", file.path, exc)
            summary = {"name": file.name, "error": str(exc)}
        try:
            shorthash: str | None = self.library.sha256(file)[:10]
        except HypernetError as exc:
            log.warning("hypernetworks: cannot hash %s: %s", file.path, exc.reason)
            shorthash = None
        version = summary.get("sd_version") or sd_version(summary.get("widths") or [])
        facts = Facts(shorthash, version, _plain(summary))
        with self._lock:
            self._known[file.path] = ((file.size, file.mtime_ns), facts)
        return facts

    def missing(self, files: Iterable[HypernetFile]) -> list[HypernetFile]:
        with self._lock:
            return [f for f in files if (k := self._known.get(f.path)) is None or k[0] != (f.size, f.mtime_ns)]

    def compute_missing(self, files: Iterable[HypernetFile] | None = None, *, background: bool = True) -> threading.Thread | None:
        """Compute the facts of every file not known yet; in one daemon thread unless ``background`` is False.

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


def _plain(value: Any) -> Any:
    """JSON-plain data (the ⓘ popup does ``json.dumps``): dict keys become strings, tuples lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
