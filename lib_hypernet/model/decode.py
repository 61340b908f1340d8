"""Decoding: an A1111-layout dict (as read from a file) into checked metadata and ``(k, v)`` module pairs.

Everything a file can get wrong is refused here with a :class:`~lib_hypernet.HypernetFormatError` naming
the file: widths, shapes, dtypes, non-finite weights, unknown activations, metadata types.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ActivationError, HypernetFormatError, short_repr
from ..formats.metadata import METADATA_FIELDS, HypernetMetadata, read_metadata
from ..formats.pickle_scan import check_nesting
from .activations import UnusableActivationError
from .module import MAX_WIDTH, HypernetworkModule, fix_old_state_dict, parse_dropout_structure
from .tensor_modes import ordinary

MAX_WIDTHS = 64  # SD1 uses 4 attention widths, SDXL 3
# The weight dtypes a hypernetwork may store (A1111 trains float32; halves and doubles convert exactly).
WEIGHT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

_KNOWN_STR_KEYS = frozenset(METADATA_FIELDS) | {"source_sha256"}

Layers = dict[int, tuple[HypernetworkModule, HypernetworkModule]]


@dataclass
class Decoded:
    """What a file holds, checked: the metadata (A1111's load defaults applied) and the module pairs."""

    meta: HypernetMetadata
    layers: Layers
    ignored_keys: list[str]
    source_sha256: str | None


def decode(raw: Mapping[Any, Any], path: str | None = None) -> Decoded:
    """Check and build everything in ``raw``; the caller decides which tensor mode the modules are made in."""
    if not isinstance(raw, Mapping):
        raise HypernetFormatError(f"expected a dict of layers and metadata, got a {type(raw).__name__}", path)
    check_nesting(dict(raw), path)
    meta = read_metadata(raw, path)
    dropout_structure = meta.dropout_structure
    use_dropout = bool(dropout_structure is not None and any(dropout_structure)) or meta.use_dropout
    if dropout_structure is None:
        dropout_structure = parse_dropout_structure(meta.layer_structure, use_dropout, meta.last_layer_dropout)
    meta = meta.replace(use_dropout=use_dropout, dropout_structure=list(dropout_structure))

    widths = [width for width in raw if type(width) is int]
    if len(widths) > MAX_WIDTHS:
        raise HypernetFormatError(
            f"{len(widths)} layer widths; a hypernetwork has a handful (at most {MAX_WIDTHS} are accepted)", path
        )
    layers = {width: _build_pair(width, raw[width], meta, dropout_structure, path) for width in widths}
    if not layers:
        raise HypernetFormatError(
            "contains no layers: a hypernetwork needs at least one integer width key (e.g. 768) holding "
            "(k, v) state dicts",
            path,
        )
    source = raw.get("source_sha256")
    return Decoded(
        meta,
        layers,
        sorted(str(k) for k in raw if type(k) is not int and k not in _KNOWN_STR_KEYS),
        source if isinstance(source, str) else None,
    )


def all_finite(tensor: torch.Tensor) -> bool:
    """Whether every element is finite.  Exact, and fast for the common case: the sum is finite unless
    some element is not (or the sum overflows, which the full element-wise check then settles)."""
    if not tensor.is_floating_point() and not tensor.is_complex():
        return True
    if tensor.dtype not in WEIGHT_DTYPES:  # e.g. float8: no sum kernel; compare in float32
        tensor = tensor.to(torch.float32)
    return math.isfinite(float(tensor.sum())) or bool(torch.isfinite(tensor).all())


def _build_pair(
    width: int,
    value: Any,
    meta: HypernetMetadata,
    dropout_structure: Sequence[float],
    path: str | None,
) -> tuple[HypernetworkModule, HypernetworkModule]:
    if not isinstance(value, (tuple, list)) or len(value) != 2 or not all(isinstance(sd, Mapping) for sd in value):
        raise HypernetFormatError(
            f"width {width}: expected a pair (k, v) of state dicts, got {type(value).__name__}"
            + (f" of length {len(value)}" if isinstance(value, (tuple, list)) else ""),
            path,
        )
    return (
        _build_module(width, "k", value[0], meta, dropout_structure, path),
        _build_module(width, "v", value[1], meta, dropout_structure, path),
    )


def _build_module(
    width: int,
    branch: str,
    state: Mapping[str, Any],
    meta: HypernetMetadata,
    dropout_structure: Sequence[float],
    path: str | None,
) -> HypernetworkModule:
    where = f"width {width} ({branch})"
    if width < 1 or width > MAX_WIDTH:
        raise HypernetFormatError(f"{where}: width must be between 1 and {MAX_WIDTH}", path)
    state = fix_old_state_dict(state)
    for key, tensor in state.items():
        if not isinstance(tensor, torch.Tensor):
            raise HypernetFormatError(f"{where}: {short_repr(key)} is a {type(tensor).__name__}, not a tensor", path)
        if tensor.dtype not in WEIGHT_DTYPES:
            raise HypernetFormatError(
                f"{where}: {short_repr(key)} has dtype {tensor.dtype}; hypernetwork weights must be float16, bfloat16, "
                "float32 or float64",
                path,
            )
        if tensor.device.type == "meta" or tensor.is_sparse:
            raise HypernetFormatError(f"{where}: {short_repr(key)} is not a dense tensor with data", path)
    try:
        with torch.device("meta"):
            module = HypernetworkModule(
                width,
                meta.layer_structure,
                meta.activation_func,
                meta.is_layer_norm,
                meta.activate_output,
                dropout_structure,
            )
    except KeyError as exc:
        raise ActivationError(
            f"unknown activation function {short_repr(meta.activation_func)} (A1111 accepts linear, relu, leakyrelu, elu, "
            "swish, tanh, sigmoid and torch.nn activation class names in lower case)",
            path,
        ) from exc
    except TypeError as exc:
        raise ActivationError(
            f"activation function {short_repr(meta.activation_func)} cannot be built without arguments ({exc})", path
        ) from exc
    except ValueError as exc:
        kind = ActivationError if isinstance(exc, UnusableActivationError) else HypernetFormatError
        raise kind(str(exc), path) from exc

    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise HypernetFormatError(
            f"{where}: state dict does not match layer_structure={meta.layer_structure}, "
            f"activation_func={short_repr(meta.activation_func)}, is_layer_norm={meta.is_layer_norm}, "
            f"activate_output={meta.activate_output}"
            + (f"; missing {short_repr(missing)}" if missing else "")
            + (f"; unexpected {short_repr(unexpected)}" if unexpected else ""),
            path,
        )
    for key, param in expected.items():
        if tuple(state[key].shape) != tuple(param.shape):
            raise HypernetFormatError(
                f"{where}: {key!r} has shape {tuple(state[key].shape)}, expected {tuple(param.shape)} "
                f"for width {width} and layer_structure {meta.layer_structure}",
                path,
            )
        if not all_finite(state[key]):
            raise HypernetFormatError(
                f"{where}: {key!r} contains NaN or infinite values; the file is broken (a diverged training run?)",
                path,
            )
    module.load_state_dict(
        {k: v.to(torch.float32) if v.dtype != torch.float32 else ordinary(v) for k, v in state.items()},
        strict=True,
        assign=True,
    )
    module.eval()
    module.requires_grad_(False)
    return module


__all__ = ["MAX_WIDTHS", "WEIGHT_DTYPES", "Decoded", "all_finite", "decode"]
