"""``FILE[:STRENGTH][:self=S][:cross=C]``: one hypernetwork of a bake, written like a prompt tag's arguments."""

from __future__ import annotations

import re

from ..engine.strength import Strength
from ..prompt.grammar import TagError, parse_items

_FILE_THEN_ARGUMENTS = re.compile(r"(.+?\.(?:pt|safetensors))(?::(.*))?\Z", re.IGNORECASE | re.DOTALL)


def parse_spec(spec: str, default_strength: float = 1.0) -> tuple[str, Strength]:
    """The file and its strength; a path may itself hold ':' (only the trailing arguments are read).

    Raises :class:`~lib_hypernet.prompt.grammar.TagError` for arguments that do not parse.
    """
    match = _FILE_THEN_ARGUMENTS.match(spec)
    if match:  # the file ends at its suffix: everything after is arguments (a bad one is then an error)
        path, rest = match.group(1), match.group(2)
        parts = [path, *(rest.split(":") if rest is not None else [])]
        first_arg = 1
    else:
        parts = spec.split(":")
        # The longest tail of parts that are all arguments (a number or key=value) is the arguments.
        first_arg = len(parts)
        while first_arg > 1 and _looks_like_argument(parts[first_arg - 1]):
            first_arg -= 1
        path = ":".join(parts[:first_arg])
    if not path:
        raise TagError(f"{spec!r}: the hypernetwork file is missing", "missing_name")
    request = parse_items([path, *parts[first_arg:]], default_strength)
    return path, request.strength


def _looks_like_argument(text: str) -> bool:
    if "=" in text:
        return True
    try:
        float(text)
    except ValueError:
        return False
    return text.strip().isascii()
