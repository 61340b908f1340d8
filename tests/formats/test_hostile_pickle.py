"""Crafted pickles: memory bombs, impossible lengths, deep nesting, huge numbers and malformed storages give
our own error naming the file, within a small memory budget, with nothing executed (issue 7, classes 2-3)."""

from __future__ import annotations

import io
import os
import pickle
import struct
import tarfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest
import torch
from hostile_util import (
    Entry,
    assert_refused,
    build_zip,
    data_pkl_name,
    good_raw,
    legacy_pickle_starts,
    legacy_prefix,
    memo_bomb_pickle,
    nested_lists,
    replace_pickle_value,
    run_limited,
    torch_bytes,
    zip_entries,
)

import lib_hypernet
from lib_hypernet.formats.optim import optim_path
from lib_hypernet.formats.safe_unpickle import a1111_zip_entries_rejected
from lib_hypernet.model.hypernetwork import from_state_dict

CONTAINERS = {"zip": True, "legacy": False}


def _load_error(path: Path, *keywords: str) -> lib_hypernet.HypernetError:
    return assert_refused(path, *keywords)


def _zip_with_pickle(pkl: bytes) -> bytes:
    entries = zip_entries(torch_bytes(good_raw(), zip_format=True))
    entries[data_pkl_name(entries)] = Entry(entries[data_pkl_name(entries)].name, pkl)
    return build_zip(entries)


def _with_value(tmp_path: Path, container: str, opcodes: bytes, name: str = "crafted.pt") -> Path:
    """A good hypernetwork whose optional_info is the value the raw ``opcodes`` push."""
    data = torch_bytes(good_raw(optional_info="REPLACE_ME"), CONTAINERS[container])
    path = tmp_path / name
    path.write_bytes(replace_pickle_value(data, CONTAINERS[container], "REPLACE_ME", opcodes))
    return path


class _Pid:
    def __init__(self, pid: tuple[Any, ...]) -> None:
        self.pid = pid


class _FakeTensor:
    """Pickles as torch.save writes a tensor, with a persistent id of the test's choosing."""

    def __init__(self, pid: tuple[Any, ...], size: tuple[int, ...] = (4,), stride: tuple[int, ...] = (1,)) -> None:
        self.pid, self.size, self.stride = pid, size, stride

    def __reduce__(self) -> tuple[Any, ...]:
        return torch._utils._rebuild_tensor_v2, (_Pid(self.pid), 0, self.size, self.stride, False, OrderedDict())


class _PidPickler(pickle.Pickler):
    def persistent_id(self, obj: Any) -> Any:
        return obj.pid if isinstance(obj, _Pid) else None


def _crafted_pickle(obj: Any) -> bytes:
    buf = io.BytesIO()
    _PidPickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


