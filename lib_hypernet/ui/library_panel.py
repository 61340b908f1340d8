"""The library panel: every hypernetwork in a searchable, sortable table, a detail view, and actions.

:class:`LibraryPanel` holds the Python function behind each event (tests call them
directly); :func:`build_library_panel` lays out the gradio components and wires them.
The same code serves the webui's Hypernetworks tab and the standalone page: only the
:class:`~lib_hypernet.library.source.LibrarySource` differs.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from ..errors import HypernetError, HypernetExistsError
from ..library.description import FileDescription, by_width, checkpoint_label
from ..library.source import LibrarySource
from ..library.text import entry_names, human_size, structure_text, yes_no
from ..model.activations import creatable_activations
from ..model.create import WEIGHT_INITIALIZATIONS
from ..prompt.grammar import TagError
from ..prompt.writer import format_tag
from . import compat
from .bake_panel import BakePanel, build_bake_panel

log = logging.getLogger(__name__)

COLUMNS = ("name", "relative path", "format", "SD version", "structure", "activation", "layer norm", "dropout",
           "step", "base model", "short hash", "size", "safe")
SORT_KEYS: dict[str, Callable[[FileDescription], Any]] = {
    "name": lambda d: d.name.casefold(),
    "relative path": lambda d: d.relpath.casefold(),
    "format": lambda d: d.format or "",
    "SD version": lambda d: d.sd_version or "~",
    "activation": lambda d: str(d.activation_func),
    "step": lambda d: d.step if d.step is not None else -1,
    "base model": lambda d: (d.sd_checkpoint_name or d.sd_checkpoint or "~").casefold(),
    "short hash": lambda d: d.shorthash or "~",
    "size": lambda d: d.size or 0,
    "modified": lambda d: d.mtime_ns or 0,
    "safe": lambda d: {True: 1, None: 0, False: -1}[d.safe],
}
DEFAULT_STRENGTH = 0.8
CREATE_SIZES = ("768", "1024", "320", "640", "1280")
A1111_DEFAULT_SIZES = ["768", "320", "640", "1280"]


# --------------------------------------------------------------------- plain formatting
def base_model(desc: FileDescription) -> str:
    return checkpoint_label(desc.sd_checkpoint_name, desc.sd_checkpoint)


def safe_text(desc: FileDescription) -> str:
    if desc.safe is False:
        return "NO (refused)"
    if desc.error:
        return "error"
    return "yes" if desc.safe else "?"


def row_of(desc: FileDescription) -> list[Any]:
    """One table row (the order of :data:`COLUMNS`)."""
    dropout = structure_text(desc.dropout_structure) if any(desc.dropout_structure) else ("none" if desc.ok else "")
    return [
        desc.name, desc.relpath, desc.format or "", desc.sd_version or ("–" if desc.ok else ""),
        structure_text(desc.layer_structure), "" if not desc.ok else str(desc.activation_func),
        yes_no(desc.is_layer_norm),
        dropout, "" if desc.step is None else desc.step, base_model(desc), desc.shorthash or "", human_size(desc.size),
        safe_text(desc),
    ]


def matches(desc: FileDescription, query: str) -> bool:
    """Every word of ``query`` appears in the file's name, path, hash, SD version, activation, base model, step or info."""
    words = query.casefold().split()
    if not words:
        return True
    haystack = " ".join(
        str(x) for x in (
            desc.name, desc.relpath, desc.format, desc.sd_version, desc.activation_func, desc.sha256,
            desc.sd_checkpoint, desc.sd_checkpoint_name, desc.internal_name, desc.optional_info,
            f"step {desc.step}" if desc.step else "",
            "unsafe" if desc.safe is False else "", "error" if desc.error else "",
        ) if x
    ).casefold()
    return all(word in haystack for word in words)


