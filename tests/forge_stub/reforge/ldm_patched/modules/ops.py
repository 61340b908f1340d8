"""``ldm_patched/modules/ops.py``: ``manual_cast.Linear`` is an ``nn.Linear`` subclass that casts its weight."""
from forge_common.ops import ManualCastLinear


class manual_cast:
    Linear = ManualCastLinear
