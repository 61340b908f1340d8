"""A save either completes or leaves the previous file byte-identical, and never leaves temp files behind."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import safetensors.torch
from hn_testutil import REPO_ROOT

import lib_hypernet
from lib_hypernet.formats import pt_legacy_writer, safetensors_v1
from lib_hypernet.formats.optim import optim_path
from lib_hypernet.library.caches import HashCache


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _hn(seed: int) -> lib_hypernet.Hypernetwork:
    return lib_hypernet.create(f"hn{seed}", sizes=[8, 16], activation_func="relu", seed=seed)


def _existing(tmp_path: Path, suffix: str) -> tuple[Path, bytes]:
    path = tmp_path / f"model{suffix}"
    _hn(1).save(path)
    return path, path.read_bytes()


def _assert_untouched(tmp_path: Path, path: Path, before: bytes) -> None:
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == [path.name], "temporary files left behind"
    assert lib_hypernet.load(path).name == "hn1"


def _partial_torch_save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
    f.write(b"\x80\x02partial pickle bytes" * 100)
    raise RuntimeError("simulated crash in the middle of torch.save")


def _partial_torch_save_oserror(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
    f.write(b"\x80\x02partial pickle bytes" * 100)
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("writer", [_partial_torch_save, _partial_torch_save_oserror], ids=["runtime", "enospc"])
def test_pt_write_fails_midway(writer: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, before = _existing(tmp_path, ".pt")
    monkeypatch.setattr(pt_legacy_writer, "save_legacy", writer)
    with pytest.raises((RuntimeError, lib_hypernet.HypernetError)) as info:
        _hn(2).save(path)
    if isinstance(info.value, OSError):
        assert isinstance(info.value, lib_hypernet.HypernetFileError)
        assert str(path) in str(info.value)
        assert "No space left" in str(info.value)
    monkeypatch.undo()
    _assert_untouched(tmp_path, path, before)


def test_safetensors_serialiser_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, before = _existing(tmp_path, ".safetensors")

    def boom(*args: Any, **kwargs: Any) -> bytes:
        raise RuntimeError("simulated serialiser failure")

    monkeypatch.setattr(safetensors_v1, "safetensors_save", boom)
    with pytest.raises(RuntimeError):
        _hn(2).save(path)
    monkeypatch.undo()
    _assert_untouched(tmp_path, path, before)


class _HalfWritingFile:
    """Wraps the temp file: writes the first half of a buffer, then fails like a full disk."""

    def __init__(self, f: Any) -> None:
        self._f = f

    def write(self, data: bytes) -> int:
        self._f.write(bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


def test_safetensors_write_fails_midway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, before = _existing(tmp_path, ".safetensors")
    real_atomic_write = safetensors_v1.atomic_write

    def half_writing_atomic_write(target: Any, write: Any) -> None:
        real_atomic_write(target, lambda f: write(_HalfWritingFile(f)))

    monkeypatch.setattr(safetensors_v1, "atomic_write", half_writing_atomic_write)
    with pytest.raises(lib_hypernet.HypernetFileError) as info:
        _hn(2).save(path)
    assert str(path) in str(info.value)
    monkeypatch.undo()
    _assert_untouched(tmp_path, path, before)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_fsync_fails_after_writing(suffix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every byte written, then the flush to disk fails: the old file stays."""
    path, before = _existing(tmp_path, suffix)

    def failing_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(lib_hypernet.HypernetFileError) as info:
        _hn(2).save(path)
    assert str(path) in str(info.value)
    monkeypatch.undo()
    _assert_untouched(tmp_path, path, before)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_replace_fails(suffix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, before = _existing(tmp_path, suffix)

    def failing_replace(src: Any, dst: Any) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(lib_hypernet.HypernetFileError) as info:
        _hn(2).save(path)
    assert str(path) in str(info.value)
    monkeypatch.undo()
    _assert_untouched(tmp_path, path, before)


def test_failed_first_save_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pt_legacy_writer, "save_legacy", _partial_torch_save)
    with pytest.raises(RuntimeError):
        _hn(2).save(tmp_path / "new.pt")
    assert os.listdir(tmp_path) == []


