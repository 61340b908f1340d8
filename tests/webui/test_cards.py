"""Our "Hypernetworks" Extra Networks page on the A1111 stand-in: replacing the built-in page, items, the card
toggle (run in node with the real javascript/hypernet.js), the user-metadata editor and the SD-version filter."""

from __future__ import annotations

import html
import importlib
import json
import os
import re
from pathlib import Path

import webui_util as wu  # puts the stand-in (tests/webui_stub) on sys.path
from hn_testutil import run_node
from modules import errors, shared, ui_extra_networks

from lib_hypernet.webui import cards, settings

webui_ui = importlib.import_module("webui_ui")
webui = importlib.import_module("webui")
FILES = (("anime", {"seed": 1}), ("style (v2", {"seed": 2}), ("xl", {"sizes": (64, 2048), "seed": 3}))


def _pages(name: str = "hypernetworks"):
    return [p for p in ui_extra_networks.extra_pages if p.name == name]


def _page() -> cards.HypernetCardsPage:
    (page,) = _pages()
    assert isinstance(page, cards.HypernetCardsPage)
    return page


def test_the_builtin_page_is_replaced_by_ours_under_the_same_title(app):
    assert _page().title == "Hypernetworks"
    assert ui_extra_networks.get_page("hypernetworks") is _page()
    assert [p.name for p in ui_extra_networks.extra_pages] == ["textual inversion", "checkpoints", "hypernetworks"]
    assert wu.hn_dir() in ui_extra_networks.allowed_dirs or os.path.abspath(wu.hn_dir()) in ui_extra_networks.allowed_dirs
    webui.reload_ui()
    assert len(_pages()) == 1 and isinstance(_pages()[0], cards.HypernetCardsPage)
    cards.replace_builtin_page(wu.extension())
    assert len(_pages()) == 1


def test_items_previews_description_search_terms(app):
    folder = Path(wu.hn_dir())
    (folder / "anime.png").write_bytes(b"png")
    (folder / "anime.txt").write_text("soft <b>anime</b> look", encoding="utf-8")
    wu.write_hn("sub", subdir="deep", seed=4, suffix=".safetensors")
    (folder / "deep" / "sub.preview.png").write_bytes(b"png")
    wu.write_hn("third", seed=5)
    (folder / "third.pt.preview.png").write_bytes(b"png")  # the built-in page's {path}.preview.{ext} … of the stem
    wu.extension().refresh()
    page = _page()
    page.create_html("txt2img")
    anime = page.items["anime"]
    assert "anime.png" in anime["preview"] and anime["description"] == "soft <b>anime</b> look"
    assert anime["local_preview"].endswith("anime.preview.png")
    assert "sub.preview.png" in page.items["sub"]["preview"]  # .safetensors files are cards too
    assert page.items["sub"]["filename"].endswith(".safetensors")
    assert anime["sort_keys"]["default"] == 0 and "date_created" in anime["sort_keys"]
    assert "anime" in anime["search_terms"] and "anime.pt" in anime["search_terms"]
    style = page.items["style (v2"]
    assert all("<" not in t and ">" not in t for t in style["search_terms"])
    card = page.create_item_html("txt2img", anime)
    assert 'onclick="sdHypernet.cardClicked(event, &quot;anime&quot;, opts.extra_networks_default_multiplier)"' in card


def test_search_terms_are_escaped(tmp_path):
    with wu.running(tmp_path, (("a&b <i", {"seed": 1}),)):
        item = _page().create_item("a&b <i")
        assert "a&amp;b &lt;i" in item["search_terms"]


def test_hashes_and_metadata_come_from_cache_and_the_background(app, monkeypatch):
    extension = wu.extension()
    extension.facts.stop()
    reads = []
    monkeypatch.setattr("lib_hypernet.library.folder.describe_file", lambda *a, **k: reads.append(a))
    monkeypatch.setattr(extension.library.hash_cache, "sha256", lambda *a, **k: reads.append(a))
    monkeypatch.setattr(extension.facts, "compute_missing", lambda *a, **k: None)
    page = _page()
    page.create_html("txt2img")
    assert reads == []  # page build never reads or hashes a file
    monkeypatch.undo()
    item = page.items["anime"]
    assert item["metadata"]["name"] == "anime"  # ⓘ appears at once, with what is known
    extension.facts.compute_missing(background=False)
    page.create_html("txt2img")
    item = page.items["anime"]
    digest = extension.library.hash_cache.get(item["filename"])
    assert item["shorthash"] == digest[:10] and digest in item["search_terms"]
    assert item["sd_version"] == "SD1"
    assert item["metadata"]["widths"] == ", ".join(map(str, wu.SD1_TINY_WIDTHS))
    body = ui_extra_networks.get_metadata("hypernetworks", "anime")
    assert json.loads(body["metadata"])["layer structure"] == "1, 0.25, 1"


