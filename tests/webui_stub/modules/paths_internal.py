"""Alias of :mod:`modules.paths` (A1111 has both); attributes are forwarded at lookup time."""
from __future__ import annotations

from modules import paths as _paths


def __getattr__(name: str):
    return getattr(_paths, name)
