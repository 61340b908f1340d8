"""Headless Debian Chromium driven by Playwright, shared by the browser tests (no browser download)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

CHROMIUM = "/usr/bin/chromium"
TIMEOUT_MS = 60_000  # a busy 2-core machine: backend updates can take seconds


class PageErrors(AssertionError):
    """JavaScript errors the page did not catch (gradio's own included: they break the UI for the user)."""


@contextlib.contextmanager
def chromium_page(width: int, height: int, init_script: str | None = None) -> Iterator[Any]:
    """A fresh page of Debian's chromium (``tools/setup-browser.sh`` installs it), closed afterwards.

    Any uncaught error on the page (``pageerror``, e.g. gradio's "Cannot read properties of undefined
    (reading 'props')" when an event returns more values than it has outputs) fails the test at the end,
    even when every check before it passed.
    """
    from playwright.sync_api import sync_playwright

    assert os.path.exists(CHROMIUM), "install Debian's chromium: tools/setup-browser.sh"
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.on("pageerror", lambda exc: errors.append(f"{exc}\n{getattr(exc, 'stack', '') or ''}".strip()))
            page.set_default_timeout(TIMEOUT_MS)
            if init_script is not None:
                page.add_init_script(init_script)
            yield page
        finally:
            browser.close()
    if errors:
        raise PageErrors(f"{len(errors)} page error(s):\n" + "\n---\n".join(errors))