def test_the_background_thread_hashes_missing_files(app):
    extension = wu.extension()
    thread = extension.facts.compute_missing()
    if thread is not None:
        thread.join(60)
    for file in extension.library.files.values():
        assert extension.library.hash_cache.get(file.path)
        assert extension.facts.get(file).shorthash


def _broken_files() -> None:
    """An invalid file and a truncated one (the first half of a good file), described in the foreground."""
    (Path(wu.hn_dir()) / "broken.pt").write_bytes(b"not a torch file")
    good = Path(wu.write_hn("cut", seed=9))
    good.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    extension = wu.extension()
    extension.refresh()
    extension.facts.stop()
    extension.facts.compute_missing(background=False)


def test_a_broken_file_is_a_card_that_says_so(app):
    _broken_files()
    (Path(wu.hn_dir()) / "cut.txt").write_text("my style", encoding="utf-8")
    page = _page()
    html_text = page.create_html("txt2img")
    assert "anime" in page.items and not page.items["anime"]["description"]
    for name in ("broken", "cut"):
        item = page.items[name]
        assert item["metadata"]["error"] and item["description"].startswith("⚠ broken: ")
        assert wu.hn_dir() not in item["description"]  # the reason, without the card's own path
        assert "broken" in item["search_terms"]
    assert page.items["cut"]["description"].endswith(" — my style")  # the user's description stays
    assert html_text.count("<span class=\"description\">⚠ broken: ") == 2
    (Path(wu.hn_dir()) / "cut.json").write_text(json.dumps({"description": "edited"}), encoding="utf-8")
    refreshed = ui_extra_networks.get_single_card("hypernetworks", "txt2img", "cut")  # after the dialog's Save
    assert refreshed["description"].startswith("⚠ broken: ") and refreshed["description"].endswith(" — edited")
    assert errors.records == []


def test_the_info_popup_shows_the_tabs_fields(app):
    from lib_hypernet.ui.library_panel import detail_html

    extension = wu.extension()
    extension.facts.stop()
    extension.facts.compute_missing(background=False)
    _page().create_html("txt2img")
    shown = json.loads(ui_extra_networks.get_metadata("hypernetworks", "anime")["metadata"])
    file = extension.library.files["anime"]
    desc = extension.facts.get(file)
    tab_labels = [html.unescape(label) for label in re.findall(r"<th>(.*?)</th>", detail_html(desc))]
    assert list(shown) == tab_labels  # the tab's labels, in its order
    assert all(isinstance(v, str) and v for v in shown.values())  # A1111 turns lists into blank rows
    assert not {"mtime_ns", "error", "module_widths", "ok"} & set(shown)
    assert shown["widths"] == "32, 64, 768" and shown["SD version"] == "SD1"
    assert [m.split(":")[0] for m in shown["modules"].split("; ")] == ["32", "64", "768"]


def _page_with_facts() -> cards.HypernetCardsPage:
    """The page built once every file's hash and SD version are known (as after the background thread)."""
    extension = wu.extension()
    extension.facts.stop()
    extension.facts.compute_missing(background=False)
    page = _page()
    page.create_html("txt2img")
    return page


def test_sd_version_filter(app):
    page = _page_with_facts()
    assert "xl" not in page.items and "anime" in page.items  # an SD1 model is loaded
    assert page.create_item("xl", enable_filter=False)["sd_version"] == "SDXL"
    assert ui_extra_networks.get_single_card("hypernetworks", "txt2img", "xl")["name"] == "xl"
    shared.opts.data[settings.SHOW_ALL_OPTION] = True
    page.create_html("txt2img")
    assert "xl" in page.items


def test_sd_version_filter_knows_a_model_by_its_context_width(app):
    """A model that sets no ``is_sd*`` flag is known by its UNet's ``context_dim``, as the messages know it."""
    model = shared.sd_model
    model.is_sd1 = model.is_sd2 = model.is_sdxl = False
    model.model.diffusion_model.context_dim = 2048
    page = _page_with_facts()
    assert "xl" in page.items and "anime" not in page.items


def test_card_metadata_is_valid_json(app):
    """The ⓘ popup's metadata is JSON a browser parses: a NaN (here from a damaged cached description) is null."""
    extension = wu.extension()
    extension.facts.stop()
    anime = extension.library.files["anime"]
    desc = extension.library.describe(anime)
    extension.library.description_cache.put(desc.copy(layer_structure=[1, float("nan"), 1]))
    extension.facts.compute(anime)  # what the background thread does
    page = _page()
    page.create_html("txt2img")

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    metadata = json.loads(ui_extra_networks.get_metadata("hypernetworks", "anime")["metadata"], parse_constant=refuse)
    assert metadata["layer structure"] == "1, ?, 1"


