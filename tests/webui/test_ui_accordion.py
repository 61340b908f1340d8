"""The panel beside the prompt (HypernetScript.ui) built with gradio 3.41.2 on the A1111 stand-in.

The rows only edit the prompt: every sync event is JavaScript (``fn=None``), checked here in the Blocks
config; the browser test (tests/webui/test_browser_accordion.py) drives them.
"""

from __future__ import annotations

import importlib
import json

import pytest
import webui_util as wu  # puts the stand-in (tests/webui_stub) on sys.path
from modules import errors, infotext_utils, scripts, shared

from lib_hypernet.ui import accordion as rows_ui

webui_ui = importlib.import_module("webui_ui")  # the stand-in's UI build harness
FILES = (("anime", {"seed": 1}), ("style (v2)", {"seed": 2}))


@pytest.fixture
def app(app):
    """The folder's ``app`` (conftest.py) with every file's facts computed."""
    facts = wu.extension().facts
    facts.stop()  # deterministic labels: finish the background work in the foreground
    facts.compute_missing(background=False)
    return app


def _label(name: str) -> str:
    extension = wu.extension()
    return extension.facts.label(extension.library.files[name])


def _script(tab: str = "txt2img"):
    runner = scripts.scripts_img2img if tab == "img2img" else scripts.scripts_txt2img
    return next(s for s in runner.alwayson_scripts if s.title() == "Hypernetworks")


def runner_inputs(tab: str) -> list:
    return (scripts.scripts_img2img if tab == "img2img" else scripts.scripts_txt2img).inputs


def _deps_by_trigger(demo, component, event):
    """The event listeners of ``component.event`` (gradio 3: ``targets=[id]`` + ``trigger``; 4: ``[[id, event]]``)."""
    found = []
    for d in demo.config["dependencies"]:
        targets = [(t, d.get("trigger")) if isinstance(t, int) else tuple(t) for t in d["targets"]]
        if (component._id, event) in targets:
            found.append(d)
    return found


def test_the_whole_ui_builds_with_the_panel_in_the_accordions_row(app):
    demo = webui_ui.build()
    assert errors.records == []
    for tab in ("txt2img", "img2img"):
        script = _script(tab)
        assert script.section == "accordions" and script.create_group is False
        panel = script.panel
        assert panel.rows is not None and panel.rows.rows == 3
        assert panel._connected == {"prompt", "info"}
        switch = webui_ui.components[f"{script.elem_id('panel')}-checkbox"]
        assert runner_inputs(tab)[script.args_from:script.args_to] == [switch]  # the rows only edit the prompt
        accordion = webui_ui.components[script.elem_id("panel")]
        assert accordion.open is False  # collapsed by default
        assert switch.value is True  # and on: the prompt's tags apply (the default an API call gets too)
        assert [component for component, _ in script.infotext_fields] == [switch]
        accordions_row = webui_ui.components[f"{tab}_accordions"]
        assert _inside(accordions_row, accordion)
        for component in panel.rows.components():
            assert getattr(component, "do_not_save_to_config", False), component.elem_id
        labels = [d.label for d in panel.rows.dropdowns]
        assert labels == ["Hypernetwork 1", "Hypernetwork 2", "Hypernetwork 3"]
        assert panel.rows.dropdowns[0].choices == ["None", _label("anime"), _label("style (v2)")]
        assert _label("anime").startswith("anime [") and _label("anime").endswith(" · SD1]")
        slider = panel.rows.strengths[0]
        assert (slider.minimum, slider.maximum, slider.step) == (-2.0, 2.0, 0.05)
        config = json.loads(panel.rows.config.value)
        assert config == {"rows": 3, "default": 1.0, "prefix": f"{tab}_sd_hypernet",
                          "labels": {"anime": _label("anime"), "style (v2)": _label("style (v2)")},
                          "aliases": {"anime.pt": "anime", "style (v2).pt": "style (v2)"}}
    demo.close()


def _inside(parent, block) -> bool:
    children = getattr(parent, "children", [])
    return any(child is block or _inside(child, block) for child in children)


