"""``ldm_patched/ldm/modules/attention.py``: the same blocks and patches, ``manual_cast.Linear`` projections."""
from __future__ import annotations

from forge_common import attention as _attention
from forge_common.attention import BasicTransformerBlock, SpatialTransformer

from ldm_patched.modules.ops import manual_cast

__all__ = ["BasicTransformerBlock", "CrossAttention", "SpatialTransformer", "UNetModel"]


class CrossAttention(_attention.CrossAttention):
    linear_class = manual_cast.Linear


class UNetModel(_attention.TinyUNet):
    def __init__(self, context_dim: int, **kwargs):
        super().__init__(context_dim, CrossAttention, **kwargs)
