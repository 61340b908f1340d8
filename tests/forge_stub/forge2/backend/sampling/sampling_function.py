"""``backend/sampling/sampling_function.py``."""
from forge_common.sampling import calc_cond_uncond_batch, prepare

__all__ = ["calc_cond_uncond_batch", "prepare"]
