"""The Hypernetworks tab inside the A1111 stand-in: built by ``on_ui_tabs`` with gradio 3.41.2, on the webui's
folder, with the loaded model's facts, send-to-txt2img/img2img and the persisted description cache."""

from __future__ import annotations

import json
import os

import gradio as gr
import orjson
import webui_util as wu
from fastapi.testclient import TestClient
from hn_testutil import run_node
from modules import errors, paths, shared

from lib_hypernet.ui.library_panel import LibraryPanel
from lib_hypernet.webui import settings, tab


def _our_errors() -> list[dict]:
    return [r for r in errors.records if "hypernet" in str(r).lower()]


def test_tab_is_built_with_gradio_3(tmp_path) -> None:
    assert gr.__version__ == "3.41.2"
    errors.records.clear()
    with wu.running(tmp_path, files=(("x", {"seed": 1}), ("y", {"seed": 2, "subdir": "sub"}))):
        tabs = [t for t in wu.webui.harness["ui_tabs"] if t[2] == tab.TAB_ID]
        assert len(tabs) == 1, wu.webui.harness["ui_tabs"]
        blocks, title, _ = tabs[0]
        assert title == "Hypernetworks" and isinstance(blocks, gr.Blocks)
        assert _our_errors() == []
        config = blocks.get_config_file()
        ids = {c["props"].get("elem_id") for c in config["components"]}
        assert {"hypernet_lib_table", "hypernet_lib_send_0", "hypernet_lib_send_1", "hypernet_lib_create"} <= ids
        scripts = [d.get("js") for d in config["dependencies"] if d.get("js")]
        assert tab.send_to_js("txt2img") in scripts and tab.send_to_js("img2img") in scripts
        writing = [d for d in config["dependencies"] if d["trigger"] == "click" and not d.get("js")]
        assert writing and all(d["queue"] is not False for d in writing)  # through the webui's queue


def test_send_to_is_hypernet_js_with_its_prompt_box() -> None:
    """The tab's send-to runs javascript/hypernet.js's ``sendTo``: the prompt box the cards use, then the tab switch."""
    found = run_node(f"""
const switched = [];
globalThis.switch_to_img2img = () => switched.push("img2img");
const out = ({tab.send_to_js("img2img")})("<hypernet:x:0.8>");
console.log(JSON.stringify([out, box.value, box.dispatched, switched]));
""", prompt="a cat", tab="img2img")
    assert found == [[], "a cat <hypernet:x:0.8>", 1, ["img2img"]]


def test_tab_source_shows_the_webui_folder_and_model(tmp_path) -> None:
    with wu.running(tmp_path, files=(("x", {"seed": 1}),)):
        other = wu.make_hn("trained", seed=3)
        other.sd_checkpoint, other.sd_checkpoint_name = "0000000000", "some-other-model"
        wu.write_hn("trained", hn=other)
        wu.write_hn("xl", sizes=(2048,), seed=4)
        panel = LibraryPanel(tab.source_for(wu.extension()))
        assert panel.view().names == ["x"]
        panel.on_refresh("", "name", False, None)  # also what a page load does
        assert {"trained", "x", "xl"} <= set(shared.hypernetworks)  # the webui's own list is refreshed too
        view = panel.view()
        assert view.names == ["trained", "x", "xl"]
        assert view.status.startswith(f"3 files in `{os.path.join(paths.models_path, 'hypernetworks')}`")
        facts = panel.source.model()
        assert facts is not None and facts.widths == tuple(wu.attention_widths())
        assert facts.checkpoint_hash == shared.sd_model.sd_checkpoint_info.shorthash
        html, tag = panel.on_file("trained", 0.8)
        assert tag == "<hypernet:trained:0.8>"
        assert "trained on another checkpoint: some-other-model [0000000000]" in html
        assert "no width matches" not in html
        assert "no width matches the loaded model" in panel.on_file("xl", 0.8)[0]

        # hashing from the tab persists both caches beside each other
        panel.on_hash("", "name", False, None, progress=lambda *a, **k: None)
        cache = settings.cache_dir()
        assert {"sd-webui-hypernet-hashes.json", "sd-webui-hypernet-summaries.json"} <= set(os.listdir(cache))
        with open(os.path.join(cache, "sd-webui-hypernet-summaries.json"), encoding="utf-8") as f:
            assert len(json.load(f)["entries"]) == 3


def test_api_list_carries_model_warnings(tmp_path) -> None:
    wu.reset(tmp_path)
    try:
        other = wu.make_hn("trained", seed=3)
        other.sd_checkpoint = "0000000000"
        wu.write_hn("trained", hn=other)
        app = wu.start(nowebui=True)
        items = TestClient(app).get("/hypernet/v1/hypernetworks").json()
        assert json.loads(orjson.dumps(items)) == items
        (item,) = items
        assert any(w.startswith("trained on another checkpoint") for w in item["warnings"])
        assert item["sd_version"] == "SD1" and item["module_widths"]["768"] == [768, 192, 768]
    finally:
        wu.webui.unload()