def test_sync_events_are_javascript_only(app):
    demo = webui_ui.build()
    panel = _script().panel.rows
    prompt = webui_ui.components["txt2img_prompt"]
    (parse,) = _deps_by_trigger(demo, prompt, "change")
    assert parse["backend_fn"] is False and parse["js"] == rows_ui.PARSE_JS
    assert parse["inputs"] == [prompt._id, panel.config._id]
    assert parse["outputs"] == [c._id for c in panel.row_outputs()]
    assert len(parse["outputs"]) == 3 * 6 + 1
    for i in range(3):
        (choose,) = _deps_by_trigger(demo, panel.dropdowns[i], "input")
        assert choose["backend_fn"] is False and f"panelChoose({i}," in choose["js"]
        assert choose["outputs"] == [prompt._id]
        for key, slider in [("strength", panel.strengths[i])] + [(k, panel.advanced[k][i]) for k in rows_ui.ADVANCED_KEYS]:
            for event in ("release", "input"):
                (dep,) = _deps_by_trigger(demo, slider, event)
                assert dep["backend_fn"] is False and f'panelSet({i}, "{key}",' in dep["js"]
                assert dep["outputs"] == [prompt._id]
            assert _deps_by_trigger(demo, slider, "change") == []  # a row set by the parse never writes back
        assert _deps_by_trigger(demo, panel.dropdowns[i], "change") == []
    (refresh,) = _deps_by_trigger(demo, panel.refresh, "click")
    assert refresh["backend_fn"] is True
    info = webui_ui.components["generation_info_txt2img"]
    (report,) = _deps_by_trigger(demo, info, "change")
    assert report["backend_fn"] is True and report["outputs"] == [panel.report._id]
    demo.close()


def test_compact_prompt_created_after_the_scripts_is_connected_too(app):
    demo = webui_ui.build(compact_prompt=True)
    assert errors.records == []
    assert _script().panel._connected == {"prompt", "info"}
    prompt = webui_ui.components["txt2img_prompt"]
    assert len(_deps_by_trigger(demo, prompt, "change")) == 1
    demo.close()


def test_rows_setting(tmp_path):
    with wu.running(tmp_path, FILES, settings={wu.webui_settings.ROWS_OPTION: 5}):
        assert shared.opts.data[wu.webui_settings.ROWS_OPTION] == 5
        demo = webui_ui.build()
        assert _script().panel.rows.rows == 5
        assert json.loads(_script().panel.rows.config.value)["rows"] == 5
        demo.close()


def test_labels_show_short_hash_and_sd_version_once_computed(app):
    extension = wu.extension()
    demo = webui_ui.build()
    choices = _script().panel.rows.dropdowns[0].choices
    anime = extension.library.files["anime"]
    shorthash = extension.library.hash_cache.get(anime.path)[:10]
    assert choices[1] == f"anime [{shorthash} · SD1]"
    assert json.loads(_script().panel.rows.config.value)["labels"]["anime"] == choices[1]
    demo.close()


def test_broken_files_are_labelled_as_such(app):
    from pathlib import Path

    (Path(wu.hn_dir()) / "invalid.pt").write_bytes(b"not a torch file")
    cut = Path(wu.write_hn("cut", seed=9))
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])  # truncated
    extension = wu.extension()
    extension.refresh()
    extension.facts.compute_missing(background=False)
    demo = webui_ui.build()
    labels = json.loads(_script().panel.rows.config.value)["labels"]
    assert labels["invalid"].endswith(" ⚠ broken") and labels["cut"].endswith(" ⚠ broken")
    assert "⚠" not in labels["anime"]
    assert labels["cut"] in _script().panel.rows.dropdowns[0].choices
    demo.close()


def test_refresh_finds_new_files_and_updates_the_labels(app):
    demo = webui_ui.build()
    panel = _script().panel.rows
    wu.write_hn("newcomer", seed=3)
    (refresh,) = _deps_by_trigger(demo, panel.refresh, "click")
    fn = demo.fns[demo.config["dependencies"].index(refresh)].fn
    config, *updates = fn()
    assert "newcomer" in json.loads(config)["labels"]
    assert len(updates) == 3
    assert all(any(c == "newcomer" or c.startswith("newcomer [") for c in u["choices"]) for u in updates)
    demo.close()


