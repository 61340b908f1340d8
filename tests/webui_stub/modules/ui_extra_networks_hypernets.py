"""Stand-in of ``modules/ui_extra_networks_hypernets.py`` (spec §5.2): the built-in Hypernetworks page."""
from __future__ import annotations

import os

from modules import shared, ui_extra_networks
from modules.hashes import sha256_from_cache


class ExtraNetworksPageHypernetworks(ui_extra_networks.ExtraNetworksPage):
    builtin = True

    def __init__(self):
        super().__init__("Hypernetworks")

    def refresh(self) -> None:
        shared.reload_hypernetworks()

    def create_item(self, name: str, index=None, enable_filter: bool = True):
        full_path = shared.hypernetworks.get(name)
        if full_path is None:
            return None
        path = os.path.splitext(full_path)[0]
        sha256 = sha256_from_cache(full_path, f"hypernet/{name}")
        shorthash = sha256[0:10] if sha256 else None
        search_terms = [self.search_terms_from_path(path)] + ([sha256] if sha256 else [])
        quote_js = ui_extra_networks.quote_js
        return {
            "name": name,
            "filename": full_path,
            "shorthash": shorthash,
            "preview": self.find_preview(path),
            "description": self.find_description(path),
            "search_terms": search_terms,
            "local_preview": f"{path}.preview.{shared.opts.samples_format}",
            "prompt": quote_js(f"<hypernet:{name}:") + " + opts.extra_networks_default_multiplier + " + quote_js(">"),
            "sort_keys": {"default": index, **self.get_sort_keys(full_path)},
        }

    def list_items(self):
        names = list(shared.hypernetworks)
        for index, name in enumerate(names):
            item = self.create_item(name, index)
            if item is not None:
                yield item

    def allowed_directories_for_previews(self) -> list[str]:
        return [shared.cmd_opts.hypernetwork_dir]
