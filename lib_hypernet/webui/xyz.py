"""A1111: X/Y/Z plot axes "Hypernet", "Hypernet strength", "Hypernet self strength", "Hypernet cross strength".

Each axis edits the first ``<hypernet:…>`` tag of the cell's prompt (and of the hires prompt when it has
one) by assignment: xyz_grid runs every cell on a shallow ``copy(p)``, so ``p``'s own strings stay as they
were.  "Hypernet" renames that tag (adds ``<hypernet:NAME>`` when the prompt has none; "None" removes it);
the strength axes rewrite one argument (values rounded: ``0.30000000000000004`` is written ``0.3``) and
fail clearly when there is no tag to vary.  The axes are appended after the built-in ones from
``on_before_ui`` (xyz_grid's ``ui()`` snapshots the list; API clients pass indices), once, for txt2img and
img2img alike; without xyz_grid nothing happens.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from modules import scripts

from lib_hypernet.errors import HypernetNotFoundError
from lib_hypernet.prompt import edit as prompt_tags

from . import settings
from .extension import current

log = logging.getLogger(__name__)

NAME_AXIS = "Hypernet"
STRENGTH_AXES = {"Hypernet strength": "strength", "Hypernet self strength": "self", "Hypernet cross strength": "cross"}
LABELS = (NAME_AXIS, *STRENGTH_AXES)
NONE = "None"
_REMOVED = "_hypernet_xyz_removed"  # set on a cell's copy of p when the Hypernet axis chose "None"


def find_xyz_module() -> Any | None:
    """The loaded ``scripts/xyz_grid.py`` module (found by its file's basename), or None."""
    for data in scripts.scripts_data:
        if os.path.basename(data.path) == "xyz_grid.py":
            return data.module
    return None


def register_axes() -> bool:
    """on_before_ui: append our axes to xyz_grid's ``axis_options`` (once); False when xyz_grid is absent."""
    module = find_xyz_module()
    if module is None or not hasattr(module, "AxisOption") or not hasattr(module, "axis_options"):
        log.debug("hypernetworks: no X/Y/Z plot script; no hypernet axes")
        return False
    if any(getattr(option, "label", None) in LABELS for option in module.axis_options):
        return True
    def names() -> list[str]:
        extension = current()
        extension.ensure_refreshed()
        return [NONE, *extension.library.files]

    module.axis_options.append(module.AxisOption(NAME_AXIS, str, apply_name, confirm=confirm_names, choices=names))
    for label, key in STRENGTH_AXES.items():
        module.axis_options.append(module.AxisOption(label, float, apply_argument(label, key)))
    return True


def _prompts(p: Any) -> list[str]:
    fields = ["prompt"]
    if getattr(p, "hr_prompt", None):
        fields.append("hr_prompt")
    return fields


def _edit(p: Any, field: str, edit: Callable[[str], str]) -> None:
    value = getattr(p, field)
    setattr(p, field, [edit(v) for v in value] if isinstance(value, list) else edit(value))


def _has_tag(value: Any) -> bool:
    texts = value if isinstance(value, list) else [value]
    return all(prompt_tags.find_tags(str(t)) for t in texts)


def apply_name(p: Any, x: str, xs: Any) -> None:
    """The "Hypernet" axis: rename the first tag to ``x`` (add one when there is none; "None" removes it)."""
    name = str(x).strip()
    for field in _prompts(p):
        def edit(prompt: str) -> str:
            has = bool(prompt_tags.find_tags(prompt))
            if name == NONE:
                return prompt_tags.remove_tag(prompt, 0) if has else prompt
            return prompt_tags.rename_tag(prompt, 0, name) if has else prompt_tags.add_tag(prompt, name)

        if field == "prompt" or _has_tag(getattr(p, field)):
            _edit(p, field, edit)
    if name == NONE:
        setattr(p, _REMOVED, True)


def confirm_names(p: Any, xs: Any) -> None:
    extension = current()
    for x in xs:
        if str(x).strip() == NONE:
            continue
        try:
            extension.library.find(str(x).strip())
        except HypernetNotFoundError as exc:
            raise RuntimeError(f"X/Y/Z plot, Hypernet axis: {exc}") from exc


def apply_argument(label: str, key: str) -> Callable[[Any, Any, Any], None]:
    """A strength axis: set ``key`` of the first tag to the cell's value."""

    def apply(p: Any, x: Any, xs: Any) -> None:
        if not _has_tag(p.prompt):
            if getattr(p, _REMOVED, False):
                return  # the Hypernet axis chose "None" for this cell: nothing to vary
            raise RuntimeError(
                f"X/Y/Z plot, {label} axis: the prompt has no <hypernet:…> tag to vary; write one "
                "(e.g. <hypernet:name:1>) or put the Hypernet axis before this one"
            )
        value = round(float(x), 4)
        default = settings.default_strength()
        for field in _prompts(p):
            if field == "prompt" or _has_tag(getattr(p, field)):
                _edit(p, field, lambda prompt: prompt_tags.set_argument(prompt, 0, key, value, default_strength=default))

    return apply
