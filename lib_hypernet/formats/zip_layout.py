"""Strict reading of a ``torch.save`` zip container: exactly one interpretation, or a refusal.

Python's :mod:`zipfile` and torch's reader (miniz) disagree on malformed zips: where the central
directory is (Python trusts the end record's position, miniz its stated offset), which of two names
differing only in case a lookup finds (miniz compares case-insensitively), how names are decoded.  A
check that reads one interpretation and a loader that reads another would vouch for bytes that are
never loaded.  :func:`read_zip_layout` therefore accepts only zips on which every reader must agree:

* the end record is the last 22 bytes (no comment, nothing after it), with an optional zip64 end
  record and locator directly before it whose values equal the 32-bit ones (or replace saturated ones);
* the central directory ends exactly where the end record (or zip64 record) starts, and holds exactly
  the number of entries the end record states;
* every entry is stored (method 0: ``torch.save`` never compresses, so no decompression bomb is
  possible), unencrypted, with equal compressed and uncompressed sizes that fit inside the file, a
  local header whose name and method equal the central one, a CRC that matches its bytes, and a data
  region that overlaps no other entry's;
* every entry is a plain file to every reader: no DOS directory or volume-label attribute bit
  (miniz treats an entry with bit 0x10 as a directory and returns an *uninitialised* buffer for
  it instead of its bytes) and, when made on Unix, no file type other than a regular file;
* names are printable ASCII (or flagged and valid UTF-8), unique even ignoring case, and all share
  the first entry's ``<prefix>/`` (the record prefix torch uses).

Nothing is decompressed or allocated beyond small header structures; the caller passes a
:class:`~.fileview.FileView` of the file and CRCs are computed in chunks, so checking costs little
memory whatever the file.
"""

from __future__ import annotations

import itertools
import re
import struct
import zlib
from dataclasses import dataclass

from ..errors import HypernetFormatError
from .fileview import Buffer

_EOCD = struct.Struct("<4sHHHHIIH")  # end of central directory record (22 bytes)
_ZIP64_LOCATOR = struct.Struct("<4sIQI")  # 20 bytes
_ZIP64_EOCD = struct.Struct("<4sQHHIIQQQQ")  # 56 bytes
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")  # 46 bytes
_LOCAL = struct.Struct("<4sHHHHHIIIHH")  # 30 bytes

MAX_ENTRIES = 100_000
_CRC_CHUNK = 16 << 20
# Flag bits torch.save (miniz) sets: 3 (sizes in a data descriptor) and 11 (UTF-8 names).
_ALLOWED_FLAGS = (1 << 3) | (1 << 11)
# DOS attribute bits miniz (or another reader) could take as "not a file": directory, volume label.
_DOS_NOT_A_FILE = 0x10 | 0x08
_UNIX_MADE_BY = 3
_UNIX_REGULAR_FILE = 0o100000
_SATURATED32 = 0xFFFFFFFF
_SATURATED16 = 0xFFFF
_RECORD_NAME_RE = re.compile(r"[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*\Z")
_PREFIX_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")


@dataclass(frozen=True)
class ZipEntry:
    """One stored record: its full name and where its bytes are in the file."""

    name: str
    data_offset: int
    size: int


@dataclass(frozen=True)
class ZipLayout:
    """The one interpretation of a checked zip: the record prefix and the records by name (prefix removed)."""

    prefix: str
    records: dict[str, ZipEntry]


def _refuse(path: str, why: str) -> HypernetFormatError:
    return HypernetFormatError(
        f"refused: not a zip that torch and a checker are bound to read the same way ({why}). "
        "torch.save never writes such a file; it is corrupt or was crafted. Download it again from its source",
        path,
    )


def _corrupt(path: str, why: str) -> HypernetFormatError:
    return HypernetFormatError(
        f"not a readable PyTorch file (truncated or corrupt zip: {why}); download it again", path
    )


