"""Zips that two readers could read differently, compressed entries and zip bombs are refused before
anything is unpickled or decompressed (issue 7, classes 1 and 2)."""

from __future__ import annotations

import pickle
import shutil
import struct
import zipfile
from pathlib import Path

import pytest
import torch
from hn_testutil import TouchViaSystem
from hostile_util import (
    Entry,
    assert_refused,
    build_zip,
    data_pkl_name,
    deflated_bomb_zip,
    good_raw,
    run_limited,
    torch_bytes,
    two_central_directories,
    zip_entries,
)

import lib_hypernet


def _good_zip() -> bytes:
    return torch_bytes(good_raw(), zip_format=True)


def _evil_pickle(marker: Path) -> bytes:
    return pickle.dumps({"x": TouchViaSystem(marker)}, protocol=2)


def _refused(path: Path, *keywords: str) -> lib_hypernet.HypernetError:
    return assert_refused(path, *keywords, calls=(lib_hypernet.check_torch_file, lib_hypernet.load))


def test_builder_reproduces_a_loadable_torch_zip(tmp_path: Path) -> None:
    """Positive control: the test's own zip writer makes files lib_hypernet loads (so refusals below mean something)."""
    path = tmp_path / "rebuilt.pt"
    path.write_bytes(build_zip(zip_entries(_good_zip())))
    assert lib_hypernet.check_torch_file(path) == "zip"
    assert lib_hypernet.load(path).widths == [8]


