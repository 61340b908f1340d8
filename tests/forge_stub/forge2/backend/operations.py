"""``backend/operations.py``: the UNet is built under ``using_forge_operations`` with ``ForgeOperations.Linear``."""
from __future__ import annotations

from forge_common.ops import ForgeLinear


class ForgeOperations:
    Linear = ForgeLinear
