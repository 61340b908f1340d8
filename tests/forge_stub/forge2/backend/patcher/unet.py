"""``backend/patcher/unet.py``."""
from forge_common.patcher import UnetPatcher

__all__ = ["UnetPatcher"]
