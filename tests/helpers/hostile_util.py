"""Builders of hostile torch and safetensors files for the hardening tests and the fuzzer.

Everything is made from bytes the tests create themselves (lib_hypernet.create, torch.save) or
from the A1111 fixtures; nothing here is ever loaded without lib_hypernet's checks.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import resource
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from hn_testutil import HELPERS_DIR, REPO_ROOT

import lib_hypernet


# ---------------------------------------------------------------------------- zips
@dataclass
class Entry:
    """One zip entry to write: its name, its bytes and how it claims to be stored."""

    name: bytes
    data: bytes
    method: int = 0
    flags: int = 0x800
    stored: bytes | None = None  # the bytes actually written (default: data, compressed when method == 8)
    declared_size: int | None = None  # the size written in the central directory (default: the real one)
    local_name: bytes | None = None
    external_attr: int = 0  # torch.save writes 0
    made_by: int = 20  # the "version made by" field: high byte = the host system (0 DOS, 3 Unix)
    offset: int = field(default=0, init=False)


def zip_entries(data: bytes) -> list[Entry]:
    """The entries of a (well-formed) zip, in order."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return [Entry(info.filename.encode("utf-8"), archive.read(info)) for info in archive.infolist()]


def _local(entry: Entry) -> bytes:
    stored = entry.stored if entry.stored is not None else (
        _deflate(entry.data) if entry.method == 8 else entry.data
    )
    entry.stored = stored
    name = entry.local_name if entry.local_name is not None else entry.name
    crc = zlib.crc32(entry.data)
    csize = entry.declared_size if entry.declared_size is not None else len(stored)
    size = entry.declared_size if entry.declared_size is not None else len(entry.data)
    return struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, entry.flags, entry.method, 0, 0, crc, csize,
                       size, len(name), 0) + name + stored


def _central(entry: Entry) -> bytes:
    assert entry.stored is not None
    size = entry.declared_size if entry.declared_size is not None else len(entry.data)
    csize = entry.declared_size if entry.declared_size is not None else len(entry.stored)
    return struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", entry.made_by, 20, entry.flags, entry.method, 0, 0,
                       zlib.crc32(entry.data), csize, size, len(entry.name), 0, 0, 0, 0, entry.external_attr,
                       entry.offset) + entry.name


def _deflate(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def _eocd(count: int, cd_size: int, cd_offset: int) -> bytes:
    return struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, count, count, cd_size, cd_offset, 0)


def build_zip(entries: list[Entry], *, trailer: bytes = b"") -> bytes:
    """A zip of ``entries`` (local headers, central directory, end record) plus ``trailer`` after it."""
    out = bytearray()
    for entry in entries:
        entry.offset = len(out)
        out += _local(entry)
    cd_offset = len(out)
    central = b"".join(_central(e) for e in entries)
    out += central + _eocd(len(entries), len(central), cd_offset) + trailer
    return bytes(out)


def two_central_directories(seen_by_python: list[Entry], seen_by_torch: list[Entry]) -> bytes:
    """One file, two central directories: Python's zipfile reads the one just before the end record,
    torch (miniz) the one at the offset the end record states."""
    out = bytearray()
    for entry in seen_by_torch + seen_by_python:
        entry.offset = len(out)
        out += _local(entry)
    torch_cd_offset = len(out)
    torch_cd = b"".join(_central(e) for e in seen_by_torch)
    out += torch_cd
    for entry in seen_by_python:  # Python shifts every offset by the bytes it thinks were prepended
        entry.offset -= len(torch_cd)
        assert entry.offset >= 0
    python_cd = b"".join(_central(e) for e in seen_by_python)
    out += python_cd
    out += _eocd(len(seen_by_python), len(python_cd), torch_cd_offset)
    return bytes(out)