# ---------------------------------------------------------------------------- memory bombs
def test_memo_bomb_and_huge_storages_under_a_memory_limit(tmp_path: Path) -> None:
    """152-byte-class files that made C unpicklers or torch's legacy loader allocate gigabytes."""
    files = {
        "zip_memo.pt": _zip_with_pickle(memo_bomb_pickle()),
        "legacy_memo.pt": legacy_prefix() + memo_bomb_pickle(),
        "legacy_huge_storage.pt": legacy_prefix() + _crafted_pickle(
            {8: _FakeTensor(("storage", torch.FloatStorage, "1", "cpu", 1 << 38, None), size=(1 << 38,))}
        ) + pickle.dumps(["1"], protocol=2) + struct.pack("<q", 4) + bytes(16),
        "zip_huge_storage.pt": _zip_with_pickle(_crafted_pickle(
            {8: _FakeTensor(("storage", torch.FloatStorage, "0", "cpu", 1 << 38), size=(1 << 38,))}
        )),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        (tmp_path / (name + ".optim")).write_bytes(data)
    assert (tmp_path / "zip_memo.pt").stat().st_size < 20_000
    result = run_limited(
        f"""
        import os
        folder = {str(tmp_path)!r}
        out = {{}}
        for name in sorted(os.listdir(folder)):
            if not name.endswith(".pt"):
                continue
            path = os.path.join(folder, name)
            errors = []
            for call in (lib_hypernet.check_torch_file, lib_hypernet.load):
                try:
                    call(path)
                    errors.append("loaded")
                except lib_hypernet.HypernetError as exc:
                    errors.append(exc.reason)
            errors.append(lib_hypernet.load_optimizer_state(path, pt_sha256="0" * 64).status)
            out[name] = errors
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({{"errors": out, "growth_mb": peak - BASE_MB}}))
        """,
        address_space_mb=4096,
    )
    for name, (check, load, optim) in result["errors"].items():
        assert optim == "unreadable", name
        assert check == load, name
        assert ("memo index" in check) if "memo" in name else ("does not fit" in check or "declares" in check), check
    assert result["growth_mb"] < 200, result
    print(f"memo/storage bombs: refused, peak RSS growth {result['growth_mb']:.1f} MB")


@pytest.mark.parametrize(
    "opcodes",
    [
        b"\x95" + struct.pack("<Q", (1 << 63) - 1),  # FRAME
        b"\x96" + struct.pack("<Q", (1 << 63) - 1),  # BYTEARRAY8
        b"\x8e" + struct.pack("<Q", (1 << 63) - 1),  # BINBYTES8
        b"\x8b" + struct.pack("<I", 0xFFFFFFFF),  # LONG4
        b"X" + struct.pack("<I", 0xFFFFFFFF),  # BINUNICODE past the end
        b"I" + b"9" * 5000 + b"\n",  # text INT beyond Python's 4300-digit limit
        b"\x8a\x20" + b"\xff" * 32,  # LONG1: a 32-byte integer
    ],
    ids=["frame", "bytearray8", "binbytes8", "long4", "binunicode", "int_5000_digits", "long1_32_bytes"],
)
@pytest.mark.parametrize("container", sorted(CONTAINERS))
def test_impossible_lengths_and_numbers(opcodes: bytes, container: str, tmp_path: Path) -> None:
    path = _with_value(tmp_path, container, opcodes)
    _load_error(path, "corrupt", "crafted")
    with pytest.raises(lib_hypernet.HypernetFormatError):
        lib_hypernet.check_torch_file(path)


# ---------------------------------------------------------------------------- recursion
@pytest.mark.parametrize("container", sorted(CONTAINERS))
def test_deeply_nested_optional_info(container: str, tmp_path: Path) -> None:
    path = _with_value(tmp_path, container, nested_lists(200_000))
    _load_error(path, "nested")


@pytest.mark.parametrize("container", sorted(CONTAINERS))
def test_self_containing_list(container: str, tmp_path: Path) -> None:
    path = _with_value(tmp_path, container, b"]r\x00\x00\x00\x00j\x00\x00\x00\x00a")
    _load_error(path, "containing themselves")


def test_deeply_nested_tuples_never_reach_hash(tmp_path: Path) -> None:
    """Hashing a deeply nested tuple recurses in C; such tuples are refused while being built."""
    path = _with_value(tmp_path, "zip", b")" + b"\x85" * 100_000)
    _load_error(path, "tuples nested")


# ---------------------------------------------------------------------------- numbers and strings
@pytest.mark.parametrize(
    ("field", "value"),
    [("step", 10**30), ("layer_structure", [1, 2**100, 1]), ("dropout_structure", [0, 2**90, 0]),
     ("step", float("inf")), ("layer_structure", [1, 1e300, 1])],
    ids=["step", "layer_structure", "dropout_structure", "step_inf", "layer_structure_1e300"],
)
def test_huge_metadata_numbers(field: str, value: Any, tmp_path: Path) -> None:
    path = tmp_path / "huge.pt"
    path.write_bytes(torch_bytes(good_raw(**{field: value}), zip_format=True))
    _load_error(path, field)


@pytest.mark.parametrize("field", ["step", "layer_structure", "dropout_structure"])
def test_10_to_the_400_in_a_pt(field: str, tmp_path: Path) -> None:
    """10**400 needs a 167-byte LONG1; float() of it overflowed in the old loader."""
    value: Any = 10**400 if field == "step" else [1, 10**400, 1]
    path = tmp_path / "huge.pt"
    path.write_bytes(torch_bytes(good_raw(**{field: value}), zip_format=False))
    _load_error(path, "integer of 167 bytes")


@pytest.mark.parametrize("container", sorted(CONTAINERS))
@pytest.mark.parametrize("opcodes", [b"X\x02\x00\x00\x00\xff\xfe", b"U\x02\xc3\x28"], ids=["binunicode", "short_binstring"])
def test_strings_that_are_not_utf8(container: str, opcodes: bytes, tmp_path: Path) -> None:
    _load_error(_with_value(tmp_path, container, opcodes), "utf-8")


# ---------------------------------------------------------------------------- malformed storages and builds
@pytest.mark.parametrize(
    ("pid", "keyword"),
    [
        (("storage", "FloatStorage", "0", "cpu", 4), "not a torch storage class"),
        (("storage", ("FloatStorage",), "0", "cpu", 4), "not a torch storage class"),
        (("module", torch.FloatStorage, "0", "cpu", 4), "not a storage reference"),
        (("storage", torch.FloatStorage, ["0"], "cpu", 4), "storage key"),
        (("storage", torch.FloatStorage, "0", "cpu", -1), "storage size"),
    ],
    ids=["type_is_string", "type_is_tuple", "unknown_typename", "key_is_list", "negative_numel"],
)
def test_malformed_persistent_ids(pid: tuple[Any, ...], keyword: str, tmp_path: Path) -> None:
    path = tmp_path / "pid.pt"
    path.write_bytes(_zip_with_pickle(_crafted_pickle({8: _FakeTensor(pid)})))
    _load_error(path, keyword)


def test_tensor_larger_than_its_storage(tmp_path: Path) -> None:
    """A stride-0 view claiming 10^12 elements of a 4-element storage (a time bomb for .sum())."""
    pid = ("storage", torch.FloatStorage, "0", "cpu", 4)
    path = tmp_path / "expand.pt"
    path.write_bytes(_zip_with_pickle(_crafted_pickle({8: _FakeTensor(pid, (10**6, 10**6), (0, 0))})))
    _load_error(path, "does not fit")


def test_build_on_torch_size(tmp_path: Path) -> None:
    path = _with_value(tmp_path, "zip", b"ctorch\nSize\n(K\x01t\x85R}b")
    _load_error(path, "build on")


def test_legacy_unknown_storage_key(tmp_path: Path) -> None:
    data = torch_bytes(good_raw(), zip_format=False)
    starts = legacy_pickle_starts(data)
    pos = starts[5]
    keys = pickle.loads(data[starts[4]:pos])
    path = tmp_path / "keys.pt"
    path.write_bytes(data[:starts[4]] + pickle.dumps([*keys, "999"], protocol=2) + data[pos:])
    _load_error(path, "do not match")


def test_tar_archive_renamed_to_pt(tmp_path: Path) -> None:
    """torch.load would read a tar as its oldest format; a file that parses as tar is refused."""
    path = tmp_path / "old.pt"
    with tarfile.open(path, "w") as tar:
        payload = tmp_path / "pickle"
        payload.write_bytes(pickle.dumps({"a": 1}, protocol=2))
        tar.add(payload, arcname="pickle")
    _load_error(path, "tar")


def test_float8_weights(tmp_path: Path) -> None:
    raw = good_raw()
    raw[8][0]["linear.0.weight"] = raw[8][0]["linear.0.weight"].to(torch.float8_e4m3fn)
    with pytest.raises(lib_hypernet.HypernetFormatError, match="float16, bfloat16"):
        from_state_dict(raw, path="mem.pt")
    path = tmp_path / "f8.pt"
    torch.save(raw, path)
    _load_error(path, "float8", "storage", "global", "dtype")


# ---------------------------------------------------------------------------- issue 11: what the host did
def _a1111_like_torch_load(original: Any) -> Any:
    """modules/safe.py's behaviour: refuse zips with entries outside its old list, print, return None."""
    import zipfile

    def load(filename: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            with zipfile.ZipFile(filename) as z:
                if any(n.endswith((".format_version", ".storage_alignment")) for n in z.namelist()):
                    return None
        except zipfile.BadZipFile:
            pass
        return original(filename, *args, **kwargs)

    return load


def test_host_patched_torch_load_is_never_called(fixtures_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = fixtures_dir / "act_relu.pt"
    expected = lib_hypernet.load(path)
    monkeypatch.setattr(torch, "load", _a1111_like_torch_load(torch.load))
    assert torch.load(path) is None  # the condition is real: the host's loader refuses this file
    loaded = lib_hypernet.load(path)
    assert loaded.widths == expected.widths
    for a, b in zip(loaded.parameters(), expected.parameters()):
        assert torch.equal(a, b)


def test_loader_returning_none_is_reported_as_such(fixtures_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.serialization, "load", lambda *a, **k: None)
    with pytest.raises(lib_hypernet.HypernetFileError, match="returned nothing") as info:
        lib_hypernet.load(fixtures_dir / "act_relu.pt")
    assert "NoneType" not in str(info.value)


class _PurePythonUnpickler(pickle._Unpickler):  # type: ignore[name-defined]
    """What pytorch_lightning 1.9.4 installs as pickle.Unpickler for the whole process."""


@pytest.mark.parametrize("container", sorted(CONTAINERS))
def test_truncated_files_with_pure_python_pickle_unpickler(container: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    data = torch_bytes(good_raw(), CONTAINERS[container])
    monkeypatch.setattr(pickle, "Unpickler", _PurePythonUnpickler)
    with pytest.raises(struct.error):  # the condition is real: such an unpickler raises struct.error
        pickle.Unpickler(io.BytesIO(b"\x80\x02J\x01")).load()
    good = tmp_path / "good.pt"
    good.write_bytes(data)
    assert lib_hypernet.load(good).widths == [8]
    for length in (1, 2, 3, 5, 8, 30, 100, len(data) // 3, len(data) // 2, len(data) - 30, len(data) - 1):
        cut = tmp_path / f"cut{length}.pt"
        cut.write_bytes(data[:length])
        _load_error(cut, "truncated", "corrupt", "zip", "pytorch")
        (tmp_path / f"cut{length}.pt.optim").write_bytes(data[:length])
        assert lib_hypernet.load_optimizer_state(cut, pt_sha256="0" * 64).status == "unreadable"


# ---------------------------------------------------------------------------- load_optimizer_state never raises
def test_load_optimizer_state_never_raises(tmp_path: Path) -> None:
    pt = tmp_path / "good.pt"
    lib_hypernet.create("good", sizes=[8], seed=0).save(pt)
    optim = Path(optim_path(pt))
    bad_contents = {
        "empty": b"",
        "random": bytes(range(256)) * 8,
        "memo_bomb": legacy_prefix() + memo_bomb_pickle(),
        "nested": replace_pickle_value(
            torch_bytes({"optimizer_state_dict": {}, "hash": "REPLACE_ME"}, True), True, "REPLACE_ME",
            nested_lists(100_000)),
        "not_a_dict": torch_bytes([1, 2, 3], True),
        "name_is_list": torch_bytes({"optimizer_state_dict": {}, "hash": "abc", "optimizer_name": [1]}, True),
        "hash_is_int": torch_bytes({"optimizer_state_dict": {}, "hash": 5}, False),
    }
    for name, content in bad_contents.items():
        optim.write_bytes(content)
        state = lib_hypernet.load_optimizer_state(pt)
        assert state.status in ("unreadable", "stale"), (name, state)
        assert state.state_dict is None
        assert isinstance(state.optimizer_name, str)
    optim.unlink()
    optim.mkdir()
    assert lib_hypernet.load_optimizer_state(pt).status == "unreadable"


def test_too_many_widths(tmp_path: Path) -> None:
    path = tmp_path / "wide.pt"
    wide = lib_hypernet.create("wide", sizes=list(range(1, 66)), seed=0)
    with pytest.raises(lib_hypernet.HypernetFormatError, match="65 layer widths"):
        wide.save(path)  # save() refuses what load() would refuse
    assert not path.exists()
    from lib_hypernet.formats import write_raw

    write_raw(path, wide.state_dict())  # as another tool would write it
    _load_error(path, "65 layer widths")
    ok = tmp_path / "ok.pt"
    lib_hypernet.create("ok", sizes=list(range(1, 65)), seed=0).save(ok)
    assert len(lib_hypernet.load(ok).widths) == 64


def test_fifo_and_directory_are_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.pt"
    os.mkfifo(fifo)
    (tmp_path / "dir.pt").mkdir()
    for path in (fifo, tmp_path / "dir.pt"):
        with pytest.raises(lib_hypernet.HypernetFileError, match="not a regular file"):
            lib_hypernet.check_torch_file(path)
        with pytest.raises(lib_hypernet.HypernetFileError):
            lib_hypernet.load(path)
        assert a1111_zip_entries_rejected(path)


def test_file_that_shrinks_while_read(tmp_path: Path) -> None:
    """A file truncated during the check gives our error (a mapped file would crash with SIGBUS)."""
    from lib_hypernet.formats.fileview import FileView

    path = tmp_path / "shrinks.pt"
    path.write_bytes(torch_bytes(good_raw(), zip_format=True))
    with open(path, "rb") as f:
        view = FileView(f, str(path))
        os.truncate(path, 100)
        with pytest.raises(lib_hypernet.HypernetFileError, match="changed"):
            view[len(view) - 22:len(view)]
