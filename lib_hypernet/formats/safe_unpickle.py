"""Check a PyTorch file for anything that could run code, lie about what it holds, or exhaust memory.

:func:`inspect_open_file` checks exactly the bytes torch will unpickle, with nothing executed:

* zip files (``torch.save``'s default): the container is parsed strictly
  (:mod:`.zip_layout`: one interpretation for every reader, stored entries only, sizes inside the
  file), then ``<prefix>/data.pkl`` is scanned (:mod:`.pickle_scan`: allow-listed globals only, bounded
  memo, lengths, integers and nesting), and every storage it references must be a record of exactly the
  size torch will allocate for it;
* legacy files (``_use_new_zipfile_serialization=False``): the five pickles torch reads in turn (magic
  number, protocol, system info, the object, the storage keys) are scanned, and the raw storages after
  them must be exactly the ones referenced, with the declared sizes, ending at the end of the file; a
  file that also parses as a tar archive (torch would read it as its oldest tar format) is refused.

A file naming a global outside the allow-list raises :class:`UnsafeFileError`; anything else wrong
raises :class:`HypernetFormatError`.  Checking costs at most a few hundred MB whatever the file holds
(the file is read piecewise, never mapped or read whole) and does not depend on :mod:`pickle`'s unpicklers, which other code may
have replaced.  :mod:`.pt` then hands the same open file to the original ``torch.serialization.load``
with ``weights_only=True``, so torch's own restrictions apply on top.
"""

from __future__ import annotations

import os
import re
import struct
import tarfile
from dataclasses import dataclass
from typing import Any, BinaryIO

from ..errors import HypernetError, HypernetFormatError, UnsafeFileError
from .fileview import Buffer, FileView, open_regular
from .pickle_scan import ALLOWED_GLOBALS, ScanResult, list_globals, scan_pickle, tensor_elements
from .zip_layout import ZipLayout, read_zip_layout

__all__ = [
    "A1111_GLOBALS",
    "ALLOWED_GLOBALS",
    "TorchFileInfo",
    "a1111_zip_entries_rejected",
    "check_torch_file",
    "inspect_open_file",
    "is_zip_file",
]

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

# What A1111 1.10.1's restricted loader (modules/safe.py) allows, for telling users whether A1111 loads a file.
A1111_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("collections", "OrderedDict"),
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch._utils", "_rebuild_parameter"),
        ("torch._utils", "_rebuild_device_tensor_from_numpy"),
        ("torch", "float32"),
        ("torch.nn.modules.container", "ParameterDict"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy", "dtype"),
        ("numpy", "ndarray"),
        ("_codecs", "encode"),
        ("__builtin__", "set"),
    }
    | {("torch", f"{kind}Storage") for kind in ("Float", "Half", "Int", "Long", "Double", "Byte", "BFloat16")}
)
# A1111 1.10.1's restricted loader accepts only these zip entry names.
A1111_ZIP_NAME_RE = re.compile(r"^([^/]+)/((data/\d+)|version|byteorder|.data/serialization_id|(data\.pkl))$")


@dataclass(frozen=True)
class TorchFileInfo:
    """The verdict on a checked file: its container, and the (inert) value its pickle describes."""

    container: str
    value: Any


def is_zip_file(path: str | os.PathLike[str]) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def check_torch_file(path: str | os.PathLike[str]) -> str:
    """Verify a torch file without executing anything; returns ``"zip"`` or ``"legacy"``.

    Raises :class:`UnsafeFileError` for a forbidden global and :class:`HypernetFormatError`
    (or :class:`HypernetFileError` when it cannot be opened) for anything else wrong.
    """
    path = os.fspath(path)
    with open_regular(path) as f:
        return inspect_open_file(f, path).container


def inspect_open_file(f: BinaryIO, path: str) -> TorchFileInfo:
    """Check the open torch file ``f`` (read by random access, never all at once) and describe it."""
    buf = FileView(f, path)
    if len(buf) == 0:
        raise HypernetFormatError("the file is empty (an interrupted download or copy?)", path)
    if buf[:4] == b"PK\x03\x04":
        return _inspect_zip(buf, path)
    return _inspect_legacy(buf, path)


