"""A1111's creation choices that need no torch to list (the command line's parser reads them without loading torch)."""

from __future__ import annotations

WEIGHT_INITIALIZATIONS = ("Normal", "XavierUniform", "XavierNormal", "KaimingUniform", "KaimingNormal")