@pytest.mark.parametrize("evil_first", [True, False], ids=["evil_upper_first", "evil_lower_second"])
def test_case_duplicate_data_pkl(evil_first: bool, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    entries = zip_entries(_good_zip())
    i = data_pkl_name(entries)
    upper = Entry(entries[i].name.replace(b"data.pkl", b"DATA.PKL"), entries[i].data)
    if evil_first:
        upper.data = _evil_pickle(marker)
    else:
        entries[i].data = _evil_pickle(marker)
    entries.insert(i, upper)
    path = tmp_path / "case.pt"
    path.write_bytes(build_zip(entries))
    # The differential is real: Python's zipfile reads data.pkl, torch (case-insensitive lookup) DATA.PKL.
    with zipfile.ZipFile(path) as archive:
        assert (archive.read(entries[i + 1].name.decode()) == _evil_pickle(marker)) == (not evil_first)
    if evil_first:
        with pytest.raises(pickle.UnpicklingError, match="system"):
            torch.load(path, weights_only=True)
    _refused(path, "ignoring case")
    assert not marker.exists()


def test_exact_duplicate_name(tmp_path: Path) -> None:
    entries = zip_entries(_good_zip())
    i = data_pkl_name(entries)
    entries.append(Entry(entries[i].name, entries[i].data))
    path = tmp_path / "dup.pt"
    path.write_bytes(build_zip(entries))
    _refused(path, "twice", "ignoring case")


def test_two_central_directories(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    benign = zip_entries(_good_zip())
    evil = zip_entries(_good_zip())
    evil[data_pkl_name(evil)].data = _evil_pickle(marker)
    path = tmp_path / "two_cd.pt"
    path.write_bytes(two_central_directories(seen_by_python=benign, seen_by_torch=evil))
    # The differential is real: Python's zipfile reads the benign directory, torch the evil one.
    with zipfile.ZipFile(path) as archive:
        assert archive.read(benign[data_pkl_name(benign)].name.decode()) == benign[data_pkl_name(benign)].data
    with pytest.raises(pickle.UnpicklingError, match="system"):
        torch.load(path, weights_only=True)
    _refused(path, "central directory is not where")
    assert not marker.exists()


@pytest.mark.parametrize("method", [8, 12, 14, 99], ids=["deflate", "bzip2", "lzma", "unknown"])
def test_compressed_or_unknown_method_refused(method: int, tmp_path: Path) -> None:
    entries = zip_entries(_good_zip())
    i = data_pkl_name(entries)
    entries[i].method = method
    if method != 8:
        entries[i].stored = entries[i].data
    path = tmp_path / "compressed.pt"
    path.write_bytes(build_zip(entries))
    _refused(path, "compressed")


def test_deflated_storage_refused(tmp_path: Path) -> None:
    """A storage record deflated (the 1.5 GiB-storage bomb): refused before anything is inflated."""
    entries = zip_entries(_good_zip())
    next(e for e in entries if e.name.endswith(b"/data/0")).method = 8
    path = tmp_path / "storage.pt"
    path.write_bytes(build_zip(entries))
    _refused(path, "compressed")


def test_declared_size_larger_than_file(tmp_path: Path) -> None:
    entries = zip_entries(_good_zip())
    entries[-1].declared_size = 1 << 31
    path = tmp_path / "big.pt"
    path.write_bytes(build_zip(entries))
    _refused(path, "more than the file holds")


@pytest.mark.parametrize("trailer", [b"junk", b"PK\x05\x06" + bytes(18)], ids=["junk", "second_end_record"])
def test_data_after_end_record(trailer: bytes, tmp_path: Path) -> None:
    path = tmp_path / "trailer.pt"
    path.write_bytes(build_zip(zip_entries(_good_zip()), trailer=trailer))
    _refused(path, "after the end record", "no end record", "zip")


def test_local_name_differs_from_central(tmp_path: Path) -> None:
    entries = zip_entries(_good_zip())
    i = data_pkl_name(entries)
    entries[i].local_name = entries[i].name.replace(b"data.pkl", b"data.pkk")
    path = tmp_path / "local.pt"
    path.write_bytes(build_zip(entries))
    _refused(path, "another name in its local header")


def test_name_flagged_utf8_but_not(tmp_path: Path) -> None:
    entries = zip_entries(_good_zip())
    entries[-1].name = entries[-1].name + b"\xff\xfe"
    path = tmp_path / "utf8.pt"
    path.write_bytes(build_zip(entries))
    _refused(path, "utf-8")


def test_crc_mismatch(tmp_path: Path) -> None:
    data = bytearray(_good_zip())
    entries = zip_entries(bytes(data))
    target = entries[-1].data
    at = bytes(data).rindex(target)
    data[at] ^= 0xFF
    path = tmp_path / "crc.pt"
    path.write_bytes(bytes(data))
    _refused(path, "crc")


def test_storage_record_smaller_than_declared(tmp_path: Path) -> None:
    """A storage record shorter than numel × element size (torch would read past it) is refused."""
    entries = zip_entries(_good_zip())
    record = next(e for e in entries if e.name.endswith(b"/data/0"))
    record.data = record.data[:4]
    path = tmp_path / "short_storage.pt"
    path.write_bytes(build_zip(entries))
    _refused(path, "declares")


def test_missing_storage_record(tmp_path: Path) -> None:
    entries = [e for e in zip_entries(_good_zip()) if not e.name.endswith(b"/data/0")]
    path = tmp_path / "no_storage.pt"
    path.write_bytes(build_zip(entries))
    _refused(path, "missing")


def test_entries_outside_the_prefix(tmp_path: Path) -> None:
    entries = zip_entries(_good_zip())
    entries.append(Entry(b"other/data.pkl", entries[data_pkl_name(entries)].data))
    path = tmp_path / "prefix.pt"
    path.write_bytes(build_zip(entries))
    _refused(path, "outside")


def test_every_fixture_still_passes(fixtures_dir: Path, tmp_path: Path) -> None:
    for path in sorted(fixtures_dir.glob("*.pt*")):
        assert lib_hypernet.check_torch_file(path) == "zip", path
    copy = tmp_path / "act_relu.pt"
    shutil.copy(fixtures_dir / "act_relu.pt", copy)
    assert lib_hypernet.load(copy).widths


def test_deflated_gigabyte_data_pkl_under_a_memory_limit(tmp_path: Path) -> None:
    """A ~1 MB zip whose data.pkl inflates to 1 GiB: refused without inflating (the old check took 2.3 GB)."""
    path = tmp_path / "bomb.pt"
    path.write_bytes(deflated_bomb_zip("bomb", 1 << 30))
    assert path.stat().st_size < 2 << 20
    result = run_limited(
        f"""
        path = {str(path)!r}
        errors = []
        for call in (lib_hypernet.check_torch_file, lib_hypernet.load):
            try:
                call(path)
                errors.append("loaded")
            except lib_hypernet.HypernetError as exc:
                errors.append(str(exc))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({{"errors": errors, "growth_mb": peak - BASE_MB}}))
        """,
        address_space_mb=4096,
    )
    assert all("compressed" in e for e in result["errors"]), result
    assert result["growth_mb"] < 200, result
    print(f"1 GiB deflate bomb: refused, peak RSS growth {result['growth_mb']:.1f} MB")


def test_zip64_records_of_torch_are_read(tmp_path: Path, fixtures_dir: Path) -> None:
    """torch writes a zip64 end record before the classic one; a mismatching copy of it is refused."""
    data = bytearray((fixtures_dir / "act_relu.pt").read_bytes())
    z64 = bytes(data).rindex(b"PK\x06\x06")
    (count,) = struct.unpack_from("<Q", data, z64 + 24)
    struct.pack_into("<Q", data, z64 + 24, count + 1)
    struct.pack_into("<Q", data, z64 + 32, count + 1)
    path = tmp_path / "z64.pt"
    path.write_bytes(bytes(data))
    _refused(path, "disagree")


def _storage_entry(entries: list[Entry]) -> Entry:
    return next(e for e in entries if e.name.split(b"/", 1)[1].startswith(b"data/"))


def test_directory_attribute_on_a_storage_is_refused(tmp_path: Path) -> None:
    """miniz reads an entry whose DOS attributes say "directory" as an uninitialised buffer: the checker CRC-checked
    the real bytes, torch returns process memory (which convert would then write into a .safetensors)."""
    entries = zip_entries(_good_zip())
    storage = _storage_entry(entries)
    # Make the stored weights recognisable, so what torch returns instead is visible.
    storage.data = bytes(range(256)) * (len(storage.data) // 256) + bytes(len(storage.data) % 256)
    plain = tmp_path / "plain.pt"
    plain.write_bytes(build_zip(entries))
    storage.external_attr = 0x10
    path = tmp_path / "dir_bit.pt"
    path.write_bytes(build_zip(entries))
    # The differential is real: torch does not return the bytes the checker saw.
    import torch

    seen = torch.load(plain, weights_only=True)[8][0]["linear.0.weight"]
    loaded = torch.load(path, weights_only=True)[8][0]["linear.0.weight"]
    assert not torch.equal(seen, loaded)
    _refused(path, "directory")


@pytest.mark.parametrize(("mode", "accepted"), [(0o100644, True), (0, True), (0o120777, False), (0o040755, False),
                                                (0o010644, False)], ids=["regular", "no-mode", "symlink", "dir", "fifo"])
def test_unix_file_types(mode: int, accepted: bool, tmp_path: Path) -> None:
    entries = zip_entries(_good_zip())
    for entry in entries:
        entry.made_by, entry.external_attr = (3 << 8) | 20, mode << 16
    path = tmp_path / "unix.pt"
    path.write_bytes(build_zip(entries))
    if accepted:
        assert lib_hypernet.load(path).widths == [8]
    else:
        _refused(path, "not a regular file")
