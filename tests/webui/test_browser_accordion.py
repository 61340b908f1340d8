"""The panel beside the prompt in a real headless Chromium (Debian's, driven by Playwright).

The page is the stand-in webui's txt2img/img2img UI (``tests/webui_stub/webui_ui.py``) built with gradio
3.41.2 in-process on 127.0.0.1, plus the webui's JS helpers ``gradioApp``/``updateInput``/``onUiLoaded``
(their behaviour copied from A1111 1.10.1's script.js and ui.js into ``browser_util.WEBUI_HELPERS``), our
``javascript/hypernet.js`` and ``style.css``.  Every wait is a ``wait_for_function`` (no fixed sleeps).
Saves a screenshot of the open panel (``tmp_path``; also into ``$HYPERNET_SCREENSHOT_DIR`` when set; the README's
docs/accordion.png comes from ``tools/screenshot_docs.py``).
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
from pathlib import Path

import pytest
import webui_util as wu  # puts the stand-in (tests/webui_stub) on sys.path
from browser_util import A1111_COLUMN_CSS, TIMEOUT_MS, WEBUI_HELPERS, chromium_page
from hn_testutil import HYPERNET_JS, REPO_ROOT

webui = importlib.import_module("webui")
webui_ui = importlib.import_module("webui_ui")
FILES = (("anime", {"seed": 1}), ("style (v2)", {"seed": 2}), ("sub/detail", {"seed": 3}))


@pytest.fixture
def webui_page(tmp_path: Path):
    webui.reset(tmp_path)
    try:
        for name, kwargs in FILES:
            folder, _, stem = name.rpartition("/")
            wu.write_hn(stem, subdir=folder, **kwargs)
        cut = Path(wu.write_hn("cut", seed=4))
        cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])  # a truncated file
        wu.start()
        extension = wu.extension()
        extension.facts.stop()
        extension.facts.compute_missing(background=False)  # labels with short hash and SD version
        demo = webui_ui.build(extra_networks=False)
        _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, show_api=False)
        try:
            yield url
        finally:
            demo.close()
    finally:
        webui.unload()


@pytest.fixture
def page():
    script = WEBUI_HELPERS + "\n" + HYPERNET_JS.read_text(encoding="utf-8")
    with chromium_page(1100, 1000, init_script=script) as page:
        yield page


P = "#txt2img_sd_hypernet"


def _prompt(page) -> str:
    return page.evaluate("() => document.querySelector('#txt2img_prompt textarea').value")


def _wait_prompt(page, text: str) -> None:
    page.wait_for_function("(t) => document.querySelector('#txt2img_prompt textarea').value === t", arg=text,
                           timeout=TIMEOUT_MS)


def _wait_value(page, selector: str, value: str) -> None:
    page.wait_for_function("([s, v]) => { const e = document.querySelector(s); return !!e && e.value === v; }",
                           arg=[selector, value], timeout=TIMEOUT_MS)


def _wait_text(page, selector: str, text: str) -> None:
    page.wait_for_function("([s, t]) => { const e = document.querySelector(s); return !!e && e.innerText.includes(t); }",
                           arg=[selector, text], timeout=TIMEOUT_MS)


def _name(i: int) -> str:
    return f"{P}_name_{i} input"


def _number(key: str, i: int) -> str:
    return f"{P}_{key}_{i} input[type=number]"


def _choose(page, i: int, label: str) -> None:
    page.click(_name(i))
    page.locator(f"{P}_name_{i} ul li", has_text=label).first.click()


def test_prompt_and_rows_stay_in_sync_in_chromium(webui_page, page, tmp_path: Path) -> None:
    page.goto(webui_page)
    page.wait_for_function("() => !!window.sdHypernet && !!document.querySelector('#txt2img_sd_hypernet_rows')")
    page.add_style_tag(path=str(REPO_ROOT / "style.css"))
    extension = wu.extension()
    labels = json.loads(page.evaluate(f"() => document.querySelector('{P}_config textarea').value"))["labels"]
    anime, style = labels["anime"], labels["style (v2)"]
    assert anime.startswith("anime [") and anime.endswith(" · SD1]")
    assert extension.library.hash_cache.get(extension.library.files["anime"].path)[:10] in anime

    page.click("#script_txt2img_hypernetworks_panel .label-wrap")  # open the accordion (collapsed by default)
    page.wait_for_function(f"() => document.querySelector('{_name(0)}').offsetParent !== null")

    # prompt → rows: typing shows the tags in order; an unknown file and more tags than rows are flagged
    page.fill("#txt2img_prompt textarea", "a cat <hypernet:anime:0.8:self=0.5> <hypernet:gone:1.2> <hypernet:style (v2)>"
              " <hypernet:sub/detail:0.3>")
    _wait_value(page, _name(0), anime)
    _wait_value(page, _number("strength", 0), "0.8")
    _wait_value(page, _number("self", 0), "0.5")
    _wait_value(page, _number("cross", 0), "0.8")
    _wait_value(page, _name(1), "gone")
    _wait_value(page, _number("strength", 1), "1.2")
    _wait_value(page, _name(2), style)
    _wait_text(page, f"{P}_status", "gone: not in the hypernetwork folder")
    _wait_text(page, f"{P}_status", "the panel shows the first 3")
    page.wait_for_function(f"() => document.querySelector('{P}_row_1').classList.contains('sd-hypernet-row-missing')")

    # slider → prompt: only that tag's number changes
    page.fill(_number("strength", 2), "-0.35")
    _wait_prompt(page, "a cat <hypernet:anime:0.8:self=0.5> <hypernet:gone:1.2> <hypernet:style (v2):-0.35>"
                 " <hypernet:sub/detail:0.3>")
    page.click(f"{P}_advanced_0 .label-wrap")  # the advanced sliders of row 1
    page.wait_for_function(f"() => document.querySelector('{_number('self', 0)}').offsetParent !== null")
    page.fill(_number("self", 0), "0.8")  # back to the strength: the argument disappears
    _wait_prompt(page, "a cat <hypernet:anime:0.8> <hypernet:gone:1.2> <hypernet:style (v2):-0.35> <hypernet:sub/detail:0.3>")

    # clear a row → its tag is removed; choose a file → that tag is renamed / a tag is added
    _choose(page, 1, "None")
    _wait_prompt(page, "a cat <hypernet:anime:0.8> <hypernet:style (v2):-0.35> <hypernet:sub/detail:0.3>")
    _wait_value(page, _name(2), labels["sub/detail"] if "sub/detail" in labels else labels["detail"])
    page.fill("#txt2img_prompt textarea", "a cat")
    _wait_value(page, _name(0), "None")
    page.fill(_number("strength", 0), "0.6")
    _choose(page, 0, anime)
    _wait_prompt(page, "a cat <hypernet:anime:0.6>")
    _choose(page, 0, style)
    _wait_prompt(page, "a cat <hypernet:style (v2):0.6>")
    _wait_value(page, _name(0), style)
    page.fill(_number("start", 0), "0.2")
    _wait_prompt(page, "a cat <hypernet:style (v2):0.6:start=0.2>")
    page.evaluate("() => document.querySelector('#txt2img_prompt textarea').scrollIntoView()")

    shot = tmp_path / "accordion.png"
    page.locator("#script_txt2img_hypernetworks_panel").screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get("HYPERNET_SCREENSHOT_DIR"):
        shutil.copyfile(shot, Path(os.environ["HYPERNET_SCREENSHOT_DIR"]) / "accordion.png")


def test_the_header_checkbox_is_a_switch_that_folding_leaves_alone(webui_page, page) -> None:
    """Ticked at start though collapsed; folding the panel never switches the prompt's tags off, the box does."""
    page_errors: list[str] = []
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    page.goto(webui_page)
    box, value = "#script_txt2img_hypernetworks_panel-visible-checkbox", "#script_txt2img_hypernetworks_panel-checkbox input"
    page.wait_for_function("(s) => !!document.querySelector(s)", arg=box, timeout=TIMEOUT_MS)

    def checked() -> tuple[bool, bool, bool]:
        return tuple(page.evaluate(
            "([b, v]) => [document.querySelector(b).checked, document.querySelector(v).checked,"
            " document.querySelector('#script_txt2img_hypernetworks_panel .label-wrap').classList.contains('open')]",
            [box, value]))

    page.wait_for_function("(b) => document.querySelector(b).checked", arg=box, timeout=TIMEOUT_MS)
    assert checked() == (True, True, False)
    for is_open in (True, False):
        page.click("#script_txt2img_hypernetworks_panel .label-wrap")
        page.wait_for_function("(o) => document.querySelector('#script_txt2img_hypernetworks_panel .label-wrap')"
                               ".classList.contains('open') === o", arg=is_open, timeout=TIMEOUT_MS)
        assert checked() == (True, True, is_open)
    page.click(box)
    page.wait_for_function("(v) => !document.querySelector(v).checked", arg=value, timeout=TIMEOUT_MS)
    assert checked() == (False, False, False)
    assert page_errors == []


