"""Stand-in of ``modules/options.py``: ``OptionInfo``, ``options_section`` and ``Options`` (A1111 1.10 semantics).

Semantics kept from A1111:
- ``opts.key`` reads ``data[key]``, else ``data_labels[key].default``, else raises ``AttributeError``;
- ``opts.key = value`` stores into ``data`` only (no onchange); ``opts.set`` stores *and* runs ``onchange``,
  restoring the old value if the callback raises;
- ``add_option`` replaces the OptionInfo and sets the default only for absent keys;
- ``data_labels`` is the very dict passed to the constructor until ``reorder()`` builds a new one.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, ClassVar

from modules import errors


class OptionInfo:
    def __init__(self, default=None, label="", component=None, component_args=None, onchange=None, section=None,
                 refresh=None, comment_before='', comment_after='', infotext=None, restrict_api=False, category_id=None):
        self.default = default
        self.label = label
        self.component = component
        self.component_args = component_args
        self.onchange = onchange
        self.section = section
        self.category_id = category_id
        self.refresh = refresh
        self.do_not_save = False
        self.comment_before = comment_before
        self.comment_after = comment_after
        self.infotext = infotext
        self.restrict_api = restrict_api

    def link(self, label: str, url: str) -> OptionInfo:
        self.comment_before += f"[<a href='{url}' target='_blank'>{label}</a>]"
        return self

    def js(self, label: str, js_func: str) -> OptionInfo:
        self.comment_before += f"[<a onclick='{js_func}(); return false'>{label}</a>]"
        return self

    def info(self, info: str) -> OptionInfo:
        self.comment_after += f"<span class='info'>({info})</span>"
        return self

    def html(self, html: str) -> OptionInfo:
        self.comment_after += html
        return self

    def needs_restart(self) -> OptionInfo:
        self.comment_after += " <span class='info'>(requires restart)</span>"
        return self

    def needs_reload_ui(self) -> OptionInfo:
        self.comment_after += " <span class='info'>(requires Reload UI)</span>"
        return self


class OptionHTML(OptionInfo):
    def __init__(self, text: str):
        super().__init__(str(text).strip(), label='')
        self.do_not_save = True


def options_section(section_identifier: tuple, options_dict: dict[str, OptionInfo]) -> dict[str, OptionInfo]:
    """Stamp ``section`` (and ``category_id`` for 3-tuples) onto every OptionInfo; returns the same dict."""
    for info in options_dict.values():
        if len(section_identifier) == 2:
            info.section = section_identifier
        elif len(section_identifier) == 3:
            info.section = section_identifier[0:2]
            info.category_id = section_identifier[2]
    return options_dict


_builtin_fields = {"data_labels", "data", "restricted_opts", "typemap"}


class Options:
    typemap: ClassVar[dict] = {int: float}

    def __init__(self, data_labels: dict[str, OptionInfo], restricted_opts: set[str] | None):
        self.data_labels = data_labels
        self.data = {k: v.default for k, v in data_labels.items() if not v.do_not_save}
        self.restricted_opts = restricted_opts or set()

    def __setattr__(self, key: str, value: Any) -> None:
        if key in _builtin_fields:
            return object.__setattr__(self, key, value)
        if key in self.data or key in self.data_labels:
            from modules.shared_cmd_options import cmd_opts
            assert not getattr(cmd_opts, "freeze_settings", False), "changing settings is disabled"
            info = self.data_labels.get(key)
            if info is not None and info.do_not_save:
                return None
            comp_args = info.component_args if info else None
            if isinstance(comp_args, dict) and comp_args.get("visible", True) is False:
                raise RuntimeError(f"not possible to set '{key}' because it is restricted")
            self.data[key] = value
            return None
        return object.__setattr__(self, key, value)

    def __getattr__(self, item: str) -> Any:
        if item in _builtin_fields:
            return object.__getattribute__(self, item)
        data = object.__getattribute__(self, "data")
        if item in data:
            return data[item]
        labels = object.__getattribute__(self, "data_labels")
        if item in labels:
            return labels[item].default
        return object.__getattribute__(self, item)  # raises AttributeError

    def set(self, key: str, value: Any, is_api: bool = False, run_callbacks: bool = True) -> bool:
        """Set an option and run its onchange; returns True when the value changed."""
        old = self.data.get(key, None)
        if old == value:
            return False
        option = self.data_labels[key]
        if option.do_not_save or (is_api and option.restrict_api):
            return False
        try:
            setattr(self, key, value)
        except RuntimeError:
            return False
        if run_callbacks and option.onchange is not None:
            try:
                option.onchange()
            except Exception as e:
                errors.display(e, f"changing setting {key} to {value}")
                setattr(self, key, old)
                return False
        return True

    def get_default(self, key: str) -> Any:
        info = self.data_labels.get(key)
        return None if info is None else info.default

    def save(self, filename: str) -> None:
        with open(filename, "w", encoding="utf8") as f:
            json.dump(self.data, f, indent=4, ensure_ascii=False)

    def same_type(self, x: Any, y: Any) -> bool:
        if x is None or y is None:
            return True
        return self.typemap.get(type(x), type(x)) == self.typemap.get(type(y), type(y))

    def load(self, filename: str) -> None:
        """Replace ``data`` wholesale with the JSON file's content (``{}`` when missing), like A1111."""
        try:
            with open(filename, encoding="utf8") as f:
                self.data = json.load(f)
        except FileNotFoundError:
            self.data = {}
        for k, v in self.data.items():
            info = self.data_labels.get(k)
            if info is not None and not self.same_type(info.default, v):
                print(f"Warning: bad setting value: {k}: {v}", file=sys.stderr)

    def onchange(self, key: str, func: Callable[[], Any], call: bool = True) -> None:
        self.data_labels[key].onchange = func
        if call:
            func()

    def dumpjson(self) -> str:
        return json.dumps({k: self.data.get(k, v.default) for k, v in self.data_labels.items()}, default=str)

    def add_option(self, key: str, info: OptionInfo) -> None:
        self.data_labels[key] = info
        if key not in self.data and not info.do_not_save:
            self.data[key] = info.default

    def reorder(self) -> None:
        """Group by (category, section label); creates a NEW ``data_labels`` dict, like A1111."""
        section_categories: dict = {}
        for info in self.data_labels.values():
            section_categories.setdefault(info.section, info.category_id)
        for info in self.data_labels.values():
            info.category_id = section_categories.get(info.section)
        order = {c: i for i, c in enumerate(categories.mapping)}

        def key(kv):
            info = kv[1]
            section = info.section if info.section else (None, "")
            return order.get(info.category_id, len(order)), section[1] or ""

        self.data_labels = dict(sorted(self.data_labels.items(), key=key))

    def cast_value(self, key: str, value: Any) -> Any:
        if value is None:
            return None
        default = self.data_labels[key].default
        if default is None:
            default = getattr(self, key, None)
        if default is None:
            return None
        if isinstance(default, bool) and value == "False":
            return False
        return type(default)(value)


class OptionsCategory:
    def __init__(self, id: str, label: str):
        self.id = id
        self.label = label


class OptionsCategories:
    def __init__(self):
        self.mapping: dict[str, OptionsCategory] = {}

    def register_category(self, category_id: str, label: str) -> str:
        self.mapping.setdefault(category_id, OptionsCategory(category_id, label))
        return category_id


categories = OptionsCategories()
for _cid, _label in [("saving", "Saving images"), ("sd", "Stable Diffusion"), ("ui", "User Interface"),
                     ("system", "System"), ("postprocessing", "Postprocessing"), ("training", "Training")]:
    categories.register_category(_cid, _label)
