"""Host adapters: the only code that imports the webui's ``modules``.

One small module per host, picked by :func:`register` (called by ``scripts/sd_webui_hypernet.py``):

- :mod:`.settings`  — the "Hypernetworks" settings section and the folders the webui configures;
- :mod:`.extension` — the extension's state for one script load: the library, the hook on the UNet, the
  activation of a prompt's tags (host-neutral apart from where the UNet lives);
- :mod:`.a1111`     — A1111 1.10.x: the ``<hypernet:…>`` extra network, the always-on script, callbacks;
- :mod:`.routes`    — the HTTP API under ``/hypernet/v1/``;
- :mod:`.tab`       — the "Hypernetworks" tab (the library panel of :mod:`lib_hypernet.ui`).

``import lib_hypernet`` never imports this package.
"""

from __future__ import annotations

from typing import Any


def register() -> Any:
    """Register the extension with the running webui; returns its state (a fresh one per script load)."""
    from . import a1111

    return a1111.register()
