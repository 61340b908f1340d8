"""The webui extension inside the A1111 stand-in: discovery of hypernetwork files, names, reloading changed
files and the in-memory limit."""

from __future__ import annotations

import os
import shutil

import webui_util as wu
from modules import infotext_utils, shared


def _hash_in_infotext(res) -> str:
    return infotext_utils.parse_generation_parameters(res.infotexts[0])["Hypernet hashes"]


def test_pt_and_safetensors_found_recursively(tmp_path):
    wu.reset(tmp_path)
    try:
        wu.write_hn("deep", subdir="a/b", seed=2)
        wu.write_hn("st", subdir="c", suffix=".safetensors", seed=3)
        wu.write_hn("top", suffix=".safetensors", seed=4)
        wu.start()
        assert {"deep", "st", "top"} <= set(shared.hypernetworks)  # the "Add hypernetwork to prompt" choices
        none = wu.gen()
        results = [wu.gen(f"<hypernet:{name}:0.8>a cat") for name in ("deep", "st", "top", "c/st")]
        for res in results:
            assert not wu.same(res, none)
            assert wu.comments(res) == []
        assert wu.same(results[1], results[3])  # "c/st" is the same file as "st"
        assert not wu.same(results[0], results[1])
    finally:
        wu.webui.unload()


def test_duplicate_stems_in_two_subfolders(app):
    wu.write_hn("dup", subdir="sub1", seed=5)
    wu.write_hn("dup", subdir="sub2", seed=6)
    none = wu.gen()
    one = wu.gen("<hypernet:sub1/dup:0.8>a cat")
    two = wu.gen("<hypernet:sub2/dup:0.8>a cat")
    for res in (one, two):
        assert not wu.same(res, none)
        assert wu.comments(res) == []
    assert not wu.same(one, two)
    ambiguous = wu.gen("<hypernet:dup:0.8>a cat")
    assert wu.same(ambiguous, none)
    [comment] = wu.comments(ambiguous)
    assert "ambiguous" in comment and "sub1/dup" in comment and "sub2/dup" in comment


def test_converted_safetensors_wins_the_plain_name(tmp_path):
    files = (("x", {"seed": 1}), ("x", {"seed": 1, "suffix": ".safetensors"}))
    with wu.running(tmp_path, files):
        pt = os.path.join(wu.hn_dir(), "x.pt")
        st = os.path.join(wu.hn_dir(), "x.safetensors")
        plain = wu.gen("<hypernet:x:0.8>a cat")
        assert _hash_in_infotext(plain) == f"x: {wu.lib_hypernet.shorthash(st)}"
        with_suffix = wu.gen("<hypernet:x.pt:0.8>a cat")
        assert wu.comments(with_suffix) == []
        assert _hash_in_infotext(with_suffix) == f"x.pt: {wu.lib_hypernet.shorthash(pt)}"
        assert wu.same(plain, with_suffix)  # a faithful conversion

        # the .pt deleted while the webui runs: the plain name keeps working, the .pt's name is gone
        os.remove(pt)
        again = wu.gen("<hypernet:x:0.8>a cat")
        assert wu.comments(again) == []
        assert wu.same(again, plain)
        gone = wu.gen("<hypernet:x.pt:0.8>a cat")
        assert any("not found" in c for c in wu.comments(gone))


def test_deleted_file_is_not_found(app):
    os.remove(os.path.join(wu.hn_dir(), "x.pt"))
    res = wu.gen("<hypernet:x:0.8>a cat")
    assert wu.same(res, wu.gen())
    assert any("x" in c and "not found" in c for c in wu.comments(res))


def test_changed_file_is_reloaded(app):
    path = os.path.join(wu.hn_dir(), "x.pt")
    first = wu.gen("<hypernet:x:0.8>a cat")
    wu.write_hn("other", seed=21)
    expected = wu.gen("<hypernet:other:0.8>a cat")

    stat = os.stat(path)
    shutil.copyfile(os.path.join(wu.hn_dir(), "other.pt"), path)
    changed = wu.gen("<hypernet:x:0.8>a cat")
    assert not wu.same(changed, first)
    assert wu.same(changed, expected)
    assert _hash_in_infotext(changed) == f"x: {wu.lib_hypernet.shorthash(path)}"

    # back to the first weights, with an OLDER mtime than before (copy with preserved times, rsync -t, unzip)
    wu.write_hn("x", seed=1)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns - 10**9))
    back = wu.gen("<hypernet:x:0.8>a cat")
    assert wu.same(back, first)
    assert _hash_in_infotext(back) == f"x: {wu.lib_hypernet.shorthash(path)}"


def test_memory_limit_bounds_the_cache(app):
    library = wu.extension().library
    for name, seed in (("a", 31), ("b", 32), ("c", 33)):
        wu.write_hn(name, seed=seed)
    shared.opts.set("hypernet_memory_limit", 1)
    none = wu.gen()
    a = wu.gen("<hypernet:a:0.5>a cat")
    b = wu.gen("<hypernet:b:0.5>a cat")
    both = wu.gen("<hypernet:a:0.5><hypernet:b:0.5><hypernet:c:0.5>a cat")
    assert len(library.loaded_paths()) == 1
    for res in (none, a, b):
        assert not wu.same(both, res)
    assert wu.comments(both) == []
    shared.opts.set("hypernet_memory_limit", 3)
    wu.gen("<hypernet:a:0.5><hypernet:b:0.5><hypernet:c:0.5>a cat")
    assert len(library.loaded_paths()) == 3


def test_file_added_after_startup_is_found(app):
    wu.gen("<hypernet:x:0.8>a cat")  # the folder has been scanned
    wu.write_hn("late", seed=41)
    res = wu.gen("<hypernet:late:0.8>a cat")
    assert wu.comments(res) == []
    assert not wu.same(res, wu.gen())