def detail_fields(desc: FileDescription) -> list[tuple[str, str | list[str]]]:
    """The facts the detail shows, as ``(label, text)`` (a list of lines for the modules), in display order.

    The tab's detail and the Extra Networks card's ⓘ popup both show these, so the two never disagree.
    """
    rows: list[tuple[str, str | list[str]]] = [("name", desc.name), ("relative path", desc.relpath), ("path", desc.path)]
    if desc.internal_name is not None and desc.internal_name != desc.name:
        rows.append(("internal name", desc.internal_name))
    rows += [("format", f"{desc.format or '?'}{f' ({desc.container})' if desc.container else ''}"),
             ("size", f"{human_size(desc.size)} ({desc.size:,} bytes)" if desc.size is not None else "?"),
             ("safe", f"{safe_text(desc)}: {desc.safe_detail}" if desc.safe_detail else safe_text(desc))]
    if desc.format == "pt" and desc.a1111_loadable is not None:
        rows.append(("A1111 loads", "yes" if desc.a1111_loadable else
                     "no: " + entry_names(desc.a1111_rejected_entries)))
    if desc.ok:
        rows += [
            ("SD version", desc.sd_version or "unknown (no Stable Diffusion attention width)"),
            ("widths", ", ".join(map(str, sorted(desc.widths)))),
            ("layer structure", structure_text(desc.layer_structure)),
            ("modules", [f"{w}: {' → '.join(names)}" for w, names in by_width(desc.modules)]),
            ("parameters", f"{desc.param_count:,}" if desc.param_count is not None else "?"),
            ("activation", str(desc.activation_func)),
            ("layer norm", yes_no(desc.is_layer_norm)),
            ("activate output", yes_no(desc.activate_output)),
            ("dropout", structure_text(desc.dropout_structure) if any(desc.dropout_structure) else "none"),
            ("weight init", str(desc.weight_initialization)),
            ("step", str(desc.step)),
            ("base model", base_model(desc) or "not recorded"),
            ("optional info", desc.optional_info or "-"),
        ]
        if desc.source_sha256:
            rows.append(("converted from", f"sha256 {desc.source_sha256}"))
        if desc.ignored_keys:
            rows.append(("ignored keys", ", ".join(desc.ignored_keys)))
    rows += [("sha256", desc.sha256 or "not computed yet (Compute missing hashes)"),
             ("short hash", desc.shorthash or "not computed yet")]
    if desc.optim is not None:
        rows.append((".optim", f"{desc.optim['status']}: {desc.optim['reason']}"))
    return rows


def detail_html(desc: FileDescription | None, warnings: Sequence[str] = ()) -> str:
    """The detail view: every fact about the file, its optional info, the ``.optim`` verdict, warnings."""
    if desc is None:
        return "<p class='hypernet-lib-empty'>Select a file in the table or the list.</p>"
    e = html.escape
    body = "".join(
        f"<tr><th>{e(k)}</th><td data-key='{e(k)}'>{'<br>'.join(map(e, v)) if isinstance(v, list) else e(v)}</td></tr>"
        for k, v in detail_fields(desc)
    )
    parts = [f"<table class='hypernet-lib-detail'>{body}</table>"]
    if desc.error:
        parts.insert(0, f"<p class='hypernet-lib-error'>⚠ {e(desc.error)}</p>")
    if warnings:
        items = "".join(f"<li>{e(w)}</li>" for w in warnings)
        parts.insert(0, f"<ul class='hypernet-lib-warnings'>{items}</ul>")
    return "".join(parts)


def _int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise HypernetError(f"other widths must be whole numbers separated by commas, e.g. 32, 64; got {text!r}") from None


@dataclass
class View:
    """What a refresh of the table shows."""

    table: Any
    names: list[str]
    files: Any  # the "File" dropdown's update
    status: str
    selected: str | None = None  # the dropdown's value in that update


