"""lib_hypernet: A1111-compatible hypernetworks — safe files, hashes, and a fast, reversible apply engine.

Imports only torch, safetensors and the standard library (never the webui or gradio).

    >>> import lib_hypernet
    >>> hn = lib_hypernet.load("models/hypernetworks/anime.pt")
    >>> hn.save("anime.safetensors")
    >>> context_k, context_v = lib_hypernet.apply_hypernetworks(context, [(hn, 0.8)])
    >>> handle = lib_hypernet.install(unet)          # hooks nothing yet
    >>> handle.activate([(hn, 0.8)])                 # every attention layer's K/V input, from now on
    >>> handle.remove()                              # the UNet is exactly as before
    >>> patch = lib_hypernet.HypernetPatch()         # Forge 2 / reForge / ComfyUI: attention patches instead
    >>> patch.activate([(hn, 0.8)]); unet_patcher.set_model_attn1_patch(patch.attn1)

The names below are imported on first use (PEP 562), so ``import lib_hypernet`` itself
is instant and torch is loaded only when something needs it; that lets
``python -m lib_hypernet`` answer Ctrl-C during start-up with one line.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

# The public API: what a library user needs (load, create, save, convert, hash and apply files; prompt
# tags; the errors raised).  Everything else is reached through its module, whose place in the folder
# tree says what it is: formats/ (bytes on disk), model/ (the object), engine/ (applying it), prompt/
# (the tag), library/ (a folder of files and every write to it), cli/ (the command).
# name -> the submodule that defines it, imported on first use.
_LAZY: dict[str, str] = {
    "load": ".model.hypernetwork",
    "create": ".model.create",
    "Hypernetwork": ".model.hypernetwork",
    "apply_hypernetworks": ".engine.reference",
    "install": ".engine.handle",
    "HypernetPatch": ".engine.patch",
    "Strength": ".engine.strength",
    "convert_file": ".library.actions",
    "bake": ".library.actions",
    "check_torch_file": ".formats.safe_unpickle",
    "sha256": ".formats.hashing",
    "shorthash": ".formats.hashing",
    "legacy_model_hash": ".formats.hashing",
    "load_optimizer_state": ".formats.optim",
    "save_optimizer_state": ".formats.optim",
    "HypernetLibrary": ".library.folder",
    "describe_file": ".library.description",
    "FileDescription": ".library.description",
    "format_tag": ".prompt.writer",
    "HypernetError": ".errors",
    "HypernetFileError": ".errors",
    "HypernetFormatError": ".errors",
    "UnsafeFileError": ".errors",
}

if TYPE_CHECKING:
    from .engine.handle import install
    from .engine.patch import HypernetPatch
    from .engine.reference import apply_hypernetworks
    from .engine.strength import Strength
    from .errors import HypernetError, HypernetFileError, HypernetFormatError, UnsafeFileError
    from .formats.hashing import legacy_model_hash, sha256, shorthash
    from .formats.optim import load_optimizer_state, save_optimizer_state
    from .formats.safe_unpickle import check_torch_file
    from .library.actions import bake, convert_file
    from .library.description import FileDescription, describe_file
    from .library.folder import HypernetLibrary
    from .model.create import create
    from .model.hypernetwork import Hypernetwork, load
    from .prompt.writer import format_tag


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        # A subpackage (``lib_hypernet.formats``) reads as an attribute, as after ``import lib_hypernet.formats``.
        if name.startswith("_") or importlib.util.find_spec(f"{__name__}.{name}") is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        return importlib.import_module(f"{__name__}.{name}")
    value = getattr(importlib.import_module(module_name, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "FileDescription",
    "HypernetError",
    "HypernetFileError",
    "HypernetFormatError",
    "HypernetLibrary",
    "HypernetPatch",
    "Hypernetwork",
    "Strength",
    "UnsafeFileError",
    "__version__",
    "apply_hypernetworks",
    "bake",
    "check_torch_file",
    "convert_file",
    "create",
    "describe_file",
    "format_tag",
    "install",
    "legacy_model_hash",
    "load",
    "load_optimizer_state",
    "save_optimizer_state",
    "sha256",
    "shorthash",
]
