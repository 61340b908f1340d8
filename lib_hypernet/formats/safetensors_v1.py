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
from safetensors import safe_open
from safetensors.torch import save as safetensors_save

from ..errors import HypernetFileError, HypernetFormatError
from .fileio import atomic_write
from .metadata import METADATA_FIELDS
from .pickle_scan import check_nesting
from .safetensors_file import no_duplicates, read_header, refuse

FORMAT_MARKER = "a1111-hypernetwork"
FORMAT_VERSION = "1"
FIELDS = METADATA_FIELDS  # the A1111 keys stored as JSON metadata (one list for both formats)
# Exactly "<width>.<k|v>.linear.<index>.<weight|bias>": ASCII digits without leading zeros (so no two
# spellings name the same tensor), nothing before or after (fullmatch: no trailing newline or space).
_KEY_RE = re.compile(r"(0|[1-9][0-9]*)\.([kv])\.(linear\.(?:0|[1-9][0-9]*)\.(?:weight|bias))", re.ASCII)
_LOOSE_KEY_RE = re.compile(r"\s*\d+\s*\.\s*[kv]\s*\.", re.UNICODE)
MAX_HEADER_BYTES = 100 * 1024 * 1024
# safetensors dtype names of the weight dtypes a hypernetwork may hold (see model.decode.WEIGHT_DTYPES).
WEIGHT_DTYPES = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32, "F64": torch.float64}
_MAX_WIDTH = 1 << 31
_MAX_METADATA_NESTING = 32


def _refuse(path: str, why: str) -> HypernetFormatError:
    return refuse(path, why)


def _read_header(path: str) -> dict[str, Any]:
    return read_header(path)[0]


def _check_header(path: str) -> None:
    """Raise :class:`HypernetFormatError` unless the file starts with a sound, unambiguous safetensors header."""
    _read_header(path)


def read_safetensors(path: str | os.PathLike[str]) -> dict[Any, Any]:
    """Read a v1 hypernetwork ``.safetensors`` into the dict layout of an A1111 ``.pt``.

    Tensor names must match the documented layout exactly; weights must be float16, bfloat16, float32
    or float64.  Every failure is a :class:`HypernetFormatError` naming the file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise HypernetFileError("file not found", path)
    header = _read_header(path)
    metadata: dict[str, str] = header.get("__metadata__", {})
    names = [k for k in header if k != "__metadata__"]
    unmatched = [k for k in names if not _KEY_RE.fullmatch(k)]
    if metadata.get("format") != FORMAT_MARKER and (unmatched or not names):
        raise HypernetFormatError(
            "this .safetensors file is not a hypernetwork (no 'format: a1111-hypernetwork' metadata and tensor "
            f"names like {[k[:80] for k in sorted(names)[:3]]}); is it a LoRA or a checkpoint in the wrong folder?",
            path,
        )
    if unmatched:
        loose = [k for k in unmatched if _LOOSE_KEY_RE.match(k)]
        raise HypernetFormatError(
            f"unexpected tensor names {[k[:80] for k in unmatched[:5]]} (expected exactly "
            "'<width>.<k|v>.linear.<n>.<weight|bias>' with ASCII digits, no leading zeros and nothing around it"
            + ("; names that only look alike are refused so that no two names can mean one tensor" if loose else "")
            + ")",
            path,
        )
    version = metadata.get("format_version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise HypernetFormatError(
            f"hypernetwork safetensors format_version {version[:40]!r} is newer than this reader (supports "
            f"{FORMAT_VERSION}); update sd-webui-hypernet",
            path,
        )
    for key in names:
        dtype = header[key]["dtype"]
        if dtype not in WEIGHT_DTYPES:
            raise HypernetFormatError(
                f"tensor {key!r} has dtype {dtype[:20]!r}; hypernetwork weights must be F16, BF16, F32 or F64", path
            )
        width = int(_KEY_RE.fullmatch(key).group(1))  # type: ignore[union-attr]
        if not 1 <= width <= _MAX_WIDTH:
            raise HypernetFormatError(f"tensor {key!r}: width must be between 1 and {_MAX_WIDTH}", path)

    try:
        with safe_open(path, framework="pt", device="cpu") as f:
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except Exception as exc:  # the Rust reader raises several kinds; every bad file must give ours
        raise HypernetFormatError(f"not a readable safetensors file: {type(exc).__name__}: {str(exc)[:200]}", path) from exc
    if sorted(tensors) != sorted(names) or any(t.dtype not in WEIGHT_DTYPES.values() for t in tensors.values()):
        raise HypernetFormatError("not a readable safetensors file: its tensors differ from its header", path)

    raw: dict[Any, Any] = {}
    per_width: dict[int, dict[str, OrderedDict[str, torch.Tensor]]] = {}
    for key, tensor in tensors.items():
        match = _KEY_RE.fullmatch(key)
        assert match is not None
        width, branch, param = int(match.group(1)), match.group(2), match.group(3)
        per_width.setdefault(width, {"k": OrderedDict(), "v": OrderedDict()})[branch][param] = tensor
    for width in sorted(per_width):
        raw[width] = (per_width[width]["k"], per_width[width]["v"])
    for field in FIELDS:
        if field in metadata:
            raw[field] = _field_value(metadata[field], field, path)
    if "source_sha256" in metadata:
        raw["source_sha256"] = metadata["source_sha256"]
    return raw


def _field_value(text: str, field: str, path: str) -> Any:
    try:
        value = json.loads(text, object_pairs_hook=no_duplicates)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, >4300-digit ints, duplicate keys, deep nesting
        raise HypernetFormatError(
            f"metadata field {field!r} is not valid JSON ({type(exc).__name__}): {text[:80]!r}", path
        ) from exc
    check_nesting(value, path, _MAX_METADATA_NESTING)
    return value


def write_safetensors(path: str | os.PathLike[str], raw: dict[Any, Any], source_sha256: str | None = None) -> None:
    """Atomically write an A1111-layout dict (as produced by ``Hypernetwork.state_dict()``) as v1 safetensors."""
    tensors: dict[str, torch.Tensor] = {}
    metadata = {"format": FORMAT_MARKER, "format_version": FORMAT_VERSION}
    storages: set[int] = set()
    for key, value in raw.items():
        if isinstance(key, int) and not isinstance(key, bool):
            for branch, state in zip("kv", value):
                for param, tensor in state.items():
                    tensors[f"{key}.{branch}.{param}"] = _own_storage(tensor.detach().to("cpu").contiguous(), storages)
        elif key in FIELDS:
            metadata[key] = json.dumps(value)
    if source_sha256:
        metadata["source_sha256"] = source_sha256
    data = _canonical_header(safetensors_save(tensors, metadata=metadata))
    atomic_write(path, lambda f: f.write(data))


def _own_storage(tensor: torch.Tensor, seen: set[int]) -> torch.Tensor:
    """``tensor``, or a copy when it shares its storage with another tensor or views part of a larger one.

    safetensors stores each tensor's bytes once and refuses shared memory ("Some tensors share
    memory"); a valid ``.pt`` may tie weights or save views, and converting it must still work.
    """
    storage = tensor.untyped_storage()
    if storage.data_ptr() in seen or storage.nbytes() != tensor.numel() * tensor.element_size():
        tensor = tensor.clone()
        storage = tensor.untyped_storage()
    seen.add(storage.data_ptr())
    return tensor


def _canonical_header(data: bytes) -> bytes:
    """``data`` with its JSON header re-written with sorted keys and no spaces (the serialiser's key
    order is random), padded with spaces to a multiple of 8 bytes; the tensor bytes are unchanged."""
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data[8 + header_len :]
