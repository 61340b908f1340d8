"""How a file's facts read as text, shared by the CLI's ``info`` and the library panel."""

from __future__ import annotations

from collections.abc import Sequence


def human_size(n: int | None) -> str:
    """``512 B``, ``1.5 KiB``, ``100.0 MiB`` (empty when unknown)."""
    if n is None:
        return ""
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def yes_no(value: bool | None) -> str:
    """``yes``/``no``; empty when unknown."""
    return "" if value is None else ("yes" if value else "no")


def structure_text(values: Sequence[float]) -> str:
    """A layer or dropout structure as A1111's UI writes it: ``1, 2, 1`` (1.0 is ``1``); ``?`` for a value that is
    not a number (a damaged cached description)."""
    return ", ".join(f"{v:g}" if isinstance(v, (int, float)) else "?" for v in values)


def entry_names(entries: Sequence[str]) -> str:
    """Zip entry names without the archive folder: ``.format_version, .storage_alignment``."""
    return ", ".join(name.split("/", 1)[-1] for name in entries)
