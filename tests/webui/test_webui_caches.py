"""The persisted caches (``sd-webui-hypernet-hashes.json``, ``sd-webui-hypernet-summaries.json``) inside the A1111
stand-in: a hostile, blocking or wrongly typed cache file never stops the extension from registering, generating or
showing its files, and saving never writes through a link."""

from __future__ import annotations

import json
import os
import stat

import pytest
import webui_util as wu
from hn_testutil import fifo_rescuer
from modules import errors, paths, ui_extra_networks

from lib_hypernet.ui.library_panel import LibraryPanel
from lib_hypernet.webui import accordion as webui_accordion
from lib_hypernet.webui import cards, tab

TAGGED = "<hypernet:x:0.8>a cat"
HASHES_FILE, DESCRIPTIONS_FILE = "sd-webui-hypernet-hashes.json", "sd-webui-hypernet-summaries.json"


@pytest.fixture(autouse=True)
def _cache_in_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SD_WEBUI_CACHE_DIR", raising=False)  # the caches live in the data dir's cache/


def _cache_dir() -> str:
    folder = os.path.join(paths.data_path, "cache")
    os.makedirs(folder, exist_ok=True)
    return folder


def _cache_path(name: str) -> str:
    return os.path.join(_cache_dir(), name)


def _our_errors() -> list[dict]:
    return [r for r in errors.records if "hypernet" in str(r).lower()]


def _works() -> None:
    """The extension registered, applies a tag, and its panel, tab and cards show the file."""
    none = wu.gen()
    res = wu.gen(TAGGED)
    assert not wu.same(res, none) and wu.comments(res) == []
    extension = wu.extension()
    panel = LibraryPanel(tab.source_for(extension))
    panel.on_refresh("", "name", False, None)
    assert panel.view().names == ["x"]
    assert "<hypernet:x:0.8>" in panel.on_file("x", 0.8)[1]
    extension.facts.stop()
    extension.facts.compute_missing(background=False)
    assert webui_accordion.WebuiPanelSource(extension).choices()[0][0] == "x"
    page = next(p for p in ui_extra_networks.extra_pages if isinstance(p, cards.HypernetCardsPage))
    assert page.create_item("x")["name"] == "x"
    assert _our_errors() == []


def test_nested_description_cache_file_does_not_stop_registration(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    wu.reset(tmp_path)
    try:
        wu.write_hn("x", seed=1)
        nested = '{"version": 1, "entries": ' + "[" * 200_000 + "]" * 200_000 + "}"
        for name in (DESCRIPTIONS_FILE, HASHES_FILE):
            with open(_cache_path(name), "w", encoding="utf-8") as f:
                f.write(nested)
        with caplog.at_level("WARNING"):
            wu.start()
        assert sum("RecursionError" in r.getMessage() for r in caplog.records) == 2  # one warning per cache
        _works()
        with open(_cache_path(DESCRIPTIONS_FILE), encoding="utf-8") as f:
            assert len(json.load(f)["entries"]) == 1  # replaced by a good one
    finally:
        wu.webui.unload()


@pytest.mark.parametrize("how", ["fifo", "symlink-to-fifo"])
def test_a_fifo_at_the_cache_paths_never_blocks_start_up(how: str, tmp_path) -> None:
    wu.reset(tmp_path)
    try:
        wu.write_hn("x", seed=1)
        fifos = []
        for name in (HASHES_FILE, DESCRIPTIONS_FILE):
            fifo = _cache_path(name) if how == "fifo" else str(tmp_path / f"{name}.fifo")
            os.mkfifo(fifo)
            if how == "symlink-to-fifo":
                os.symlink(fifo, _cache_path(name))
            fifos.append(fifo)
        with fifo_rescuer(fifos) as rescued:
            wu.start()
            _works()
        assert rescued == []
        for name in (HASHES_FILE, DESCRIPTIONS_FILE):  # saving replaced them with regular files
            assert stat.S_ISREG(os.lstat(_cache_path(name)).st_mode)
    finally:
        wu.webui.unload()


def test_a_lock_file_that_is_a_symlink_creates_nothing_at_its_target(tmp_path) -> None:
    wu.reset(tmp_path)
    try:
        wu.write_hn("x", seed=1)
        targets = []
        for name in (HASHES_FILE, DESCRIPTIONS_FILE):
            target = tmp_path / f"outside-{name}.lock"
            os.symlink(target, _cache_path(name) + ".lock")
            targets.append(target)
        wu.start()
        _works()
        assert all(os.path.exists(_cache_path(name)) for name in (HASHES_FILE, DESCRIPTIONS_FILE))  # saved all the same
        assert [t for t in targets if os.path.lexists(t)] == []
    finally:
        wu.webui.unload()


@pytest.mark.parametrize("bad", [{"widths": "x"}, {"layer_structure": {}}, {"step": "5"}, {"ok": "yes"},
                                 {"module_widths": {"768": "a"}}, {"optim": {"status": {"deep": []}}}],
                         ids=["widths-str", "layer-structure-dict", "step-str", "ok-str", "module-widths", "optim-nested"])
def test_a_wrongly_typed_cached_description_is_read_again(bad: dict, tmp_path) -> None:
    wu.reset(tmp_path)
    try:
        path = wu.write_hn("x", seed=1)
        st = os.stat(path)
        description = {"path": path, "name": "x", "relpath": "x.pt", "format": "pt", "size": st.st_size,
                       "mtime_ns": st.st_mtime_ns, "ok": True, "sd_version": "SD1", **bad}
        entry = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "optim": None, "schema": 1, "description": description}
        with open(_cache_path(DESCRIPTIONS_FILE), "w", encoding="utf-8") as f:
            json.dump({"version": 1, "entries": {path: entry}}, f)
        wu.start()
        _works()
        desc = wu.extension().library.describe(wu.extension().library.files["x"])
        assert desc.ok and desc.widths == list(wu.SD1_TINY_WIDTHS) and desc.layer_structure == [1, 0.25, 1]
    finally:
        wu.webui.unload()