def read_zip_layout(buf: Buffer, path: str) -> ZipLayout:
    """Validate the zip in ``buf`` (the whole file) and return its records, or raise :class:`HypernetFormatError`."""
    size = len(buf)
    if size < _EOCD.size + _LOCAL.size:
        raise _corrupt(path, f"only {size} bytes")
    eocd_at = size - _EOCD.size
    sig, disk, cd_disk, n_this, n_total, cd_size, cd_off, comment_len = _EOCD.unpack(buf[eocd_at:eocd_at + _EOCD.size])
    if sig != b"PK\x05\x06":
        tail = bytes(buf[max(0, size - 65_557):])
        if b"PK\x05\x06" in tail:
            raise _refuse(path, "data or a comment after the end record")
        raise _corrupt(path, "no end record; the file is cut short")
    if comment_len != 0:
        raise _refuse(path, "a zip comment")
    cd_end = eocd_at
    loc_at = eocd_at - _ZIP64_LOCATOR.size
    if loc_at >= 0 and bytes(buf[loc_at:loc_at + 4]) == b"PK\x06\x07":
        _, z64_disk, z64_off, n_disks = _ZIP64_LOCATOR.unpack(buf[loc_at:loc_at + _ZIP64_LOCATOR.size])
        z64_at = loc_at - _ZIP64_EOCD.size
        if z64_disk != 0 or n_disks not in (0, 1) or z64_off != z64_at or z64_at < 0:
            raise _refuse(path, "the zip64 end record is not directly before its locator")
        (z_sig, rec_size, _made, _need, z_disk, z_cd_disk, z_this, z_total, z_cd_size, z_cd_off) = (
            _ZIP64_EOCD.unpack(buf[z64_at:z64_at + _ZIP64_EOCD.size])
        )
        if z_sig != b"PK\x06\x06" or rec_size != _ZIP64_EOCD.size - 12:
            raise _refuse(path, "a malformed zip64 end record")
        for small, big, saturated in ((disk, z_disk, _SATURATED16), (cd_disk, z_cd_disk, _SATURATED16),
                                      (n_this, z_this, _SATURATED16), (n_total, z_total, _SATURATED16),
                                      (cd_size, z_cd_size, _SATURATED32), (cd_off, z_cd_off, _SATURATED32)):
            if small != big and small != saturated:
                raise _refuse(path, "the end record and the zip64 end record disagree")
        disk, cd_disk, n_this, n_total, cd_size, cd_off = z_disk, z_cd_disk, z_this, z_total, z_cd_size, z_cd_off
        cd_end = z64_at
    if disk != 0 or cd_disk != 0 or n_this != n_total:
        raise _refuse(path, "a multi-disk zip")
    if n_total < 1 or n_total > MAX_ENTRIES:
        raise _refuse(path, f"{n_total} entries")
    if cd_off + cd_size != cd_end:
        raise _refuse(path, "the central directory is not where the end record says it is")

    entries = _read_central_directory(buf, path, cd_off, cd_end, n_total)
    return _layout(buf, entries, path, cd_off)


@dataclass
class _Central:
    name: str
    raw_name: bytes
    flags: int
    crc: int
    size: int
    header_offset: int


def _read_central_directory(buf: Buffer, path: str, pos: int, end: int, count: int) -> list[_Central]:
    entries: list[_Central] = []
    for _ in range(count):
        if pos + _CENTRAL.size > end:
            raise _refuse(path, "the central directory is shorter than its entry count")
        (sig, made_by, _need, flags, method, _time, _date, crc, csize, usize, nlen, elen, clen, disk, _iattr,
         external_attr, offset) = _CENTRAL.unpack(buf[pos:pos + _CENTRAL.size])
        if sig != b"PK\x01\x02":
            raise _refuse(path, "a damaged central directory entry")
        name_at = pos + _CENTRAL.size
        pos = name_at + nlen + elen + clen
        if pos > end:
            raise _refuse(path, "a central directory entry runs past the directory")
        raw_name = bytes(buf[name_at:name_at + nlen])
        extra = bytes(buf[name_at + nlen:name_at + nlen + elen])
        if flags & ~_ALLOWED_FLAGS:
            raise _refuse(path, f"entry flags {flags:#x} (encrypted or unusual entries)")
        if method != 0:
            raise _refuse(path, f"entry {raw_name!r} is compressed (method {method}); torch.save only stores")
        if clen or disk:
            raise _refuse(path, "an entry comment or disk number")
        _check_attributes(raw_name, made_by, external_attr, path)
        usize, csize, offset = _zip64_values(extra, usize, csize, offset, path)
        if max(usize, csize) > end:
            raise _corrupt(path, f"entry {raw_name[:60]!r} declares {max(usize, csize)} bytes, more than the file holds")
        if csize != usize:
            raise _refuse(path, f"entry {raw_name!r} has different stored and declared sizes")
        entries.append(_Central(_decode_name(raw_name, flags, path), raw_name, flags, crc, usize, offset))
    if pos != end:
        raise _refuse(path, "bytes between the central directory and the end record")
    return entries


def _check_attributes(raw_name: bytes, made_by: int, external_attr: int, path: str) -> None:
    """Refuse an entry that some reader would not read as a plain file (torch.save writes 0 here)."""
    if external_attr & _DOS_NOT_A_FILE:
        raise _refuse(path, f"entry {raw_name[:60]!r} is marked as a directory (attributes {external_attr:#x})")
    file_type = (external_attr >> 16) & 0o170000
    if made_by >> 8 == _UNIX_MADE_BY and file_type not in (0, _UNIX_REGULAR_FILE):
        raise _refuse(path, f"entry {raw_name[:60]!r} is not a regular file (Unix mode {external_attr >> 16:#o})")


