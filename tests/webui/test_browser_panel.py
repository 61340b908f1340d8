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
from hn_testutil import HYPERNET_JS, REPO_ROOT

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
    """The name column (the second: the status comes first)."""
    return page.evaluate(
        "() => Array.from(document.querySelectorAll('#hypernet_lib_table tbody tr'))"
        ".map(tr => (tr.querySelector('td:nth-child(2)') || {}).innerText || '').map(s => s.trim()).filter(Boolean)"
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
    # Set the value and fire both events a user's drag fires: key presses raced gradio's re-render (a lost press).
    slider.evaluate("(el) => { el.value = '0.95'; el.dispatchEvent(new Event('input', {bubbles: true}));"
                    " el.dispatchEvent(new Event('change', {bubbles: true})); }")
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
    page.wait_for_function("() => (document.querySelector('#hypernet_lib_table tbody tr td:nth-child(2)') || {})"
                           ".innerText === 'dims_24_32_48_meta'")
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


# --------------------------------------------------------------------- issue 16: a newcomer's first screen
A1111_MADE = ("act_relu.pt", "act_gelu.pt", "act_tanh.pt", "dims_24_32_48_meta.pt", "legacy_novelai.pt",
              "ls_1_05_1_tanh_ln_actout.pt", "optim_fresh_a.pt", "optim_fresh_a.pt.optim", "optim_stale.pt",
              "optim_stale.pt.optim")


@pytest.fixture
def a1111_folder(tmp_path: Path, fixtures_dir: Path) -> Path:
    """Files A1111 1.10.1 wrote and refuses (zip entries), and one download cut short."""
    folder = tmp_path / "hypernetworks"
    folder.mkdir()
    for name in A1111_MADE:
        shutil.copyfile(fixtures_dir / name, folder / name)
    data = (fixtures_dir / "act_linear.pt").read_bytes()
    (folder / "cut-download.pt").write_bytes(data[: len(data) // 2])
    return folder


def _box(page, selector: str) -> dict:
    return page.evaluate("(sel) => { const r = document.querySelector(sel).getBoundingClientRect();"
                         " return {left: r.left, right: r.right, top: r.top, bottom: r.bottom}; }", selector)


def test_a1111_folder_at_1366_shows_what_is_wrong_and_repair_all_fixes_it(a1111_folder: Path, tmp_path: Path) -> None:
    from lib_hypernet.formats.optim import load_optimizer_state
    from lib_hypernet.formats.safe_unpickle import a1111_zip_entries_rejected
    from lib_hypernet.ui.standalone import build_app, make_source

    refused = sorted(p for p in a1111_folder.glob("*.pt") if p.name != "cut-download.pt")
    assert all(a1111_zip_entries_rejected(p) for p in refused)
    app = build_app(make_source(a1111_folder, tmp_path / "cache"))
    _, url, _ = app.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, show_api=False)
    try:
        with chromium_page(1366, 768) as page:
            page.goto(url)
            _wait_text(page, "#hypernet_lib_table", "cut-download")
            # the first screen: the broken file is marked in a status column that is fully in view
            broken = "#hypernet_lib_table tr:has(.hypernet-lib-broken)"
            cell = _box(page, f"{broken} td:first-child")
            assert cell["left"] >= 0 and cell["right"] <= 1366 and cell["top"] >= 0 and cell["bottom"] <= 768, cell
            assert "broken — not a readable PyTorch file" in page.inner_text(f"{broken} td:first-child")
            backgrounds = page.evaluate(
                "(sel) => [getComputedStyle(document.querySelector(sel + ' td:nth-child(2)')).backgroundColor,"
                " getComputedStyle(document.querySelector('#hypernet_lib_table tr:has(.hypernet-lib-repair)"
                " td:nth-child(2)')).backgroundColor]", broken)
            assert backgrounds[0] != backgrounds[1], backgrounds  # the broken row is coloured
            assert page.locator("#hypernet_lib_table .hypernet-lib-repair").count() == len(refused)
            # the columns that matter are visible without scrolling sideways
            wrap = _box(page, "#hypernet_lib_table .table-wrap")
            for header in ("status", "name", "A1111 loads", "SD version", "size", "safe"):
                th = page.locator("#hypernet_lib_table th", has_text=header).first.bounding_box()
                assert th is not None and th["x"] + th["width"] <= min(wrap["right"], 1366) + 1, (header, th, wrap)
            # the detail sits beside the table, in the first screen
            side = _box(page, "#hypernet_lib_detail")
            assert side["left"] >= wrap["right"] and side["top"] < 768, (side, wrap)

            # selecting the broken file: highlighted, its detail says why, no tag, no button that cannot work
            page.locator(f"{broken} td").nth(1).click()
            _wait_text(page, "#hypernet_lib_detail", "broken: not a readable PyTorch file")
            page.wait_for_function("(sel) => getComputedStyle(document.querySelector(sel)).outlineStyle === 'solid'",
                                   arg=broken)
            assert page.input_value("#hypernet_lib_tag textarea") == ""
            assert page.is_disabled("#hypernet_lib_convert") and page.is_disabled("#hypernet_lib_repair")
            page.screenshot(path=str(tmp_path / "panel-1366.png"))

            # Repair all without the Overwrite tick writes nothing and says how
            page.click("#hypernet_lib_repair_all")
            _wait_text(page, "#hypernet_lib_batch_result", "Tick 'Overwrite'")
            assert all(a1111_zip_entries_rejected(p) for p in refused)
            page.check("#hypernet_lib_overwrite input")
            page.click("#hypernet_lib_repair_all")
            _wait_text(page, "#hypernet_lib_batch_result", f"Repaired {len(refused)} of {len(refused) + 1} files; ")
            assert "; 1 failed" in page.inner_text("#hypernet_lib_batch_result")
            page.wait_for_function("() => document.querySelectorAll('#hypernet_lib_table .hypernet-lib-repair')"
                                   ".length === 0")
            assert page.locator("#hypernet_lib_table .hypernet-lib-ok").count() == len(refused)
            page.screenshot(path=str(tmp_path / "panel-repaired.png"))
    finally:
        app.close()
    for path in refused:
        assert a1111_zip_entries_rejected(path) == [], path
    assert load_optimizer_state(str(a1111_folder / "optim_fresh_a.pt")).status == "ok"  # kept in step


def test_standalone_console_is_quiet_and_the_theme_option_works(a1111_folder: Path, tmp_path: Path) -> None:
    """``python -m lib_hypernet.ui``: only our lines on the console (no share hint, no per-request log) and
    ``--theme dark`` in a browser that prefers light."""
    import signal
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mpl = os.environ.get("MPLCONFIGDIR") or str(Path.home() / ".cache" / "matplotlib")  # gradio imports matplotlib
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "MPLCONFIGDIR": mpl, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "lib_hypernet.ui", "--dir", str(a1111_folder), "--port", str(port),
                             "--theme", "dark", "--no-browser"], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        first = proc.stdout.readline() if proc.stdout else ""
        second = proc.stdout.readline() if proc.stdout else ""
        assert first.strip() == f"hypernetwork library of {a1111_folder}", first
        assert second.strip() == f"open http://127.0.0.1:{port}/ in a browser (Ctrl+C stops)", second
        with chromium_page(1366, 768) as page:
            page.emulate_media(color_scheme="light")
            page.goto(f"http://127.0.0.1:{port}/")
            _wait_text(page, "#hypernet_lib_table", "cut-download")
            page.wait_for_function("() => document.body.classList.contains('dark')")
            page.click("#hypernet_lib_hash")  # a queued event, as every button is
            _wait_text(page, "#hypernet_lib_result", "Hashed")
            page.locator("#hypernet_lib_table td", has_text="act_relu").first.click()
            _wait_text(page, "#hypernet_lib_detail", "act_relu.pt")
            page.screenshot(path=str(tmp_path / "panel-dark.png"))
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert rest.strip() == "", rest  # nothing after our two lines: no share hint, no "POST /api/predict 200"
