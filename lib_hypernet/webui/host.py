"""Which webui runs this extension: A1111 1.10.x, Forge 2 or reForge.

Told apart by the packages each one ships next to ``modules`` (found on ``sys.path``, not imported):

- Forge 2 (lllyasviel/stable-diffusion-webui-forge, 2024-08 on): ``backend`` and ``modules_forge``;
- reForge (Panchovix/stable-diffusion-webui-reForge) and the older Forge 1: ``ldm_patched`` and
  ``modules_forge`` (the UNet is a real torch module at ``sd_model.model.diffusion_model``);
- anything else: A1111 (nothing changes there).
"""

from __future__ import annotations

import importlib.util
import logging

log = logging.getLogger(__name__)

A1111 = "a1111"
FORGE = "forge"
REFORGE = "reforge"
NAMES = {A1111: "AUTOMATIC1111 webui", FORGE: "Forge 2", REFORGE: "reForge"}


def _has(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # a broken or half-imported package: treat as absent
        return False


def detect() -> str:
    """``"forge"``, ``"reforge"`` or ``"a1111"``."""
    if _has("modules_forge"):
        if _has("backend") and _has("backend.patcher"):
            return FORGE
        if _has("ldm_patched"):
            return REFORGE
        log.warning("hypernetworks: modules_forge without backend or ldm_patched: an unknown Forge; using the A1111 way")
    return A1111
