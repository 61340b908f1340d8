"""The library panel: every hypernetwork in a searchable, sortable table, a detail view, and actions.

:class:`LibraryPanel` holds the Python function behind each event (tests call them
directly); :func:`build_library_panel` lays out the gradio components and wires them.
The same code serves the webui's Hypernetworks tab and the standalone page: only the
:class:`~lib_hypernet.library.source.LibrarySource` differs.
"""

from __future__ import annotations

import base64
import html
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from ..errors import HypernetError, HypernetExistsError
from ..library.actions import EXISTS, FAILED, FileOutcome, FilesProgress, batch_summary
from ..library.description import FileDescription, by_width, checkpoint_label
from ..library.folder import find_preview
from ..library.source import LibrarySource
from ..library.text import entry_names, human_size, structure_text, yes_no
from ..model.activations import creatable_activations
from ..model.create import WEIGHT_INITIALIZATIONS
from ..prompt.grammar import TagError
from ..prompt.writer import format_tag
from . import compat
from .bake_panel import BakePanel, build_bake_panel

log = logging.getLogger(__name__)

COLUMNS = ("status", "name", "A1111 loads", "SD version", "size", "safe", "step", "activation", "structure",
           "short hash", "base model", "format", "relative path", "layer norm", "dropout")
"""The table's columns: what is wrong first, then what a user compares; the rest (to the right) can scroll."""
NAME_COLUMN = COLUMNS.index("name")
STATUS_RANK = {"broken": 0, "A1111 cannot load — repair": 1, "not read yet": 2, "ok": 3}
SORT_KEYS: dict[str, Callable[[FileDescription], Any]] = {
    "name": lambda d: d.name.casefold(),
    "status": lambda d: STATUS_RANK.get(d.status.split(" — ")[0] if d.error else d.status, 2),
    "A1111 loads": lambda d: {False: 0, None: 1, True: 2}[d.a1111_loadable],
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
STATUS_LENGTH = 60
"""How much of a broken file's reason the table shows (the detail has all of it)."""
PREVIEW_MAX_BYTES = 4 * 1024 * 1024
"""A larger preview image is not shown (it travels inside the detail's HTML)."""
PREVIEW_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp",
                 ".gif": "image/gif"}
MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+!|~>-])")


# --------------------------------------------------------------------- plain formatting
def base_model(desc: FileDescription) -> str:
    return checkpoint_label(desc.sd_checkpoint_name, desc.sd_checkpoint)


def safe_text(desc: FileDescription) -> str:
    """Whether loading the file can run code, and only that ("yes": it cannot; a file that fails for another
    reason, e.g. an unknown activation, is still "yes" here, as in the command line's ``info``)."""
    return {True: "yes", False: "NO (refused)", None: "unknown"}[desc.safe]


def a1111_text(desc: FileDescription) -> str:
    """The "A1111 loads" column: ``yes``/``no`` for a readable ``.pt``, ``n/a`` for a ``.safetensors`` (A1111's own
    loader reads only ``.pt``), empty when not known."""
    if desc.ok and desc.format == "safetensors":
        return "n/a"
    return yes_no(desc.a1111_loadable)


def status_kind(desc: FileDescription) -> str:
    """``ok``, ``repair`` (A1111 cannot load it), ``broken`` or ``pending``: the CSS class of its status."""
    if desc.error:
        return "broken"
    if not desc.ok:
        return "pending"
    return "repair" if desc.a1111_loadable is False else "ok"


def status_cell(desc: FileDescription) -> str:
    """The status cell (markdown): the status in a ``hypernet-lib-<kind>`` span that names the file
    (``data-hn``), so the stylesheet marks the row of a broken file and the selected row."""
    text = desc.status
    if len(text) > STATUS_LENGTH:
        text = text[:STATUS_LENGTH - 1].rstrip() + "…"
    shown = MARKDOWN_SPECIALS.sub(r"\\\1", html.escape(text, quote=False))
    return (f"<span class='hypernet-lib-status hypernet-lib-{status_kind(desc)}' data-hn='{html.escape(desc.name)}' "
            f"title='{html.escape(desc.status)}'>{shown}</span>")


