"""``backend/patcher/base.py``."""
from forge_common.patcher import ModelPatcher

__all__ = ["ModelPatcher"]
