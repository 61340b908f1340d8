"""The standalone library page (its command line is ``python -m lib_hypernet.ui``, :mod:`.__main__`).

Without ``--dir`` it opens a small example folder (about 5 MB, made on first run).
Hash and description caches live in the user's cache folder, so a second start lists a
large folder without re-reading its files.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import gradio as gr

from ..library.caches import CacheFiles
from ..library.folder import HypernetLibrary
from ..library.source import LibrarySource
from . import compat
from .library_panel import PANEL_CSS, build_library_panel

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sd-webui-hypernet"


def default_examples_dir() -> Path:
    """``examples/`` beside the package in a checkout, else in the cache folder."""
    if os.access(REPO_ROOT, os.W_OK) and (REPO_ROOT / "lib_hypernet").is_dir():
        return REPO_ROOT / "examples"
    return cache_dir() / "examples"


def make_source(folder: str | os.PathLike[str], caches: str | os.PathLike[str] | None = None) -> LibrarySource:
    """A :class:`LibrarySource` over ``folder`` whose caches persist under ``caches`` (``None``: in memory only)."""
    files = CacheFiles(caches)
    library = HypernetLibrary(folder, hash_cache=files.hashes, description_cache=files.descriptions)
    return LibrarySource(library, save_caches=files.save)


THEME_JS = "() => {{ document.body.classList.toggle('dark', {dark}); return []; }}"
"""Sets the page's light or dark mode (gradio's own is the browser's preference: ``prefers-color-scheme``)."""


def build_app(source: LibrarySource, *, theme: str = "system") -> Any:
    """The standalone page (a gradio Blocks app; queue enabled, for progress bars).

    ``theme`` is ``system`` (the browser's preference, as gradio does by default), ``light`` or ``dark``.
    """
    with gr.Blocks(title="Hypernetworks — sd-webui-hypernet", theme=compat.offline_theme(), css=PANEL_CSS,
                   analytics_enabled=False) as app:
        gr.Markdown("## Hypernetworks\nEvery hypernetwork file in the folder. Select one for its details and its tag; "
                    "a file marked in the status column needs a repair or cannot be loaded.")
        panel = build_library_panel(source)
        panel.fill_on_load(app)
        if theme in ("light", "dark"):
            app.load(fn=None, inputs=[], outputs=[], **compat.js(THEME_JS.format(dark=str(theme == "dark").lower())))
    compat.queue(app)
    return app
