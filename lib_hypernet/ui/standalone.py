"""The standalone library page: ``python -m lib_hypernet.ui --dir DIR [--host 127.0.0.1] [--port N]``.

Without ``--dir`` it opens a small example folder (about 5 MB, made on first run).
Hash and description caches live in the user's cache folder, so a second start lists a
large folder without re-reading its files.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

import gradio as gr

from ..description_cache import DescriptionCache
from ..errors import HypernetError
from ..examples import make_examples
from ..hashing import HashCache
from ..library import HypernetLibrary
from . import compat
from .library_panel import PANEL_CSS, build_library_panel
from .source import LibrarySource

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
    hashes_path = descriptions_path = None
    if caches is not None:
        hashes_path = os.path.join(caches, "sd-webui-hypernet-hashes.json")
        descriptions_path = os.path.join(caches, "sd-webui-hypernet-summaries.json")
    library = HypernetLibrary(
        folder,
        hash_cache=HashCache.load(hashes_path) if hashes_path else HashCache(),
        description_cache=DescriptionCache.load(descriptions_path) if descriptions_path else DescriptionCache(),
    )

    def save() -> None:
        if caches is None:
            return
        os.makedirs(caches, exist_ok=True)
        if library.hash_cache.dirty and hashes_path:
            library.hash_cache.save(hashes_path)
        if library.description_cache.dirty and descriptions_path:
            library.description_cache.save(descriptions_path)

    return LibrarySource(library, save_caches=save)


def build_app(source: LibrarySource) -> Any:
    """The standalone page (a gradio Blocks app; queue enabled, for progress bars)."""
    with gr.Blocks(title="Hypernetworks — sd-webui-hypernet", theme=compat.offline_theme(), css=PANEL_CSS,
                   analytics_enabled=False) as app:
        gr.Markdown("## Hypernetworks\nEvery hypernetwork file in the folder: select one for its details and its "
                    "tag; convert, repair, hash or create files below.")
        panel = build_library_panel(source)
        panel.fill_on_load(app)
    compat.queue(app)
    return app


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lib_hypernet.ui",
                                     description="Browse, inspect, convert and create hypernetworks in a web page.")
    parser.add_argument("--dir", default=None, help="the hypernetwork folder (default: a small example folder)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine)")
    parser.add_argument("--port", type=int, default=None, help="port (default: gradio's, 7860 or the next free one)")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser window")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    folder = Path(args.dir) if args.dir else default_examples_dir()
    if args.dir is None:
        try:
            written = make_examples(folder)
        except HypernetError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        if written:
            print(f"made {len(written)} example hypernetworks in {folder}", flush=True)
    elif not folder.is_dir():
        print(f"error: {folder}: not a folder", file=sys.stderr)
        return 2
    source = make_source(folder, cache_dir())
    app = build_app(source)
    print(f"hypernetwork library of {folder.resolve()}", flush=True)
    try:
        app.launch(server_name=args.host, server_port=args.port, inbrowser=not args.no_browser, show_api=False)
    except KeyboardInterrupt:
        return 130
    return 0
