"""reForge: the A1111 way, unchanged.

Its UNet is ComfyUI's ``ldm_patched`` UNet, a real torch module at ``sd_model.model.diffusion_model`` (the
same object as ``forge_objects.unet.model.diffusion_model``, shared by every patcher clone), and ``on_model_loaded``
fires on every load.  Its attention calls ``self.to_k(context)``/``self.to_v(context)`` whatever patches run, so
the hooks on those instances (:func:`lib_hypernet.install`) apply exactly as on A1111 — also under ToMe,
replace patches and LoRA — and survive the per-generation ``forge_objects`` resets.  There is no autocast:
the handle computes in the "Hypernetwork compute precision" (float32 by default) and casts the results back
to the activations' dtype.
"""

from __future__ import annotations

import logging

from . import a1111
from .a1111 import ExtraNetworkHypernet, HypernetScript, current
from .extension import HypernetExtension

log = logging.getLogger(__name__)

__all__ = ["ExtraNetworkHypernet", "HypernetScript", "current", "register"]


def register() -> HypernetExtension:
    log.info("hypernetworks: reForge detected; hooking the UNet's attention projections")
    return a1111.register()
