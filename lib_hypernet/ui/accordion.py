"""The panel beside the prompt: N rows of {hypernetwork, strength} plus advanced sliders, synced with the prompt.

The prompt is the single source of truth.  The rows never apply anything: typing, pasting or sending a
prompt shows its ``<hypernet:…>`` tags in the rows, and using a row rewrites its tag — both in the
browser (``javascript/hypernet.js``, ``sdHypernet.panel*``), with no Python round trip.  Only the refresh
button and the report of the last generation call Python.

Built by functions that take their data source (:class:`PanelSource`) as an argument; the webui adapter
(:mod:`lib_hypernet.webui.accordion`) puts the rows into an ``InputAccordion`` and connects its prompt.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import gradio as gr

from . import compat

NONE = "None"
ADVANCED_KEYS = ("self", "cross", "start", "stop")


class PanelSource(Protocol):
    """What the panel shows: the files (name and label) and the default strength; the last generation's report."""

    def choices(self) -> list[tuple[str, str]]:
        """``(name, label)`` per hypernetwork, in display order (label e.g. ``name [0123456789 · SD1]``)."""
        ...

    def aliases(self) -> dict[str, str]:
        """Other names a tag may use for a file (e.g. its relative path) → its name."""
        ...

    def default_strength(self) -> float:
        """The strength of a tag written without a number."""
        ...

    def refresh(self) -> None:
        """Rescan the files (the refresh button)."""
        ...

    def report_html(self) -> str:
        """What the last generation applied and what went wrong (HTML)."""
        ...


@dataclass
class HypernetRows:
    """The components of one panel (one per tab)."""

    elem_id: str
    source: PanelSource
    config: Any  # hidden Textbox: the JSON sdHypernet.panel* read (rows, default strength, labels)
    status: Any  # HTML written by the JavaScript: unknown files, invalid tags, more tags than rows
    report: Any  # HTML of the last generation
    refresh: Any
    dropdowns: list[Any] = field(default_factory=list)
    strengths: list[Any] = field(default_factory=list)
    advanced: dict[str, list[Any]] = field(default_factory=lambda: {k: [] for k in ADVANCED_KEYS})

    @property
    def rows(self) -> int:
        return len(self.dropdowns)

    def row_outputs(self) -> list[Any]:
        """What ``sdHypernet.panelValues`` returns values for, in its order."""
        out: list[Any] = []
        for i in range(self.rows):
            out += [self.dropdowns[i], self.strengths[i], *(self.advanced[k][i] for k in ADVANCED_KEYS)]
        return [*out, self.status]

    def components(self) -> list[Any]:
        return [self.config, self.status, self.report, self.refresh, *self.dropdowns, *self.strengths,
                *(c for k in ADVANCED_KEYS for c in self.advanced[k])]


def config_json(source: PanelSource, rows: int, elem_id: str) -> str:
    return json.dumps({
        "rows": rows, "default": float(source.default_strength()), "prefix": elem_id,
        "labels": dict(source.choices()), "aliases": source.aliases(),
    }, ensure_ascii=False)


def dropdown_choices(source: PanelSource) -> list[str]:
    return [NONE, *(label for _, label in source.choices())]


