"""``ldm_patched/modules/model_patcher.py``."""
from forge_common.patcher import ModelPatcher, UnetPatcher

__all__ = ["ModelPatcher", "UnetPatcher"]
