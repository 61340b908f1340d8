"""Writing ``<hypernet:…>`` tags: the one tag writer (names checked, numbers written as A1111's UI does)."""

from __future__ import annotations

from ..engine.strength import Strength
from .grammar import format_items


def format_tag(name: str, strength: Strength | float) -> str:
    """The tag text for ``name`` at ``strength`` (the shortest form that means the same)."""
    if not isinstance(strength, Strength):
        return f"<hypernet:{name}:{_fmt(float(strength))}>"
    items = [name]
    if strength.self_attn == strength.cross_attn:
        items.append(_fmt(strength.cross_attn))
    else:
        items += [_fmt(strength.cross_attn), f"self={_fmt(strength.self_attn)}"]
    if strength.start != 0.0:
        items.append(f"start={_fmt(strength.start)}")
    if strength.stop != 1.0:
        items.append(f"stop={_fmt(strength.stop)}")
    return format_items(items)


def _fmt(value: float) -> str:
    return f"{value:g}" if value == float(f"{value:g}") else repr(value)


__all__ = ["format_tag"]
