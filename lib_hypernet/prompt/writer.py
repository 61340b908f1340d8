"""Writing ``<hypernet:…>`` tags: the one tag writer (names checked, numbers written as A1111's UI writes them).

``javascript/hypernet.js`` has the same two functions (``formatNumber``, ``formatTag``) for the browser.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from ..engine.strength import Strength
from .grammar import check_name, format_items


def format_number(value: float) -> str:
    """``0.30000000000000004`` → ``0.3``, ``1.0`` → ``1``, ``-0.5`` → ``-0.5`` (4 decimals, ties away from 0)."""
    text = format(Decimal(float(value)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def format_tag(name: str, strength: Strength | float | None = None) -> str:
    """The tag text for ``name`` at ``strength``, the shortest form that means the same.

    ``None`` writes ``<hypernet:name>`` (the default strength).  Raises
    :class:`~lib_hypernet.prompt.grammar.TagError` (kind ``bad_name``) for a name that would not parse back.
    """
    items: list[str] = [check_name(name)]
    if strength is None:
        pass
    elif not isinstance(strength, Strength):
        items.append(format_number(strength))
    else:
        items.append(format_number(strength.cross_attn))
        if strength.self_attn != strength.cross_attn:
            items.append(f"self={format_number(strength.self_attn)}")
        if strength.start != 0.0:
            items.append(f"start={format_number(strength.start)}")
        if strength.stop != 1.0:
            items.append(f"stop={format_number(strength.stop)}")
    return format_items(items)


__all__ = ["format_number", "format_tag"]
