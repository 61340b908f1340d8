"""The webui extension inside the A1111 stand-in: infotext (written and pasted back), hires fix, the
"Add hypernetwork to prompt" setting and the extension's own settings."""

from __future__ import annotations

import html.parser
import os

import pytest
import torch
import webui_util as wu
from modules import errors, infotext_utils, shared

OPTION_KEYS = (
    "hypernet_default_strength",
    "hypernet_memory_limit",
    "hypernet_infotext_hashes",
    "hypernet_warnings",
    "hypernet_precision",
    "hypernet_panel_rows",  # the panel beside the prompt (lib_hypernet/webui/accordion.py)
    "hypernet_cards_show_all",  # the cards page (lib_hypernet/webui/cards.py)
)
SECTION = ("hypernet", "Hypernetworks", "sd")


FILES = (("x", {"seed": 1}), ("y", {"seed": 2}))  # the folder's app fixture (conftest.py) starts on them


def _params(res) -> dict:
    return infotext_utils.parse_generation_parameters(res.infotexts[0])


def _pass(res, name: str) -> list[torch.Tensor]:
    return [call["out"] for call in res.unet_calls if call["pass"] == name]


def _equal(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) > 0 and all(torch.equal(x, y) for x, y in zip(a, b))


# ---------------------------------------------------------------------------- writing and pasting
def test_infotext_hashes(app):
    x_path = os.path.join(wu.hn_dir(), "x.pt")
    res = wu.gen("<hypernet:x:0.8>a cat")
    text = res.infotexts[0]
    assert text.startswith("<hypernet:x:0.8>a cat\n")
    assert f'Hypernet hashes: "x: {wu.lib_hypernet.shorthash(x_path)}"' in text
    assert len(wu.lib_hypernet.shorthash(x_path)) == 10
    assert "Hypernet hashes" not in wu.gen().infotexts[0]
    # not found / skipped tags are not listed
    assert _params(wu.gen("<hypernet:nope><hypernet:x:0.8>a cat"))["Hypernet hashes"] == f"x: {wu.lib_hypernet.shorthash(x_path)}"

    shared.opts.set("hypernet_infotext_hashes", False)
    res = wu.gen("<hypernet:x:0.8>a cat")
    assert "Hypernet hashes" not in res.infotexts[0]
    assert "<hypernet:x:0.8>" in res.infotexts[0]


def test_paste_back_resolves_a_renamed_file_by_hash(app):
    text = wu.gen("<hypernet:x:0.8><hypernet:y:0.5>a cat").infotexts[0]
    assert wu.webui.paste_infotext(text)["Prompt"] == "<hypernet:x:0.8><hypernet:y:0.5>a cat"  # nothing renamed

    os.rename(os.path.join(wu.hn_dir(), "x.pt"), os.path.join(wu.hn_dir(), "renamed.pt"))
    params = wu.webui.paste_infotext(text)
    assert params["Prompt"] == "<hypernet:renamed:0.8><hypernet:y:0.5>a cat"
    # the pasted prompt generates what the original did
    assert wu.same(wu.gen(params["Prompt"]), wu.gen("<hypernet:renamed:0.8><hypernet:y:0.5>a cat"))

    # a file with the name but other content, and the recorded content under another name: the hash wins
    wu.write_hn("x", seed=9)
    assert wu.webui.paste_infotext(text)["Prompt"] == "<hypernet:renamed:0.8><hypernet:y:0.5>a cat"
    # no file has the hash: the tag is kept as written
    os.remove(os.path.join(wu.hn_dir(), "renamed.pt"))
    assert wu.webui.paste_infotext(text)["Prompt"] == "<hypernet:x:0.8><hypernet:y:0.5>a cat"
    assert errors.records == []


def test_paste_legacy_infotext(app):
    legacy = "a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, Hypernet: x, Hypernet strength: 0.7"
    params = wu.webui.paste_infotext(legacy)
    assert params["Prompt"].count("<hypernet:") == 1
    assert "<hypernet:x:0.7>" in params["Prompt"]
    # the tag A1111 appends makes a working prompt
    assert wu.comments(wu.gen(params["Prompt"])) == []

    # Hypernet hash (2023 infotext: the 10-hex short hash) of a file renamed since
    x_hash = wu.lib_hypernet.shorthash(os.path.join(wu.hn_dir(), "x.pt"))
    os.rename(os.path.join(wu.hn_dir(), "x.pt"), os.path.join(wu.hn_dir(), "new name.pt"))
    legacy = (
        "a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, "
        f"Hypernet: x, Hypernet hash: {x_hash}, Hypernet strength: 0.7"
    )
    params = wu.webui.paste_infotext(legacy)
    assert params["Prompt"].count("<hypernet:") == 1
    assert "<hypernet:new name:0.7>" in params["Prompt"]


