"""Stand-in of ``modules/ui_extra_networks.py`` without gradio or HTML templates: the page registry, the
``ExtraNetworksPage`` base with its file helpers, and ``create_html``/``get_single_card`` reduced to the calls
they make into a page (``list_items``, ``create_item(name, enable_filter=False)``, ``read_user_metadata``)."""
from __future__ import annotations

import html
import json
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
        found.items[name] = item
        found.read_user_metadata(item)
    return item


def get_metadata(page: str = "", item: str = "") -> dict:
    """The ``/sd_extra_networks/metadata`` route's JSON body (``json.dumps`` of the page's metadata of ``item``)."""
    found = next(iter([x for x in extra_pages if x.name == page]), None)
    if found is None or found.metadata.get(item) is None:
        return {}
    metadata = {k: v for k, v in found.metadata[item].items() if k != "ssmd_cover_images"}
    return {"metadata": json.dumps(metadata, indent=4, ensure_ascii=False)}


CARD_TEMPLATE = ('<div class="card" style="{style}" onclick="{card_clicked}" data-name="{name}" {sort_keys}>'
                 '{background_image}<div class="button-row">{metadata_button}</div><div class="actions">'
                 '<div class="additional">{search_terms}</div><span class="name">{name}</span>'
                 '<span class="description">{description}</span></div></div>')


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
        """Populate ``items``/``metadata`` like A1111 and return the cards (A1111's card template, fewer buttons)."""
        self.metadata = {}
        items_list = [] if empty else self.list_items()
        self.items = {x["name"]: x for x in items_list}
        for item in self.items.values():
            if item.get("metadata"):
                self.metadata[item["name"]] = item["metadata"]
            if "user_metadata" not in item:
                self.read_user_metadata(item)
        return "".join(self.create_item_html(tabname, item) for item in self.items.values())

    def create_item_html(self, tabname: str, item: dict) -> str:
        """A1111's ``create_item_html`` with its template: ``item["onclick"]`` is used as it is (not escaped);
        without it ``cardClicked(...)`` is built from ``item["prompt"]`` and escaped; search terms are raw HTML."""
        preview = item.get("preview")
        background_image = f'<img src="{html.escape(preview)}" class="preview" loading="lazy">' if preview else ""
        onclick = item.get("onclick")
        if onclick is None:
            negative = item.get("negative_prompt", "''")
            onclick = html.escape(f"cardClicked('{tabname}', {item['prompt']}, {negative}, "
                                  f"{str(self.allow_negative_prompt).lower()});")
        sort_keys = " ".join(f'data-sort-{k}="{html.escape(str(v))}"' for k, v in item.get("sort_keys", {}).items()).strip()
        search_terms = "".join(f"<span class='hidden search_terms'>{t}</span>" for t in item.get("search_terms", []))
        return CARD_TEMPLATE.format(
            style="", card_clicked=onclick, name=html.escape(item["name"]), sort_keys=sort_keys,
            background_image=background_image, search_terms=search_terms,
            metadata_button="<div class='metadata-button card-button'></div>" if item.get("metadata") else "",
            description=html.escape(item.get("description", "") or ""),
        )

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