def build_rows(
    source: PanelSource,
    *,
    rows: int = 3,
    elem_id: str = "sd_hypernet",
    refresh_button: Callable[[str], Any] | None = None,
) -> HypernetRows:
    """Create the rows inside the current gradio context (call it inside an accordion or column).

    ``refresh_button(elem_id)`` creates the refresh button (the webui passes its ``ToolButton``);
    by default a small ``gr.Button``.
    """
    rows = max(1, int(rows))
    default = float(source.default_strength())
    choices = dropdown_choices(source)
    config = gr.Textbox(config_json(source, rows, elem_id), visible=False, elem_id=f"{elem_id}_config")
    panel = HypernetRows(elem_id, source, config, None, None, None)
    with gr.Column(elem_id=f"{elem_id}_rows", elem_classes=["sd-hypernet-panel"]):
        for i in range(rows):
            with gr.Row(elem_id=f"{elem_id}_row_{i}", elem_classes=["sd-hypernet-row"]):
                panel.dropdowns.append(gr.Dropdown(
                    choices=choices, value=NONE, label=f"Hypernetwork {i + 1}", elem_id=f"{elem_id}_name_{i}",
                    elem_classes=["sd-hypernet-name"], **compat.dropdown_kwargs(),
                ))
                panel.strengths.append(gr.Slider(
                    minimum=-2.0, maximum=2.0, step=0.05, value=default, label=f"Strength {i + 1}",
                    elem_id=f"{elem_id}_strength_{i}", elem_classes=["sd-hypernet-strength"],
                ))
                if i == 0:
                    panel.refresh = (refresh_button or _plain_refresh_button)(f"{elem_id}_refresh")
            # Two sliders a line with short labels: four in a line wrapped their labels over three lines beside
            # the prompt; the heading says what they mean.
            with gr.Accordion(f"Advanced {i + 1}: self/cross strength, start/stop (fraction of steps)",
                              open=False, elem_id=f"{elem_id}_advanced_{i}", elem_classes=["sd-hypernet-advanced"]):
                for pair in ((("self", "Self-attention", -2.0, 2.0, default), ("cross", "Cross-attention", -2.0, 2.0, default)),
                             (("start", "Start", 0.0, 1.0, 0.0), ("stop", "Stop", 0.0, 1.0, 1.0))):
                    with gr.Row(elem_classes=["sd-hypernet-advanced-row"]):
                        for key, label, low, high, value in pair:
                            panel.advanced[key].append(gr.Slider(
                                minimum=low, maximum=high, step=0.05, value=value, label=label,
                                elem_id=f"{elem_id}_{key}_{i}", elem_classes=[f"sd-hypernet-{key}"],
                            ))
        panel.status = gr.HTML("", elem_id=f"{elem_id}_status", elem_classes=["sd-hypernet-status"])
        panel.report = gr.HTML(source.report_html(), elem_id=f"{elem_id}_report", elem_classes=["sd-hypernet-report-box"])
    return panel


def _plain_refresh_button(elem_id: str) -> Any:
    return gr.Button("🔄", elem_id=elem_id, elem_classes=["sd-hypernet-refresh"], scale=0, min_width=40)


PARSE_JS = "function(prompt, config){ return sdHypernet.panelValues(prompt, config); }"


def choose_js(index: int) -> str:
    return ("function(prompt, config, label, strength){ "
            f"return sdHypernet.panelChoose({index}, prompt, config, label, strength); }}")


def set_js(index: int, key: str) -> str:
    return f"function(prompt, config, value){{ return sdHypernet.panelSet({index}, {json.dumps(key)}, prompt, config, value); }}"


def connect_prompt(panel: HypernetRows, prompt: Any) -> None:
    """Wire the rows to ``prompt`` (a ``gr.Textbox``) both ways; JavaScript only, except the refresh button.

    prompt → rows on ``prompt.change``; rows → prompt only on user events (``dropdown.input``,
    ``slider.release`` and ``slider.input``), so a row set by the parse never writes back (no loops).
    """
    outputs = panel.row_outputs()
    prompt.change(fn=None, inputs=[prompt, panel.config], outputs=outputs, **compat.js(PARSE_JS))
    for i in range(panel.rows):
        panel.dropdowns[i].input(fn=None, inputs=[prompt, panel.config, panel.dropdowns[i], panel.strengths[i]],
                                 outputs=[prompt], **compat.js(choose_js(i)))
        sliders: Sequence[tuple[str, Any]] = [("strength", panel.strengths[i]),
                                              *((k, panel.advanced[k][i]) for k in ADVANCED_KEYS)]
        for key, slider in sliders:
            for event in (slider.release, slider.input):
                event(fn=None, inputs=[prompt, panel.config, slider], outputs=[prompt], **compat.js(set_js(i, key)))

    def refresh() -> list[Any]:
        panel.source.refresh()
        choices = dropdown_choices(panel.source)
        return [config_json(panel.source, panel.rows, panel.elem_id), *(compat.update(choices=choices) for _ in panel.dropdowns)]

    panel.refresh.click(fn=refresh, inputs=[], outputs=[panel.config, *panel.dropdowns]).then(
        fn=None, inputs=[prompt, panel.config], outputs=outputs, **compat.js(PARSE_JS))


def connect_report(panel: HypernetRows, trigger: Any) -> None:
    """Show the last generation's report whenever ``trigger`` (e.g. the webui's generation info) changes."""
    trigger.change(fn=panel.source.report_html, inputs=[], outputs=[panel.report], show_progress="hidden")