def test_preferred_weight(app):
    page = _page()
    folder = Path(wu.hn_dir())
    for name, weight, written in (("anime", -0.5, "-0.5"), ("style (v2", 0, "0")):
        (folder / f"{name}.json").write_text(json.dumps({"preferred weight": weight}), encoding="utf-8")
        item = page.create_item(name)
        assert html.unescape(item["onclick"]).endswith(f", {written})")
        assert item["prompt"] == f"sdHypernet.formatTag({json.dumps(name)}, {written})"
        assert run_node(f"console.log(JSON.stringify({item['prompt']}));") == f"<hypernet:{name}:{written}>"
    (folder / "anime.json").write_text(json.dumps({"preferred weight": ""}), encoding="utf-8")
    assert html.unescape(page.create_item("anime")["onclick"]).endswith(", opts.extra_networks_default_multiplier)")
    shared.opts.data["hypernet_default_strength"] = "1.0 (like A1111's built-in hypernetworks)"
    assert html.unescape(page.create_item("anime")["onclick"]).endswith(", 1)")


def _click_in_node(onclick: str, prompt: str, clicks: int) -> list[str]:
    """Run the card's onclick attribute ``clicks`` times against javascript/hypernet.js with a fake page."""
    return run_node(f"""
globalThis.opts = {{extra_networks_default_multiplier: 0.8}};
const card = {{closest: () => ({{id: "img2img_hypernetworks_cards"}})}};
const event = {{target: card, stopPropagation() {{}}}};
const out = [];
for (let i = 0; i < {clicks}; i++) {{ eval({json.dumps(onclick)}); out.push(box.value); }}
if (box.dispatched !== {clicks}) throw new Error("updateInput not called");
console.log(JSON.stringify(out));
""", prompt=prompt, tab="img2img")


def test_card_click_inserts_and_removes_the_tag_in_any_form(app):
    page = _page()
    onclick = html.unescape(page.create_item("style (v2")["onclick"])  # what the browser runs
    assert _click_in_node(onclick, "a cat", 2) == ["a cat <hypernet:style (v2:0.8>", "a cat"]
    for form in ("<hypernet:style (v2:-0.5>", "<hypernet:style (v2>", "<hypernet:style (v2:0.8:self=0.5>"):
        assert _click_in_node(onclick, f"a cat {form}, dog", 1) == ["a cat, dog"]


def test_user_metadata_editor(app):
    demo = webui_ui.build()
    assert errors.records == []
    editor = webui_ui.editors[("txt2img", "hypernetworks")]
    assert isinstance(editor, cards.HypernetUserMetadataEditor)
    page = _page()
    path = Path(page.items["anime"]["filename"]).with_suffix(".json")
    assert editor.save_hypernet_user_metadata("anime", "d", "SD1", "abc", "n").startswith("<p class='sd-hypernet-error'>")
    assert not path.exists()  # nothing saved
    assert editor.save_hypernet_user_metadata("anime", "desc", "SD1", " -0.5 ", "notes") == ""
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved == {"description": "desc", "sd version": "SD1", "preferred weight": -0.5, "notes": "notes"}
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []
    values = editor.put_values_into_components("anime")
    assert values[0] == "anime" and values[1] == "desc" and values[4] == "notes" and values[5:] == ["SD1", "-0.5"]
    assert html.unescape(page.create_item("anime")["onclick"]).endswith(", -0.5)")
    assert editor.save_hypernet_user_metadata("anime", "desc", "Unknown", "", "") == ""
    assert json.loads(path.read_text(encoding="utf-8"))["preferred weight"] == ""
    demo.close()


def test_user_metadata_is_never_written_through_a_link_outside_the_folder(app, tmp_path):
    """The card's .json goes through the library's write policy: a linked sub-folder is read, never written."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    wu.make_hn("far", seed=9).save(str(outside / "far.pt"))
    os.symlink(outside, os.path.join(wu.hn_dir(), "linked"))
    wu.extension().refresh()
    demo = webui_ui.build()
    editor = webui_ui.editors[("txt2img", "hypernetworks")]
    _page().create_html("txt2img")
    status = editor.save_hypernet_user_metadata("far", "desc", "SD1", "", "notes")
    assert status.startswith("<p class='sd-hypernet-error'>") and "outside the hypernetwork folder" in status
    assert sorted(os.listdir(outside)) == ["far.pt"]
    assert editor.save_hypernet_user_metadata("anime", "desc", "SD1", "", "") == ""  # inside: saved
    assert (Path(wu.hn_dir()) / "anime.json").is_file()
    demo.close()


def test_labels_and_cards_use_the_librarys_cached_descriptions(app, monkeypatch):
    extension = wu.extension()
    extension.facts.stop()
    anime = extension.library.files["anime"]
    extension.library.describe(anime)  # e.g. persisted from an earlier run
    monkeypatch.setattr(extension.facts, "compute_missing", lambda *a, **k: None)
    desc = extension.facts.get(anime)
    assert desc.sd_version == "SD1" and desc.widths == list(wu.SD1_TINY_WIDTHS)
    item = _page().create_item("anime")
    assert item["sd_version"] == "SD1" and item["metadata"]["layer structure"] == "1, 0.25, 1"
