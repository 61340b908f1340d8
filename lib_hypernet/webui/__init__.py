"""Host adapters: the only code that imports the webui's ``modules``.

One small module per host, picked by :func:`register` (called by ``scripts/sd_webui_hypernet.py``) after
:func:`lib_hypernet.webui.host.detect`:

- :mod:`.settings`  — the "Hypernetworks" settings section and the folders the webui configures;
- :mod:`.extension` — the extension's state for one script load: the library, what applies the stack, the
  activation of a prompt's tags (host-neutral apart from where the UNet lives);
- :mod:`.a1111`     — A1111 1.10.x: the ``<hypernet:…>`` extra network, the always-on script, callbacks;
- :mod:`.forge`     — Forge 2: the same, but the stack is applied as attention patches on a clone of
  ``sd_model.forge_objects.unet`` in ``process_before_every_sampling``;
- :mod:`.reforge`   — reForge: the same patch route (its ToMe hands attn1 other Q and K/V inputs, which
  instance hooks would misread as cross-attention), with explicit casting;
- :mod:`.routes`    — the HTTP API under ``/hypernet/v1/``;
- :mod:`.tab`       — the "Hypernetworks" tab (the library panel of :mod:`lib_hypernet.ui`).

``import lib_hypernet`` never imports this package.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from . import host


def adapter(name: str | None = None) -> ModuleType:
    """The adapter module for host ``name`` (default: the detected host)."""
    name = name or host.detect()
    if name == host.FORGE:
        from . import forge

        return forge
    if name == host.REFORGE:
        from . import reforge

        return reforge
    from . import a1111

    return a1111


def script_class() -> type:
    """The always-on script class for this host (the entry script exposes it for the webui to find)."""
    script: type = adapter().HypernetScript
    return script


def register() -> Any:
    """Register the extension with the running webui; returns its state (a fresh one per script load)."""
    return adapter().register()
