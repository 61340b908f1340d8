"""The path-keyed HashCache (A1111 bug §8.5 fixed): hits, recomputation, its entries, two writers."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from hn_testutil import REPO_ROOT

import lib_hypernet
from lib_hypernet.library.caches import HashCache


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def test_cache_hits_without_rereading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a.pt"
    digest = _write(path, b"first version")
    cache = HashCache()
    assert cache.get(path) is None
    assert cache.sha256(path) == digest
    assert cache.dirty
    import lib_hypernet.formats.hashing as hashing

    def no_hashing(*args, **kwargs):
        raise AssertionError("should have used the cache")

    monkeypatch.setattr(hashing, "sha256", no_hashing)
    assert cache.sha256(path) == digest
    assert cache.get(path) == digest
    assert cache.shorthash(path) == digest[:10]
    # keyed by absolute path: a relative spelling of the same file hits the same entry
    monkeypatch.chdir(tmp_path)
    assert cache.get("a.pt") == digest
    assert cache.sha256(Path("a.pt")) == digest


def test_cache_recomputes_when_size_changes(tmp_path: Path) -> None:
    path = tmp_path / "a.pt"
    _write(path, b"first version")
    cache = HashCache()
    cache.sha256(path)
    stat = path.stat()
    digest = _write(path, b"second, longer version")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime, different size
    assert cache.get(path) is None
    assert cache.sha256(path) == digest


def test_cache_recomputes_for_replacement_with_older_mtime(tmp_path: Path) -> None:
    """A1111 bug §8.5: a replacement with an older (or equal) mtime kept the stale hash there."""
    path = tmp_path / "a.pt"
    _write(path, b"version A")
    cache = HashCache()
    cache.sha256(path)
    old_mtime = path.stat().st_mtime_ns - 10_000_000_000
    digest = _write(path, b"version B")  # same size
    os.utime(path, ns=(old_mtime, old_mtime))
    assert cache.get(path) is None
    assert cache.sha256(path) == digest


def test_cache_same_stem_different_folders(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    a, b = tmp_path / "one" / "style.pt", tmp_path / "two" / "style.pt"
    digest_a = _write(a, b"network one")
    digest_b = _write(b, b"network two")
    cache = HashCache()
    assert cache.sha256(a) == digest_a
    assert cache.sha256(b) == digest_b
    assert cache.get(a) == digest_a
    assert cache.get(b) == digest_b


def test_cache_find(tmp_path: Path) -> None:
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    digest_a, digest_b = _write(a, b"aaa"), _write(b, b"bbb")
    cache = HashCache()
    cache.sha256(a)
    cache.sha256(b)
    assert cache.find(digest_a[:10]) == [str(a.resolve())]
    assert cache.find(digest_b[:10].upper()) == [str(b.resolve())]
    assert sorted(cache.find("")) == sorted([str(a.resolve()), str(b.resolve())])
    # a changed file is no longer found under its old hash
    _write(a, b"changed contents")
    assert cache.find(digest_a[:10]) == []
    a.unlink()
    cache.forget_missing()
    assert cache.find("") == [str(b.resolve())]


def test_cache_json_round_trip(tmp_path: Path) -> None:
    a = tmp_path / "a.pt"
    digest = _write(a, b"abc")
    cache = HashCache()
    cache.sha256(a)
    store = tmp_path / "cache.json"
    cache.save(store)
    assert not cache.dirty
    data = json.loads(store.read_text())
    assert data["version"] == 1
    assert data["entries"][str(a.resolve())]["sha256"] == digest
    loaded = HashCache.load(store)
    assert loaded.get(a) == digest
    assert HashCache.from_json(cache.to_json()).get(a) == digest
    # the persisted entry still validates by size and mtime
    _write(a, b"xyz")
    assert HashCache.load(store).get(a) is None


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[1, 2, 3]", b'{"version": 99, "entries": {}}', b'{"version": 1, "entries": [1]}',
     b'{"version": 1, "entries": {"/x": 5}}', b"\xff\xfe\x00garbage", b""],
    ids=["syntax", "list", "version", "entries-list", "entry-not-dict", "binary", "empty"],
)
def test_corrupt_cache_json_gives_empty_cache(content: bytes, tmp_path: Path) -> None:
    store = tmp_path / "cache.json"
    store.write_bytes(content)
    cache = HashCache.load(store)
    assert cache.find("") == []
    a = tmp_path / "a.pt"
    digest = _write(a, b"abc")
    assert cache.sha256(a) == digest  # still usable


def test_missing_cache_file_gives_empty_cache(tmp_path: Path) -> None:
    assert HashCache.load(tmp_path / "nope.json").find("") == []


def test_file_changed_while_hashing_is_not_cached(tmp_path: Path) -> None:
    path = tmp_path / "growing.pt"
    _write(path, os.urandom(2 * 1024 * 1024))
    cache = HashCache()
    changed = []

    def modify_during_hashing(n: int) -> None:
        if not changed:
            with open(path, "ab") as f:
                f.write(b"appended while hashing")
            changed.append(n)

    cache.sha256(path, progress=modify_during_hashing)
    assert changed
    assert cache.get(path) is None
    assert cache.find("") == []
    # the next call hashes the file as it is now and caches it
    assert cache.sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert cache.get(path) is not None


def test_cache_missing_file_raises(tmp_path: Path) -> None:
    cache = HashCache()
    path = tmp_path / "missing.pt"
    assert cache.get(path) is None
    with pytest.raises(lib_hypernet.HypernetFileError):
        cache.sha256(path)


# ------------------------------------------------ HashCache: its entries, two writers (the base: test_caches.py)
GOOD_SHA = "a" * 64


def _entry(path: Path, **changes: object) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": GOOD_SHA, **changes}


@pytest.mark.parametrize(
    "changes",
    [{"sha256": "A" * 64}, {"sha256": "a" * 63}, {"sha256": "g" * 64}, {"sha256": "a" * 64 + "\n"}, {"sha256": 5},
     {"size": "3"}, {"size": 3.0}, {"size": True}, {"size": -1}, {"mtime_ns": None}, {"mtime_ns": 1.5}],
    ids=["upper", "short", "not-hex", "newline", "int", "size-str", "size-float", "size-bool", "size-negative",
         "mtime-none", "mtime-float"],
)
def test_invalid_entries_are_not_trusted(changes: dict, tmp_path: Path) -> None:
    a = tmp_path / "a.pt"
    digest = _write(a, b"abc")
    store = tmp_path / "cache.json"
    store.write_text(json.dumps({"version": 1, "entries": {str(a.resolve()): _entry(a, **changes)}}))
    cache = HashCache.load(store)
    assert cache.get(a) is None
    assert cache.sha256(a) == digest  # computed, not the bogus cached value


def test_valid_entry_is_trusted_and_relative_keys_are_not(tmp_path: Path) -> None:
    a = tmp_path / "a.pt"
    _write(a, b"abc")
    store = tmp_path / "cache.json"
    store.write_text(json.dumps({"version": 1, "entries": {str(a.resolve()): _entry(a), "rel/a.pt": _entry(a)}}))
    cache = HashCache.load(store)
    assert cache.get(a) == GOOD_SHA  # documented: a same-size edit with a restored mtime keeps a cached hash
    assert cache.find("") == [str(a.resolve())]


WRITER = r"""
import hashlib, os, sys
sys.path.insert(0, sys.argv[1])
from lib_hypernet.library.caches import HashCache
folder, store, who, n = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
cache = HashCache.load(store)
open(os.path.join(folder, who + ".ready"), "w").close()
while not os.path.exists(os.path.join(folder, "go")):
    pass
for i in range(n):
    path = os.path.join(folder, f"{who}{i}.pt")
    with open(path, "wb") as f:
        f.write(f"{who}{i}".encode())
    cache.sha256(path)
    cache.save(store)
"""


def test_two_processes_saving_at_once_lose_nothing(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    store = tmp_path / "cache.json"
    repo = str(REPO_ROOT)
    procs = [subprocess.Popen([sys.executable, str(script), repo, str(tmp_path), str(store), who, "50"])
             for who in ("p", "q")]
    try:
        while not all((tmp_path / f"{who}.ready").exists() for who in ("p", "q")):
            assert all(p.poll() is None for p in procs)
            time.sleep(0.05)
        (tmp_path / "go").touch()
        assert [p.wait(timeout=300) for p in procs] == [0, 0]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    entries = json.loads(store.read_text())["entries"]
    assert len(entries) == 100
    for who in ("p", "q"):
        for i in range(50):
            path = tmp_path / f"{who}{i}.pt"
            assert entries[str(path)]["sha256"] == hashlib.sha256(f"{who}{i}".encode()).hexdigest()
