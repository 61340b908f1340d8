"""``modules_forge/forge_loader.py`` (reForge): ``ForgeObjects`` and the A1111-shaped model it builds
(``sd_model.model.diffusion_model = forge_objects.unet.model.diffusion_model``, ``forge_loader.py:444``)."""
from __future__ import annotations

import torch


class ForgeObjects:
    def __init__(self, unet, clip, vae, clipvision):
        self.unet = unet
        self.clip = clip
        self.vae = vae
        self.clipvision = clipvision

    def shallow_copy(self) -> ForgeObjects:
        return ForgeObjects(self.unet, self.clip, self.vae, self.clipvision)


class ReforgeModel(torch.nn.Module):
    """The LatentDiffusion-like ``shared.sd_model`` of reForge: a torch module with ``.model.diffusion_model``."""

    def __init__(self, wrapper: torch.nn.Module):
        super().__init__()
        self.model = wrapper
        self.forge_objects = None
        self.forge_objects_original = None
        self.forge_objects_after_applying_lora = None
        self.current_lora_hash = "[]"
        self.is_sd1 = self.is_sd2 = self.is_sdxl = self.is_sd3 = False