# ---------------------------------------------------------------------------- hires fix
def test_hires_pass_uses_its_own_tags(app):
    hr = {"enable_hr": True, "hr_scale": 1.5}
    a = wu.gen("<hypernet:x:0.8>a cat", hr_prompt="<hypernet:y:0.8>a cat", **hr)
    assert [call["pass"] for call in a.unet_calls] == ["first", "first", "hr", "hr"]
    no_hr_tag = wu.gen("<hypernet:x:0.8>a cat", hr_prompt="a cat", **hr)
    same_tag = wu.gen("<hypernet:x:0.8>a cat", **hr)  # hr prompt = prompt
    untagged = wu.gen("a cat", hr_prompt="<hypernet:y:0.8>a cat", **hr)
    none = wu.gen("a cat", **hr)

    for res in (no_hr_tag, same_tag):  # the first pass never sees the hires tags
        assert _equal(_pass(res, "first"), _pass(a, "first"))
    assert _equal(_pass(untagged, "first"), _pass(none, "first"))
    assert not _equal(_pass(a, "first"), _pass(none, "first"))
    # the hires pass applies only its own tags
    assert not _equal(_pass(a, "hr"), _pass(no_hr_tag, "hr"))
    assert not _equal(_pass(a, "hr"), _pass(same_tag, "hr"))
    assert not _equal(_pass(no_hr_tag, "hr"), _pass(same_tag, "hr"))
    # y in the hires pass after an untagged first pass: differs from nothing at all
    assert not _equal(_pass(untagged, "hr"), _pass(none, "hr"))

    hashes = _params(a)["Hypernet hashes"]
    assert hashes == (
        f"x: {wu.lib_hypernet.shorthash(os.path.join(wu.hn_dir(), 'x.pt'))}, "
        f"y: {wu.lib_hypernet.shorthash(os.path.join(wu.hn_dir(), 'y.pt'))}"
    )
    assert _params(a)["Hires prompt"] == "<hypernet:y:0.8>a cat"
    assert wu.comments(a) == []
    assert wu.hooks_left() == []


# ---------------------------------------------------------------------------- "Add hypernetwork to prompt"
def test_sd_hypernetwork_setting(app):
    shared.opts.set("extra_networks_default_multiplier", 0.7)
    explicit = wu.gen("a cat<hypernet:x:0.7>")
    shared.opts.set("sd_hypernetwork", "x")
    res = wu.gen("a cat")
    assert wu.same(res, explicit)
    assert res.infotexts[0].startswith("a cat<hypernet:x:0.7>\n")
    assert "Hypernet hashes" in res.infotexts[0]
    # mentioned in the prompt: not added a second time
    mentioned = wu.gen("a cat<hypernet:x:0.3>")
    assert mentioned.infotexts[0].startswith("a cat<hypernet:x:0.3>\n")
    assert wu.same(mentioned, wu.gen("<hypernet:x:0.3>a cat"))
    # with hires fix, the tag is added once
    hires = wu.gen("a cat", enable_hr=True, hr_scale=1.5)
    assert hires.infotexts[0].count("<hypernet:x:0.7>") == 1
    # with several batches, each prompt gets it once
    batches = wu.gen("a cat", n_iter=2)
    assert [text.split("\n")[0] for text in batches.infotexts] == ["a cat<hypernet:x:0.7>"] * 2
    # the other default-strength choice gives 1
    shared.opts.set("hypernet_default_strength", wu.webui_settings.DEFAULT_STRENGTH_CHOICES[1])
    assert wu.same(wu.gen("a cat"), wu.gen("a cat<hypernet:x:1>"))
    assert errors.records == []


# ---------------------------------------------------------------------------- settings
@pytest.mark.parametrize("nowebui", [True, False])
def test_settings_exist_without_ui_settings(tmp_path, nowebui):
    with wu.running(tmp_path, nowebui=nowebui):
        labels = shared.opts.data_labels
        defaults = {
            "hypernet_default_strength": "Extra networks default multiplier",
            "hypernet_memory_limit": 3,
            "hypernet_infotext_hashes": True,
            "hypernet_warnings": True,
            "hypernet_precision": "Automatic",
        }
        assert sorted(k for k in labels if k.startswith("hypernet_")) == sorted(OPTION_KEYS)
        for key, default in defaults.items():
            assert labels[key].section == ("hypernet", "Hypernetworks"), key
            assert labels[key].category_id == "sd", key  # like the built-in sections, not "Uncategorized"
            assert labels[key].default == default, key
            assert getattr(shared.opts, key) == default, key
        # and they work: the tag applies
        assert not wu.same(wu.gen("<hypernet:x:0.8>a cat"), wu.gen())


