"""The "Hypernetworks" tab (``on_ui_tabs``): the library panel on the webui's hypernetwork folder.

The data source adds what only the webui knows: its folder and settings (the extension's
refresh), the loaded model's checkpoint hash and attention widths (for the "trained on another
checkpoint" / "no width matches" warnings) and "send to txt2img/img2img", which put the tag
into that tab's prompt box in the browser (``sdHypernet.sendTo`` in ``javascript/hypernet.js``) and switch to it.
"""

from __future__ import annotations

import json
from typing import Any

import gradio as gr

from ..library.source import LibrarySource, SendTarget
from ..ui.library_panel import PANEL_CSS, build_library_panel
from . import settings
from .extension import HypernetExtension, model_facts

TAB_TITLE = "Hypernetworks"
TAB_ID = "hypernet_library"


def send_to_js(tab: str) -> str:
    """The button's JavaScript: ``sdHypernet.sendTo`` (javascript/hypernet.js) appends the tag to that tab's prompt."""
    return f"(tag) => sdHypernet.sendTo({json.dumps(tab)}, tag)"


SEND_TARGETS = (SendTarget("Send to txt2img", send_to_js("txt2img")), SendTarget("Send to img2img", send_to_js("img2img")))


def source_for(extension: HypernetExtension) -> LibrarySource:
    return LibrarySource(extension.library, refresh=extension.refresh, model_facts=model_facts,
                         save_caches=extension.caches.save, send_targets=SEND_TARGETS, title=TAB_TITLE,
                         bake_folders=settings.bake_folders())


def on_ui_tabs(extension: HypernetExtension) -> list[tuple[Any, str, str]]:
    """The tab for ``script_callbacks.on_ui_tabs``: ``[(blocks, title, elem_id)]``.

    Writing actions are queued events (the webui runs its queue); the table fills on page load.
    """
    with gr.Blocks(analytics_enabled=False) as blocks:
        gr.HTML(f"<style>{PANEL_CSS}</style>", visible=True)
        panel = build_library_panel(source_for(extension))
        panel.fill_on_load(blocks)
    return [(blocks, TAB_TITLE, TAB_ID)]
