"""A1111: our "Hypernetworks" Extra Networks page (cards), replacing the built-in one.

The built-in page is dropped from ``ui_extra_networks.extra_pages`` by name in ``on_before_ui`` and ours
is registered under the same title (a second page of that name would break the webui's routes and ids).
Cards come from what is known without reading files (:class:`lib_hypernet.library.facts.FileFacts`:
the cached descriptions and hashes; the rest is computed in a background thread).  A card click toggles the tag
through ``sdHypernet.cardClicked`` (``item["onclick"]``): A1111's own removal regex misses
``<hypernet:x:-0.5>``, ``<hypernet:x>`` and named arguments, and throws on names like ``style(v2``.
"""

from __future__ import annotations

import html
import json
import logging
import os
from typing import Any

import gradio as gr
from modules import shared, ui_extra_networks
from modules.ui_extra_networks_user_metadata import UserMetadataEditor

from lib_hypernet.errors import HypernetError
from lib_hypernet.library.actions import library_folder, write_file
from lib_hypernet.library.description import BROKEN, FileDescription
from lib_hypernet.library.facts import FileFacts
from lib_hypernet.library.folder import HypernetFile, is_pending
from lib_hypernet.model.family import SdVersion, fits
from lib_hypernet.prompt.grammar import parse_number
from lib_hypernet.prompt.writer import format_number
from lib_hypernet.ui import compat
from lib_hypernet.ui.library_panel import detail_fields

from . import settings
from .extension import HypernetExtension, model_family

log = logging.getLogger(__name__)

PAGE_TITLE = "Hypernetworks"
SD_VERSIONS = ("Unknown", *(v.label for v in SdVersion))  # the card editor's choices
PREFERRED_WEIGHT = "preferred weight"
BROKEN_KEY = "hypernet_broken"  # the item's reason it cannot load, kept for card refreshes


def replace_builtin_page(extension: HypernetExtension) -> HypernetCardsPage:
    """on_before_ui: drop every page named "hypernetworks" and register ours (idempotent)."""
    page = HypernetCardsPage(extension)
    ui_extra_networks.extra_pages[:] = [p for p in ui_extra_networks.extra_pages if p.name != page.name]
    ui_extra_networks.register_page(page)
    return page


def preferred_weight(user_metadata: dict[str, Any]) -> float | None:
    """The card's preferred weight (negative and 0 are weights too); None when not set."""
    value = user_metadata.get(PREFERRED_WEIGHT)
    if value is None or isinstance(value, bool) or value == "":
        return None
    return parse_number(str(value))


def card_metadata(file: HypernetFile, desc: FileDescription) -> dict[str, str]:
    """The ⓘ popup: the tab's detail fields (:func:`~lib_hypernet.ui.library_panel.detail_fields`) as text.

    A1111 shows this dict as a key/value table after flattening nested values into blank parent rows,
    so every value is one string; a file not read yet shows what the folder scan knows.
    """
    desc = desc.copy(name=file.name, relpath=file.relpath)
    fields = {label: "; ".join(value) if isinstance(value, list) else value for label, value in detail_fields(desc)}
    if is_pending(desc):
        fields["details"] = "being read; refresh to see them"
    if desc.error:
        fields["error"] = desc.error
    if desc.warnings:
        fields["warnings"] = "; ".join(desc.warnings)
    return fields


