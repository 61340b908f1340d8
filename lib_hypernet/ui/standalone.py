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
from ..library.source import BakeFolders, LibrarySource
from . import compat
from .library_panel import PANEL_CSS, build_library_panel
from .origin import LOOPBACK_NAMES, SameOriginGuard, normalize_host

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


def make_source(folder: str | os.PathLike[str], caches: str | os.PathLike[str] | None = None, *,
                bake_folders: BakeFolders | None = None) -> LibrarySource:
    """A :class:`LibrarySource` over ``folder`` whose caches persist under ``caches`` (``None``: in memory only);
    ``bake_folders`` turns on the Bake section."""
    files = CacheFiles(caches)
    library = HypernetLibrary(folder, hash_cache=files.hashes, description_cache=files.descriptions)
    return LibrarySource(library, save_caches=files.save, bake_folders=bake_folders)


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


def serve(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    auth: tuple[str, str] | None = None,
    inbrowser: bool = False,
    prevent_thread_lock: bool = False,
    quiet: bool = False,
) -> Any:
    """Launch the page built by :func:`build_app` behind :class:`~.origin.SameOriginGuard` (gradio's ``launch`` result).

    The guard is needed because gradio accepts its queue WebSocket (3.41) and its POSTs from any web
    page open in the user's browser; ``auth`` (``(user, password)``) turns on gradio's login page.
    """
    from starlette.middleware import Middleware

    if auth is None and normalize_host(host) not in LOOPBACK_NAMES:
        log.warning("hypernetworks: the panel listens on %s without --auth: anyone who can reach it can create, "
                    "convert and overwrite files in the folder", host)
    # app_kwargs go to the FastAPI app gradio builds (3.41 and 4.x), so the guard wraps every route.
    middleware = [Middleware(SameOriginGuard, hosts=[host])]
    return app.launch(server_name=host, server_port=port, inbrowser=inbrowser, show_api=False, auth=auth,
                      prevent_thread_lock=prevent_thread_lock, quiet=quiet, app_kwargs={"middleware": middleware})
