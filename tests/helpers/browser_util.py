"""Headless Debian Chromium driven by Playwright, shared by the browser tests (no browser download)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

CHROMIUM = "/usr/bin/chromium"
TIMEOUT_MS = 60_000  # a busy 2-core machine: backend updates can take seconds


@contextlib.contextmanager
def chromium_page(width: int, height: int, init_script: str | None = None) -> Iterator[Any]:
    """A fresh page of Debian's chromium (``tools/setup-browser.sh`` installs it), closed afterwards."""
    from playwright.sync_api import sync_playwright

    assert os.path.exists(CHROMIUM), "install Debian's chromium: tools/setup-browser.sh"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(TIMEOUT_MS)
            if init_script is not None:
                page.add_init_script(init_script)
            yield page
        finally:
            browser.close()