def row_of(desc: FileDescription) -> list[Any]:
    """One table row (the order of :data:`COLUMNS`)."""
    dropout = structure_text(desc.dropout_structure) if any(desc.dropout_structure) else ("none" if desc.ok else "")
    return [
        status_cell(desc), desc.name, a1111_text(desc), desc.sd_version or ("–" if desc.ok else ""),
        human_size(desc.size), safe_text(desc), "" if desc.step is None else desc.step,
        "" if not desc.ok else str(desc.activation_func), structure_text(desc.layer_structure), desc.shorthash or "",
        base_model(desc), desc.format or "", desc.relpath, yes_no(desc.is_layer_norm), dropout,
    ]


def selected_row_css(name: str | None, table_id: str) -> str:
    """A stylesheet that highlights the row of ``name`` in the table ``#table_id`` (empty for no selection).

    The highlight is CSS on the status cell's ``data-hn``, not a class set in the browser: it follows the
    row wherever a header click sorts it, and a refreshed table keeps it.
    """
    if not name:
        return ""
    value = "".join(CSS_STRING_ESCAPES.get(ch, ch) for ch in name)
    row = f'#{table_id} tr:has([data-hn="{value}"])'
    return (f"<style>{row} td {{ background: var(--color-accent-soft) !important; }}"
            f"{row} {{ outline: 2px solid var(--color-accent); outline-offset: -2px; }}</style>")


CSS_STRING_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\a ", "\r": "\\d ", "<": "\\3c ", ">": "\\3e "}
"""What a double-quoted CSS string needs escaped, and ``<``/``>`` so that no name can close the ``<style>``."""


def preview_html(desc: FileDescription) -> str:
    """The file's preview image (``<file>.png`` or ``<file>.preview.png`` beside it, as A1111's cards use) as an
    inline image; empty when there is none or it is too large."""
    path = find_preview(desc.path)
    if path is None:
        return ""
    try:
        if os.path.getsize(path) > PREVIEW_MAX_BYTES:
            return ""
        with open(path, "rb") as f:
            data = base64.b64encode(f.read()).decode("ascii")
    except OSError:
        return ""
    kind = PREVIEW_TYPES.get(os.path.splitext(path)[1].lower(), "image/png")
    return (f"<img class='hypernet-lib-preview' alt='preview of {html.escape(desc.name)}' "
            f"title='{html.escape(os.path.basename(path))}' src='data:{kind};base64,{data}'>")


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
            "unsafe" if desc.safe is False else "", "error broken" if desc.error else "",
            "repair" if desc.a1111_loadable is False else "",
        ) if x
    ).casefold()
    return all(word in haystack for word in words)


def detail_fields(desc: FileDescription) -> list[tuple[str, str | list[str]]]:
    """The facts the detail shows, as ``(label, text)`` (a list of lines for the modules), in display order.

    The tab's detail and the Extra Networks card's ⓘ popup both show these, so the two never disagree.
    """
    rows: list[tuple[str, str | list[str]]] = [("status", desc.status), ("name", desc.name),
                                                ("relative path", desc.relpath), ("path", desc.path)]
    if desc.internal_name is not None and desc.internal_name != desc.name:
        rows.append(("internal name", desc.internal_name))
    rows += [("format", f"{desc.format or '?'}{f' ({desc.container})' if desc.container else ''}"),
             ("size", f"{human_size(desc.size)} ({desc.size:,} bytes)" if desc.size is not None else "?"),
             ("safe", f"{safe_text(desc)}: {desc.safe_detail}" if desc.safe_detail else safe_text(desc))]
    if desc.format == "pt" and desc.a1111_loadable is not None:
        rows.append(("A1111 loads", "yes" if desc.a1111_loadable else
                     f"no: it refuses the zip entries {entry_names(desc.a1111_rejected_entries)} (written by newer "
                     "torch); Repair rewrites the .pt in the legacy format it loads"))
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


