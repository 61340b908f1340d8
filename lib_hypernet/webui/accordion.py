"""A1111: the panel beside the prompt (``HypernetScript.ui``), in the accordions section next to Hires fix/Refiner.

:mod:`lib_hypernet.ui.accordion` builds the rows; this module adds the webui's pieces: the ``InputAccordion``,
whose header checkbox is the switch (the script's one argument), its ``ToolButton`` refresh, the prompt found by
``on_after_component`` (``{tab}_prompt``, which the webui creates before or after the scripts' UI depending on the
compact-prompt setting), the generation info that triggers the report, the rows setting, and
``do_not_save_to_config`` on every helper component.
"""

from __future__ import annotations

import os
from typing import Any

import gradio as gr
from modules import shared

from lib_hypernet import infotext
from lib_hypernet.ui import accordion as rows_ui

from . import settings
from .extension import HypernetExtension

ROWS_OPTION = "hypernet_panel_rows"


def register_settings() -> None:
    shared.options_templates.update(shared.options_section(("hypernet", "Hypernetworks"), {
        ROWS_OPTION: shared.OptionInfo(
            3, "Rows in the Hypernetworks panel beside the prompt", gr.Slider, {"minimum": 1, "maximum": 8, "step": 1},
        ).info(settings.help_text("the panel edits the prompt's <hypernet:…> tags")).needs_reload_ui(),
    }))


class WebuiPanelSource:
    """:class:`lib_hypernet.ui.accordion.PanelSource` over the extension's library."""

    def __init__(self, extension: HypernetExtension) -> None:
        self.extension = extension

    def choices(self) -> list[tuple[str, str]]:
        self.extension.ensure_refreshed()
        facts = self.extension.facts
        return [(f.name, facts.label(f)) for f in list(self.extension.library.files.values())]

    def aliases(self) -> dict[str, str]:
        aliases: dict[str, str] = {}
        for f in list(self.extension.library.files.values()):
            for alias in (f.relpath, os.path.splitext(f.relpath)[0]):
                if alias != f.name and alias not in self.extension.library.files:
                    aliases.setdefault(alias, f.name)
        return aliases

    def default_strength(self) -> float:
        return settings.default_strength()

    def refresh(self) -> None:
        self.extension.refresh()
        self.extension.facts.compute_missing()  # hashes and SD versions of new files, in the background

    def report_html(self) -> str:
        return self.extension.report.to_html()


class PromptPanel:
    """One tab's panel: built by ``ui()``, connected to the prompt and the generation info when both exist."""

    def __init__(self, script: Any, extension_getter: Any) -> None:
        self.script = script
        self.extension_getter = extension_getter
        self.rows: rows_ui.HypernetRows | None = None
        self.prompt: Any = None
        self.info: Any = None
        self.switch: Any = None  # the InputAccordion's checkbox: the script's one argument
        self._connected: set[str] = set()
        # Before initialize_scripts applies them (it calls show() and then collects these): both tabs' ids,
        # the callback keeps the one of this script's tab.
        for tab in ("txt2img", "img2img"):
            script.on_after_component(self.on_prompt, elem_id=f"{tab}_prompt")
            script.on_after_component(self.on_generation_info, elem_id=f"generation_info_{tab}")

    @property
    def tab(self) -> str:
        return "img2img" if self.script.is_img2img else "txt2img"

    def on_prompt(self, params: Any) -> None:
        if getattr(params.component, "elem_id", None) == f"{self.tab}_prompt":
            self.prompt = params.component
            self._connect()

    def on_generation_info(self, params: Any) -> None:
        if getattr(params.component, "elem_id", None) == f"generation_info_{self.tab}":
            self.info = params.component
            self._connect()

    def ui(self, is_img2img: bool) -> list[Any]:
        from modules.ui_components import InputAccordion, ToolButton

        extension: HypernetExtension = self.extension_getter()
        extension.ensure_refreshed()
        extension.facts.compute_missing()  # labels of files not hashed yet: in the background, shown on refresh
        source = WebuiPanelSource(extension)
        count = int(getattr(shared.opts, ROWS_OPTION, 3) or 3)
        # Ticked: the prompt's tags apply (also the default an API call gets).  Collapsed all the same, and
        # javascript/hypernet.js unlinks the box from folding, which A1111 otherwise ties it to.
        with InputAccordion(True, label="Hypernetworks", elem_id=self.script.elem_id("panel")) as panel:
            self.rows = rows_ui.build_rows(
                source, rows=count, elem_id=f"{self.tab}_sd_hypernet",
                refresh_button=lambda elem_id: ToolButton(value="\U0001f504", elem_id=elem_id,
                                                          elem_classes=["sd-hypernet-refresh"],
                                                          tooltip="Hypernetworks: refresh the list"),
            )
        if getattr(panel, "accordion", None) is not None:
            panel.accordion.open = False
        for component in (panel, *self.rows.components()):
            component.do_not_save_to_config = True
        self.switch = panel
        # Pasting "Hypernets: off" unticks it, any other parameters tick it: the pasted image is reproduced.
        self.script.infotext_fields = [(panel, infotext.switch_from_pasted)]
        self._connect()
        return [panel]  # the switch; the rows only edit the prompt

    def _connect(self) -> None:
        if self.rows is None:
            return
        if self.prompt is not None and "prompt" not in self._connected:
            rows_ui.connect_prompt(self.rows, self.prompt)
            self._connected.add("prompt")
        if self.info is not None and "info" not in self._connected:
            rows_ui.connect_report(self.rows, self.info)
            self._connected.add("info")