def deflated_bomb_zip(prefix: str, size: int) -> bytes:
    """A torch-like zip whose data.pkl is ``size`` zero bytes, deflated (about size/1000 on disk).

    Streamed, so building a 1 GiB bomb costs a few MB."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(1 << 20)
    parts, crc = [], 0
    for _ in range(size // len(chunk)):
        parts.append(c.compress(chunk))
        crc = zlib.crc32(chunk, crc)
    parts.append(c.flush())
    stored = b"".join(parts)
    name = f"{prefix}/data.pkl".encode()
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0x800, 8, 0, 0, crc, len(stored), size, len(name), 0)
    version = f"{prefix}/version".encode()
    local2 = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0x800, 0, 0, 0, zlib.crc32(b"3\n"), 2, 2,
                         len(version), 0)
    out = local + name + stored
    off2 = len(out)
    out += local2 + version + b"3\n"
    cd_offset = len(out)
    central = struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0x800, 8, 0, 0, crc, len(stored), size,
                          len(name), 0, 0, 0, 0, 0, 0) + name
    central += struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0x800, 0, 0, 0, zlib.crc32(b"3\n"), 2, 2,
                           len(version), 0, 0, 0, 0, 0, off2) + version
    return out + central + _eocd(2, len(central), cd_offset)


# ---------------------------------------------------------------------------- pickles in torch files
def good_raw(name: str = "good", sizes: tuple[int, ...] = (8,), **fields: Any) -> dict[Any, Any]:
    raw = lib_hypernet.create(name, sizes=list(sizes), activation_func="relu", seed=0).state_dict()
    raw.update(fields)
    return raw


def torch_bytes(obj: Any, zip_format: bool) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=zip_format)
    return buf.getvalue()


def data_pkl_name(entries: list[Entry]) -> int:
    return next(i for i, e in enumerate(entries) if e.name.endswith(b"/data.pkl"))


def replace_pickle_value(data: bytes, zip_format: bool, marker: str, replacement: bytes) -> bytes:
    """``data`` (a torch file holding the string ``marker`` once) with that string's BINUNICODE opcode
    replaced by the raw opcodes ``replacement`` (which must push exactly one value)."""
    encoded = marker.encode()
    opcode = b"X" + struct.pack("<I", len(encoded)) + encoded
    if not zip_format:
        assert data.count(opcode) == 1
        return data.replace(opcode, replacement)
    entries = zip_entries(data)
    i = data_pkl_name(entries)
    assert entries[i].data.count(opcode) == 1
    entries[i] = Entry(entries[i].name, entries[i].data.replace(opcode, replacement))
    return build_zip(entries)


def nested_lists(depth: int) -> bytes:
    """Opcodes pushing a list nested ``depth`` deep (EMPTY_LIST × depth, then APPEND × (depth - 1))."""
    return b"]" * depth + b"a" * (depth - 1)


def memo_bomb_pickle(index: int = 0x10000000) -> bytes:
    """A tiny pickle whose LONG_BINPUT index makes C unpicklers allocate index × 8 bytes."""
    return b"\x80\x02]r" + struct.pack("<I", index) + b"."


def legacy_pickle_starts(data: bytes) -> list[int]:
    """Where each of a legacy torch file's five pickles starts (magic number, protocol, system info, the
    object, the storage keys), and where the last one ends (the data blocks follow)."""
    import pickletools

    starts, pos = [], 0
    for _ in range(5):
        starts.append(pos)
        for _op, _arg, at in pickletools.genops(data[pos:]):
            end = at
        pos += end + 1
    return [*starts, pos]


def legacy_prefix() -> bytes:
    """The three small pickles a legacy torch file starts with (magic number, protocol, system info)."""
    data = torch_bytes({}, zip_format=False)
    return data[:legacy_pickle_starts(data)[3]]


# ---------------------------------------------------------------------------- safetensors
def safetensors_bytes(header: dict[str, Any] | str | bytes, body: bytes = b"") -> bytes:
    if isinstance(header, dict):
        header = json.dumps(header)
    if isinstance(header, str):
        header = header.encode("utf-8")
    return struct.pack("<Q", len(header)) + header + body


def safetensors_parts(data: bytes) -> tuple[dict[str, Any], bytes]:
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:]


# ---------------------------------------------------------------------------- subprocess with a memory limit
def run_limited(code: str, *, address_space_mb: int, timeout: float = 300.0) -> dict[str, Any]:
    """Run ``code`` in a fresh Python under ``RLIMIT_AS``; it must print one JSON line last. Returns it,
    plus ``maxrss_mb`` (the child's peak RSS) and ``returncode``."""
    limit = address_space_mb * 1024 * 1024

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    prelude = textwrap.dedent(f"""
        import json, resource, sys
        sys.path[:0] = [{str(REPO_ROOT)!r}, {str(HELPERS_DIR)!r}]
        import torch
        torch.set_num_threads(1)
        import lib_hypernet
        BASE_MB = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    """)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, preexec_fn=limit_memory, env=env, cwd=REPO_ROOT)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise AssertionError(f"child failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def assert_refused(
    path: Path,
    *keywords: str,
    calls: tuple[Any, ...] = (lib_hypernet.load,),
    error: type[lib_hypernet.HypernetError] = lib_hypernet.HypernetError,
) -> lib_hypernet.HypernetError:
    """Each of ``calls`` refuses ``path`` with ``error`` naming the file and one of ``keywords``; returns the last."""
    err = None
    for call in calls:
        with pytest.raises(error) as info:
            call(path)
        err = info.value
        assert err.path == str(path)
        text = str(err).lower()
        assert any(k.lower() in text for k in keywords), f"none of {keywords} in {err}"
    assert err is not None
    return err


