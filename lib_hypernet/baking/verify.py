"""Checking a written bake against the hypernetwork applied the A1111 way, layer by layer.

Independent of the affine algebra in :mod:`.affine`: random inputs go through A1111's formula
(:func:`lib_hypernet.engine.reference.apply_hypernetworks`, in float64) and then the checkpoint's own
projections; the baked projections see the raw inputs.  K is compared up to the one constant per
layer that softmax ignores (the difference must be the same for every token); V through ``to_out.0``
(weights and bias), exactly what the attention output sees.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..engine.reference import apply_hypernetworks
from ..engine.strength import Strength
from ..model.hypernetwork import Hypernetwork
from .checkpoint import AttentionLayer

TOKENS = 16


@dataclass(frozen=True)
class LayerCheck:
    """The largest error of one layer, relative to the largest reference value."""

    name: str
    kind: str
    width: int
    k_error: float
    v_error: float

    @property
    def error(self) -> float:
        return max(self.k_error, self.v_error)


def float64_stack(stack: Sequence[tuple[Hypernetwork, Strength]]) -> list[tuple[Hypernetwork, Strength]]:
    """Copies of the hypernetworks in float64 (the reference must not be limited by float32 rounding)."""
    return [(copy.deepcopy(hn).to(dtype=torch.float64), strength) for hn, strength in stack]


def check_layer(
    layer: AttentionLayer,
    stack64: Sequence[tuple[Hypernetwork, Strength]],
    original: dict[str, torch.Tensor],
    baked: dict[str, torch.Tensor],
    seed: int,
) -> LayerCheck:
    """``original``/``baked``: ``to_k.weight``, ``to_v.weight``, ``to_out.0.weight``, ``to_out.0.bias``."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(TOKENS, layer.width, generator=gen, dtype=torch.float64)
    context_k, context_v = apply_hypernetworks(x, stack64, layer.kind)
    w = {k: v.to(torch.float64) for k, v in original.items()}
    b = {k: v.to(torch.float64) for k, v in baked.items()}
    k_ref = context_k @ w["to_k.weight"].T
    k_baked = x @ b["to_k.weight"].T
    k_diff = k_ref - k_baked
    k_error = float((k_diff - k_diff[:1]).abs().max()) / max(float(k_ref.abs().max()), 1e-30)
    out_ref = context_v @ w["to_v.weight"].T @ w["to_out.0.weight"].T + w["to_out.0.bias"]
    out_baked = x @ b["to_v.weight"].T @ b["to_out.0.weight"].T + b["to_out.0.bias"]
    v_error = float((out_ref - out_baked).abs().max()) / max(float(out_ref.abs().max()), 1e-30)
    return LayerCheck(layer.path, layer.kind, layer.width, k_error, v_error)