def test_optimizer_state_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pt = tmp_path / "model.pt"
    _hn(1).save(pt)
    lib_hypernet.save_optimizer_state(pt, {"state": {}, "param_groups": []})
    optim = Path(optim_path(pt))
    before = optim.read_bytes()
    monkeypatch.setattr(pt_legacy_writer, "save_legacy", _partial_torch_save)
    with pytest.raises(RuntimeError):
        lib_hypernet.save_optimizer_state(pt, {"state": {"x": 1}, "param_groups": []})
    monkeypatch.undo()
    assert optim.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["model.pt", "model.pt.optim"]


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_successful_save_replaces_and_cleans_up(suffix: str, tmp_path: Path, umask_022: None) -> None:
    path, before = _existing(tmp_path, suffix)
    _hn(2).save(path)
    assert path.read_bytes() != before
    assert lib_hypernet.load(path).name == "hn2"
    assert sorted(os.listdir(tmp_path)) == [path.name]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_file_mode_follows_umask(umask: int, mode: int, tmp_path: Path) -> None:
    old = os.umask(umask)
    try:
        _hn(1).save(tmp_path / "a.pt")
        _hn(1).save(tmp_path / "a.safetensors")
        cache = HashCache()
        cache.sha256(tmp_path / "a.pt")
        cache.save(tmp_path / "cache.json")
    finally:
        os.umask(old)
    for name in ("a.pt", "a.safetensors", "cache.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


def test_save_into_missing_folder(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "dir" / "x.pt"
    with pytest.raises(lib_hypernet.HypernetFileError) as info:
        _hn(1).save(target)
    assert str(target) in str(info.value)


def test_real_safetensors_writer_is_used(tmp_path: Path) -> None:
    """Sanity: the monkeypatched name above is the serialiser the module really calls."""
    assert safetensors_v1.safetensors_save is safetensors.torch.save


# --------------------------------------------------------------------------- leftovers of a killed save
KILLED_SAVE = r"""
import os, signal, sys
sys.path.insert(0, sys.argv[1])
from lib_hypernet.formats.fileio import atomic_open
with atomic_open(sys.argv[2]) as f:
    f.write(b"partial" * 1000)
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _killed_save(tmp_path: Path, target: Path) -> Path:
    import subprocess
    import sys

    script = tmp_path / "killed.py"
    script.write_text(KILLED_SAVE)
    proc = subprocess.run([sys.executable, str(script), str(REPO_ROOT), str(target)])
    assert proc.returncode == -9
    left = [p for p in target.parent.iterdir() if p.name.startswith(f".{target.name}.") and p.name.endswith(".tmp")]
    assert len(left) == 1, list(target.parent.iterdir())
    return left[0]


def _age(path: Path, seconds: float) -> None:
    old = path.stat().st_mtime - seconds
    os.utime(path, (old, old))


def test_library_refresh_removes_stale_temp_files_of_a_killed_save(tmp_path: Path) -> None:
    from lib_hypernet.formats.fileio import STALE_AFTER_S

    folder = tmp_path / "hypernetworks"
    (folder / "sub").mkdir(parents=True)
    good = folder / "sub" / "good.pt"
    _hn(1).save(good)
    before = good.read_bytes()
    stale = _killed_save(tmp_path, good)
    fresh = _killed_save(tmp_path, folder / "fresh.pt")  # a save that might still be running
    stale_conv = folder / "sub" / ".good.safetensors.abcd1234.tmp.safetensors"
    stale_conv.write_bytes(b"x")
    not_ours = [folder / ".notes.txt.abcd1234.tmp", folder / ".good.pt.ABCD1234.tmp", folder / ".good.pt.tmp",
                folder / "good.pt.abcd1234.tmp"]
    for p in not_ours:
        p.write_bytes(b"keep me")
    for p in (stale, stale_conv, fresh, *not_ours):
        _age(p, STALE_AFTER_S + 60 if p is not fresh else 5)
    library = lib_hypernet.HypernetLibrary(folder)
    assert [f.name for f in library.refresh()] == ["good"]
    assert not stale.exists() and not stale_conv.exists()
    assert fresh.exists() and all(p.exists() for p in not_ours)
    assert good.read_bytes() == before and lib_hypernet.load(good).name == "hn1"


def test_hash_cache_save_removes_its_own_stale_temp_files(tmp_path: Path) -> None:
    from lib_hypernet.formats.fileio import STALE_AFTER_S

    store = tmp_path / "cache" / "hashes.json"
    store.parent.mkdir()
    stale = _killed_save(tmp_path, store)
    other = store.parent / ".cache.json.abcd1234.tmp"  # another program's, same pattern: not touched
    other.write_bytes(b"x")
    for p in (stale, other):
        _age(p, STALE_AFTER_S + 60)
    HashCache().save(store)
    assert not stale.exists() and other.exists() and store.exists()