def _zip64_values(extra: bytes, usize: int, csize: int, offset: int, path: str) -> tuple[int, int, int]:
    """Replace saturated sizes/offset from the zip64 extra field, in the order the format defines."""
    wanted = [v == _SATURATED32 for v in (usize, csize, offset)]
    if not any(wanted):
        return usize, csize, offset
    at = 0
    while at + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, at)
        body = extra[at + 4:at + 4 + length]
        if len(body) != length:
            break
        if tag == 1:
            values = [usize, csize, offset]
            cursor = 0
            for i, need in enumerate(wanted):
                if need:
                    if cursor + 8 > length:
                        raise _refuse(path, "a short zip64 extra field")
                    values[i] = struct.unpack_from("<Q", body, cursor)[0]
                    cursor += 8
            return values[0], values[1], values[2]
        at += 4 + length
    raise _refuse(path, "saturated sizes without a zip64 extra field")


def _decode_name(raw: bytes, flags: int, path: str) -> str:
    if raw.isascii():
        name = raw.decode("ascii")
    elif flags & (1 << 11):
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _refuse(path, f"an entry name flagged UTF-8 that is not ({raw[:40]!r})") from exc
    else:
        raise _refuse(path, f"a non-ASCII entry name without the UTF-8 flag ({raw[:40]!r})")
    if _PREFIX_BAD_CHARS.search(name):
        raise _refuse(path, f"control characters or backslashes in entry name {name[:60]!r}")
    return name


def _layout(buf: Buffer, entries: list[_Central], path: str, cd_off: int) -> ZipLayout:
    first = entries[0].name
    if "/" not in first or first.startswith("/"):
        raise _refuse(path, f"the first entry {first[:60]!r} is not inside a '<name>/' folder")
    prefix = first.split("/", 1)[0] + "/"
    seen: set[str] = set()
    records: dict[str, ZipEntry] = {}
    regions: list[tuple[int, int]] = []
    for entry in entries:
        folded = entry.name.casefold()
        if folded in seen:
            raise _refuse(path, f"two entries named {entry.name[:60]!r} (ignoring case)")
        seen.add(folded)
        if not entry.name.startswith(prefix):
            raise _refuse(path, f"entry {entry.name[:60]!r} is outside {prefix!r}")
        record = entry.name[len(prefix):]
        if not _RECORD_NAME_RE.match(record) or any(part in (".", "..") for part in record.split("/")):
            raise _refuse(path, f"unexpected entry name {entry.name[:60]!r}")
        data_offset = _check_local(buf, entry, path, cd_off)
        regions.append((entry.header_offset, data_offset + entry.size))
        records[record] = ZipEntry(entry.name, data_offset, entry.size)
    regions.sort()
    for (_, end), (start, _) in itertools.pairwise(regions):
        if start < end:
            raise _refuse(path, "entries that overlap")
    return ZipLayout(prefix.rstrip("/"), records)


def _check_local(buf: Buffer, entry: _Central, path: str, cd_off: int) -> int:
    at = entry.header_offset
    if at + _LOCAL.size > cd_off:
        raise _refuse(path, f"entry {entry.name[:60]!r} starts outside the file's data area")
    sig, _need, flags, method, _time, _date, crc, csize, usize, nlen, elen = _LOCAL.unpack(buf[at:at + _LOCAL.size])
    if sig != b"PK\x03\x04":
        raise _refuse(path, f"no local header for entry {entry.name[:60]!r}")
    if bytes(buf[at + _LOCAL.size:at + _LOCAL.size + nlen]) != entry.raw_name:
        raise _refuse(path, f"entry {entry.name[:60]!r} has another name in its local header")
    if method != 0 or flags != entry.flags:
        raise _refuse(path, f"entry {entry.name[:60]!r} has another method or flags in its local header")
    if not flags & (1 << 3):
        for local, central in ((crc, entry.crc), (csize, entry.size), (usize, entry.size)):
            if local != central and local != _SATURATED32:
                raise _refuse(path, f"entry {entry.name[:60]!r} has other sizes in its local header")
    elif (crc, csize, usize) != (0, 0, 0) and (crc, csize, usize) != (entry.crc, entry.size, entry.size):
        raise _refuse(path, f"entry {entry.name[:60]!r} has other sizes in its local header")
    data_offset = at + _LOCAL.size + nlen + elen
    if data_offset + entry.size > cd_off:
        raise _corrupt(path, f"entry {entry.name[:60]!r} declares {entry.size} bytes, more than the file holds")
    crc_value = 0
    for chunk_at in range(data_offset, data_offset + entry.size, _CRC_CHUNK):
        crc_value = zlib.crc32(buf[chunk_at:min(chunk_at + _CRC_CHUNK, data_offset + entry.size)], crc_value)
    if crc_value != entry.crc:
        raise _corrupt(path, f"entry {entry.name[:60]!r} fails its CRC check")
    return data_offset
