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

# name -> the submodule that defines it.  The public API is __all__; the other names stay
# importable from here for code written against earlier versions.
_LAZY: dict[str, str] = {
    "ACTIVATIONS": ".activations",
    "creatable_activations": ".activations",
    "apply_hypernetworks": ".apply",
    "Conversion": ".convert",
    "convert_file": ".convert",
    "FileDescription": ".description",
    "ModelFacts": ".description",
    "describe_file": ".description",
    "sd_version_of_widths": ".description",
    "DescriptionCache": ".description_cache",
    "EntryReport": ".engine",
    "HypernetHandle": ".engine",
    "HypernetPatch": ".engine",
    "install": ".engine",
    "ActivationError": ".errors",
    "HypernetError": ".errors",
    "HypernetFileError": ".errors",
    "HypernetFormatError": ".errors",
    "HypernetNotFoundError": ".errors",
    "UnsafeFileError": ".errors",
    "METADATA_FIELDS": ".fields",
    "SUFFIXES": ".formats",
    "format_of": ".formats",
    "a1111_zip_entries_rejected": ".formats.safe_unpickle",
    "check_torch_file": ".formats.safe_unpickle",
    "HashCache": ".hashing",
    "legacy_model_hash": ".hashing",
    "sha256": ".hashing",
    "shorthash": ".hashing",
    "WEIGHT_INITIALIZATIONS": ".hypernetwork",
    "Hypernetwork": ".hypernetwork",
    "create": ".hypernetwork",
    "from_state_dict": ".hypernetwork",
    "load": ".hypernetwork",
    "HypernetFile": ".library",
    "HypernetLibrary": ".library",
    "HypernetworkModule": ".module",
    "parse_dropout_structure": ".module",
    "OptimizerState": ".optim",
    "load_optimizer_state": ".optim",
    "optim_path": ".optim",
    "save_optimizer_state": ".optim",
    "HypernetService": ".service",
    "Strength": ".strength",
    "as_strength": ".strength",
    "HypernetRequest": ".tags",
    "TagError": ".tags",
    "format_tag": ".tags",
    "parse_items": ".tags",
}

if TYPE_CHECKING:
    from .activations import ACTIVATIONS as ACTIVATIONS
    from .activations import creatable_activations
    from .apply import apply_hypernetworks
    from .convert import Conversion, convert_file
    from .description import FileDescription, ModelFacts, describe_file, sd_version_of_widths
    from .description_cache import DescriptionCache
    from .engine import EntryReport, HypernetHandle, HypernetPatch, install
    from .errors import (
        ActivationError,
        HypernetError,
        HypernetFileError,
        HypernetFormatError,
        HypernetNotFoundError,
        UnsafeFileError,
    )
    from .fields import METADATA_FIELDS as METADATA_FIELDS
    from .formats import SUFFIXES, format_of
    from .formats.safe_unpickle import a1111_zip_entries_rejected, check_torch_file
    from .hashing import HashCache, legacy_model_hash, sha256, shorthash
    from .hypernetwork import WEIGHT_INITIALIZATIONS, Hypernetwork, create, from_state_dict, load
    from .library import HypernetFile, HypernetLibrary
    from .module import HypernetworkModule as HypernetworkModule
    from .module import parse_dropout_structure as parse_dropout_structure
    from .optim import OptimizerState, load_optimizer_state, optim_path, save_optimizer_state
    from .service import HypernetService as HypernetService
    from .strength import Strength
    from .strength import as_strength as as_strength
    from .tags import HypernetRequest, TagError, format_tag, parse_items


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        # A submodule (``lib_hypernet.hashing``) reads as an attribute, as when this file imported them all.
        if name.startswith("_") or importlib.util.find_spec(f"{__name__}.{name}") is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        return importlib.import_module(f"{__name__}.{name}")
    value = getattr(importlib.import_module(module_name, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


# What a user of the library needs: loading, creating, saving, converting and hashing files,
# applying them (directly or through the UNet engine), prompt tags, and the errors raised.
__all__ = [
    "SUFFIXES",
    "WEIGHT_INITIALIZATIONS",
    "ActivationError",
    "Conversion",
    "DescriptionCache",
    "EntryReport",
    "FileDescription",
    "HashCache",
    "HypernetError",
    "HypernetFile",
    "HypernetFileError",
    "HypernetFormatError",
    "HypernetHandle",
    "HypernetLibrary",
    "HypernetNotFoundError",
    "HypernetPatch",
    "HypernetRequest",
    "Hypernetwork",
    "ModelFacts",
    "OptimizerState",
    "Strength",
    "TagError",
    "UnsafeFileError",
    "__version__",
    "a1111_zip_entries_rejected",
    "apply_hypernetworks",
    "check_torch_file",
    "convert_file",
    "creatable_activations",
    "create",
    "describe_file",
    "format_of",
    "format_tag",
    "from_state_dict",
    "install",
    "legacy_model_hash",
    "load",
    "load_optimizer_state",
    "optim_path",
    "parse_items",
    "save_optimizer_state",
    "sd_version_of_widths",
    "sha256",
    "shorthash",
]
