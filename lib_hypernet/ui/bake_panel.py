"""The Bake section of the library panel: hypernetworks (written as prompt tags) baked into a LoRA file or a
merged checkpoint for one checkpoint of the folder, with progress and the check of the result.

Built from a :class:`~lib_hypernet.library.source.LibrarySource` (its ``bake_folders`` and ``bake``), so the
webui's tab and the standalone page share it; every write goes through :mod:`lib_hypernet.library.actions`.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gradio as gr

from ..errors import HypernetError, HypernetExistsError
from ..library.source import LibrarySource
from . import compat

if TYPE_CHECKING:
    from ..baking import BakeReport

log = logging.getLogger(__name__)

MODES = {"LoRA file": "lora", "Merged checkpoint": "merge"}
EXPLANATION = (
    "Turns hypernetworks into a **LoRA file** (loads in A1111's Lora, Forge 2, reForge and ComfyUI: strength 1 "
    "reproduces them) or a **merged checkpoint**. Exact for files without activation and layer norm (A1111's "
    "default *linear*); others, and step ranges, are refused with the reason. A bake is made **for one "
    "checkpoint**: on another one it only approximates."
)


@dataclass
class BakePanel:
    """The components (for tests and the host's own wiring)."""

    tags: Any
    checkpoint: Any
    mode: Any
    name: Any
    overwrite: Any
    button: Any
    result: Any


def report_html(report: BakeReport) -> str:
    """What was written and how exact it is: the largest difference per layer from the hypernetworks applied the
    A1111 way (relative), the notes."""
    e = html.escape
    kind = "a LoRA file" if report.mode == "lora" else "a merged checkpoint"
    rows = "".join(f"<tr><td>{e(c.name)}</td><td>{c.kind}</td><td>{c.width}</td><td>{c.k_error:.1e}</td>"
                   f"<td>{c.v_error:.1e}</td></tr>" for c in report.layers)
    notes = "".join(f"<li>{e(n)}</li>" for n in [*report.unmatched, *report.warnings])
    return (f"<p>Wrote {kind}: <code>{e(report.output)}</code> — {len(report.layers)} attention layers; largest "
            f"difference from the hypernetworks applied the A1111 way: <b>{report.max_error:.1e}</b> (relative).</p>"
            f"<ul>{notes}</ul><details><summary>per layer</summary><table class='hypernet-lib-detail'>"
            "<tr><th>layer</th><th>attention</th><th>width</th><th>K</th><th>V</th></tr>"
            f"{rows}</table></details>")


def run_bake(source: LibrarySource, tags: str, checkpoint: str | None, mode_label: str, name: str, overwrite: bool,
             progress: Any = None) -> str:
    """The Bake button: the report, or one line saying what is wrong (never raises)."""
    def step(done: int, total: int, what: str) -> None:
        if progress is not None:
            progress((done, total), desc=what)

    try:
        report = source.bake(tags or "", checkpoint or "", mode=MODES.get(mode_label, "lora"), name=name or "",
                             overwrite=bool(overwrite), progress=step)
    except HypernetExistsError as exc:
        return f"<p>⚠ {html.escape(str(exc))}; tick 'Overwrite' to replace it</p>"
    except HypernetError as exc:
        return f"<p>⚠ {html.escape(str(exc))}</p>"
    except Exception as exc:  # a panel action reports, it never breaks the page
        log.exception("hypernetworks: bake failed")
        return f"<p>⚠ failed: {html.escape(type(exc).__name__)}: {html.escape(str(exc))}</p>"
    return report_html(report)


def build_bake_panel(source: LibrarySource, *, elem_prefix: str = "hypernet_lib") -> BakePanel:
    """Lay out the Bake section inside the current gradio Blocks context (only when the source has bake folders)."""
    def eid(name: str) -> str:
        return f"{elem_prefix}_bake_{name}"

    with gr.Accordion("Bake into a LoRA or a checkpoint", open=False, elem_id=eid("section")):
        gr.Markdown(EXPLANATION)
        tags = gr.Textbox(label="Hypernetworks (tags, applied in order)", elem_id=eid("tags"),
                          placeholder="<hypernet:name:0.8> <hypernet:other:0.5:self=0>")
        with gr.Row():
            checkpoint = gr.Dropdown(source.checkpoints(), label="Checkpoint (the model it is made for)",
                                     elem_id=eid("checkpoint"), **compat.dropdown_kwargs())
            refresh = gr.Button("🔄", elem_id=eid("refresh"), scale=0)
        with gr.Row():
            mode = gr.Radio(list(MODES), value="LoRA file", label="Write", elem_id=eid("mode"))
            name = gr.Textbox(label="File name (without .safetensors)", elem_id=eid("name"))
            overwrite = gr.Checkbox(label="Overwrite", value=False, elem_id=eid("overwrite"))
        button = gr.Button("Bake", variant="primary", elem_id=eid("button"))
        result = gr.HTML(elem_id=eid("result"))

    def on_bake(tags_: str, checkpoint_: str | None, mode_: str, name_: str, overwrite_: bool,
                progress: Any = gr.Progress()) -> str:
        return run_bake(source, tags_, checkpoint_, mode_, name_, overwrite_, progress)

    refresh.click(lambda: compat.update(choices=source.checkpoints()), outputs=[checkpoint])
    button.click(on_bake, inputs=[tags, checkpoint, mode, name, overwrite], outputs=[result], queue=True)
    return BakePanel(tags, checkpoint, mode, name, overwrite, button, result)
