"""The ``<hypernet:…>`` prompt tag: parsing its arguments and writing it back.

Syntax (the webui splits the text between ``<hypernet:`` and ``>`` on ``:``)::

    <hypernet:NAME>                       strength = the default multiplier
    <hypernet:NAME:0.8>                   strength 0.8 for self- and cross-attention
    <hypernet:NAME:0.8:self=0.5>          self-attention 0.5, cross-attention 0.8
    <hypernet:NAME:cross=1:self=0>        cross-attention only
    <hypernet:NAME:0.8:start=0.2:stop=0.6>  only from 20 % to 60 % of the sampling steps

Named arguments: ``self``, ``cross`` (strengths), ``start``, ``stop`` (fractions of the
steps, 0..1), and ``m``/``strength`` (the same as the positional strength).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..engine.strength import Strength
from ..errors import HypernetError

NAMED_ARGUMENTS = ("self", "cross", "start", "stop", "m", "strength")
TAG_RE = re.compile(r"<hypernet:([^:>]+)((?::[^>]*)?)>")


class TagError(HypernetError, ValueError):
    """A ``<hypernet:…>`` tag that cannot be understood; the tag is skipped."""


@dataclass(frozen=True)
class HypernetRequest:
    """One tag: which hypernetwork, how strong."""

    name: str
    strength: Strength
    text: str  # the tag as written, for messages

    @property
    def multiplier(self) -> float:
        """The single-number strength when self and cross agree (else the cross strength)."""
        return self.strength.cross_attn


def _number(value: Any, what: str, text: str) -> float:
    if isinstance(value, bool):
        raise TagError(f"{text}: {what} must be a number, got {value!r}")
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        try:
            number = float(str(value).strip())
        except ValueError:
            raise TagError(f"{text}: {what} must be a number, got {str(value)!r}") from None
    if not math.isfinite(number):
        raise TagError(f"{text}: {what} must be a finite number, got {str(value)!r}")
    return number


def format_items(items: Sequence[Any]) -> str:
    return "<hypernet:" + ":".join(str(i) for i in items) + ">"


def parse_items(items: Sequence[Any], default_multiplier: float = 1.0) -> HypernetRequest:
    """Turn the ``:``-separated items of one tag into a :class:`HypernetRequest` (raises :class:`TagError`).

    ``items`` is what the webui's ``ExtraNetworkParams.items`` holds: strings, or a
    number when a setting appended it.
    """
    text = format_items(items)
    if not items or not str(items[0]).strip():
        raise TagError(f"{text}: the hypernetwork name is missing")
    name = str(items[0]).strip()
    positional: list[Any] = []
    named: dict[str, Any] = {}
    for item in items[1:]:
        if isinstance(item, str) and "=" in item:
            key, _, value = item.partition("=")
            key = key.strip().lower()
            if key not in NAMED_ARGUMENTS:
                raise TagError(f"{text}: unknown argument {key!r} (known: {', '.join(NAMED_ARGUMENTS)})")
            if key in named or (key in ("m", "strength") and ("m" in named or "strength" in named)):
                raise TagError(f"{text}: argument {key!r} given twice")
            named[key] = value
        else:
            positional.append(item)
    if len(positional) > 1:
        raise TagError(
            f"{text}: too many values; write <hypernet:{name}:STRENGTH> and name the others, e.g. self=0.5, stop=0.6"
        )
    if positional and ("m" in named or "strength" in named):
        raise TagError(f"{text}: the strength is given twice")
    raw_strength = positional[0] if positional else named.get("m", named.get("strength"))
    multiplier = default_multiplier if raw_strength is None else _number(raw_strength, "the strength", text)
    self_attn = _number(named["self"], "self", text) if "self" in named else multiplier
    cross_attn = _number(named["cross"], "cross", text) if "cross" in named else multiplier
    start = _number(named["start"], "start", text) if "start" in named else 0.0
    stop = _number(named["stop"], "stop", text) if "stop" in named else 1.0
    for what, fraction in (("start", start), ("stop", stop)):
        if not 0.0 <= fraction <= 1.0:
            raise TagError(f"{text}: {what} is a fraction of the sampling steps between 0 and 1, got {fraction:g}")
    if start >= stop:
        raise TagError(f"{text}: start ({start:g}) must be before stop ({stop:g})")
    return HypernetRequest(name, Strength(self_attn, cross_attn, start, stop), text)


def rename_in_prompt(prompt: str, renames: dict[str, str]) -> str:
    """Rewrite ``<hypernet:OLD…>`` to ``<hypernet:NEW…>`` for each ``OLD → NEW`` (other text untouched)."""
    if not renames:
        return prompt

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        return f"<hypernet:{renames.get(name, name)}{match.group(2)}>"

    return TAG_RE.sub(replace, prompt)


def names_in_prompt(prompt: str) -> list[str]:
    """The hypernetwork names of every ``<hypernet:…>`` tag in ``prompt``, in order."""
    return [m.group(1) for m in TAG_RE.finditer(prompt)]
