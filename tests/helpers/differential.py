"""The fuzzer's differential oracle: what lib_hypernet accepted is what it checked, and what it loaded.

The loader's guarantee is not only "nothing runs" but "torch reads the bytes the checker validated": a
zip that two readers interpret differently, a pickle the scanner parses differently from torch, or a
storage torch fills from somewhere else would all pass a check that only looks for escaping exceptions.
So for each file the fuzzer's mutations made acceptable, :func:`differential` reads it three ways and
compares them:

1. the checker's view: :func:`~lib_hypernet.formats.pickle_scan.scan_pickle` on the pickle(s) the
   checker located (with its own zip layout, or the legacy pickle sequence), each tensor rebuilt from
   the bytes of the zip record / legacy block the checker matched to its storage;
2. torch's view: ``torch.serialization.load(path, weights_only=True)`` on the same file, with the
   numpy globals lib_hypernet allows;
3. the loaded :class:`~lib_hypernet.Hypernetwork`: every weight, which must equal torch's tensor (or,
   for ``.safetensors``, the bytes the header points at) after the decoder's float32 conversion, bit for
   bit.

It returns a description of the first disagreement, or ``None``.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from typing import Any

import torch

from lib_hypernet._compat import safe_globals
from lib_hypernet.formats.fileview import FileView, open_regular
from lib_hypernet.formats.pickle_scan import GlobalRef, Opaque, StorageRef, TensorRef, scan_pickle
from lib_hypernet.formats.pt import _numpy_safe_globals
from lib_hypernet.formats.zip_layout import read_zip_layout
from lib_hypernet.model.module import fix_old_state_dict

STORAGE_DTYPES: dict[str, torch.dtype] = {
    "FloatStorage": torch.float32, "HalfStorage": torch.float16, "BFloat16Storage": torch.bfloat16,
    "DoubleStorage": torch.float64, "IntStorage": torch.int32, "LongStorage": torch.int64,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}
SAFETENSORS_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}
_SAME_SIZE_INT = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


class Mismatch(Exception):
    """Two readings of one accepted file disagree."""


def differential(path: os.PathLike[str] | str, loaded: Any, *, checked: bool) -> str | None:
    """Compare the readings of ``path``: ``checked`` when ``check_torch_file`` accepted it, ``loaded`` the
    Hypernetwork ``load`` returned (``None`` when it refused).  A description of the mismatch, or ``None``."""
    path = os.fspath(path)
    try:
        if path.endswith(".safetensors"):
            if loaded is not None:
                _compare_weights(loaded, _safetensors_tensors(path), "the bytes the .safetensors header points at")
            return None
        try:
            with safe_globals(_numpy_safe_globals()):
                from_torch = torch.serialization.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # lib_hypernet accepted it, so torch must read it
            return f"differential: torch.load(weights_only=True) fails on an accepted file: {type(exc).__name__}: " \
                   f"{str(exc)[:200]}"
        if checked:
            _compare_values(checker_view(path), from_torch, "value")
        if loaded is not None:
            _compare_weights(loaded, _raw_tensors(from_torch), "torch.load's tensor")
    except Mismatch as exc:
        return f"differential: {exc}"
    return None


# ---------------------------------------------------------------------------- the checker's view
def checker_view(path: str) -> Any:
    """The value the checker's scan describes, with each tensor rebuilt from the bytes the checker matched
    to its storage (torch's own layout rules: zip records ``data/<key>``, legacy blocks in key order)."""
    with open_regular(path) as f:
        buf = FileView(f, path)
        if buf[:4] == b"PK\x03\x04":
            layout = read_zip_layout(buf, path)
            pkl = layout.records["data.pkl"]
            result = scan_pickle(bytes(buf[pkl.data_offset:pkl.data_offset + pkl.size]), path, persistent_ids="zip")
            order = layout.records.get("byteorder")
            big = order is not None and bytes(buf[order.data_offset:order.data_offset + order.size]) == b"big"
            blocks = {}
            for key, storage in result.storages.items():
                record = layout.records[f"data/{key}"]
                blocks[key] = bytes(buf[record.data_offset:record.data_offset + storage.nbytes])
            value = result.value
        else:
            big, pos = False, 0
            for _ in range(3):  # magic number, protocol, system info
                pos = scan_pickle(buf, path, pos).end
            main = scan_pickle(buf, path, pos, persistent_ids="legacy")
            keys = scan_pickle(buf, path, main.end)
            blocks, pos = {}, keys.end
            for key in keys.value:
                nbytes = main.storages[key].nbytes
                blocks[key] = bytes(buf[pos + 8:pos + 8 + nbytes])
                pos += 8 + nbytes
            value = main.value
    return _materialise(value, blocks, big, {})


def _storage_tensor(ref: StorageRef, blocks: dict[str, bytes], big: bool) -> torch.Tensor:
    dtype = STORAGE_DTYPES[ref.type_name]
    data = blocks[ref.key]
    if ref.view is not None:  # a legacy view: elements view[1] .. view[1] + view[2] of the root storage
        size = ref.element_size
        data = data[ref.view[1] * size:(ref.view[1] + ref.view[2]) * size]
    if not data:
        return torch.empty(0, dtype=dtype)
    flat = torch.frombuffer(bytearray(data), dtype=dtype)
    if big and ref.element_size > 1:  # torch byte-swaps a file saved on a big-endian machine
        swapped = flat.view(_SAME_SIZE_INT[ref.element_size]).numpy().byteswap()
        flat = torch.from_numpy(swapped).view(dtype)
    return flat


def _materialise(value: Any, blocks: dict[str, bytes], big: bool, done: dict[int, Any]) -> Any:
    """``value`` with every TensorRef replaced by a tensor; a memo-shared container is converted once (the value
    may be a DAG with exponentially many paths)."""
    if isinstance(value, TensorRef):
        known = done.get(id(value))
        if known is None:
            flat = _storage_tensor(value.storage, blocks, big)
            known = done[id(value)] = flat.as_strided(value.size, value.stride, value.offset)
        return known
    if isinstance(value, (dict, list, tuple)):
        known = done.get(id(value))
        if known is None:
            if isinstance(value, dict):
                known = type(value)((k, _materialise(v, blocks, big, done)) for k, v in value.items())
            else:
                known = type(value)(_materialise(v, blocks, big, done) for v in value)
            done[id(value)] = known
        return known
    return value


# ---------------------------------------------------------------------------- comparing
def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype == torch.bool:
        return torch.equal(a, b)
    as_int = _SAME_SIZE_INT[a.element_size()]
    return torch.equal(a.contiguous().view(as_int), b.contiguous().view(as_int))


def _compare_values(checker: Any, torch_value: Any, where: str, seen: set[tuple[int, int]] | None = None) -> None:
    """Walk both values in parallel (once per shared pair: they may be DAGs) and raise :class:`Mismatch`."""
    seen = set() if seen is None else seen
    pair = (id(checker), id(torch_value))
    if pair in seen:
        return
    if isinstance(checker, (dict, list, tuple, torch.Tensor)):
        seen.add(pair)
    if isinstance(checker, torch.Tensor):
        if not isinstance(torch_value, torch.Tensor):
            raise Mismatch(f"{where}: the checker saw a tensor, torch returned a {type(torch_value).__name__}")
        if not _same_bits(checker, torch_value):
            raise Mismatch(f"{where}: torch's tensor ({torch_value.dtype}, {tuple(torch_value.shape)}) differs from "
                           f"the storage bytes the checker validated ({checker.dtype}, {tuple(checker.shape)})")
    elif isinstance(checker, dict):
        # Both readers insert the keys in the order the pickle sets them, so the items pair up in order.
        if not (isinstance(torch_value, Mapping) and len(checker) == len(torch_value)
                and all(_same_key(a, b) for a, b in zip(checker, torch_value))):
            raise Mismatch(f"{where}: the checker saw keys {_keys(checker)}, torch returned {_keys(torch_value)}")
        for (key, item), torch_item in zip(checker.items(), torch_value.values()):
            _compare_values(item, torch_item, f"{where}[{key!r}]"[:200], seen)
    elif isinstance(checker, (list, tuple)):
        if not isinstance(torch_value, (list, tuple)) or len(checker) != len(torch_value):
            raise Mismatch(f"{where}: the checker saw a {type(checker).__name__} of {len(checker)}, torch returned "
                           f"{type(torch_value).__name__} {_size(torch_value)}")
        for i, (a, b) in enumerate(zip(checker, torch_value)):
            _compare_values(a, b, f"{where}[{i}]"[:200], seen)
    elif isinstance(checker, (set, frozenset)):
        if not isinstance(torch_value, (set, frozenset)) or len(checker) != len(torch_value):
            raise Mismatch(f"{where}: sets of different sizes")
    elif isinstance(checker, (GlobalRef, Opaque, StorageRef)):
        pass  # a class or numpy object torch builds for real; the checker keeps only its name
    elif isinstance(checker, float):
        if not (isinstance(torch_value, float) and struct.pack("<d", checker) == struct.pack("<d", torch_value)):
            raise Mismatch(f"{where}: the checker read {checker!r}, torch {_short(torch_value)}")
    elif type(checker) is not type(torch_value) or checker != torch_value:
        raise Mismatch(f"{where}: the checker read {_short(checker)}, torch {_short(torch_value)}")


def _same_key(checker: Any, torch_key: Any) -> bool:
    if isinstance(checker, GlobalRef):  # torch has the class or function itself
        return getattr(torch_key, "__name__", None) == checker.name
    return type(checker) is type(torch_key) and checker == torch_key


def _raw_tensors(raw: Any) -> dict[tuple[int, int, str], torch.Tensor]:
    """``{(width, 0|1, key): tensor}`` of an A1111-layout dict, keys renamed as the decoder renames them."""
    found: dict[tuple[int, int, str], torch.Tensor] = {}
    if not isinstance(raw, Mapping):
        raise Mismatch(f"torch returned a {type(raw).__name__} for a file that loaded")
    for width, pair in raw.items():
        if type(width) is not int:
            continue
        for branch, state in enumerate(pair):
            for key, tensor in fix_old_state_dict(state).items():
                found[(width, branch, key)] = tensor
    return found


def _safetensors_tensors(path: str) -> dict[tuple[int, int, str], torch.Tensor]:
    """The tensors of a .safetensors, read from its header and byte ranges without the safetensors library."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    found: dict[tuple[int, int, str], torch.Tensor] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        width, branch, key = name.split(".", 2)
        start, end = info["data_offsets"]
        dtype = SAFETENSORS_DTYPES[info["dtype"]]
        chunk = body[start:end]
        flat = torch.frombuffer(bytearray(chunk), dtype=dtype) if chunk else torch.empty(0, dtype=dtype)
        found[(int(width), "kv".index(branch), key)] = flat.reshape(info["shape"])
    return found


def _compare_weights(hn: Any, source: dict[tuple[int, int, str], torch.Tensor], what: str) -> None:
    loaded = {
        (width, branch, key): tensor
        for width, modules in hn.layers.items()
        for branch, module in enumerate(modules)
        for key, tensor in module.state_dict().items()
    }
    if set(loaded) != set(source):
        raise Mismatch(f"the loaded weights are {sorted(loaded)[:4]}…, {what}s {sorted(source)[:4]}…")
    for name, tensor in loaded.items():
        expected = source[name].to(torch.float32)
        if tensor.dtype != torch.float32 or not _same_bits(tensor.detach(), expected):
            raise Mismatch(f"weight {name} of the loaded Hypernetwork differs from {what}")


def _keys(value: Any) -> str:
    return _short(list(value)) if isinstance(value, Mapping) else type(value).__name__


def _size(value: Any) -> str:
    return f"of {len(value)}" if isinstance(value, (list, tuple)) else ""


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, (list, dict, tuple)) or len(value) < 8 else f"<{len(value)} items>"
    return text[:80]


__all__ = ["Mismatch", "checker_view", "differential"]