class LibraryPanel:
    """The functions behind the panel's events, over one :class:`LibrarySource`."""

    def __init__(self, source: LibrarySource) -> None:
        self.source = source
        self._view_in: list[Any] = []
        self._view_out: list[Any] = []
        self.bake: BakePanel | None = None  # the Bake section, when the source has somewhere to bake

    def fill_on_load(self, blocks: Any) -> None:
        """Rescan the folder and fill the table when the page loads (``blocks``: the Blocks the panel is in)."""
        blocks.load(self.on_refresh, self._view_in, self._view_out, queue=False)

    # ------------------------------------------------------------------ table
    def view(self, query: str = "", sort: str = "name", descending: bool = False, selected: str | None = None) -> View:
        descs = self.source.descriptions()
        shown = [d for d in descs if matches(d, query or "")]
        key = SORT_KEYS.get(sort or "name", SORT_KEYS["name"])
        shown.sort(key=lambda d: (key(d), d.name.casefold()), reverse=bool(descending))
        names = [d.name for d in shown]
        value = selected if selected in names else (names[0] if names else None)
        labels = [(d.label(), d.name) for d in shown]
        files = compat.update(choices=compat.dropdown_choices(labels), value=value)
        return View(compat.table_value(COLUMNS, [row_of(d) for d in shown]), names, files,
                    self._status(descs, len(shown)), value)

    def _status(self, descs: Sequence[FileDescription], shown: int) -> str:
        lib = self.source.library
        where = lib.root or "(no folder)"
        parts = [f"{len(descs)} files in `{where}`" if shown == len(descs) else f"{shown} of {len(descs)} files in `{where}`"]
        missing = sum(1 for d in descs if d.sha256 is None and d.size is not None)
        if missing:
            parts.append(f"{missing} without a hash yet")
        broken = sum(1 for d in descs if d.error)
        if broken:
            parts.append(f"{broken} with errors")
        if lib.duplicates:
            parts.append("files sharing a stem (named by their path or suffix): " + ", ".join(sorted(lib.duplicates)))
        return " · ".join(parts)

    def _outputs(self, view: View) -> tuple[Any, list[str], Any, str]:
        return view.table, view.names, view.files, view.status

    def on_filter(self, query: str, sort: str, descending: bool, selected: str | None) -> tuple[Any, ...]:
        """Search text, sort key or order changed: the same files, filtered and sorted again."""
        return self._outputs(self.view(query, sort, descending, selected))

    def on_refresh(self, query: str, sort: str, descending: bool, selected: str | None) -> tuple[Any, ...]:
        self.source.refresh()
        return self._outputs(self.view(query, sort, descending, selected))

    def on_select(self, names: list[str], shown: Any, evt: gr.SelectData) -> Any:
        """A click in the table selects that row's file.

        ``shown`` is the table as the browser has it (its header buttons sort it there, so the
        row index is into that order): the name is that row's first cell.
        """
        index = evt.index
        row = index[0] if isinstance(index, (list, tuple)) else index
        data = shown.get("data") if isinstance(shown, dict) else shown
        if isinstance(row, int) and isinstance(data, list) and 0 <= row < len(data) and data[row]:
            name = data[row][0]
            if isinstance(name, str) and name in names:
                return name
        if isinstance(row, int) and 0 <= row < len(names):
            return names[row]
        return compat.update()

    # ------------------------------------------------------------------ detail and tag
    def on_file(self, name: str | None, strength: float) -> tuple[str, str]:
        return self.detail(name), self.tag(name, strength)

    def detail(self, name: str | None) -> str:
        desc = self.source.describe(name) if name else None
        warnings = desc.warnings_for(self.source.model()) if desc is not None else []
        return detail_html(desc, warnings)

    def on_selected(self, name: str | None, strength: float, result_for: str | None) -> tuple[str, str, Any]:
        """The selection changed: its detail and tag; an action's message is cleared unless it is about this file.

        ``result_for`` is the file the message belongs to (an action moves the selection to the file it made).
        """
        detail, tag = self.on_file(name, strength)
        return detail, tag, compat.update() if name == result_for else ""

    @staticmethod
    def tag(name: str | None, strength: float | None) -> str:
        """``<hypernet:name:0.8>`` for the selected file (empty when none is, or its name cannot be written in a tag)."""
        if not name:
            return ""
        value = DEFAULT_STRENGTH if strength is None else round(float(strength), 4)
        try:
            return format_tag(name, value)
        except TagError:  # e.g. a file named 'a:b.pt': the detail shows the file, the tag box stays empty
            return ""

    # ------------------------------------------------------------------ actions
    def on_hash(self, query: str, sort: str, descending: bool, selected: str | None,
                progress: Any = gr.Progress()) -> tuple[Any, ...]:
        def report(done: int, total: int, name: str) -> None:
            if total:
                progress((done, total), desc=f"hashing {name}" if name else "hashed", unit="files")

        hashed, errors = self.source.hash_missing(report)
        view = self.view(query, sort, descending, selected)
        message = f"Hashed {hashed} file{'s' if hashed != 1 else ''}." if hashed or not errors else ""
        if errors:
            message += " Failed: " + "; ".join(errors)
        if not hashed and not errors:
            message = "Every file already has its hash."
        return (*self._outputs(view), *self._result(view), message.strip())

    def _result(self, view: View) -> tuple[str, str | None]:
        """The detail of the file the view selects (also when its name is unchanged, e.g. the plain name of a
        converted ``.pt`` now naming the ``.safetensors``) and that file, which the message is about."""
        return self.detail(view.selected), view.selected

    def _act(self, action: Callable[[], str], done: Callable[[str], str], query: str, sort: str, descending: bool,
             selected: str | None, *, confirm: str = "replace it") -> tuple[Any, ...]:
        """Run a writing action and show the view after it; ``confirm`` ends the hint when the target exists."""
        try:
            new_name = action()
            message = done(new_name)
            selected = new_name
        except HypernetExistsError as exc:
            message = f"⚠ {exc}; tick 'Overwrite' to {confirm}"
        except HypernetError as exc:
            message = f"⚠ {exc}"
        except Exception as exc:  # a panel action reports, it never breaks the page
            log.exception("hypernetworks: panel action failed")
            message = f"⚠ failed: {type(exc).__name__}: {exc}"
        view = self.view(query, sort, descending, selected)
        return (*self._outputs(view), *self._result(view), message)

    def on_convert(self, name: str | None, overwrite: bool, query: str, sort: str, descending: bool) -> tuple[Any, ...]:
        return self._act(lambda: self.source.convert(name, overwrite=bool(overwrite)),
                         lambda new: f"Wrote {new}.safetensors (weights checked bit-identical to {name}).",
                         query, sort, descending, name)

    def on_repair(self, name: str | None, overwrite: bool, query: str, sort: str, descending: bool) -> tuple[Any, ...]:
        return self._act(lambda: self.source.repair(name, overwrite=bool(overwrite)),
                         lambda new: f"Re-wrote {new} in the legacy .pt format every A1111 loads (weights bit-identical).",
                         query, sort, descending, name, confirm="confirm")

    def on_create(
        self, name: str, sizes: list[str], other_sizes: str, layer_structure: str, activation: str, init: str,
        layer_norm: bool, dropout: bool, dropout_structure: str, activate_output: bool, file_format: str,
        seed: float | None, info: str, overwrite: bool, query: str, sort: str, descending: bool,
        selected: str | None,
    ) -> tuple[Any, ...]:
        def create() -> str:
            widths = sorted({int(s) for s in sizes or []} | set(_int_list(other_sizes or "")))
            if not widths:
                raise HypernetError("choose at least one module width (768 for SD1's text context)")
            return self.source.create(
                name or "", file_format=file_format or "pt", overwrite=bool(overwrite), sizes=widths,
                layer_structure=layer_structure or "1, 2, 1", activation_func=activation or "linear",
                weight_initialization=init or "Normal", is_layer_norm=bool(layer_norm), use_dropout=bool(dropout),
                dropout_structure=(dropout_structure or None) if dropout else None,
                activate_output=bool(activate_output), optional_info=info or None,
                seed=None if seed is None or int(seed) < 0 else int(seed),
            )

        table, names, files, status, _detail, _for, message = self._act(
            create, lambda new: f"Created {new}.", query, sort, descending, selected)
        return table, names, files, status, message  # its message has its own box; the selection shows the file


