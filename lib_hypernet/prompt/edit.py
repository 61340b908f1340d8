"""Editing ``<hypernet:…>`` tags inside a prompt: find them with their spans, change one tag's arguments,
rename, add and remove tags.  ``javascript/hypernet.js`` implements the same functions for the webui's
panel and cards; ``tests/fixtures/tag_cases.json`` holds the cases both must agree on.

The grammar is :mod:`lib_hypernet.prompt.grammar` (what the webui applies): a tag is ``TAG_RE``'s match, its
items are the text after ``<hypernet:`` split on ``:``, the first item is the name.  Edits change only
the item they concern, so the rest of a tag stays as the user wrote it, and an argument equal to its
default is dropped (``<hypernet:x:0.8>`` stays plain).  Numbers and new tags are written by
:mod:`lib_hypernet.prompt.writer` (``0.3``, never ``0.30000000000000004``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .grammar import NAMED_ARGUMENTS, PREFIX, SUFFIX, TAG_RE, TagError, check_name, format_items, parse_items, parse_number
from .writer import format_number, format_tag

SEPARATOR = " "
ARGUMENT_KEYS = ("strength", "self", "cross", "start", "stop")
"""What :func:`set_argument` edits: ``strength`` is the positional number (or ``m=``/``strength=``)."""
DEFAULTS = {"start": 0.0, "stop": 1.0}


@dataclass(frozen=True)
class PromptTag:
    """One ``<hypernet:…>`` tag of a prompt: where it is, and what it says (None = not written)."""

    index: int
    start: int
    end: int
    text: str
    name: str
    items: tuple[str, ...]  # everything after the name, as written
    strength: float | None
    self_attn: float | None
    cross_attn: float | None
    step_start: float | None
    step_stop: float | None
    error: str | None  # why the webui would skip this tag (None = valid)
    error_kind: str | None  # TagError.kind of that reason (None = valid)

    @property
    def valid(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, object]:
        """The form ``tests/fixtures/tag_cases.json`` uses (and ``sdHypernet.findTags`` returns)."""
        return {
            "start": self.start, "end": self.end, "name": self.name, "strength": self.strength,
            "self": self.self_attn, "cross": self.cross_attn, "step_start": self.step_start,
            "step_stop": self.step_stop, "valid": self.valid, "error_kind": self.error_kind,
        }


def _key_of(item: str) -> str | None:
    if "=" not in item:
        return None
    key = item.partition("=")[0].strip().lower()
    return "strength" if key == "m" else key


def _explicit(items: tuple[str, ...]) -> dict[str, float | None]:
    """The numbers written for each argument (first occurrence; None when absent or not a number)."""
    values: dict[str, float | None] = {}
    for item in items:
        key = _key_of(item) or "strength"
        if key in values:
            continue
        raw = item.partition("=")[2] if "=" in item else item
        values[key] = parse_number(raw)
    return values


def find_tags(prompt: str) -> list[PromptTag]:
    """Every ``<hypernet:…>`` tag of ``prompt`` in order, valid or not."""
    tags = []
    for index, match in enumerate(TAG_RE.finditer(prompt)):
        text = match.group(0)
        parts = text[len(PREFIX):-len(SUFFIX)].split(":")
        items = tuple(parts[1:])
        values = _explicit(items)
        error = kind = None
        try:
            parse_items(parts)
        except TagError as exc:
            error, kind = str(exc), exc.kind
        tags.append(PromptTag(
            index, match.start(), match.end(), text, parts[0].strip(), items, values.get("strength"),
            values.get("self"), values.get("cross"), values.get("start"), values.get("stop"), error, kind,
        ))
    return tags


def _tag(prompt: str, index: int) -> PromptTag:
    tags = find_tags(prompt)
    if not 0 <= index < len(tags):
        raise IndexError(f"the prompt has {len(tags)} <hypernet:…> tag(s); there is no tag {index + 1}")
    return tags[index]


def _replace(prompt: str, tag: PromptTag, name: str, items: list[str]) -> str:
    return prompt[:tag.start] + format_items([name, *items]) + prompt[tag.end:]


def _default(key: str, items: list[str], default_strength: float) -> float:
    if key in DEFAULTS:
        return DEFAULTS[key]
    strength = _explicit(tuple(items)).get("strength")
    return default_strength if strength is None else strength


def set_argument(prompt: str, index: int, key: str, value: float | None, *, default_strength: float = 1.0) -> str:
    """Tag ``index`` with argument ``key`` (one of :data:`ARGUMENT_KEYS`) set to ``value``.

    ``None`` removes the argument.  ``self``/``cross`` equal to the tag's strength, ``start`` 0 and
    ``stop`` 1 are removed too (they are the defaults); the strength itself is always written.
    """
    if key not in ARGUMENT_KEYS:
        raise ValueError(f"unknown argument {key!r} (known: {', '.join(ARGUMENT_KEYS)})")
    tag = _tag(prompt, index)
    items = list(tag.items)
    position = next((i for i, item in enumerate(items) if (_key_of(item) or "strength") == key), None)
    if value is not None and key != "strength" and float(value) == _default(key, items, default_strength):
        value = None
    if value is None:
        if position is not None:
            del items[position]
    else:
        number = format_number(value)
        if position is None:
            if key == "strength":
                items.insert(0, number)
            else:
                items.append(f"{key}={number}")
        elif "=" in items[position]:
            items[position] = items[position].partition("=")[0] + "=" + number
        else:
            items[position] = number
    return _replace(prompt, tag, tag.name, items)


def rename_tag(prompt: str, index: int, name: str) -> str:
    """Tag ``index`` pointing at hypernetwork ``name`` (its arguments kept)."""
    tag = _tag(prompt, index)
    return _replace(prompt, tag, check_name(name), list(tag.items))


def remove_tag(prompt: str, index: int) -> str:
    """``prompt`` without tag ``index`` (and the separator that was written before it)."""
    tag = _tag(prompt, index)
    return _cut(prompt, tag.start, tag.end)


def _cut(prompt: str, start: int, end: int) -> str:
    if start > 0 and prompt[start - 1] == SEPARATOR:
        start -= 1
    elif start == 0 and prompt[end:end + 1] == SEPARATOR:
        end += 1
    return prompt[:start] + prompt[end:]


def remove_tags_named(prompt: str, name: str) -> str:
    """``prompt`` without any tag of hypernetwork ``name``, whatever its arguments."""
    for tag in reversed(find_tags(prompt)):
        if tag.name == name:
            prompt = _cut(prompt, tag.start, tag.end)
    return prompt


def add_tag(prompt: str, name: str, strength: float | None = None) -> str:
    """``prompt`` with ``<hypernet:name:strength>`` appended (``<hypernet:name>`` when strength is None)."""
    return append_tag(prompt, format_tag(name, strength))


def append_tag(prompt: str, tag: str) -> str:
    """``prompt`` with the tag text ``tag`` at its end, after a space unless it ends with white space."""
    if prompt and not prompt[-1].isspace():
        prompt += SEPARATOR
    return prompt + tag


def toggle_tag(prompt: str, name: str, strength: float | None = None) -> str:
    """A card click: remove every tag of ``name`` if there is one, else add one."""
    if any(tag.name == name for tag in find_tags(prompt)):
        return remove_tags_named(prompt, name)
    return add_tag(prompt, name, strength)


__all__ = [
    "ARGUMENT_KEYS",
    "NAMED_ARGUMENTS",
    "PromptTag",
    "add_tag",
    "append_tag",
    "find_tags",
    "remove_tag",
    "remove_tags_named",
    "rename_tag",
    "set_argument",
    "toggle_tag",
]
