"""The process-wide patches of a real A1111 1.10.1 that an extension can notice, for the stand-in.

:func:`apply` installs them in the order the webui does (``modules/initialize.py``: ``import torch``,
``import pytorch_lightning``, ``import gradio``, then ``modules.paths``, which imports ``modules.safe``):

1. ``pickle.Unpickler`` becomes :class:`RedirectingUnpickler`, a pure-Python subclass of
   ``pickle._Unpickler`` — pytorch_lightning 1.9.4's ``_graveyard/legacy_import_unpickler.py`` does this
   when it is imported, so every ``pickle.Unpickler`` subclass defined afterwards (or looked up at call
   time) is pure Python: different exceptions (``struct.error`` on a cut-short file), no C limits.
2. ``torch.load`` becomes ``modules.safe.load`` (see ``modules/safe.py``): a restricted check that
   returns ``None`` for files it refuses, including zips with ``.format_version``/``.storage_alignment``.

The webui harness applies them in :func:`webui.start` (before the extension's scripts load) and undoes
them in :func:`webui.unload`, so tests outside the stand-in see a plain process. A test that needs the
import order of the real webui (the patches before ``lib_hypernet`` is imported) calls :func:`apply`
first thing in a fresh interpreter (see ``tests/webui/test_webui_conditions.py``).
"""
from __future__ import annotations

import pickle
import warnings
from collections.abc import Callable
from typing import Any

import torch

ORIGINAL_UNPICKLER = pickle.Unpickler
ORIGINAL_TORCH_LOAD = torch.load


def _patch_pl_to_mirror_if_necessary(module: str) -> str:
    pl = "pytorch_" + "lightning"
    if module.startswith(pl):
        module = "pytorch_lightning" + module[len(pl):]
    return module


class RedirectingUnpickler(pickle._Unpickler):  # type: ignore[name-defined,misc]
    """pytorch_lightning 1.9.4's unpickler (``pytorch_lightning/_graveyard/legacy_import_unpickler.py``)."""

    def find_class(self, module: str, name: str) -> Any:
        new_module = _patch_pl_to_mirror_if_necessary(module)
        if module != new_module:
            warnings.warn(f"Redirecting import of {module}.{name} to {new_module}.{name}", stacklevel=2)
        return super().find_class(new_module, name)


active = False


def apply() -> Callable[[], None]:
    """Install the real webui's process-wide patches (idempotent); returns :func:`undo`."""
    global active
    pickle.Unpickler = RedirectingUnpickler  # type: ignore[misc]
    from modules import safe  # the real modules/paths.py imports it, which patches torch.load

    safe.install()
    active = True
    return undo


def undo() -> None:
    """Restore ``pickle.Unpickler`` and ``torch.load``."""
    global active
    pickle.Unpickler = ORIGINAL_UNPICKLER  # type: ignore[misc]
    torch.load = ORIGINAL_TORCH_LOAD
    active = False
