"""The ``Hypernet hashes`` generation parameter and restoring tags from pasted parameters.

Written like A1111's ``Lora hashes``: ``name: 0123456789, other: abcdef0123`` (the webui
quotes the value in the infotext).  When parameters are pasted back, a tag whose name
no longer exists (a renamed file) is rewritten to the file that has the recorded hash.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from .tags import names_in_prompt

KEY = "Hypernet hashes"
LEGACY_NAME_KEY = "Hypernet"
LEGACY_HASH_KEY = "Hypernet hash"
LEGACY_STRENGTH_KEY = "Hypernet strength"
SWITCH_KEY = "Hypernets"
"""``Hypernets: off``: the panel's switch was off, so the prompt's tags were not applied (absent when on)."""
SWITCH_OFF = "off"


def switch_from_pasted(params: dict[str, object]) -> bool:
    """The panel's switch for pasted parameters: off only when they say ``Hypernets: off``.

    Parameters without the key were made with the switch on (or before it existed), so pasting them turns it on.
    """
    return str(params.get(SWITCH_KEY, "") or "").strip().lower() != SWITCH_OFF

_ENTRY_RE = re.compile(r"\s*(.+?)\s*:\s*([0-9a-fA-F]{8,64})\s*$")


def format_hashes(pairs: Iterable[tuple[str, str]]) -> str:
    """``name: hash, …`` in first-use order, each name once (names may not contain ``,``/``:``)."""
    seen: dict[str, str] = {}
    for name, shorthash in pairs:
        safe = name.replace(",", "_").replace(":", "_")
        seen.setdefault(safe, shorthash)
    return ", ".join(f"{name}: {shorthash}" for name, shorthash in seen.items())


def parse_hashes(value: str) -> dict[str, str]:
    """The inverse of :func:`format_hashes` (unparseable entries are skipped)."""
    result: dict[str, str] = {}
    for part in str(value).strip().strip('"').split(","):
        match = _ENTRY_RE.match(part)
        if match:
            result[match.group(1)] = match.group(2).lower()
    return result


def resolve_renames(
    prompt: str,
    recorded: dict[str, str],
    exists: Callable[[str], bool],
    hash_of: Callable[[str], str | None],
    find_by_hash: Callable[[str], str | None],
) -> dict[str, str]:
    """``{old name: current name}`` for tags in ``prompt`` whose recorded hash now belongs to another name.

    ``exists(name)`` says whether a name resolves, ``hash_of(name)`` gives its current
    hash, ``find_by_hash(hash)`` the name of a file with that hash (or ``None``).
    A tag keeps its name when that name exists with the recorded hash, or when no
    file has the hash (the user then sees the "not found" message).
    """
    renames: dict[str, str] = {}
    for name in dict.fromkeys(names_in_prompt(prompt)):
        wanted = recorded.get(name)
        if not wanted:
            continue
        if exists(name):
            current = hash_of(name)
            if current is None or current.startswith(wanted) or wanted.startswith(current):
                continue
        other = find_by_hash(wanted)
        if other is not None and other != name:
            renames[name] = other
    return renames


def dedupe_legacy_tag(prompt: str, legacy_name: str) -> str:
    """Keep one ``<hypernet:legacy_name:…>`` tag when a legacy infotext produced it more than once."""
    pattern = re.compile(r"<hypernet:" + re.escape(legacy_name) + r"(?::[^>]*)?>")
    matches = list(pattern.finditer(prompt))
    if len(matches) <= 1:
        return prompt
    keep = matches[0]
    out, last = [], 0
    for match in matches[1:]:
        out.append(prompt[last:match.start()])
        last = match.end()
    out.append(prompt[last:])
    result = "".join(out)
    return result if keep.group(0) in result else prompt