def detail_html(desc: FileDescription | None, warnings: Sequence[str] = (), preview: str = "") -> str:
    """The detail view: the preview image (``preview``, see :func:`preview_html`), every fact about the file,
    its optional info, the ``.optim`` verdict, warnings."""
    if desc is None:
        return "<p class='hypernet-lib-empty'>Select a file in the table or the list.</p>"
    e = html.escape
    body = "".join(
        f"<tr><th>{e(k)}</th><td data-key='{e(k)}'>{'<br>'.join(map(e, v)) if isinstance(v, list) else e(v)}</td></tr>"
        for k, v in detail_fields(desc)
    )
    parts = [preview, f"<table class='hypernet-lib-detail'>{body}</table>"]
    if warnings:
        items = "".join(f"<li>{e(w)}</li>" for w in warnings)
        parts.insert(0, f"<ul class='hypernet-lib-warnings'>{items}</ul>")
    if desc.error:
        parts.insert(0, f"<p class='hypernet-lib-error'>⚠ broken: {e(desc.problem or desc.error)}</p>")
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
    """The functions behind the panel's events, over one :class:`LibrarySource`.

    What depends on the selected file (:meth:`selection`: its detail, its tag, which buttons can work on it, the
    highlight of its row) is one tuple, returned by every event that can change the selection or the file.
    """

    def __init__(self, source: LibrarySource, *, elem_prefix: str = "hypernet_lib") -> None:
        self.source = source
        self.elem_prefix = elem_prefix
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
        repair = sum(1 for d in descs if status_kind(d) == "repair")
        if repair:
            parts.append(f"{repair} that A1111 cannot load (Repair all fixes them)")
        broken = sum(1 for d in descs if d.error)
        if broken:
            parts.append(f"{broken} broken")
        missing = sum(1 for d in descs if d.sha256 is None and d.size is not None)
        if missing:
            parts.append(f"{missing} without a hash yet")
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
        row index is into that order): the name is that row's name cell.
        """
        index = evt.index
        row = index[0] if isinstance(index, (list, tuple)) else index
        data = shown.get("data") if isinstance(shown, dict) else shown
        if isinstance(row, int) and isinstance(data, list) and 0 <= row < len(data) and len(data[row]) > NAME_COLUMN:
            name = data[row][NAME_COLUMN]
            if isinstance(name, str) and name in names:
                return name
        if isinstance(row, int) and 0 <= row < len(names):
            return names[row]
        return compat.update()

    # ------------------------------------------------------------------ the selected file
    def selection(self, name: str | None, strength: float | None) -> tuple[Any, ...]:
        """``(detail, tag, convert button, repair button, row highlight, *send buttons)`` for the selected file.

        A broken file gets no tag and no button that cannot work on it: Convert needs a readable ``.pt``,
        Repair one that A1111 cannot load, the send buttons a tag.
        """
        desc = self.source.describe(name) if name else None
        tag = self.tag(name, strength) if desc is not None and not desc.error else ""
        readable_pt = desc is not None and desc.ok and desc.format == "pt"
        return (
            self._detail(desc), tag,
            compat.update(interactive=readable_pt),
            compat.update(interactive=readable_pt and desc is not None and desc.a1111_loadable is False),
            selected_row_css(name if desc is not None else None, f"{self.elem_prefix}_table"),
            *(compat.update(interactive=bool(tag)) for _ in self.source.send_targets),
        )

    def _detail(self, desc: FileDescription | None) -> str:
        if desc is None:
            return detail_html(None)
        return detail_html(desc, desc.warnings_for(self.source.model()), preview_html(desc))

    def on_file(self, name: str | None, strength: float) -> tuple[str, str]:
        """The selected file's detail and tag (empty for a broken file)."""
        detail, tag, *_ = self.selection(name, strength)
        return detail, tag

    def on_selected(self, name: str | None, strength: float, result_for: str | None) -> tuple[Any, ...]:
        """The selection changed: :meth:`selection`, then the action message, cleared unless it is about this file.

        ``result_for`` is the file the message belongs to (an action moves the selection to the file it made).
        """
        return (*self.selection(name, strength), compat.update() if name == result_for else "")

    def on_strength(self, name: str | None, strength: float | None) -> str:
        """The slider moved: the tag again (none for a broken file)."""
        desc = self.source.describe(name, with_hash=False) if name else None
        return self.tag(name, strength) if desc is not None and not desc.error else ""

    @staticmethod
    def tag(name: str | None, strength: float | None) -> str:
        """``<hypernet:name:0.8>`` for ``name`` (empty for none, or a name that cannot be written in a tag)."""
        if not name:
            return ""
        value = DEFAULT_STRENGTH if strength is None else round(float(strength), 4)
        try:
            return format_tag(name, value)
        except TagError:  # e.g. a file named 'a:b.pt': the detail shows the file, the tag box stays empty
            return ""

    # ------------------------------------------------------------------ actions
    def on_hash(self, query: str, sort: str, descending: bool, selected: str | None, strength: float = DEFAULT_STRENGTH,
                progress: Any = gr.Progress()) -> tuple[Any, ...]:
        hashed, errors = self.source.hash_missing(files_progress(progress, "hashing", "hashed"))
        message = f"Hashed {hashed} file{'s' if hashed != 1 else ''}." if hashed or not errors else ""
        if errors:
            message += " Failed: " + "; ".join(errors)
        if not hashed and not errors:
            message = "Every file already has its hash."
        return self._after(query, sort, descending, selected, strength, message.strip())

    def _after(self, query: str, sort: str, descending: bool, selected: str | None, strength: float | None,
               message: str) -> tuple[Any, ...]:
        """The outputs of a writing action: the view, the selection (also when its name is unchanged, e.g. the
        plain name of a converted ``.pt`` now naming the ``.safetensors``), the file the message is about, the
        message."""
        view = self.view(query, sort, descending, selected)
        return (*self._outputs(view), *self.selection(view.selected, strength), view.selected, message)

    def _act(self, action: Callable[[], str], done: Callable[[str], str], query: str, sort: str, descending: bool,
             selected: str | None, strength: float | None = DEFAULT_STRENGTH, *,
             confirm: str = "replace it") -> tuple[Any, ...]:
        """Run a writing action and show the view after it; ``confirm`` ends the hint when the target exists."""
        try:
            new_name = action()
            message = done(new_name)
            selected = new_name
        except Exception as exc:  # a panel action reports, it never breaks the page
            message = action_error(exc, confirm)
        return self._after(query, sort, descending, selected, strength, message)

    def on_convert(self, name: str | None, overwrite: bool, query: str, sort: str, descending: bool,
                   strength: float = DEFAULT_STRENGTH) -> tuple[Any, ...]:
        return self._act(lambda: self.source.convert(name, overwrite=bool(overwrite)),
                         lambda new: f"Wrote {new}.safetensors (weights checked bit-identical to {name}).",
                         query, sort, descending, name, strength)

    def on_repair(self, name: str | None, overwrite: bool, query: str, sort: str, descending: bool,
                  strength: float = DEFAULT_STRENGTH) -> tuple[Any, ...]:
        return self._act(lambda: self.source.repair(name, overwrite=bool(overwrite)),
                         lambda new: f"Repaired {new}: rewritten in the legacy .pt format every A1111 loads "
                                     "(weights bit-identical).",
                         query, sort, descending, name, strength, confirm="confirm")

    # ------------------------------------------------------------------ batch actions
    def on_repair_all(self, overwrite: bool, query: str, sort: str, descending: bool, selected: str | None,
                      strength: float = DEFAULT_STRENGTH, progress: Any = gr.Progress()) -> tuple[Any, ...]:
        """Repair every ``.pt`` A1111 cannot load (only with 'Overwrite': each is rewritten in place)."""
        def run() -> str:
            results = self.source.repair_all(overwrite=bool(overwrite),
                                             progress=files_progress(progress, "repairing", "repaired"))
            waiting = [o for o in results if o.status == EXISTS]
            hint = (f" Tick 'Overwrite' to repair {len(waiting)} file{'s' if len(waiting) != 1 else ''} A1111 cannot "
                    "load: each is rewritten in place (weights bit-identical, its hash changes).") if waiting else ""
            return batch_message(results, "repaired", hint, shown=(FAILED,), fine=True,
                                 not_written="need a repair (tick 'Overwrite')")

        return self._batch(run, query, sort, descending, selected, strength)

    def on_convert_all(self, overwrite: bool, query: str, sort: str, descending: bool, selected: str | None,
                       strength: float = DEFAULT_STRENGTH, progress: Any = gr.Progress()) -> tuple[Any, ...]:
        """Write a ``.safetensors`` beside every ``.pt`` (an existing one is replaced only with 'Overwrite')."""
        def run() -> str:
            results = self.source.convert_all(overwrite=bool(overwrite),
                                              progress=files_progress(progress, "converting", "converted"))
            skipped = sum(1 for o in results if o.status == EXISTS)
            hint = f" Tick 'Overwrite' to replace the {skipped} existing .safetensors." if skipped else ""
            return batch_message(results, "converted", hint, shown=(FAILED, EXISTS),
                                 not_written="not written (the .safetensors exists)")

        return self._batch(run, query, sort, descending, selected, strength)

    def _batch(self, run: Callable[[], str], query: str, sort: str, descending: bool, selected: str | None,
               strength: float | None) -> tuple[Any, ...]:
        try:
            message = run()
        except Exception as exc:  # as _act: the page stays
            message = action_error(exc, "replace them")
        *shown, _result_for, _ = self._after(query, sort, descending, selected, strength, message)
        return (*shown, message)  # its message has its own box, about no one file

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

        outputs = self._act(create, lambda new: f"Created {new}.", query, sort, descending, selected)
        return (*outputs[:4], outputs[-1])  # its message has its own box; the selection shows the file


