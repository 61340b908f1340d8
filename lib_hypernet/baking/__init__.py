"""Baking hypernetworks into a LoRA file or a merged checkpoint, exactly (for affine hypernetworks).

:func:`bake` does it (and checks the result); :func:`parse_spec` reads ``FILE[:STRENGTH][:self=S][:cross=C]``.
The algebra is in :mod:`.affine`, the checkpoint reading in :mod:`.checkpoint`, the check in :mod:`.verify`.
"""

from __future__ import annotations

from .affine import BakeError
from .baker import BakeReport, bake
from .spec import parse_spec

__all__ = ["BakeError", "BakeReport", "bake", "parse_spec"]
