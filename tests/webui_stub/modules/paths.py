"""Stand-in of ``modules/paths.py`` / ``paths_internal.py``.

``script_path`` is the stand-in's root (where ``webui.py`` lives); ``data_path`` and everything below it
point into a temporary directory chosen by the harness (``webui.reset(tmp_dir)``).
"""
from __future__ import annotations

import os
import tempfile

script_path: str = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
modules_path: str = os.path.join(script_path, "modules")
data_path: str = ""
models_path: str = ""
extensions_dir: str = ""
extensions_builtin_dir: str = os.path.join(script_path, "extensions-builtin")
sd_configs_path: str = os.path.join(script_path, "configs")
paths: dict[str, str] = {}


def set_data_dir(path: str | None = None) -> str:
    """Point data_path (and models/extensions dirs) at ``path`` (a fresh temp dir when None); returns it."""
    global data_path, models_path, extensions_dir
    data_path = os.path.abspath(path or tempfile.mkdtemp(prefix="webui_stub_"))
    _derive()
    return data_path


def _derive() -> None:
    global models_path, extensions_dir
    models_path = os.path.join(data_path, "models")
    extensions_dir = os.path.join(data_path, "extensions")
    for d in (data_path, models_path, extensions_dir, os.path.join(models_path, "hypernetworks"),
              os.path.join(models_path, "Stable-diffusion"), os.path.join(models_path, "VAE")):
        os.makedirs(d, exist_ok=True)


# import-time default (one shared dir, no leak per process); the harness' reset() picks a real one
data_path = os.path.join(tempfile.gettempdir(), f"webui_stub_default_{os.getuid() if hasattr(os, 'getuid') else 0}")
_derive()
