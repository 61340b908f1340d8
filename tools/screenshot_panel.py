"""Screenshots of the standalone panel on the example folder, for the README: docs/panel.png (light) and
docs/panel-dark.png (dark), the first screen at 1366x768 with the file A1111 cannot load selected, and
docs/panel-create.png (the create form).

Run: .venv/bin/python tools/screenshot_panel.py  (needs Debian's chromium: tools/setup-browser.sh)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from playwright.sync_api import sync_playwright  # noqa: E402

from lib_hypernet.library.examples import make_examples  # noqa: E402
from lib_hypernet.ui.standalone import build_app, make_source  # noqa: E402

SELECTED = "sdxl-newer-torch"  # the example A1111 1.10.1 refuses: its status says "repair"


def main() -> int:
    docs = REPO / "docs"
    docs.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "hypernetworks"
        make_examples(folder)
        app = build_app(make_source(folder, None))
        _, url, _ = app.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
                for scheme, name in (("light", "panel.png"), ("dark", "panel-dark.png")):
                    page = browser.new_page(viewport={"width": 1366, "height": 768}, color_scheme=scheme)
                    page.set_default_timeout(60_000)
                    page.goto(url)
                    page.wait_for_function("() => (document.querySelector('#hypernet_lib_table') || {innerText: ''})"
                                           ".innerText.includes('trained-elsewhere')")
                    page.click("#hypernet_lib_hash")
                    page.wait_for_function("() => /Hashed|already/.test(document.querySelector('#hypernet_lib_result')"
                                           ".innerText)")
                    page.locator("#hypernet_lib_table td", has_text=SELECTED).first.click()
                    page.wait_for_function("(name) => document.querySelector('#hypernet_lib_tag textarea').value"
                                           ".includes(name)", arg=SELECTED)
                    page.screenshot(path=str(docs / name), full_page=False)
                    print(f"wrote {docs / name}")
                page.click("#hypernet_lib_create_box")
                page.wait_for_function("() => !!document.querySelector('#hypernet_lib_create')"
                                       " && document.querySelector('#hypernet_lib_create').offsetParent !== null")
                page.locator("#hypernet_lib_create_box").scroll_into_view_if_needed()
                page.locator("#hypernet_lib_create_box").screenshot(path=str(docs / "panel-create.png"))
                print(f"wrote {docs / 'panel-create.png'}")
                browser.close()
        finally:
            app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