# The records torch.save writes besides ``data/<key>`` (storages); any other name is refused.  A zip with a
# ``constants.pkl`` is a TorchScript archive to torch.load, which before torch 2.6 handed it to torch.jit.load
# even with weights_only=True (CVE-2025-32434): code in the file would run, whatever data.pkl says.
TORCH_SAVE_RECORDS = frozenset(
    {"data.pkl", "version", ".data/version", "byteorder", ".format_version", ".storage_alignment",
     ".data/serialization_id"}
)
_STORAGE_RECORD_RE = re.compile(r"data/[A-Za-z0-9]{1,64}\Z")


def _inspect_zip(buf: Buffer, path: str) -> TorchFileInfo:
    layout = read_zip_layout(buf, path)
    for name in layout.records:
        if name == "constants.pkl":
            raise UnsafeFileError(
                f"refused to load: the zip holds {layout.prefix}/{name[:60]}, so torch reads it as a TorchScript "
                "archive, whose code runs when loaded (torch before 2.6 did so even with weights_only=True). "
                "Nothing from the file was executed.",
                path,
            )
        if name not in TORCH_SAVE_RECORDS and not _STORAGE_RECORD_RE.match(name):
            raise HypernetFormatError(
                f"refused: the zip holds {layout.prefix}/{name[:60]}, a record torch.save never writes", path
            )
    data = _record(buf, layout, "data.pkl", path)
    result = scan_pickle(data, path, persistent_ids="zip")
    if result.end != len(data):
        raise HypernetFormatError("refused: bytes after the end of data.pkl's pickle (torch.save writes none)", path)
    for key, storage in result.storages.items():
        record = layout.records.get(f"data/{key}")
        if record is None:
            raise HypernetFormatError(
                f"not a readable PyTorch file (truncated or corrupt: storage {key} is missing from the zip)", path
            )
        if record.size != storage.nbytes:
            raise HypernetFormatError(
                f"refused: storage {key} declares {storage.nbytes} bytes but its record holds {record.size} "
                "(torch would read past it or allocate for nothing)",
                path,
            )
    check_materialised_size(result, path)
    byteorder = layout.records.get("byteorder")
    if byteorder is not None and _record(buf, layout, "byteorder", path) not in (b"little", b"big"):
        raise HypernetFormatError("not a readable PyTorch file (its byteorder record is neither little nor big)", path)
    return TorchFileInfo("zip", result.value)


def _record(buf: Buffer, layout: ZipLayout, name: str, path: str) -> bytes:
    entry = layout.records.get(name)
    if entry is None:
        raise HypernetFormatError(
            f"not a PyTorch file: the zip has no '{layout.prefix}/{name}' (is it another kind of zip?)", path
        )
    return bytes(buf[entry.data_offset:entry.data_offset + entry.size])


def _inspect_legacy(buf: Buffer, path: str) -> TorchFileInfo:
    if len(buf) >= tarfile.BLOCKSIZE:
        try:
            tarfile.TarInfo.frombuf(bytes(buf[:tarfile.BLOCKSIZE]), "utf-8", "surrogateescape")
        except tarfile.TarError:
            pass
        else:
            raise HypernetFormatError(
                "refused: the file is also a tar archive, which torch would read in its oldest format instead "
                "of what was checked",
                path,
            )
    magic = scan_pickle(buf, path)
    if type(magic.value) is not int or magic.value != LEGACY_MAGIC:
        raise HypernetFormatError(
            "not a readable PyTorch file (neither a zip nor torch's legacy format; another kind of file renamed?)",
            path,
        )
    protocol = scan_pickle(buf, path, magic.end)
    if type(protocol.value) is not int or protocol.value != LEGACY_PROTOCOL:
        raise HypernetFormatError(f"not a readable PyTorch file (legacy protocol {protocol.value!r}, not 1001)", path)
    sys_info = scan_pickle(buf, path, protocol.end)
    if not isinstance(sys_info.value, dict):
        raise HypernetFormatError("not a readable PyTorch file (its system info is not a dict)", path)
    main = scan_pickle(buf, path, sys_info.end, persistent_ids="legacy")
    keys = scan_pickle(buf, path, main.end)
    _check_legacy_storages(buf, path, main, keys)
    check_materialised_size(main, path)
    return TorchFileInfo("legacy", main.value)