# ---------------------------------------------------------------------------- crafted legacy files
class LegacyStorage:
    """A storage reference written as ``persistent_id`` exactly as given (legacy: a 6-tuple)."""

    def __init__(self, dtype_name: str, key: str, numel: int, view: tuple[str, int, int] | None = None) -> None:
        self.pid = ("storage", getattr(torch, dtype_name), key, "cpu", numel, view)


class LegacyTensor:
    """A tensor pickled as ``_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict()[, metadata])``."""

    def __init__(self, storage: LegacyStorage, offset: int, size: tuple[int, ...], stride: tuple[int, ...],
                 metadata: Any = "absent") -> None:
        self.args: tuple[Any, ...] = (storage, offset, size, stride, False, OrderedDict())
        if metadata != "absent":
            self.args += (metadata,)

    def __reduce__(self) -> tuple[Any, ...]:
        return (torch._utils._rebuild_tensor_v2, self.args)


def legacy_file(obj: Any, blocks: dict[str, tuple[int, bytes]]) -> bytes:
    """A legacy-format torch file: the three header pickles, ``obj`` (whose storages are written as the given
    persistent ids), the list of storage keys, then each key's data block (``blocks[key] = (numel, bytes)``)."""

    class _Pickler(pickle.Pickler):
        def persistent_id(self, obj: Any) -> Any:
            return obj.pid if isinstance(obj, LegacyStorage) else None

    main = io.BytesIO()
    _Pickler(main, protocol=2).dump(obj)
    out = legacy_prefix() + main.getvalue() + pickle.dumps(list(blocks), protocol=2)
    for numel, data in blocks.values():
        out += struct.pack("<q", numel) + data
    return out


