"""The standalone library panel in a real headless Chromium (Debian's, driven by Playwright).

The Blocks app runs in-process on 127.0.0.1 over a folder of copies of the A1111 fixtures.
Every wait is a ``wait_for_function`` on the page (no fixed sleeps).  A screenshot is saved
(``tmp_path/panel.png``; also into ``$HYPERNET_SCREENSHOT_DIR`` when set, e.g. ``docs/``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from browser_util import TIMEOUT_MS, chromium_page
from hn_testutil import HYPERNET_JS

FILES = {
    "act_relu.pt": "act_relu.pt",
    "dims_24_32_48_meta.pt": "dims_24_32_48_meta.pt",
    "legacy_novelai.pt": "legacy_novelai.pt",
    "optim_fresh_a.pt": "optim_fresh_a.pt",
    "optim_fresh_a.pt.optim": "optim_fresh_a.pt.optim",
    "ls_1_2_2_1_relu_ln.pt": "styles/ls_1_2_2_1_relu_ln.pt",
    "act_gelu.pt": "styles/act_gelu.pt",
}


@pytest.fixture
def panel_url(tmp_path: Path, fixtures_dir: Path):
    from lib_hypernet.ui.standalone import build_app, make_source, serve

    folder = tmp_path / "hypernetworks"
    for src, dst in FILES.items():
        target = folder / dst
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(fixtures_dir / src, target)
    app = build_app(make_source(folder, tmp_path / "cache"))
    _, url, _ = serve(app, host="127.0.0.1", prevent_thread_lock=True, quiet=True)  # as the command serves it
    try:
        yield url, folder
    finally:
        app.close()


@pytest.fixture
def page():
    with chromium_page(1400, 1100) as page:
        yield page


def _table_names(page) -> list[str]:
    return page.evaluate(
        "() => Array.from(document.querySelectorAll('#hypernet_lib_table tbody tr'))"
        ".map(tr => (tr.querySelector('td') || {}).innerText || '').map(s => s.trim()).filter(Boolean)"
    )


def _wait_text(page, selector: str, text: str) -> None:
    page.wait_for_function(
        "([sel, text]) => { const el = document.querySelector(sel); return !!el && el.innerText.includes(text); }",
        arg=[selector, text], timeout=TIMEOUT_MS,
    )


def _tag_value(page) -> str:
    return page.evaluate("() => document.querySelector('#hypernet_lib_tag textarea').value")


def test_standalone_panel_in_chromium(panel_url, page, tmp_path: Path) -> None:
    url, folder = panel_url
    page.goto(url)

    # it lists the fixture hypernetworks (sub-folder included)
    _wait_text(page, "#hypernet_lib_table", "legacy_novelai")
    _wait_text(page, "#hypernet_lib_table", "styles/act_gelu.pt")
    assert set(_table_names(page)) == {"act_gelu", "act_relu", "dims_24_32_48_meta", "legacy_novelai",
                                       "ls_1_2_2_1_relu_ln", "optim_fresh_a"}
    _wait_text(page, "#hypernet_lib_status", "6 files")

    # selecting one (a click on its row) shows its metadata and short hash
    page.locator("#hypernet_lib_table td", has_text="dims_24_32_48_meta").first.click()
    _wait_text(page, "#hypernet_lib_detail", "random-sd15 [a1b2c3d4e5]")
    _wait_text(page, "#hypernet_lib_detail", "e35e8dc32d")
    detail = page.inner_text("#hypernet_lib_detail")
    assert "fixture: dims 24/32/48 with training metadata" in detail and "1500" in detail
    page.wait_for_function("() => document.querySelector('#hypernet_lib_tag textarea').value"
                           " === '<hypernet:dims_24_32_48_meta:0.8>'")

    # moving the slider rewrites the tag
    slider = page.locator("#hypernet_lib_strength input[type=range]")
    slider.focus()
    for _ in range(3):
        slider.press("ArrowRight")
    page.wait_for_function("() => document.querySelector('#hypernet_lib_tag textarea').value"
                           " === '<hypernet:dims_24_32_48_meta:0.95>'")
    page.screenshot(path=str(tmp_path / "panel.png"), full_page=True)
    shots = os.environ.get("HYPERNET_SCREENSHOT_DIR")
    if shots:
        shutil.copyfile(tmp_path / "panel.png", Path(shots) / "panel.png")

    # after a header click sorts the table in the browser, a click on a row still selects that row's file
    header = page.locator("#hypernet_lib_table th", has_text="step")
    for order in ("ascending", "descending"):
        header.locator(".sort-button").click()
        page.wait_for_function("(order) => Array.from(document.querySelectorAll('#hypernet_lib_table th'))"
                               ".some(th => th.innerText.trim() === 'step' && th.getAttribute('aria-sort') === order)",
                               arg=order)
    page.wait_for_function("() => (document.querySelector('#hypernet_lib_table tbody tr td') || {}).innerText"
                           " === 'dims_24_32_48_meta'")
    last = _table_names(page)[-1]
    assert last != "dims_24_32_48_meta"
    page.locator("#hypernet_lib_table tbody tr").last.locator("td").nth(4).click()
    _wait_text(page, "#hypernet_lib_detail", f"{last}.pt")

    # the search box filters
    page.fill("#hypernet_lib_search textarea", "novelai")
    page.wait_for_function("() => document.querySelectorAll('#hypernet_lib_table tbody tr').length === 1")
    assert _table_names(page) == ["legacy_novelai"]
    _wait_text(page, "#hypernet_lib_status", "1 of 6 files")

    # converting the selected file creates a .safetensors beside it
    _wait_text(page, "#hypernet_lib_detail", "legacy_novelai")
    page.click("#hypernet_lib_convert")
    _wait_text(page, "#hypernet_lib_result", "Wrote legacy_novelai.safetensors")
    assert (folder / "legacy_novelai.safetensors").is_file()
    assert "legacy_novelai.pt" in _table_names(page)  # the .pt beside it is now named with its suffix
    page.wait_for_function("() => document.querySelectorAll('#hypernet_lib_table tbody tr').length === 2")
    # the plain name is the .safetensors now, and so is the detail (a second Convert would say so)
    _wait_text(page, "#hypernet_lib_detail", "legacy_novelai.safetensors")
    assert "legacy_novelai.pt" not in page.inner_text("#hypernet_lib_detail")
    # selecting another file clears the message
    page.locator("#hypernet_lib_table td", has_text="legacy_novelai.pt").first.click()
    _wait_text(page, "#hypernet_lib_detail", "legacy_novelai.pt")
    page.wait_for_function("() => document.querySelector('#hypernet_lib_result').innerText.trim() === ''",
                           timeout=TIMEOUT_MS)

    # a second conversion does not overwrite without asking
    before = (folder / "legacy_novelai.safetensors").stat().st_mtime_ns
    page.fill("#hypernet_lib_search textarea", "legacy_novelai.pt")
    _wait_text(page, "#hypernet_lib_detail", "legacy_novelai.pt")
    page.click("#hypernet_lib_convert")
    _wait_text(page, "#hypernet_lib_result", "tick 'Overwrite'")
    assert (folder / "legacy_novelai.safetensors").stat().st_mtime_ns == before


# A1111's page globals the tab's "send to" buttons use (javascript/ui.js, script.js), as the webui defines them.
A1111_GLOBALS = """
window.gradioApp = () => document.querySelector('gradio-app').shadowRoot || document;
window.updateInput = (target) => { const e = new Event('input', {bubbles: true}); target.dispatchEvent(e); };
window.__switched = [];
window.switch_to_txt2img = () => window.__switched.push('txt2img');
window.switch_to_img2img = () => window.__switched.push('img2img');
"""


EVIL_PAGE = """<!doctype html><script>
window.attack = (panel) => new Promise((resolve) => {
  const ws = new WebSocket(panel.replace('http', 'ws') + 'queue/join');
  ws.onmessage = (e) => resolve('opened: ' + e.data);
  ws.onerror = () => resolve('refused');
});
</script>"""


def test_another_page_in_the_browser_cannot_use_the_queue(panel_url, page, tmp_path: Path) -> None:
    """The reported attack: a page of another origin opens the panel's queue WebSocket (CORS does not apply)."""
    import functools
    import http.server
    import threading

    url, folder = panel_url
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "index.html").write_text(EVIL_PAGE, encoding="utf-8")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "www"))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as evil:
        threading.Thread(target=evil.serve_forever, daemon=True).start()
        try:
            page.goto(f"http://127.0.0.1:{evil.server_address[1]}/index.html")  # same machine, another origin
            assert page.evaluate("(panel) => window.attack(panel)", url) == "refused"
        finally:
            evil.shutdown()
    page.goto(url)  # the panel's own page opens the same WebSocket
    assert page.evaluate(EVIL_PAGE.split("<script>")[1].split("</script>")[0] + "; window.attack(location.href)") \
        == 'opened: {"msg": "send_hash"}'
    assert sorted(p.name for p in folder.rglob("*")) == sorted({"styles", *(Path(d).name for d in FILES.values())})


