"""Stand-in of ``modules/patches.py``: keyed attribute patching with undo (raises on double patch)."""
from __future__ import annotations

from collections import defaultdict
from typing import Any

originals: defaultdict = defaultdict(dict)


def patch(key: str, obj: Any, field: str, replacement: Any) -> Any:
    """Replace ``obj.field`` with ``replacement`` under ``key``; returns the original. RuntimeError if already patched."""
    patch_key = (obj, field)
    if patch_key in originals[key]:
        raise RuntimeError(f"patch for {field} is already applied")
    original = getattr(obj, field)
    originals[key][patch_key] = original
    setattr(obj, field, replacement)
    return original


def undo(key: str, obj: Any, field: str) -> None:
    """Restore ``obj.field`` patched under ``key``; RuntimeError if it was not patched."""
    patch_key = (obj, field)
    if patch_key not in originals[key]:
        raise RuntimeError(f"there is no patch for {field} to undo")
    setattr(obj, field, originals[key].pop(patch_key))


def original(key: str, obj: Any, field: str) -> Any:
    return originals[key].get((obj, field))
