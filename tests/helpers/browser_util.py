"""Headless Debian Chromium driven by Playwright, shared by the browser tests (no browser download)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

CHROMIUM = "/usr/bin/chromium"
TIMEOUT_MS = 60_000  # a busy 2-core machine: backend updates can take seconds

# What A1111's script.js / ui.js / inputAccordion.js define for extensions (same behaviour, a few lines each).
WEBUI_HELPERS = """
function gradioApp() {
    const elems = document.getElementsByTagName('gradio-app');
    const elem = elems.length == 0 ? document : elems[0];
    if (elem !== document) { elem.getElementById = function(id) { return document.getElementById(id); }; }
    return elem.shadowRoot ? elem.shadowRoot : elem;
}
var uiLoadedCallbacks = [];
function onUiLoaded(callback) { uiLoadedCallbacks.push(callback); }
function executeCallbacks(queue, arg) {
    for (const callback of queue) {
        try { callback(arg); } catch (e) { console.error("error running callback", callback, ":", e); }
    }
}
var executedOnLoaded = false;
document.addEventListener("DOMContentLoaded", function() {
    var mutationObserver = new MutationObserver(function(m) {
        if (!executedOnLoaded && gradioApp().querySelector('#txt2img_prompt')) {
            executedOnLoaded = true;
            executeCallbacks(uiLoadedCallbacks);
        }
    });
    mutationObserver.observe(gradioApp(), {childList: true, subtree: true});
});
function updateInput(target) {
    let e = new Event("input", {bubbles: true});
    Object.defineProperty(e, "target", {value: target});
    target.dispatchEvent(e);
}
// inputAccordion.js: the header checkbox of an InputAccordion follows folding ("linked") until it is clicked.
function inputAccordionChecked(id, checked) {
    var accordion = gradioApp().getElementById(id);
    accordion.visibleCheckbox.checked = checked;
    accordion.onVisibleCheckboxChange();
}
function setupAccordion(accordion) {
    var labelWrap = accordion.querySelector('.label-wrap');
    var gradioCheckbox = gradioApp().querySelector('#' + accordion.id + '-checkbox input');
    var linked = true;
    var isOpen = function() { return labelWrap.classList.contains('open'); };
    new MutationObserver(function() {
        accordion.classList.toggle('input-accordion-open', isOpen());
        if (linked) { accordion.visibleCheckbox.checked = isOpen(); accordion.onVisibleCheckboxChange(); }
    }).observe(labelWrap, {attributes: true, attributeFilter: ['class']});
    var box = document.createElement('INPUT');
    box.type = 'checkbox';
    box.checked = isOpen();
    box.id = accordion.id + '-visible-checkbox';
    box.className = gradioCheckbox.className + ' input-accordion-checkbox';
    var span = labelWrap.querySelector('span');
    span.insertBefore(box, span.firstChild);
    accordion.visibleCheckbox = box;
    accordion.onVisibleCheckboxChange = function() {
        if (linked && isOpen() != box.checked) labelWrap.click();
        gradioCheckbox.checked = box.checked;
        updateInput(gradioCheckbox);
    };
    box.addEventListener('click', function(event) { linked = false; event.stopPropagation(); });
    box.addEventListener('input', accordion.onVisibleCheckboxChange);
}
onUiLoaded(function() {
    for (var accordion of gradioApp().querySelectorAll('.input-accordion')) setupAccordion(accordion);
});
window.inputAccordionChecked = inputAccordionChecked;  // gradio's _js runs outside this script's scope
var opts = {extra_networks_default_multiplier: 1};
"""

# The accordion's width beside the prompt in A1111 1.10.1 at a 1400 px window (its settings column).
A1111_COLUMN_CSS = "#txt2img_settings { max-width: 632px; }"


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
