"""``backend/misc/tomesd.py``."""
from forge_common.tomesd import TomePatcher

__all__ = ["TomePatcher"]
