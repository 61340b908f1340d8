"""``backend/diffusion_engine/base.py``: ``shared.sd_model`` is a ``ForgeDiffusionEngine`` — not a torch module,
no ``.model``; the UNet patcher is ``forge_objects.unet`` (replaced per generation from
``forge_objects_original`` / ``forge_objects_after_applying_lora`` by ``shallow_copy()``)."""
from __future__ import annotations

from typing import ClassVar


class ForgeObjects:
    def __init__(self, unet, clip, vae, clipvision):
        self.unet = unet
        self.clip = clip
        self.vae = vae
        self.clipvision = clipvision

    def shallow_copy(self) -> ForgeObjects:
        return ForgeObjects(self.unet, self.clip, self.vae, self.clipvision)


class ForgeDiffusionEngine:
    matched_guesses: ClassVar[list] = []

    def __init__(self) -> None:
        self.forge_objects: ForgeObjects | None = None
        self.forge_objects_original: ForgeObjects | None = None
        self.forge_objects_after_applying_lora: ForgeObjects | None = None
        self.current_lora_hash = "[]"
        self.is_inpaint = False
        self.fix_for_webui_backward_compatibility()

    def fix_for_webui_backward_compatibility(self) -> None:
        self.tiling_enabled = False
        self.first_stage_model = None
        self.cond_stage_model = None
        self.is_sd1 = self.is_sd2 = self.is_sdxl = self.is_sd3 = False

    def is_webui_legacy_model(self) -> bool:
        return self.is_sd1 or self.is_sd2 or self.is_sdxl or self.is_sd3
