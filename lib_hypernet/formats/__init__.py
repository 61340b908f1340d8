"""On-disk formats: one module per format, chosen by file suffix."""

from __future__ import annotations

import os
from typing import Any

from ..errors import HypernetFormatError
from .pt import read_torch_file, write_torch_file
from .safetensors_v1 import read_safetensors, write_safetensors

SUFFIXES = (".pt", ".safetensors")


def format_of(path: str | os.PathLike[str]) -> str:
    """``"pt"`` or ``"safetensors"`` from the file suffix (case-insensitive)."""
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix == ".pt":
        return "pt"
    if suffix == ".safetensors":
        return "safetensors"
    raise HypernetFormatError(f"unknown hypernetwork file type {suffix!r}: use .pt or .safetensors", path)


def read_raw(path: str | os.PathLike[str]) -> dict[Any, Any]:
    """The file's contents as an A1111-layout dict (``{width: (sd_k, sd_v), field: value}``)."""
    if format_of(path) == "safetensors":
        return read_safetensors(path)
    raw = read_torch_file(path)
    if not isinstance(raw, dict):
        raise HypernetFormatError(
            f"contains a {type(raw).__name__}, not a hypernetwork dict (is it an embedding, a LoRA or a checkpoint?)",
            path,
        )
    return raw


def write_raw(path: str | os.PathLike[str], raw: dict[Any, Any], *, source_sha256: str | None = None) -> None:
    """Write an A1111-layout dict in the format the suffix names (atomically)."""
    if format_of(path) == "safetensors":
        write_safetensors(path, raw, source_sha256=source_sha256)
    else:
        write_torch_file(path, raw)


__all__ = ["SUFFIXES", "format_of", "read_raw", "read_torch_file", "write_raw", "write_torch_file"]
