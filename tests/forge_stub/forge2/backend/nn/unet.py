"""``backend/nn/unet.py``: attention with ``ForgeOperations.Linear`` projections, the transformer block with its
patch lists, and the UNet (``IntegratedUNet2DConditionModel``, tiny here)."""
from __future__ import annotations

from forge_common import attention as _attention
from forge_common.attention import BasicTransformerBlock, SpatialTransformer, attention_function

from backend.operations import ForgeOperations

__all__ = ["BasicTransformerBlock", "CrossAttention", "IntegratedUNet2DConditionModel", "SpatialTransformer",
           "attention_function"]


class CrossAttention(_attention.CrossAttention):
    linear_class = ForgeOperations.Linear


class IntegratedUNet2DConditionModel(_attention.TinyUNet):
    def __init__(self, context_dim: int, **kwargs):
        super().__init__(context_dim, CrossAttention, **kwargs)