def action_error(exc: Exception, confirm: str) -> str:
    """The message of a failed panel action (an existing target adds how to confirm: tick 'Overwrite')."""
    if isinstance(exc, HypernetExistsError):
        return f"⚠ {exc}; tick 'Overwrite' to {confirm}"
    if isinstance(exc, HypernetError):
        return f"⚠ {exc}"
    log.exception("hypernetworks: panel action failed")
    return f"⚠ failed: {type(exc).__name__}: {exc}"


def files_progress(progress: Any, doing: str, done: str) -> FilesProgress:
    """A gradio progress bar as the ``(done, total, name)`` callback of the library's actions."""
    def report(count: int, total: int, name: str) -> None:
        if total:
            progress((count, total), desc=f"{doing} {name}" if name else done, unit="files")

    return report


BATCH_LINES = 20
"""How many files a batch message lists by name (the rest are counted)."""


def _reason(outcome: FileOutcome) -> str:
    """The outcome's message without the path in front (the line names the file already)."""
    for path in (outcome.path, outcome.target):
        if path and outcome.message.startswith(f"{path}: "):
            return outcome.message[len(path) + 2:]
    return outcome.message


def batch_message(results: Sequence[FileOutcome], done: str, hint: str, *, shown: Sequence[str], fine: bool = False,
                  not_written: str = "not written") -> str:
    """The summary line (:func:`~lib_hypernet.library.actions.batch_summary`), the hint, then the files whose
    status is in ``shown`` with why (markdown)."""
    if not results:
        return "There is no file to act on."
    summary = batch_summary(done, list(results), not_written=not_written, fine=fine)
    lines = [f"{summary[0].upper()}{summary[1:]}.{hint}"]
    listed = [o for o in results if o.status in shown]
    lines += [f"- {os.path.basename(o.path)}: {'failed' if o.status == FAILED else 'not written'}: {_reason(o)}"
              for o in listed[:BATCH_LINES]]
    if len(listed) > BATCH_LINES:
        lines.append(f"- … and {len(listed) - BATCH_LINES} more")
    return "\n".join(lines)