def test_webui_tab_sends_the_tag_to_txt2img(tmp_path: Path, page) -> None:
    """The tab that ``on_ui_tabs`` builds in the webui stand-in, rendered beside txt2img/img2img prompt boxes."""
    import gradio as gr
    import webui_util as wu

    from lib_hypernet.webui import tab

    wu.reset(tmp_path)
    try:
        wu.write_hn("anime", seed=1)
        wu.write_hn("painterly", subdir="styles", seed=2)
        wu.start()
        (tab_blocks,) = [t[0] for t in wu.webui.harness["ui_tabs"] if t[2] == tab.TAB_ID]
        with gr.Blocks(analytics_enabled=False) as page_app:
            typed = gr.Textbox(elem_id="txt2img_prompt", label="txt2img prompt", value="a cat")
            seen = gr.Textbox(elem_id="seen_by_python", label="the prompt gradio has")
            gr.Textbox(elem_id="img2img_prompt", label="img2img prompt")
            typed.change(lambda text: text, [typed], [seen])  # proves gradio got the edit, not just the DOM
            tab_blocks.render()
        page_app.queue()
        _, url, _ = page_app.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
        try:
            page.add_init_script(A1111_GLOBALS + HYPERNET_JS.read_text(encoding="utf-8"))
            page.goto(url)
            _wait_text(page, "#hypernet_lib_table", "styles/painterly.pt")
            page.locator("#hypernet_lib_table td", has_text="painterly").first.click()
            page.wait_for_function("() => document.querySelector('#hypernet_lib_tag textarea').value"
                                   " === '<hypernet:painterly:0.8>'")
            page.click("#hypernet_lib_send_0")
            page.wait_for_function("() => document.querySelector('#txt2img_prompt textarea').value"
                                   " === 'a cat <hypernet:painterly:0.8>'")
            page.wait_for_function("() => document.querySelector('#seen_by_python textarea').value"
                                   " === 'a cat <hypernet:painterly:0.8>'")
            assert page.evaluate("() => window.__switched") == ["txt2img"]
            page.click("#hypernet_lib_send_1")
            page.wait_for_function("() => document.querySelector('#img2img_prompt textarea').value"
                                   " === '<hypernet:painterly:0.8>'")
            page.locator("#hypernet_lib_panel").screenshot(path=str(tmp_path / "tab.png"))
            shots = os.environ.get("HYPERNET_SCREENSHOT_DIR")
            if shots:
                shutil.copyfile(tmp_path / "tab.png", Path(shots) / "tab.png")
        finally:
            page_app.close()
    finally:
        wu.webui.unload()
