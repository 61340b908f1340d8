"""The gradio user interface: the library panel (webui tab and standalone page).

Imports gradio; never the webui's ``modules`` (hosts pass a :class:`LibrarySource`).
``import lib_hypernet`` does not import this package.
"""

from __future__ import annotations

from ..library.source import LibrarySource, SendTarget
from .library_panel import COLUMNS, LibraryPanel, build_library_panel

__all__ = ["COLUMNS", "LibraryPanel", "LibrarySource", "SendTarget", "build_library_panel"]