# --------------------------------------------------------------------- layout
def build_library_panel(source: LibrarySource, *, elem_prefix: str = "hypernet_lib") -> LibraryPanel:
    """Lay out the panel inside the current gradio Blocks context and wire its events.

    The table and the selected file's detail sit side by side (the detail is in the first screen at 1366 px);
    writing actions run through the queue (``queue=True``); the table fills on page load.
    """
    panel = LibraryPanel(source, elem_prefix=elem_prefix)

    def eid(name: str) -> str:
        return f"{elem_prefix}_{name}"

    with gr.Column(elem_id=eid("panel"), elem_classes=["hypernet-lib"]):
        with gr.Row(equal_height=True):
            search = gr.Textbox(label="Search", placeholder="name, folder, hash, SD1, relu, base model, broken, repair…",
                                elem_id=eid("search"), scale=4)
            sort = gr.Dropdown(list(SORT_KEYS), value="name", label="Sort by", elem_id=eid("sort"), scale=1)
            descending = gr.Checkbox(label="Descending", value=False, elem_id=eid("descending"), scale=1)
            refresh = gr.Button("Refresh", elem_id=eid("refresh"), scale=1)
            hash_button = gr.Button("Compute missing hashes", elem_id=eid("hash"), scale=1)
        status = gr.Markdown(elem_id=eid("status"))
        highlight = gr.HTML("", elem_id=eid("highlight"), elem_classes=["hypernet-lib-hidden"])
        names = gr.State([])
        with gr.Row():
            with gr.Column(scale=2, min_width=560):
                table = gr.Dataframe(headers=list(COLUMNS), datatype=["markdown", *["str"] * (len(COLUMNS) - 1)],
                                     interactive=False, wrap=True, elem_id=eid("table"), height=470, type="array",
                                     elem_classes=["hypernet-lib-table"])
            with gr.Column(scale=1, min_width=380, elem_classes=["hypernet-lib-side"]):
                selected = gr.Dropdown([], label="File", elem_id=eid("file"), **compat.dropdown_kwargs())
                detail = gr.HTML(detail_html(None), elem_id=eid("detail"), elem_classes=["hypernet-lib-detail-box"])
                with gr.Row():
                    strength = gr.Slider(-2, 2, value=DEFAULT_STRENGTH, step=0.05, label="Strength",
                                         elem_id=eid("strength"), scale=1)
                    tag = gr.Textbox(label="Tag (copy it into a prompt)", interactive=True, show_copy_button=True,
                                     elem_id=eid("tag"), scale=2)
                sends = []
                if source.send_targets:
                    with gr.Row():
                        for i, target in enumerate(source.send_targets):
                            button = gr.Button(target.label, elem_id=eid(f"send_{i}"), size="sm", interactive=False)
                            button.click(fn=None, inputs=[tag], outputs=[], **compat.js(target.js))
                            sends.append(button)
                with compat.box():
                    overwrite = gr.Checkbox(label="Overwrite existing files (needed to repair: it rewrites the file)",
                                            value=False, elem_id=eid("overwrite"))
                    with gr.Row():
                        convert = gr.Button("Convert to .safetensors", elem_id=eid("convert"), size="sm",
                                            interactive=False)
                        repair = gr.Button("Repair .pt (so A1111 loads it)", elem_id=eid("repair"), size="sm",
                                           interactive=False)
                    result = gr.Markdown(elem_id=eid("result"))
                    result_for = gr.State(None)  # the file the result is about
                with compat.box():
                    with gr.Row():
                        repair_all = gr.Button("Repair all", elem_id=eid("repair_all"), size="sm")
                        convert_all = gr.Button("Convert all to .safetensors", elem_id=eid("convert_all"), size="sm")
                    batch_result = gr.Markdown(elem_id=eid("batch_result"))
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
    selection_out = [detail, tag, convert, repair, highlight, *sends]
    refresh.click(panel.on_refresh, view_in, view_out)
    for control in (search, sort, descending):
        control.change(panel.on_filter, view_in, view_out, queue=False)
    table.select(panel.on_select, [names, table], [selected], queue=False)
    selected.change(panel.on_selected, [selected, strength, result_for], [*selection_out, result], queue=False)
    strength.change(panel.on_strength, [selected, strength], [tag], queue=False)
    action_out = [*view_out, *selection_out, result_for, result]
    hash_button.click(panel.on_hash, [*view_in, strength], action_out, queue=True)
    action_in = [selected, overwrite, search, sort, descending, strength]
    convert.click(panel.on_convert, action_in, action_out, queue=True)
    repair.click(panel.on_repair, action_in, action_out, queue=True)
    batch_in = [overwrite, *view_in, strength]
    batch_out = [*view_out, *selection_out, batch_result]
    repair_all.click(panel.on_repair_all, batch_in, batch_out, queue=True)
    convert_all.click(panel.on_convert_all, batch_in, batch_out, queue=True)
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
.hypernet-lib-table .cell-wrap > span, .hypernet-lib-table .sort-button { padding: 1px !important; }
.hypernet-lib-table th:first-child, .hypernet-lib-table td:first-child { min-width: 180px; }
.hypernet-lib-table td p { margin: 0 !important; }
.hypernet-lib-status { overflow-wrap: anywhere; }
.hypernet-lib-table td:not(:first-child) { white-space: nowrap; }
.hypernet-lib-status { font-weight: 600; }
.hypernet-lib-ok { color: var(--body-text-color-subdued); font-weight: normal; }
.hypernet-lib-repair { color: var(--color-accent); }
.hypernet-lib-broken { color: var(--error-icon-color, var(--error-text-color)); }
.hypernet-lib-table tr:has(.hypernet-lib-broken) td {
  background: color-mix(in srgb, var(--error-icon-color, var(--error-text-color)) 14%, transparent) !important; }