def test_the_report_says_what_the_last_generation_did(app):
    demo = webui_ui.build()
    source = _script().panel.rows.source
    assert "No hypernetwork" in source.report_html()
    wu.gen("a cat <hypernet:anime:0.8> <hypernet:missing:1>")
    html = source.report_html()
    assert "applied: anime" in html
    assert "sd-hypernet-not_found" in html and "missing" in html
    wu.gen("a cat")
    assert "No hypernetwork" in source.report_html()
    demo.close()


def test_unticked_switch_leaves_the_prompts_tags_out_and_says_so(app):
    from lib_hypernet.prompt import infotext

    prompt = "<hypernet:anime:0.8>a cat"
    none = wu.gen()
    off = wu.gen(prompt, script_args={"HypernetScript": [False]})
    assert wu.same(off, none)
    assert not wu.same(wu.gen(prompt, script_args={"HypernetScript": [True]}), none)
    assert not wu.same(wu.gen(prompt), none)  # no argument (an API call that leaves it out): on
    off = wu.gen(prompt, script_args={"HypernetScript": [False]})
    (said,) = wu.comments(off)
    assert said.startswith("Hypernetworks off:") and "checkbox is unticked" in said and "not applied" in said
    assert "switched off" in wu.extension().report.to_html() and wu.extension().report.applied == []
    text = off.infotexts[0]
    assert text.startswith(prompt + "\n")  # the tags stay in the prompt
    params = infotext_utils.parse_generation_parameters(text)
    assert params["Hypernets"] == "off" and "Hypernet hashes" not in params
    # pasting it back changes no tag and unticks the switch; other parameters tick it
    pasted = wu.webui.paste_infotext(text)
    assert pasted["Prompt"] == prompt and errors.records == []
    assert infotext.switch_from_pasted(pasted) is False
    on = wu.gen(prompt)
    assert "Hypernets" not in on.infotexts[0] and wu.comments(on) == []
    assert infotext.switch_from_pasted(wu.webui.paste_infotext(on.infotexts[0])) is True
    # unticked without any tag: nothing was left out, nothing to say
    assert "Hypernets" not in wu.gen("a cat", script_args={"HypernetScript": [False]}).infotexts[0]


def test_report_kinds():
    from lib_hypernet.library.report import GenerationReport, kind_of

    assert kind_of("Hypernet x changed self-attention only on this SDXL model: …")[0] == "self_only"
    assert kind_of("Hypernet x matched no attention layer on this SD1 model")[0] == "matched_nothing"
    assert kind_of("Hypernet x was trained on a [b]; the current model is c [d]")[0] == "base_model"
    assert kind_of("Hypernet x failed to load: /p: refused to load: the file references …")[0] == "unsafe"
    assert kind_of("Hypernet not found: hypernetwork 'x' not found in /d")[0] == "not_found"
    report = GenerationReport()
    report.add_applied(["<b>"])
    report.add_messages(["Hypernet tag skipped: <hypernet:x:abc>: …", "Hypernet tag skipped: <hypernet:x:abc>: …"])
    html = report.to_html()
    assert "&lt;b&gt;" in html and "<b>" not in html.replace("<b>tag skipped</b>", "")
    assert html.count("<li class='sd-hypernet-bad_tag'>") == 1


def test_unsafe_and_self_attention_only_reach_the_report(tmp_path):
    with wu.running(tmp_path, (("sdxl_only", {"sizes": (64, 2048), "seed": 1}),)):
        wu.write_malicious(str(tmp_path / "models" / "hypernetworks" / "evil.pt"), str(tmp_path / "pwned"))
        wu.extension().refresh()
        wu.gen("a cat <hypernet:evil:1> <hypernet:sdxl_only:1>")
        html = wu.extension().report.to_html()
        assert "sd-hypernet-unsafe" in html
        assert "sd-hypernet-self_only" in html
        assert not (tmp_path / "pwned").exists()


def test_style_css_styles_only_our_elements():
    import re

    from hn_testutil import REPO_ROOT

    css = (REPO_ROOT / "style.css").read_text(encoding="utf-8")
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    selectors = [s.strip() for block in re.findall(r"([^{}]+)\{", css) for s in block.split(",") if s.strip()]
    assert selectors
    for selector in selectors:
        last = re.split(r"[\s>+~]+", selector)[-1]
        assert "sd-hypernet" in last or "_sd_hypernet" in last, selector