MEASURE_ROWS = """(prefix) => {
    const box = (s) => { const e = document.querySelector(s); if (!e) return null;
                         const r = e.getBoundingClientRect(); return {x: r.x, width: r.width, height: r.height}; };
    const rows = [0, 1, 2].map((i) => ({name: box(`${prefix}_name_${i}`),
                                         slider: box(`${prefix}_strength_${i} input[type=range]`)}));
    const labels = ["self", "cross", "start", "stop"].map((k) => {
        const span = document.querySelector(`${prefix}_${k}_0 [data-testid=block-info]`);
        return {key: k, height: span.getBoundingClientRect().height, line: parseFloat(getComputedStyle(span).lineHeight)};
    });
    return {rows, labels};
}"""


def test_rows_line_up_and_advanced_labels_fit_one_line(webui_page, page) -> None:
    page.goto(webui_page)
    page.wait_for_function("() => !!window.sdHypernet && !!document.querySelector('#txt2img_sd_hypernet_rows')")
    page.add_style_tag(path=str(REPO_ROOT / "style.css"))
    page.add_style_tag(content=A1111_COLUMN_CSS)
    page.click("#script_txt2img_hypernetworks_panel .label-wrap")
    page.click(f"{P}_advanced_0 .label-wrap")
    page.wait_for_function(f"() => document.querySelector('{_number('stop', 0)}').offsetParent !== null")
    measured = page.evaluate(MEASURE_ROWS, P)
    first = measured["rows"][0]
    assert first["slider"]["width"] > 100
    for row in measured["rows"][1:]:  # row 1 has the refresh button, the others do not
        assert abs(row["slider"]["x"] - first["slider"]["x"]) < 1, measured["rows"]
        assert abs(row["slider"]["width"] - first["slider"]["width"]) < 1, measured["rows"]
        assert abs(row["name"]["width"] - first["name"]["width"]) < 1, measured["rows"]
    for label in measured["labels"]:
        assert label["height"] < 1.5 * label["line"], measured["labels"]  # one line each

    # a truncated file says so in the list, and choosing it writes its tag like any other
    labels = json.loads(page.evaluate(f"() => document.querySelector('{P}_config textarea').value"))["labels"]
    assert labels["cut"].endswith(" ⚠ broken")
    _choose(page, 1, labels["cut"])
    _wait_prompt(page, "<hypernet:cut:1>")
    _wait_value(page, _name(0), labels["cut"])


def test_an_uncaught_page_error_fails_the_browser_test() -> None:
    # gradio reports a bad event result only as a page error; every browser test must notice one
    with pytest.raises(AssertionError, match=r"reading .props."), chromium_page(400, 300) as page:
        page.set_content("<script>const component = undefined; component.props;</script><p>after</p>")
        page.wait_for_function("() => document.readyState === 'complete'")
