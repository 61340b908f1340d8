"""The ``.safetensors`` hypernetwork layout (version 1), defined by this project.

Tensors (flat, one per parameter)::

    "<width>.<k|v>.<A1111 state-dict key>"      e.g. "768.k.linear.0.weight"

Header metadata (``__metadata__``, all values are strings)::

    "format":         "a1111-hypernetwork"       (marks the file as a hypernetwork)
    "format_version": "1"
    "<field>":        JSON of the A1111 field value, for each of
                      name, step, layer_structure, activation_func, is_layer_norm,
                      weight_initialization, sd_checkpoint, sd_checkpoint_name,
                      activate_output, use_dropout, dropout_structure,
                      last_layer_dropout, optional_info
    "source_sha256":  (optional) sha256 of the .pt file this one was converted from

A missing field takes A1111's load default, exactly as a missing ``.pt`` key does.
Reading returns the same dict shape a ``.pt`` holds, so both formats share one loader.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections import OrderedDict
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_save

from ..errors import HypernetFileError, HypernetFormatError
from ..fields import METADATA_FIELDS
from ..fileio import atomic_write

FORMAT_MARKER = "a1111-hypernetwork"
FORMAT_VERSION = "1"
FIELDS = METADATA_FIELDS  # the A1111 keys stored as JSON metadata (one list for both formats)
_KEY_RE = re.compile(r"^(\d+)\.([kv])\.(.+)$")
MAX_HEADER_BYTES = 100 * 1024 * 1024


def _check_header(path: str) -> None:
    size = os.path.getsize(path)
    if size < 8:
        raise HypernetFormatError("not a safetensors file: shorter than its 8-byte header length", path)
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
    if header_len > min(size - 8, MAX_HEADER_BYTES):
        raise HypernetFormatError(
            f"not a valid safetensors file: its header claims {header_len} bytes but the file has {size} "
            "(truncated download or not a safetensors file)",
            path,
        )


def read_safetensors(path: str | os.PathLike[str]) -> dict[Any, Any]:
    """Read a v1 hypernetwork ``.safetensors`` into the dict layout of an A1111 ``.pt``."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise HypernetFileError("file not found", path)
    _check_header(path)
    try:
        with safe_open(path, framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise HypernetFormatError(f"not a readable safetensors file: {exc}", path) from exc

    unmatched = [k for k in tensors if not _KEY_RE.match(k)]
    if metadata.get("format") != FORMAT_MARKER and (unmatched or not tensors):
        raise HypernetFormatError(
            "this .safetensors file is not a hypernetwork (no 'format: a1111-hypernetwork' metadata and tensor "
            f"names like {sorted(tensors)[:3]}); is it a LoRA or a checkpoint in the wrong folder?",
            path,
        )
    if unmatched:
        raise HypernetFormatError(f"unexpected tensor names {unmatched[:5]} (expected '<width>.<k|v>.<key>')", path)
    version = metadata.get("format_version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise HypernetFormatError(
            f"hypernetwork safetensors format_version {version!r} is newer than this reader (supports "
            f"{FORMAT_VERSION}); update sd-webui-hypernet",
            path,
        )

    raw: dict[Any, Any] = {}
    per_width: dict[int, dict[str, OrderedDict[str, torch.Tensor]]] = {}
    for key, tensor in tensors.items():
        match = _KEY_RE.match(key)
        assert match is not None
        width, branch, param = int(match.group(1)), match.group(2), match.group(3)
        per_width.setdefault(width, {"k": OrderedDict(), "v": OrderedDict()})[branch][param] = tensor
    for width in sorted(per_width):
        raw[width] = (per_width[width]["k"], per_width[width]["v"])
    for field in FIELDS:
        if field in metadata:
            try:
                raw[field] = json.loads(metadata[field])
            except json.JSONDecodeError as exc:
                raise HypernetFormatError(f"metadata field {field!r} is not valid JSON: {metadata[field]!r}", path) from exc
    if "source_sha256" in metadata:
        raw["source_sha256"] = metadata["source_sha256"]
    return raw


def write_safetensors(path: str | os.PathLike[str], raw: dict[Any, Any], source_sha256: str | None = None) -> None:
    """Atomically write an A1111-layout dict (as produced by ``Hypernetwork.state_dict()``) as v1 safetensors."""
    tensors: dict[str, torch.Tensor] = {}
    metadata = {"format": FORMAT_MARKER, "format_version": FORMAT_VERSION}
    for key, value in raw.items():
        if isinstance(key, int) and not isinstance(key, bool):
            for branch, state in zip("kv", value):
                for param, tensor in state.items():
                    tensors[f"{key}.{branch}.{param}"] = tensor.detach().to("cpu").contiguous()
        elif key in FIELDS:
            metadata[key] = json.dumps(value)
    if source_sha256:
        metadata["source_sha256"] = source_sha256
    data = _canonical_header(safetensors_save(tensors, metadata=metadata))
    atomic_write(path, lambda f: f.write(data))


def _canonical_header(data: bytes) -> bytes:
    """``data`` with its JSON header re-written with sorted keys and no spaces (the serialiser's key
    order is random), padded with spaces to a multiple of 8 bytes; the tensor bytes are unchanged."""
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data[8 + header_len :]
