"""The ``<hypernet:…>`` prompt tag: what a tag is, what its arguments mean, which names can be written.

Syntax (the webui splits the text between ``<hypernet:`` and ``>`` on ``:``)::

    <hypernet:NAME>                       strength = the default multiplier
    <hypernet:NAME:0.8>                   strength 0.8 for self- and cross-attention
    <hypernet:NAME:0.8:self=0.5>          self-attention 0.5, cross-attention 0.8
    <hypernet:NAME:cross=1:self=0>        cross-attention only
    <hypernet:NAME:0.8:start=0.2:stop=0.6>  only from 20 % to 60 % of the sampling steps

Named arguments: ``self``, ``cross`` (strengths), ``start``, ``stop`` (fractions of the
steps, 0..1, start before stop), and ``m``/``strength`` (the same as the positional strength).
Numbers are ASCII decimals (``０.5`` with a full-width digit is not a number, as in JavaScript).

This module is the grammar's one Python home; :mod:`lib_hypernet.prompt.writer` writes tags with it,
``javascript/hypernet.js`` is its browser twin and ``tests/fixtures/tag_cases.json`` holds the cases both
must agree on, error kinds included.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..engine.strength import Strength, StrengthError
from ..errors import HypernetError

PREFIX = "<hypernet:"
SUFFIX = ">"
NAMED_ARGUMENTS = ("self", "cross", "start", "stop", "m", "strength")
TAG_RE = re.compile(re.escape(PREFIX) + r"([^:>]+)((?::[^>]*)?)" + re.escape(SUFFIX))
"""One tag: group 1 is the name as written, group 2 the arguments (``""`` or ``":…"``)."""
# ASCII digits only: JavaScript's \d is ASCII, Python's is not (and float() reads "０.5").
_NUMBER_RE = re.compile(r"[+-]?(?:\d(?:_?\d)*(?:\.(?:\d(?:_?\d)*)?)?|\.\d(?:_?\d)*)(?:[eE][+-]?\d(?:_?\d)*)?", re.ASCII)
_NAME_FORBIDDEN = (":", ">", "<")
_FLOAT_MAX = sys.float_info.max

TAG_ERROR_KINDS = (
    "missing_name", "unknown_argument", "given_twice", "too_many_values", "strength_twice", "not_a_number",
    "out_of_range", "start_not_before_stop", "bad_name",
)


class TagError(HypernetError, ValueError):
    """A ``<hypernet:…>`` tag that cannot be understood (the tag is skipped), or a name that cannot be written.

    ``kind`` is one of :data:`TAG_ERROR_KINDS`, the same word ``javascript/hypernet.js`` gives.
    """

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


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


def parse_number(text: str) -> float | None:
    """A finite decimal number written with ASCII digits (None for anything else, ``inf``/``nan``/``０.5`` included)."""
    stripped = text.strip()
    if not _NUMBER_RE.fullmatch(stripped):
        return None
    number = float(stripped)  # only ASCII text reaches float()
    return number if math.isfinite(number) else None


def check_name(name: str) -> str:
    """``name`` when a tag written with it parses back to the same name; raises :class:`TagError` (``bad_name``).

    Refused: empty, leading or trailing white space (parsing strips it), ``:`` (the separator), ``>`` (the end)
    and ``<`` (the start of the next tag, for readers like A1111's).
    """
    if not name or name != name.strip() or any(c in name for c in _NAME_FORBIDDEN):
        raise TagError(
            f"{name!r} cannot be written in a <hypernet:…> tag (empty, white space at an end, or contains ':', '>' or '<')",
            "bad_name",
        )
    return name


def format_items(items: Sequence[Any]) -> str:
    """``<hypernet:a:b:…>`` from the items as they are (no checks; :func:`~lib_hypernet.prompt.writer.format_tag` checks)."""
    return PREFIX + ":".join(str(i) for i in items) + SUFFIX


def _number(value: Any, what: str, text: str) -> float:
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):  # a setting appended it: already a number
        number = float(value) if abs(value) <= _FLOAT_MAX else None  # a huge int or inf/nan is not finite
    elif not isinstance(value, bool):
        number = parse_number(str(value))
    if number is None:
        raise TagError(f"{text}: {what} must be a number like 0.8, got {str(value)!r}", "not_a_number")
    return number


def parse_items(items: Sequence[Any], default_multiplier: float = 1.0) -> HypernetRequest:
    """Turn the ``:``-separated items of one tag into a :class:`HypernetRequest` (raises :class:`TagError`).

    ``items`` is what the webui's ``ExtraNetworkParams.items`` holds: strings, or a
    number when a setting appended it.
    """
    text = format_items(items)
    if not items or not str(items[0]).strip():
        raise TagError(f"{text}: the hypernetwork name is missing", "missing_name")
    name = str(items[0]).strip()
    positional: list[Any] = []
    named: dict[str, Any] = {}
    for item in items[1:]:
        if isinstance(item, str) and "=" in item:
            key, _, value = item.partition("=")
            key = key.strip().lower()
            if key not in NAMED_ARGUMENTS:
                raise TagError(f"{text}: unknown argument {key!r} (known: {', '.join(NAMED_ARGUMENTS)})",
                               "unknown_argument")
            if key in named or (key in ("m", "strength") and ("m" in named or "strength" in named)):
                raise TagError(f"{text}: argument {key!r} given twice", "given_twice")
            named[key] = value
        else:
            positional.append(item)
    if len(positional) > 1:
        raise TagError(
            f"{text}: too many values; write <hypernet:{name}:STRENGTH> and name the others, e.g. self=0.5, stop=0.6",
            "too_many_values",
        )
    if positional and ("m" in named or "strength" in named):
        raise TagError(f"{text}: the strength is given twice", "strength_twice")
    raw_strength = positional[0] if positional else named.get("m", named.get("strength"))
    multiplier = default_multiplier if raw_strength is None else _number(raw_strength, "the strength", text)
    self_attn = _number(named["self"], "self", text) if "self" in named else multiplier
    cross_attn = _number(named["cross"], "cross", text) if "cross" in named else multiplier
    start = _number(named["start"], "start", text) if "start" in named else 0.0
    stop = _number(named["stop"], "stop", text) if "stop" in named else 1.0
    try:
        strength = Strength(self_attn, cross_attn, start, stop)
    except StrengthError as exc:  # the step range: Strength's rule is the one rule
        raise TagError(f"{text}: {exc}", exc.kind) from None
    return HypernetRequest(name, strength, text)


def rename_in_prompt(prompt: str, renames: dict[str, str]) -> str:
    """Rewrite ``<hypernet:OLD…>`` to ``<hypernet:NEW…>`` for each ``OLD → NEW`` (other text untouched)."""
    if not renames:
        return prompt

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        return format_items([renames.get(name, name), *match.group(2).split(":")[1:]])

    return TAG_RE.sub(replace, prompt)


def names_in_prompt(prompt: str) -> list[str]:
    """The hypernetwork names of every ``<hypernet:…>`` tag in ``prompt``, as written, in order."""
    return [m.group(1) for m in TAG_RE.finditer(prompt)]
