"""Build the webui's gradio page the way A1111 1.10.1's ``ui.create_ui`` does, for the parts extensions meet.

Call after ``webui.start(...)`` (which initialized the script runners)::

    demo = webui_ui.build()                   # gr.Blocks: txt2img and img2img tabs
    webui_ui.components["txt2img_prompt"]      # the built components, by elem_id

Ids as in A1111 1.10.1: the tabs row ``tabs`` with one ``tab_{tab}`` (gradio id ``{tab}``) per tab, and in it, under
``scripts.scripts_current = <that tab's runner>`` and A1111's gradio patches (``modules.gradio_extensons``:
component callbacks, ``tooltip=``): the prompt (classic toprow: created before the scripts' UI;
``compact_prompt=True``: inline, after ``prepare_ui``), then the ``{tab}_extra_tabs`` tabs: "Generation"
(id ``{tab}_generation``) with the settings column (``{tab}_settings``), its ``{tab}_accordions`` row
(``setup_ui_for_section("accordions")``), the other always-on scripts and the output panel's
``generation_info_{tab}`` textbox and ``html_info_{tab}``; then — with ``extra_networks`` — one tab per registered
extra-networks page (``{tab}_{page}``) holding ``{tab}_{page}_cards_html`` (the cards of ``create_html(tab)``
inside ``<div id='{tab}_{page}_cards'>``) and its user-metadata editor (``create_ui()``).
Not emulated: dimensions, samplers, the selectable-scripts dropdown, the extra-networks HTML templates.
"""
from __future__ import annotations

from typing import Any

import gradio as gr
from modules import gradio_extensons, scripts, ui_extra_networks

components: dict[str, Any] = {}
"""The last build's components with an elem_id (``{elem_id: component}``)."""
editors: dict[tuple[str, str], Any] = {}
"""The last build's user-metadata editors, by ``(tab, page name)``."""
cards_html: dict[tuple[str, str], str] = {}


def _remember(component: Any) -> None:
    elem_id = getattr(component, "elem_id", None)
    if elem_id:
        components[elem_id] = component


def build(*, tabs: tuple[str, ...] = ("txt2img", "img2img"), compact_prompt: bool = False,
          extra_networks: bool = True) -> gr.Blocks:
    components.clear()
    editors.clear()
    cards_html.clear()
    with gradio_extensons.patched(), gr.Blocks(analytics_enabled=False) as demo, gr.Tabs(elem_id="tabs"):
        for tab in tabs:
            runner = scripts.scripts_img2img if tab == "img2img" else scripts.scripts_txt2img
            scripts.scripts_current = runner
            with gr.Tab(tab, id=tab, elem_id=f"tab_{tab}"):
                if not compact_prompt:
                    _remember(_prompt(tab))
                with gr.Tabs(elem_id=f"{tab}_extra_tabs"):
                    with gr.Tab("Generation", id=f"{tab}_generation"):
                        with gr.Column(elem_id=f"{tab}_settings"):
                            runner.prepare_ui()
                            if compact_prompt:
                                _remember(_prompt(tab))
                            with gr.Row(elem_id=f"{tab}_accordions", elem_classes="accordions"):
                                runner.setup_ui_for_section("accordions")
                            runner.setup_ui_for_section(None)
                        _remember(gr.Textbox(visible=False, elem_id=f"generation_info_{tab}"))
                        _remember(gr.HTML(elem_id=f"html_info_{tab}", elem_classes="infotext"))
                    if extra_networks:
                        for page in list(ui_extra_networks.extra_pages):
                            _extra_networks_page(tab, page)
        scripts.scripts_current = None
    for block in demo.blocks.values():
        _remember(block)
    return demo


def _extra_networks_page(tab: str, page: Any) -> None:
    """One page's tab beside "Generation", with A1111's ids (the cards' container is what card clicks look for)."""
    page_id = f"{tab}_{page.extra_networks_tabname}"
    with gr.Tab(page.title, elem_id=page_id, elem_classes=["extra-page"]):
        cards_html[(tab, page.name)] = page.create_html(tab)
        gr.HTML(f"<div id='{page_id}_cards' class='extra-network-cards'>{cards_html[(tab, page.name)]}</div>",
                elem_id=f"{page_id}_cards_html")
        editor = page.create_user_metadata_editor(None, tab)
        if editor is not None:
            editor.create_ui()
            editors[(tab, page.name)] = editor


def _prompt(tab: str) -> Any:
    return gr.Textbox(label="Prompt", elem_id=f"{tab}_prompt", show_label=False, lines=3,
                      placeholder="Prompt", elem_classes=["prompt"])