def test_settings_are_one_section_with_its_category(tmp_path, monkeypatch):
    """Every option is registered once, in one section that carries the category: an option of a section without
    it sits under "Uncategorized" until the settings page's reorder (never, without the UI)."""
    sections = []
    real = shared.options_section

    def recording(identifier, options):
        if any(key.startswith("hypernet_") for key in options):
            sections.append((tuple(identifier), sorted(options)))
        return real(identifier, options)

    monkeypatch.setattr(shared, "options_section", recording)
    with wu.running(tmp_path, nowebui=True):
        assert sections == [(SECTION, sorted(OPTION_KEYS))]
        labels = shared.opts.data_labels
        assert all(labels[key].category_id == SECTION[2] for key in OPTION_KEYS)
        assert list(wu.webui_settings.OPTIONS) == list(OPTION_KEYS)


class _HelpText(html.parser.HTMLParser):
    """What the browser makes of a setting's help: A1111's ``ui_settings_hints.js`` sets it as ``innerHTML``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.text = ""

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text += data


def test_settings_help_shows_every_character_and_one_reload_note(tmp_path):
    with wu.running(tmp_path):
        for key in OPTION_KEYS:
            info = shared.opts.data_labels[key]
            shown = _HelpText()
            shown.feed(info.comment_before + info.comment_after)
            shown.close()
            assert set(shown.tags) <= {"span"}, (key, shown.tags)  # only A1111's own <span class='info'>
            assert shown.text.lower().count("reload ui") <= 1, (key, shown.text)
        rows = _HelpText()
        rows.feed(shared.opts.data_labels["hypernet_panel_rows"].comment_after)
        assert "<hypernet:…>" in rows.text and "(requires Reload UI)" in rows.text


def test_precision_setting(app):
    none = wu.gen()
    automatic = wu.gen("<hypernet:x:0.8>a cat")
    shared.opts.set("hypernet_precision", "float32")
    float32 = wu.gen("<hypernet:x:0.8>a cat")
    assert wu.same(float32, automatic)
    shared.opts.set("hypernet_precision", "bfloat16")
    bfloat16 = wu.gen("<hypernet:x:0.8>a cat")
    assert not wu.same(bfloat16, none)
    assert not wu.same(bfloat16, float32)
    assert wu.max_diff(bfloat16, float32) < 0.1 * wu.max_diff(float32, none)
    assert wu.comments(bfloat16) == []
    assert errors.records == []


def test_paste_back_prefers_the_renamed_file_over_a_converted_copy(tmp_path, caplog):
    """A converted .safetensors records its source's hash; the renamed original itself has it, and wins."""
    with wu.running(tmp_path, (("hn_a", {"seed": 1}),)):
        text = wu.gen("<hypernet:hn_a:0.8>a cat").infotexts[0]
        pt = os.path.join(wu.hn_dir(), "hn_a.pt")
        wu.lib_hypernet.convert_file(pt, os.path.join(wu.hn_dir(), "hn_a_conv.safetensors"),
                                     source_sha256=wu.lib_hypernet.sha256(pt))
        os.rename(pt, os.path.join(wu.hn_dir(), "hn_a_renamed.pt"))
        with caplog.at_level("WARNING", logger="lib_hypernet.library.service"):
            params = wu.webui.paste_infotext(text)
        assert params["Prompt"] == "<hypernet:hn_a_renamed:0.8>a cat"
        notes = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert any("hn_a now points to hn_a_renamed" in m and "hn_a_conv" in m and "own hash" in m for m in notes), notes
        # only the converted copy is left: it is found by its recorded source hash
        os.remove(os.path.join(wu.hn_dir(), "hn_a_renamed.pt"))
        assert wu.webui.paste_infotext(text)["Prompt"] == "<hypernet:hn_a_conv:0.8>a cat"


def test_hashes_and_report_list_exactly_what_was_applied(app):
    """A1111's Lora writes every loaded network into "Lora hashes", strength 0 and networks that change nothing
    included; "Hypernet hashes" lists only what changed the image (nonzero strength, at least one layer matched),
    and the panel's report says why the others were not applied."""
    wu.write_hn("w16", sizes=[16], seed=5)  # no width of the SD1 stand-in
    res = wu.gen("<hypernet:x:0><hypernet:w16:0.8><hypernet:y:0.5>a cat")
    y_hash = wu.lib_hypernet.shorthash(os.path.join(wu.hn_dir(), "y.pt"))
    assert _params(res)["Hypernet hashes"] == f"y: {y_hash}"
    report = wu.extension().report
    assert report.applied == ["y"]
    html = report.to_html()
    assert "<b>strength 0 — not applied</b>: Hypernet x is at strength 0" in html
    assert "<b>matched nothing — not applied</b>: Hypernet w16 matched no attention layer" in html
    assert wu.same(res, wu.gen("<hypernet:y:0.5>a cat"))
    # nothing changed the image: no hashes, nothing applied
    res = wu.gen("<hypernet:x:0><hypernet:w16:0.8><hypernet:y:0.5:start=0.9>a cat")
    assert wu.extension().report.applied == []
    assert "Hypernet hashes" not in res.infotexts[0]
    assert wu.same(res, wu.gen())