def legacy_hn(raw: dict[Any, Any] | None = None) -> tuple[dict[Any, Any], dict[str, tuple[int, bytes]]]:
    """``raw`` (default ``good_raw()``) with every tensor as a :class:`LegacyTensor` on a storage of its own
    (keys "0", "1", …), and the data blocks: ``legacy_file(*legacy_hn())`` is a loadable legacy file."""
    raw = good_raw() if raw is None else raw
    blocks: dict[str, tuple[int, bytes]] = {}

    def convert(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            key = str(len(blocks))
            t = value.detach().contiguous()
            blocks[key] = (t.numel(), t.numpy().tobytes())
            name = {torch.float32: "FloatStorage", torch.float64: "DoubleStorage", torch.float16: "HalfStorage"}[t.dtype]
            return LegacyTensor(LegacyStorage(name, key, t.numel()), 0, tuple(t.shape), tuple(t.stride()))
        if isinstance(value, dict):
            return type(value)((k, convert(v)) for k, v in value.items())
        if isinstance(value, (tuple, list)):
            return type(value)(convert(v) for v in value)
        return value

    return convert(raw), blocks


# ---------------------------------------------------------------------------- raw opcodes (protocol 2)
def op_global(module: str, name: str) -> bytes:
    """GLOBAL: pushes ``module.name`` (protocol 2's only way to name a global)."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def op_str(text: str) -> bytes:
    encoded = text.encode()
    return b"X" + struct.pack("<I", len(encoded)) + encoded


def op_put(index: int) -> bytes:
    return b"r" + struct.pack("<I", index)  # LONG_BINPUT


def op_get(index: int) -> bytes:
    return b"j" + struct.pack("<I", index)  # LONG_BINGET


def op_call(module: str, name: str, *args: bytes) -> bytes:
    """``module.name(*args)`` as GLOBAL, MARK, the args' opcodes, TUPLE, REDUCE."""
    return op_global(module, name) + b"(" + b"".join(args) + b"tR"


def free_memo_index(data: bytes, zip_format: bool) -> int:
    """A memo index above every one the pickle(s) of torch file ``data`` use (for opcodes spliced into it)."""
    import pickletools

    if zip_format:
        entries = zip_entries(data)
        pickles = [entries[data_pkl_name(entries)].data]
    else:
        pickles, pos = [], 0
        for _ in range(5):
            for _op, _arg, at in pickletools.genops(data[pos:]):
                end = at
            pickles.append(data[pos:pos + end + 1])
            pos += end + 1
    top = 0
    for pkl in pickles:
        for op, arg, _at in pickletools.genops(pkl):
            if op.name in ("BINPUT", "LONG_BINPUT"):
                top = max(top, arg + 1)
    return top


def memo_doubling(levels: int, base: int, kind: str) -> bytes:
    """Opcodes pushing ONE value, a "billion laughs" DAG built through the memo (indices from ``base``).

    ``tuple``: T(i+1) = (T(i), T(i)), ``levels`` deep: 2**levels leaves in the tree a walker sees.
    ``list`` / ``dict``: L(i+1) = [L(i), L(i)] / {"a": L(i), "b": L(i)}; every level stays on the stack, so the value
    is the list [L(1), …, L(levels)] (depth ``levels`` + 1, about 2**(levels + 1) leaves).
    """
    if kind == "tuple":
        out = b"K\x00" + op_put(base)
        for i in range(levels):
            out += op_get(base + i) + b"\x86" + op_put(base + i + 1)
        return out
    opening, closing = (b"](", b"e") if kind == "list" else (b"}(", b"u")

    def pair(item: bytes) -> bytes:
        return opening + (item + item if kind == "list" else op_str("a") + item + op_str("b") + item) + closing

    out = b"](" + pair(b"K\x00") + op_put(base)
    for i in range(1, levels):
        out += pair(op_get(base + i - 1)) + op_put(base + i)
    return out + b"e"


def hn_with_value(zip_format: bool, make: Any, field: str = "optional_info") -> bytes:
    """A good hypernetwork file whose ``field`` holds the value ``make(free_memo_index)`` pushes (raw opcodes)."""
    data = torch_bytes(good_raw(**{field: "REPLACE_ME"}), zip_format)
    return replace_pickle_value(data, zip_format, "REPLACE_ME", make(free_memo_index(data, zip_format)))


def zip_with_pickle(pkl: bytes) -> bytes:
    """A good hypernetwork zip whose data.pkl is replaced by ``pkl`` (the storages stay)."""
    entries = zip_entries(torch_bytes(good_raw(), zip_format=True))
    i = data_pkl_name(entries)
    entries[i] = Entry(entries[i].name, pkl)
    return build_zip(entries)


def op_storage(key: str, numel: int, type_name: str = "FloatStorage") -> bytes:
    """BINPERSID of the zip storage reference ('storage', torch.<type_name>, key, 'cpu', numel)."""
    return (b"(" + op_str("storage") + op_global("torch", type_name) + op_str(key) + op_str("cpu")
            + b"J" + struct.pack("<i", numel) + b"tQ")


def op_tensor(key: str, numel: int) -> bytes:
    """A 1-d float32 tensor over all of storage ``key`` (``_rebuild_tensor_v2`` as torch.save writes it)."""
    return op_call("torch._utils", "_rebuild_tensor_v2", op_storage(key, numel), b"K\x00",
                   b"(J" + struct.pack("<i", numel) + b"t", b"(K\x01t", b"\x89", op_call("collections", "OrderedDict"))
