"""``backend/modules/k_model.py``."""
from forge_common.k_model import KModel

__all__ = ["KModel"]
