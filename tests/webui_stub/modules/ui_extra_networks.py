"""Stand-in of ``modules/ui_extra_networks.py`` without gradio or HTML templates: the page registry, the
``ExtraNetworksPage`` base with its file helpers, and ``create_html``/``get_single_card`` reduced to the calls
they make into a page (``list_items``, ``create_item(name, enable_filter=False)``, ``read_user_metadata``)."""
from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

from modules import extra_networks, shared

extra_pages: list[ExtraNetworksPage] = []
allowed_dirs: set[str] = set()
default_allowed_preview_extensions = ["png", "jpg", "jpeg", "webp", "gif"]


def allowed_preview_extensions() -> list[str]:
    return [*default_allowed_preview_extensions, shared.opts.samples_format]


def register_page(page: ExtraNetworksPage) -> None:
    """Append ``page`` and recompute ``allowed_dirs`` (recommended from ``on_before_ui``)."""
    extra_pages.append(page)
    allowed_dirs.clear()
    allowed_dirs.update(d for page in extra_pages for d in page.allowed_directories_for_previews())


def initialize() -> None:
    extra_pages.clear()


def register_default_pages() -> None:
    """Textual Inversion, Hypernetworks, Checkpoints (TI/Checkpoints as empty stand-ins)."""
    from modules.ui_extra_networks_hypernets import ExtraNetworksPageHypernetworks
    register_page(_EmptyPage("Textual Inversion"))
    register_page(ExtraNetworksPageHypernetworks())
    register_page(_EmptyPage("Checkpoints"))


def quote_js(s: str) -> str:
    s = s.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{s}"'


def get_page(name: str) -> ExtraNetworksPage:
    """How the HTTP endpoints find a page: the FIRST page with that name wins."""
    return next(x for x in extra_pages if x.name == name)


def get_single_card(page: str = "", tabname: str = "", name: str = "") -> dict | None:
    """The ``/sd_extra_networks/get-single-card`` lookup, returning the item dict instead of HTML."""
    found = get_page(page)
    item = found.create_item(name, enable_filter=False)
    if item is not None:
        found.read_user_metadata(item)
    return item


class ExtraNetworksPage:
    def __init__(self, title: str):
        self.title = title
        self.name = title.lower()
        self.extra_networks_tabname = self.name.replace(" ", "_")
        self.allow_prompt = True
        self.allow_negative_prompt = False
        self.metadata: dict = {}
        self.items: dict = {}

    def refresh(self) -> None:
        pass

    def read_user_metadata(self, item: dict, use_cache: bool = True) -> None:
        metadata = extra_networks.get_user_metadata(item.get("filename"))
        if metadata.get("description") is not None:
            item["description"] = metadata["description"]
        item["user_metadata"] = metadata

    def link_preview(self, filename: str) -> str:
        quoted = urllib.parse.quote(filename.replace("\\", "/"))
        return f"./sd_extra_networks/thumb?filename={quoted}&mtime={os.path.getmtime(filename)}"

    def search_terms_from_path(self, filename: str, possible_directories=None) -> str:
        abspath = os.path.abspath(filename)
        dirs = possible_directories if possible_directories is not None else self.allowed_directories_for_previews()
        for parentdir in dirs:
            parentdir = os.path.dirname(os.path.abspath(parentdir))
            if abspath.startswith(parentdir):
                return os.path.relpath(abspath, parentdir)
        return ""

    def create_html(self, tabname: str, *, empty: bool = False) -> str:
        """Populate ``items``/``metadata`` like A1111 and return a trivial listing (no templates)."""
        self.metadata = {}
        items_list = [] if empty else self.list_items()
        self.items = {x["name"]: x for x in items_list}
        for item in self.items.values():
            if item.get("metadata"):
                self.metadata[item["name"]] = item["metadata"]
            if "user_metadata" not in item:
                self.read_user_metadata(item)
        return "".join(f"<div class='card' data-name='{name}'></div>" for name in self.items)

    def create_item(self, name: str, index=None):
        raise NotImplementedError()

    def list_items(self):
        raise NotImplementedError()

    def allowed_directories_for_previews(self) -> list[str]:
        return []

    def get_sort_keys(self, path: str) -> dict:
        """A1111's keys, including its swap: date_created = mtime, date_modified = ctime."""
        pth = Path(path)
        stat = os.stat(path)
        return {"date_created": int(stat.st_mtime), "date_modified": int(stat.st_ctime),
                "name": pth.name.lower(), "path": str(pth).lower()}

    def find_preview(self, path: str) -> str | None:
        for ext in allowed_preview_extensions():
            for file in (f"{path}.{ext}", f"{path}.preview.{ext}"):
                if os.path.exists(file):
                    return self.link_preview(file)
        return None

    def find_embedded_preview(self, path: str, name: str, metadata) -> str | None:
        return None

    def find_description(self, path: str) -> str | None:
        for file in (f"{path}.txt", f"{path}.description.txt"):
            if os.path.exists(file):
                try:
                    with open(file, encoding="utf-8", errors="replace") as f:
                        return f.read()
                except OSError:
                    pass
        return None

    def create_user_metadata_editor(self, ui, tabname: str):
        return None


class _EmptyPage(ExtraNetworksPage):
    def list_items(self):
        return []

    def create_item(self, name, index=None, enable_filter=True):
        return None
