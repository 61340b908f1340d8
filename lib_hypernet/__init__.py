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
"""

from __future__ import annotations

import logging

from .activations import ACTIVATIONS, creatable_activations
from .apply import apply_hypernetworks
from .convert import Conversion, convert_file
from .engine import EntryReport, HypernetHandle, HypernetPatch, install
from .errors import (
    ActivationError,
    HypernetError,
    HypernetFileError,
    HypernetFormatError,
    HypernetNotFoundError,
    UnsafeFileError,
)
from .formats import SUFFIXES, format_of
from .formats.safe_unpickle import a1111_zip_entries_rejected, check_torch_file
from .hashing import HashCache, legacy_model_hash, sha256, shorthash
from .hypernetwork import METADATA_FIELDS, WEIGHT_INITIALIZATIONS, Hypernetwork, create, from_state_dict, load
from .library import HypernetFile, HypernetLibrary
from .module import HypernetworkModule, parse_dropout_structure
from .optim import OptimizerState, load_optimizer_state, optim_path, save_optimizer_state
from .service import HypernetService
from .strength import Strength, as_strength
from .tags import HypernetRequest, TagError, format_tag, parse_items

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "ACTIVATIONS",
    "METADATA_FIELDS",
    "SUFFIXES",
    "WEIGHT_INITIALIZATIONS",
    "ActivationError",
    "Conversion",
    "EntryReport",
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
    "HypernetService",
    "Hypernetwork",
    "HypernetworkModule",
    "OptimizerState",
    "Strength",
    "TagError",
    "UnsafeFileError",
    "__version__",
    "a1111_zip_entries_rejected",
    "apply_hypernetworks",
    "as_strength",
    "check_torch_file",
    "convert_file",
    "creatable_activations",
    "create",
    "format_of",
    "format_tag",
    "from_state_dict",
    "install",
    "legacy_model_hash",
    "load",
    "load_optimizer_state",
    "optim_path",
    "parse_dropout_structure",
    "parse_items",
    "save_optimizer_state",
    "sha256",
    "shorthash",
]