# --------------------------------------------------------------------- layout
def build_library_panel(source: LibrarySource, *, elem_prefix: str = "hypernet_lib") -> LibraryPanel:
    """Lay out the panel inside the current gradio Blocks context and wire its events.

    Writing actions run through the queue (``queue=True``); the table fills on page load.
    """
    panel = LibraryPanel(source)

    def eid(name: str) -> str:
        return f"{elem_prefix}_{name}"

    with gr.Column(elem_id=eid("panel"), elem_classes=["hypernet-lib"]):
        with gr.Row():
            search = gr.Textbox(label="Search", placeholder="name, folder, hash, SD1, relu, base model…",
                                elem_id=eid("search"), scale=4)
            sort = gr.Dropdown(list(SORT_KEYS), value="name", label="Sort by", elem_id=eid("sort"), scale=1)
            descending = gr.Checkbox(label="Descending", value=False, elem_id=eid("descending"), scale=1)
            refresh = gr.Button("Refresh", elem_id=eid("refresh"), scale=1)
            hash_button = gr.Button("Compute missing hashes", elem_id=eid("hash"), scale=1)
        status = gr.Markdown(elem_id=eid("status"))
        table = gr.Dataframe(headers=list(COLUMNS), interactive=False, wrap=True, elem_id=eid("table"), height=520, type="array",
                             elem_classes=["hypernet-lib-table"])
        names = gr.State([])
        with gr.Row():
            with gr.Column(scale=3):
                selected = gr.Dropdown([], label="File", elem_id=eid("file"), **compat.dropdown_kwargs())
                detail = gr.HTML(detail_html(None), elem_id=eid("detail"))
            with gr.Column(scale=2):
                strength = gr.Slider(-2, 2, value=DEFAULT_STRENGTH, step=0.05, label="Strength",
                                     elem_id=eid("strength"))
                tag = gr.Textbox(label="Tag (copy it into a prompt)", interactive=True, show_copy_button=True,
                                 elem_id=eid("tag"))
                if source.send_targets:
                    with gr.Row():
                        for i, target in enumerate(source.send_targets):
                            button = gr.Button(target.label, elem_id=eid(f"send_{i}"))
                            button.click(fn=None, inputs=[tag], outputs=[], **compat.js(target.js))
                with compat.box():
                    overwrite = gr.Checkbox(label="Overwrite existing files", value=False, elem_id=eid("overwrite"))
                    with gr.Row():
                        convert = gr.Button("Convert to .safetensors", elem_id=eid("convert"))
                        repair = gr.Button("Repair .pt (legacy format A1111 loads)", elem_id=eid("repair"))
                    result = gr.Markdown(elem_id=eid("result"))
                    result_for = gr.State(None)  # the file the result is about
        with gr.Accordion("Create a new hypernetwork", open=False, elem_id=eid("create_box")):
            with gr.Row():
                new_name = gr.Textbox(label="Name", elem_id=eid("new_name"))
                new_format = gr.Radio(["pt", "safetensors"], value="pt", label="Format", elem_id=eid("new_format"))
                new_seed = gr.Number(value=-1, precision=0, label="Seed (-1: random)", elem_id=eid("new_seed"))
            with gr.Row():
                new_sizes = gr.CheckboxGroup(list(CREATE_SIZES), value=A1111_DEFAULT_SIZES, label="Modules",
                                             elem_id=eid("new_sizes"))
                new_other = gr.Textbox(label="Other widths", placeholder="e.g. 32, 64", elem_id=eid("new_other"))
                new_structure = gr.Textbox("1, 2, 1", label="Layer structure", elem_id=eid("new_structure"))
            with gr.Row():
                new_activation = gr.Dropdown(creatable_activations(), value="linear", label="Activation function",
                                             elem_id=eid("new_activation"))
                new_init = gr.Dropdown(list(WEIGHT_INITIALIZATIONS), value="Normal", label="Weight initialization",
                                       elem_id=eid("new_init"))
                new_dropout_structure = gr.Textbox("0, 0, 0", label="Dropout structure",
                                                   elem_id=eid("new_dropout_structure"))
            with gr.Row():
                new_layer_norm = gr.Checkbox(label="Add layer normalization", elem_id=eid("new_layer_norm"))
                new_dropout = gr.Checkbox(label="Use dropout", elem_id=eid("new_dropout"))
                new_activate_output = gr.Checkbox(label="Activate output", elem_id=eid("new_activate_output"))
                new_overwrite = gr.Checkbox(label="Overwrite an existing file", elem_id=eid("new_overwrite"))
            new_info = gr.Textbox(label="Optional info", elem_id=eid("new_info"))
            create = gr.Button("Create hypernetwork", variant="primary", elem_id=eid("create"))
            create_result = gr.Markdown(elem_id=eid("create_result"))
        if source.bake_folders is not None:
            panel.bake = build_bake_panel(source, elem_prefix=elem_prefix)

    view_in = [search, sort, descending, selected]
    view_out = [table, names, selected, status]
    refresh.click(panel.on_refresh, view_in, view_out)
    for control in (search, sort, descending):
        control.change(panel.on_filter, view_in, view_out, queue=False)
    table.select(panel.on_select, [names, table], [selected], queue=False)
    selected.change(panel.on_selected, [selected, strength, result_for], [detail, tag, result], queue=False)
    strength.change(panel.tag, [selected, strength], [tag], queue=False)
    action_out = [*view_out, detail, result_for, result]
    hash_button.click(panel.on_hash, view_in, action_out, queue=True)
    action_in = [selected, overwrite, search, sort, descending]
    convert.click(panel.on_convert, action_in, action_out, queue=True)
    repair.click(panel.on_repair, action_in, action_out, queue=True)
    create.click(
        panel.on_create,
        [new_name, new_sizes, new_other, new_structure, new_activation, new_init, new_layer_norm, new_dropout,
         new_dropout_structure, new_activate_output, new_format, new_seed, new_info, new_overwrite, *view_in],
        [*view_out, create_result], queue=True,
    )
    panel._view_in, panel._view_out = view_in, view_out
    return panel


PANEL_CSS = """
.hypernet-lib-table th, .hypernet-lib-table td, .hypernet-lib-table td *, .hypernet-lib-table th span {
  font-size: 12px !important; font-family: var(--font) !important; }
.hypernet-lib-table th, .hypernet-lib-table td { padding: 0 !important; }
.hypernet-lib-table .cell-wrap { padding: 3px 5px !important; }
.hypernet-lib-detail { border-collapse: collapse; width: 100%; font-size: 0.9em; }
.hypernet-lib-detail th { text-align: left; padding: 2px 12px 2px 0; white-space: nowrap; vertical-align: top;
  font-weight: 600; }
.hypernet-lib-detail td { padding: 2px 0; word-break: break-word; }
.hypernet-lib-detail th, .hypernet-lib-detail td { border: none; border-bottom: 1px solid var(--border-color-primary); }
.hypernet-lib-warnings { color: #b45309; margin: 0 0 8px 0; }
.hypernet-lib-error { color: #b91c1c; }
"""
"""Styles for the panel's own elements only (class names starting with ``hypernet-lib``)."""