class HypernetCardsPage(ui_extra_networks.ExtraNetworksPage):
    """The "Hypernetworks" cards: ``.pt`` and ``.safetensors`` files of the extension's library."""

    def __init__(self, extension: HypernetExtension) -> None:
        super().__init__(PAGE_TITLE)
        self.extension = extension

    @property
    def facts(self) -> FileFacts:
        return self.extension.facts

    def refresh(self) -> None:
        self.extension.refresh()

    def list_items(self) -> Any:
        self.extension.ensure_refreshed()
        names = list(self.extension.library.files)  # a copy: a refresh may run meanwhile
        self.facts.compute_missing()  # descriptions and hashes for the next build, in the background
        for index, name in enumerate(names):
            try:
                item = self.create_item(name, index)
            except Exception:  # one bad file never breaks the page
                log.warning("hypernetworks: cannot make a card for %s", name, exc_info=True)
                continue
            if item is not None:
                yield item

    def create_item(self, name: str, index: int | None = None, enable_filter: bool = True) -> dict[str, Any] | None:
        self.extension.ensure_refreshed()
        file = self.extension.library.files.get(name)
        if file is None:
            return None
        path = os.path.splitext(file.path)[0]
        desc = self.facts.get(file)
        item: dict[str, Any] = {
            "name": name,
            "filename": file.path,
            "shorthash": desc.shorthash,
            "preview": self.find_preview(path),
            "description": self.find_description(path),
            "local_preview": f"{path}.preview.{shared.opts.samples_format}",
            "metadata": card_metadata(file, desc),
            "sort_keys": {"default": index, **self.get_sort_keys(file.path)},
            "sd_version": desc.sd_version or "Unknown",
        }
        if desc.error:
            item[BROKEN_KEY] = desc.problem
        self.read_user_metadata(item)
        found = item.get("user_metadata")
        user: dict[str, Any] = found if isinstance(found, dict) else {}  # a .json that is not an object counts as none
        item["user_metadata"] = user
        if user.get("sd version") in SD_VERSIONS[1:]:
            item["sd_version"] = user["sd version"]
        terms = [self.search_terms_from_path(file.path), name, file.relpath, desc.shorthash, item["sd_version"],
                 user.get("notes"), "broken" if desc.error else None, desc.sha256]
        item["search_terms"] = [html.escape(str(t)) for t in terms if t]
        weight = preferred_weight(user)
        weight_js = format_number(weight) if weight is not None else self.default_weight_js()
        item["prompt"] = f"sdHypernet.formatTag({json.dumps(name)}, {weight_js})"  # JS that gives the tag
        # A1111 inserts item["onclick"] into the card's onclick="…" attribute as it is: escape it here.
        item["onclick"] = html.escape(f"sdHypernet.cardClicked(event, {json.dumps(name)}, {weight_js})", quote=True)
        if (enable_filter and not settings.opt(settings.SHOW_ALL_OPTION)
                and not fits(item["sd_version"], model_family(shared.sd_model))):
            return None
        return item

    def read_user_metadata(self, item: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        """The webui's, then the broken-file marker again: the webui calls this after ``create_item`` when it
        refreshes one card (the edit dialog's Save), and a user description would replace the marker."""
        super().read_user_metadata(item, *args, **kwargs)
        reason = item.get(BROKEN_KEY)
        description = str(item.get("description") or "")
        if reason and not description.startswith(f"{BROKEN}: "):  # on the card: its tag would only fail under the image
            item["description"] = f"{BROKEN}: {reason}" + (f" — {description}" if description else "")

    @staticmethod
    def default_weight_js() -> str:
        """The strength a card writes when no preferred weight is set (JS: follows the webui's setting live)."""
        if settings.uses_webui_multiplier():
            return "opts.extra_networks_default_multiplier"
        return "1"

    def allowed_directories_for_previews(self) -> list[str]:
        return [self.extension.library.root or settings.hypernetwork_dir()]

    def create_user_metadata_editor(self, ui: Any, tabname: str) -> HypernetUserMetadataEditor:
        return HypernetUserMetadataEditor(ui, tabname, self)


class HypernetUserMetadataEditor(UserMetadataEditor):
    """The card's edit dialog: description, SD version, preferred weight (empty = the default), notes."""

    def __init__(self, ui: Any, tabname: str, page: Any) -> None:
        super().__init__(ui, tabname, page)
        self.select_sd_version: Any = None
        self.edit_preferred_weight: Any = None

    def create_extra_default_items_in_left_column(self) -> None:
        self.select_sd_version = gr.Dropdown(list(SD_VERSIONS), value="Unknown", label="Stable Diffusion version",
                                             interactive=True)

    def put_values_into_components(self, name: str) -> list[Any]:
        user = self.get_user_metadata(name)
        values = super().put_values_into_components(name)
        item = self.page.items.get(name, {})
        version = user.get("sd version") or item.get("sd_version") or "Unknown"
        weight = preferred_weight(user)
        return [*values[0:5], version if version in SD_VERSIONS else "Unknown",
                "" if weight is None else format_number(weight)]

    def save_hypernet_user_metadata(self, name: str, desc: str, sd_version: str, weight: str, notes: str) -> str:
        """Save; returns an error to show (empty on success, when the dialog closes)."""
        text = (weight or "").strip()
        number = parse_number(text) if text else None
        if text and number is None:
            return f"<p class='sd-hypernet-error'>Preferred weight: {html.escape(text)} is not a number; nothing was saved.</p>"
        user = self.get_user_metadata(name)
        user["description"] = desc
        user["sd version"] = sd_version
        user[PREFERRED_WEIGHT] = number if number is not None else ""
        user["notes"] = notes
        try:
            self.write_user_metadata(name, user)
        except HypernetError as exc:
            return f"<p class='sd-hypernet-error'>{html.escape(str(exc))}</p>"
        return ""

    def write_user_metadata(self, name: str, metadata: dict[str, Any]) -> None:
        """Like A1111's, but under the library's write policy: atomic (a crash never leaves half a ``.json``)
        and inside the hypernetwork folder (never through a linked sub-folder to another place)."""
        item = self.page.items.get(name, {})
        filename = item.get("filename")
        if not filename:
            return
        path = os.path.splitext(filename)[0] + ".json"
        data = json.dumps(metadata, indent=4, ensure_ascii=False).encode("utf-8")
        write_file(path, lambda f: f.write(data), overwrite=True, inside=library_folder(self.page.extension.library))
        lister = getattr(self.page, "lister", None)
        if lister is not None and hasattr(lister, "update_file_entry"):
            lister.update_file_entry(path)

    def create_editor(self) -> None:
        self.create_default_editor_elems()
        self.edit_preferred_weight = gr.Textbox(
            label="Preferred weight", placeholder="empty: the default strength",
            info="written into the tag when you click the card; negative and 0 are allowed",
        )
        self.edit_notes = gr.TextArea(label="Notes", lines=4)
        self.create_default_buttons()
        viewed = [self.edit_name, self.edit_description, self.html_filedata, self.html_preview, self.edit_notes,
                  self.select_sd_version, self.edit_preferred_weight]
        self.button_edit.click(fn=self.put_values_into_components, inputs=[self.edit_name_input], outputs=viewed).then(
            fn=lambda: gr.update(visible=True), inputs=[], outputs=[self.box])
        edited = [self.edit_description, self.select_sd_version, self.edit_preferred_weight, self.edit_notes]
        refresh_card = ("function(name, status){ if (!status) { closePopup(); extraNetworksRefreshSingleCard("
                        + json.dumps(self.page.name) + ", " + json.dumps(self.tabname) + ", name); } }")
        self.button_save.click(fn=self.save_hypernet_user_metadata, inputs=[self.edit_name_input, *edited],
                               outputs=[self.html_status]).then(
            fn=None, inputs=[self.edit_name_input, self.html_status], outputs=[], **compat.js(refresh_card))