LOADED_ELEMENT_SIZE = 4
"""Every weight is decoded into float32 (4 bytes an element), one tensor at a time."""
MATERIALISED_SLACK = 16 << 20


def check_materialised_size(result: ScanResult, path: str) -> None:
    """Refuse a file whose tensors, decoded, would take far more memory than its storages hold.

    Views share their storage when torch loads them, but each tensor becomes its own float32 copy
    when it is decoded: thousands of views of one float16 storage turn a few MB into gigabytes.
    A tensor reached twice through the pickle's memo counts twice (it is decoded twice).
    Files torch.save writes have one storage per tensor, so decoding at most doubles them (float16
    → float32); the bound allows that, plus some sharing (tied weights), and nothing more.
    """
    stored = sum(s.nbytes for s in result.storages.values())
    decoded = tensor_elements(result.value) * LOADED_ELEMENT_SIZE
    if decoded > 2 * stored + MATERIALISED_SLACK:
        raise HypernetFormatError(
            f"refused: its tensors would take {decoded / 2**20:,.0f} MiB once decoded from {stored / 2**20:,.1f} MiB "
            "of stored data (many tensors viewing the same bytes; torch.save never writes that)",
            path,
        )


def _check_legacy_storages(buf: Buffer, path: str, main: ScanResult, keys: ScanResult) -> None:
    names = keys.value
    if not (isinstance(names, list) and all(isinstance(k, str) for k in names) and len(set(names)) == len(names)):
        raise HypernetFormatError("not a readable PyTorch file (its storage key list is malformed)", path)
    if set(names) != set(main.storages):
        raise HypernetFormatError(
            "not a readable PyTorch file (truncated or corrupt: the stored tensors do not match the ones referenced)",
            path,
        )
    pos = keys.end
    for key in names:
        storage = main.storages[key]
        if pos + 8 > len(buf):
            raise HypernetFormatError("not a readable PyTorch file (truncated: a tensor's data is missing)", path)
        (numel,) = struct.unpack("<q", buf[pos:pos + 8])
        if numel != storage.numel:
            raise HypernetFormatError(
                f"refused: storage {key} holds {numel} elements but the pickle declares {storage.numel}", path
            )
        pos += 8 + storage.nbytes
        if pos > len(buf):
            raise HypernetFormatError("not a readable PyTorch file (truncated: a tensor's data is cut short)", path)
    if pos != len(buf):
        raise HypernetFormatError(
            f"refused: {len(buf) - pos} bytes after the last tensor (torch.save writes none)", path
        )


def a1111_zip_entries_rejected(path: str | os.PathLike[str]) -> list[str]:
    """Why A1111 1.10.1's restricted loader would refuse this file (empty when it loads it).

    Lists zip entries outside A1111's allowed names (the ``.format_version`` and
    ``.storage_alignment`` that torch >= 2.x writes) and pickle globals outside A1111's
    allow-list (as ``"global module.name"``).  Never raises.
    """
    path = os.fspath(path)
    try:
        with open_regular(path) as f:
            buf = FileView(f, path)
            if buf[:4] == b"PK\x03\x04":
                layout = read_zip_layout(buf, path)
                rejected = [e.name for e in layout.records.values() if not A1111_ZIP_NAME_RE.match(e.name)]
                found, _ = list_globals(_record(buf, layout, "data.pkl", path), path)
            else:
                rejected, found, pos = [], [], 0
                for _ in range(5):
                    names, pos = list_globals(buf, path, pos)
                    found.extend(names)
    except HypernetError as exc:
        return [exc.reason]
    except (OSError, ValueError) as exc:
        return [f"unreadable ({exc})"]
    seen: set[tuple[str, str]] = set()
    for name in found:
        if name not in A1111_GLOBALS and name not in seen:
            seen.add(name)
            rejected.append(f"global {name[0]}.{name[1]}")
    return rejected