.hypernet-lib-table tr:has(.hypernet-lib-broken) td:first-child {
  box-shadow: inset 4px 0 0 var(--error-icon-color, var(--error-text-color)); }
.hypernet-lib-hidden { display: none !important; }
.hypernet-lib-detail-box { max-height: 280px; overflow-y: auto; }
.hypernet-lib-preview { float: right; max-width: 128px; max-height: 128px; margin: 0 0 6px 8px;
  border-radius: var(--radius-sm); }
.hypernet-lib-detail { border-collapse: collapse; width: 100%; font-size: 0.9em; }
.hypernet-lib-detail th { text-align: left; padding: 2px 12px 2px 0; white-space: nowrap; vertical-align: top;
  font-weight: 600; }
.hypernet-lib-detail td { padding: 2px 0; word-break: break-word; }
.hypernet-lib-detail th, .hypernet-lib-detail td { border: none; border-bottom: 1px solid var(--border-color-primary); }
.hypernet-lib-warnings { color: var(--color-accent); margin: 0 0 8px 0; }
.hypernet-lib-error { color: var(--error-icon-color, var(--error-text-color)); font-weight: 600; }
"""
"""Styles for the panel's own elements only (class names starting with ``hypernet-lib``), in the host's theme
variables only (never a fixed colour: the webui's dark theme, and the standalone page's, use the same rules)."""
