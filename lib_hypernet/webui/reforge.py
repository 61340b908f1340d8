"""reForge: the Forge 2 way (attention patches on a clone of ``sd_model.forge_objects.unet``).

reForge's UNet is ComfyUI's ``ldm_patched`` UNet, a real torch module at ``sd_model.model.diffusion_model``
(``nn.Linear``-subclass projections), so the A1111 hooks would fire too — but its ToMe is an ``attn1_patch``
that passes the merged tokens as Q and the full tokens as K/V, and a hook on ``to_k`` then cannot tell
self-attention from cross-attention (``self=``/``cross=`` strengths would mix).  The patches know which
attention they run in, and reForge has the same patcher, per-generation ``forge_objects`` resets,
``process_before_every_sampling`` (also twice with hires fix) and per-step ``forge_objects.unet`` read as
Forge 2 (``modules/processing.py:1462/1573/1917``, ``sd_samplers_cfg_denoiser.py:208-211``).  No autocast
there either: the patch casts explicitly.
"""

from __future__ import annotations

import logging

from . import a1111
from .a1111 import ExtraNetworkHypernet, current
from .extension import HypernetExtension
from .forge import ForgeHypernetExtension, HypernetScript

log = logging.getLogger(__name__)

__all__ = ["ExtraNetworkHypernet", "HypernetScript", "current", "register"]


def register() -> HypernetExtension:
    return a1111.register(ForgeHypernetExtension(), "reForge detected; hypernetworks apply as attn1/attn2 patches")
