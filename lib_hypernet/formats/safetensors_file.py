"""The safetensors container, read and written one tensor at a time (checkpoints are gigabytes).

:func:`read_header` is the one header parser (the hypernetwork layout in :mod:`.safetensors_v1` uses it
too): UTF-8 JSON, no duplicate keys, bounded size and depth.  :class:`SafetensorsFile` adds what a
streaming reader needs: every tensor's byte range checked against its dtype and shape, inside the
data area, with no overlaps.  :func:`write_streamed` writes a file from tensors produced one by one.
"""

from __future__ import annotations

import ctypes
import io
import itertools
import json
import math
import os
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import HypernetFileError, HypernetFormatError
from .fileio import atomic_open
from .pickle_scan import check_nesting

MAX_HEADER_BYTES = 100 * 1024 * 1024
_MAX_METADATA_NESTING = 32
DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}
DTYPE_NAMES = {dtype: name for name, dtype in DTYPES.items()}


def refuse(path: str, why: str) -> HypernetFormatError:
    return HypernetFormatError(f"not a valid safetensors file ({why})", path)


class _DuplicateKey(ValueError):
    pass


def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def read_header(path: str) -> tuple[dict[str, Any], int]:
    """The parsed JSON header and where the data area starts; raises :class:`HypernetFormatError`."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < 8:
                raise HypernetFormatError("not a safetensors file: shorter than its 8-byte header length", path)
            (header_len,) = struct.unpack("<Q", f.read(8))
            if header_len > min(size - 8, MAX_HEADER_BYTES):
                raise HypernetFormatError(
                    f"not a valid safetensors file: its header claims {header_len} bytes but the file has {size} "
                    "(truncated download or not a safetensors file)",
                    path,
                )
            raw = f.read(header_len)
    except OSError as exc:
        raise HypernetFileError(f"cannot read the file ({exc.strerror or exc})", path) from exc
    if len(raw) != header_len:
        raise HypernetFormatError("not a valid safetensors file: the file changed while it was read", path)
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=no_duplicates)
    except _DuplicateKey as exc:
        raise refuse(path, f"its header names {str(exc)[:80]!r} twice; readers would disagree on which counts") from exc
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise refuse(path, f"its header is not valid JSON: {type(exc).__name__}: {str(exc)[:120]}") from exc
    if not isinstance(header, dict):
        raise refuse(path, "its header is not a JSON object")
    check_nesting(header, path, _MAX_METADATA_NESTING)
    metadata = header.get("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise refuse(path, "its __metadata__ is not a map of strings")
    for key, info in header.items():
        if key == "__metadata__":
            continue
        if not (isinstance(info, dict) and isinstance(info.get("dtype"), str) and isinstance(info.get("shape"), list)
                and all(type(d) is int and d >= 0 for d in info["shape"])):
            raise refuse(path, f"tensor {key[:80]!r} has no valid dtype and shape")
    return header, 8 + header_len


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    start: int  # absolute file offset of the first byte
    nbytes: int


class SafetensorsFile:
    """The tensors of a safetensors file, read one at a time (never the whole file)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        header, data_start = read_header(self.path)
        self.metadata: dict[str, str] = dict(header.get("__metadata__", {}))
        self.data_start = data_start
        size = os.path.getsize(self.path)
        self.tensors: dict[str, TensorInfo] = {}
        ranges = []
        for name, info in header.items():
            if name == "__metadata__":
                continue
            dtype = DTYPES.get(info["dtype"])
            offsets = info.get("data_offsets")
            if dtype is None:
                raise refuse(self.path, f"tensor {name[:80]!r} has the unsupported dtype {info['dtype'][:20]!r}")
            if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)
                    and 0 <= offsets[0] <= offsets[1] and data_start + offsets[1] <= size):
                raise refuse(self.path, f"tensor {name[:80]!r} has data offsets outside the file")
            nbytes = math.prod(info["shape"]) * torch.empty((), dtype=dtype).element_size()
            if offsets[1] - offsets[0] != nbytes:
                raise refuse(self.path, f"tensor {name[:80]!r} holds {offsets[1] - offsets[0]} bytes, its shape "
                                        f"needs {nbytes}")
            self.tensors[name] = TensorInfo(name, dtype, tuple(info["shape"]), data_start + offsets[0], nbytes)
            ranges.append((offsets[0], offsets[1]))
        ranges.sort()
        for (_, end), (start, _) in itertools.pairwise(ranges):
            if start < end:
                raise refuse(self.path, "two tensors share bytes")

    def read(self, name: str, f: io.BufferedReader | None = None) -> torch.Tensor:
        """One tensor, freshly allocated (pass an open file to avoid reopening it)."""
        info = self.tensors[name]
        if f is None:
            with open(self.path, "rb") as own:
                return self.read(name, own)
        f.seek(info.start)
        data = bytearray(info.nbytes)
        if f.readinto(data) != info.nbytes:
            raise HypernetFormatError("truncated: the file changed while it was read", self.path)
        if not info.nbytes:
            return torch.empty(info.shape, dtype=info.dtype)
        return torch.frombuffer(data, dtype=info.dtype).reshape(info.shape)


Producer = Callable[[], torch.Tensor]


def write_streamed(
    path: str | os.PathLike[str],
    tensors: Iterable[tuple[str, torch.dtype, tuple[int, ...], Producer]],
    metadata: dict[str, str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Write a safetensors file atomically; each tensor is produced (and freed) in turn.

    ``tensors`` gives ``(name, dtype, shape, produce)``; the header is written first from the
    shapes, so memory holds one tensor at a time.
    """
    entries = list(tensors)
    if len({name for name, *_ in entries}) != len(entries):
        raise ValueError("two tensors with one name")
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    for name, dtype, shape, _ in entries:
        nbytes = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
        header[name] = {"dtype": DTYPE_NAMES[dtype], "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    try:
        with atomic_open(path) as f:
            f.write(struct.pack("<Q", len(text)) + text)
            for done, (name, dtype, shape, produce) in enumerate(entries):
                tensor = produce().to(dtype).contiguous()
                if tuple(tensor.shape) != tuple(shape):
                    raise ValueError(f"{name}: produced shape {tuple(tensor.shape)}, declared {shape}")
                f.write(tensor_bytes(tensor))
                if progress is not None:
                    progress(done + 1, len(entries))
    except OSError as exc:
        raise HypernetFileError(f"could not save: {exc.strerror or exc}", path) from exc


def tensor_bytes(tensor: torch.Tensor) -> bytes:
    """The tensor's bytes (little-endian, as safetensors stores them) without going through numpy."""
    nbytes = tensor.numel() * tensor.element_size()
    return ctypes.string_at(tensor.data_ptr(), nbytes) if nbytes else b""


__all__ = ["DTYPES", "SafetensorsFile", "TensorInfo", "read_header", "tensor_bytes", "write_streamed"]
