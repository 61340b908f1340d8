"""Stand-in of ``modules/script_loading.py``."""
from __future__ import annotations

import importlib.util
import os
import types

from modules import errors

loaded_scripts: dict[str, types.ModuleType] = {}


def load_module(path: str) -> types.ModuleType:
    """Execute ``path`` as a module named after its basename (e.g. 'hypernet.py'), NOT put in sys.modules."""
    spec = importlib.util.spec_from_file_location(os.path.basename(path), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    loaded_scripts[path] = module
    return module


def preload_extensions(extension_dirs: list[str], parser) -> None:
    """Run ``preload(parser)`` of every ``<ext>/preload.py`` (errors are reported, not raised)."""
    for ext_dir in extension_dirs:
        path = os.path.join(ext_dir, "preload.py")
        if not os.path.isfile(path):
            continue
        try:
            module = load_module(path)
            if hasattr(module, "preload"):
                module.preload(parser)
        except Exception:
            errors.report(f"Error running preload() for {path}", exc_info=True)
