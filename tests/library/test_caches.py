"""The persisted-cache base (``lib_hypernet.library.caches.PersistedCache``) through both its caches: a cache file
is read only when it is a regular file of bounded size, hostile JSON and wrongly typed entries give an empty cache
with one warning, saving locks without following links, merges and prunes; ``CacheFiles`` keeps both in a folder."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from hn_testutil import CopyFixtures, fifo_rescuer

from lib_hypernet.formats.fileio import file_lock
from lib_hypernet.library.caches import (
    DESCRIPTIONS_FILE,
    HASHES_FILE,
    MAX_CACHE_FILE_SIZE,
    CacheFiles,
    DescriptionCache,
    HashCache,
    PersistedCache,
)
from lib_hypernet.library.description import describe_file
from lib_hypernet.library.facts import FileFacts
from lib_hypernet.library.folder import HypernetLibrary, is_pending

CACHES = [HashCache, DescriptionCache]


def _fill(cache: PersistedCache, path: Path) -> None:
    """One entry for ``path`` (the file must exist)."""
    if isinstance(cache, HashCache):
        cache.sha256(path)
    else:
        assert isinstance(cache, DescriptionCache)
        cache.put(describe_file(path))


def _known(cache: PersistedCache, path: Path) -> bool:
    if isinstance(cache, HashCache):
        return cache.get(path) is not None
    st = path.stat()
    return isinstance(cache, DescriptionCache) and cache.get(path, st.st_size, st.st_mtime_ns) is not None


def _entry(path: Path) -> dict[str, Any]:
    """A valid description-cache entry for ``path``, to spoil one field of."""
    cache = DescriptionCache()
    cache.put(describe_file(path))
    return json.loads(cache.to_json())["entries"][str(path)]


# ---------------------------------------------------------------------- hostile files
@pytest.mark.parametrize("cls", CACHES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("kind", ["lists", "dicts", "huge-int", "not-utf8", "not-json", "not-a-cache", "oversized"])
def test_hostile_cache_file_starts_empty_with_one_warning(
    cls: type[PersistedCache], kind: str, tmp_path: Path, copy_fixtures: CopyFixtures, caplog: pytest.LogCaptureFixture
) -> None:
    path = copy_fixtures(tmp_path, "act_relu.pt")
    store = tmp_path / "cache.json"
    if kind == "lists":
        store.write_text('{"version": 1, "entries": ' + "[" * 200_000 + "]" * 200_000 + "}")
    elif kind == "dicts":
        store.write_text('{"version": 1, "entries": {"/x": ' + '{"a": ' * 100_000 + "1" + "}" * 100_001 + "}")
    elif kind == "huge-int":
        store.write_text('{"version": 1, "entries": {"/x": {"size": ' + "9" * 5000 + ', "mtime_ns": 1}}}')
    elif kind == "not-utf8":
        store.write_bytes(b'{"version": 1, "entries": {"\xff\xfe": 1}}')
    elif kind == "not-json":
        store.write_text("{not json")
    elif kind == "not-a-cache":
        store.write_text("[1, 2, 3]")
    else:  # a valid cache with a valid entry, padded past the size cap: not even read
        filled = cls()
        _fill(filled, path)
        text = filled.to_json()
        with open(store, "w", encoding="utf-8") as f:
            f.write(text[:-1] + ', "pad": "')
            f.seek(MAX_CACHE_FILE_SIZE)
            f.write('"}')
    with caplog.at_level("WARNING"):
        cache = cls.load(store)
    assert len(cache) == 0 and not _known(cache, path)
    assert len(caplog.records) == 1, [r.getMessage() for r in caplog.records]
    assert cls.WHAT in caplog.records[0].getMessage()
    assert len(cls.from_json(store.read_bytes()[:1_000_000])) == 0  # from text: the same tolerance
    caplog.clear()
    _fill(cache, path)
    cache.save(store)  # the bad file is replaced, without a second warning
    assert caplog.records == [] and _known(cls.load(store), path)


@pytest.mark.parametrize("cls", CACHES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("how", ["fifo", "symlink-to-fifo", "directory"])
def test_a_cache_path_that_is_no_regular_file_never_blocks(
    cls: type[PersistedCache], how: str, tmp_path: Path, copy_fixtures: CopyFixtures, caplog: pytest.LogCaptureFixture
) -> None:
    path = copy_fixtures(tmp_path, "act_relu.pt")
    store = tmp_path / "cache.json"
    fifo = tmp_path / ("cache.json" if how == "fifo" else "elsewhere.fifo")
    if how == "directory":
        store.mkdir()
    else:
        os.mkfifo(fifo)
    if how == "symlink-to-fifo":
        store.symlink_to(fifo)
    with fifo_rescuer([str(fifo)], after_s=10) as rescued, caplog.at_level("WARNING"):
        cache = cls.load(store)
        assert len(cache) == 0
        assert ["not a regular file" in r.getMessage() for r in caplog.records] == [True]
        _fill(cache, path)
        if how != "directory":
            cache.save(store)  # replaces the FIFO (or the link) with the cache
    assert rescued == []
    if how != "directory":
        assert stat.S_ISREG(os.lstat(store).st_mode) and _known(cls.load(store), path)


def test_a_symlinked_cache_file_is_read_through_the_link(tmp_path: Path, copy_fixtures: CopyFixtures) -> None:
    path = copy_fixtures(tmp_path, "act_relu.pt")
    real, link = tmp_path / "synced" / "cache.json", tmp_path / "cache.json"
    real.parent.mkdir()
    cache = HashCache()
    cache.sha256(path)
    cache.save(real)
    link.symlink_to(real)
    assert HashCache.load(link).get(path) == cache.get(path)


# ---------------------------------------------------------------------- typed entries
@pytest.mark.parametrize(
    "changes",
    [{"widths": "x"}, {"widths": [768.5]}, {"layer_structure": {}}, {"layer_structure": ["1"]}, {"step": "5"},
     {"step": True}, {"ok": "yes"}, {"ok": 1}, {"size": 1.5}, {"path": 5}, {"module_widths": {"768": "a"}},
     {"modules": [["Linear"]]}, {"warnings": "w"}, {"optim": {"status": {"deep": [1]}}}, {"optim": []},
     {"sd_version": 1}, {"error": ["x"]}],
    ids=lambda c: "-".join(f"{k}={v!r}" for k, v in c.items()),
)
def test_a_wrongly_typed_description_entry_is_dropped(
    changes: dict, tmp_path: Path, copy_fixtures: CopyFixtures, caplog: pytest.LogCaptureFixture
) -> None:
    path = copy_fixtures(tmp_path, "act_relu.pt")
    entry = _entry(path)
    entry["description"].update(changes)
    store = tmp_path / "cache.json"
    store.write_text(json.dumps({"version": 1, "entries": {str(path): entry}}))
    with caplog.at_level("WARNING"):
        cache = DescriptionCache.load(store)
    st = path.stat()
    assert cache.get(path, st.st_size, st.st_mtime_ns) is None
    assert len(cache) == 0 and ["ignored 1 invalid entries" in r.getMessage() for r in caplog.records] == [True]
    library = HypernetLibrary(tmp_path, description_cache=cache)
    library.refresh()
    desc = library.describe(library.files["act_relu"])  # read again: a complete, correctly typed description
    assert desc.ok and desc.widths == [8, 16] and desc.layer_structure == [1, 2, 1] and desc.activation_func == "relu"


@pytest.mark.parametrize(
    "changes",
    [{"schema": "1"}, {"optim": "x"}, {"size": -1}, {"mtime_ns": None}, {"description": "junk"},
     {"description": None}],
    ids=lambda c: "-".join(f"{k}={v!r}" for k, v in c.items()),
)
def test_a_description_entry_with_a_bad_stamp_is_dropped(changes: dict, tmp_path: Path, copy_fixtures: CopyFixtures) -> None:
    path = copy_fixtures(tmp_path, "act_relu.pt")
    store = tmp_path / "cache.json"
    store.write_text(json.dumps({"version": 1, "entries": {str(path): {**_entry(path), **changes}}}))
    assert len(DescriptionCache.load(store)) == 0


def test_a_correct_description_entry_is_kept_and_another_schema_is_not_used(tmp_path: Path, copy_fixtures: CopyFixtures) -> None:
    path = copy_fixtures(tmp_path, "act_relu.pt")
    store = tmp_path / "cache.json"
    good = _entry(path)
    store.write_text(json.dumps({"version": 1, "entries": {str(path): good}}))
    st = path.stat()
    loaded = DescriptionCache.load(store).get(path, st.st_size, st.st_mtime_ns)
    assert loaded is not None and loaded.to_json() == describe_file(path).to_json()
    store.write_text(json.dumps({"version": 1, "entries": {str(path): {**good, "schema": 999, "description": {}}}}))
    other = DescriptionCache.load(store)
    assert len(other) == 1 and other.get(path, st.st_size, st.st_mtime_ns) is None  # kept quietly, never used
    other.save(store)
    assert json.loads(store.read_text())["entries"] == {}  # and pruned


# ---------------------------------------------------------------------- saving
@pytest.mark.parametrize("cls", CACHES, ids=lambda c: c.__name__)
def test_save_merges_and_prunes_gone_and_changed_files(
    cls: type[PersistedCache], tmp_path: Path, copy_fixtures: CopyFixtures
) -> None:
    a, b, c = (copy_fixtures(tmp_path, name) for name in ("act_relu.pt", "act_gelu.pt", "act_elu.pt"))
    store = tmp_path / "cache.json"
    one, two = cls.load(store), cls.load(store)
    _fill(one, a)
    _fill(one, b)
    _fill(two, c)
    one.save(store)
    assert not one.dirty
    b.unlink()
    two.save(store)  # the last writer keeps the other's entry, prunes the gone file
    assert set(json.loads(store.read_text())["entries"]) == {str(a), str(c)}
    assert _known(two, a)  # and adopts the other's entry
    with open(c, "ab") as f:
        f.write(b"changed")
    one.save(store)
    assert set(json.loads(store.read_text())["entries"]) == {str(a)}


@pytest.mark.parametrize("cls", CACHES, ids=lambda c: c.__name__)
def test_a_lock_file_that_is_a_symlink_is_not_followed(
    cls: type[PersistedCache], tmp_path: Path, copy_fixtures: CopyFixtures, caplog: pytest.LogCaptureFixture
) -> None:
    path = copy_fixtures(tmp_path, "act_relu.pt")
    store = tmp_path / "cache.json"
    target = tmp_path / "outside" / "target"
    target.parent.mkdir()
    Path(f"{store}.lock").symlink_to(target)
    cache = cls()
    _fill(cache, path)
    with caplog.at_level("WARNING"):
        cache.save(store)
    assert not os.path.lexists(target)
    assert any("lock file" in r.getMessage() for r in caplog.records)
    assert _known(cls.load(store), path)  # saved all the same, unlocked


def test_file_lock_refuses_a_fifo_without_blocking(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lock = tmp_path / "x.lock"
    os.mkfifo(lock)
    with fifo_rescuer([str(lock)], after_s=10) as rescued, caplog.at_level("WARNING"), file_lock(lock) as locked:
        assert locked is False
    assert rescued == [] and any("not a regular file" in r.getMessage() for r in caplog.records)


def test_file_lock_excludes_another_holder(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    with file_lock(lock) as first:
        result: list[bool] = []
        thread = threading.Thread(target=lambda: result.append(_try_lock(lock)))
        thread.start()
        thread.join()
    assert first is True and result == [False] and _try_lock(lock) is True


def _try_lock(lock: Path) -> bool:
    with file_lock(lock, timeout_s=0.1) as locked:
        return locked


# ---------------------------------------------------------------------- the files; facts
def test_cache_files_load_and_save_both_and_never_raise(
    tmp_path: Path, copy_fixtures: CopyFixtures, caplog: pytest.LogCaptureFixture
) -> None:
    path = copy_fixtures(tmp_path, "act_relu.pt")
    folder = tmp_path / "caches"
    files = CacheFiles(folder)
    files.save()
    assert not folder.exists()  # nothing changed: nothing written
    files.hashes.sha256(path)
    files.descriptions.put(describe_file(path))
    files.save()
    assert {HASHES_FILE, DESCRIPTIONS_FILE} <= set(os.listdir(folder))
    again = CacheFiles(folder)
    assert _known(again.hashes, path) and _known(again.descriptions, path)
    memory = CacheFiles(None)
    memory.hashes.sha256(path)
    memory.save()  # in memory only
    blocked = CacheFiles(tmp_path / "a-file")
    (tmp_path / "a-file").write_text("")
    blocked.hashes.sha256(path)
    with caplog.at_level("WARNING"):
        blocked.save()
    assert any("cannot save the hash cache" in r.getMessage() for r in caplog.records)


def test_file_facts_keep_nothing_of_their_own(tmp_path: Path, copy_fixtures: CopyFixtures) -> None:
    copy_fixtures(tmp_path, "act_relu.pt")
    library = HypernetLibrary(tmp_path)
    library.refresh()
    file = library.files["act_relu"]
    facts = FileFacts(library)
    assert is_pending(facts.get(file)) and facts.label(file) == "act_relu"
    assert facts.missing([file]) == [file]
    facts.compute_missing(background=False)
    desc = facts.get(file)
    assert desc.ok and not is_pending(desc) and desc.shorthash == library.hash_cache.get(file.path)[:10]
    assert facts.label(file) == f"act_relu [{desc.shorthash}]" and facts.missing([file]) == []
    fresh = HypernetLibrary(tmp_path, hash_cache=library.hash_cache, description_cache=library.description_cache)
    fresh.refresh()
    assert FileFacts(fresh).get(fresh.files["act_relu"]) == desc  # all of it lives in the library's caches
