"""A hypernetwork with no activation and no layer norm is an affine map, and so is a stack of them.

Module ``f(x) = A·x + c`` (Linear layers composed; dropout does nothing at inference).  At strength m
the attention sees ``x + m·f(x) = (I + m·A)·x + m·c``; a stack applies such maps one after the other,
separately for the K and the V branch, so every (width, self/cross) pair has one composite
``x ↦ M·x + c`` per branch.  Everything is computed in float64.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..engine.strength import Strength
from ..errors import HypernetFormatError
from ..model.hypernetwork import Hypernetwork
from ..model.module import HypernetworkModule


class BakeError(HypernetFormatError):
    """The hypernetwork (or the request) cannot be baked; the message says which layer and why."""


@dataclass(frozen=True)
class Affine:
    """``x ↦ matrix·x + offset`` (float64)."""

    matrix: torch.Tensor
    offset: torch.Tensor

    @classmethod
    def identity(cls, width: int) -> Affine:
        return cls(torch.eye(width, dtype=torch.float64), torch.zeros(width, dtype=torch.float64))

    def then(self, other: Affine) -> Affine:
        """``other ∘ self``: first this map, then ``other``."""
        return Affine(other.matrix @ self.matrix, other.matrix @ self.offset + other.offset)

    def is_identity(self) -> bool:
        eye = torch.eye(self.matrix.shape[0], dtype=torch.float64)
        return bool(torch.equal(self.matrix, eye)) and not bool(self.offset.any())


def module_map(module: HypernetworkModule, where: str, path: str | None) -> Affine:
    """``f`` of one module as ``A·x + c``; raises :class:`BakeError` naming the first non-linear layer."""
    width = module.dim
    matrix = torch.eye(width, dtype=torch.float64)
    offset = torch.zeros(width, dtype=torch.float64)
    for index, layer in enumerate(module.linear):
        if isinstance(layer, torch.nn.Linear):
            weight = layer.weight.detach().to(torch.float64)
            bias = layer.bias.detach().to(torch.float64) if layer.bias is not None else 0.0
            matrix, offset = weight @ matrix, weight @ offset + bias
        elif isinstance(layer, (torch.nn.Dropout, torch.nn.Identity)):
            continue  # inert at inference
        else:
            kind = "a layer norm" if isinstance(layer, torch.nn.LayerNorm) else f"the activation {type(layer).__name__}"
            raise BakeError(
                f"{where}: layer {index} is {kind}, so the hypernetwork is not an affine map and cannot be baked "
                "exactly (only files without activation ('linear') and without layer norm can)",
                path,
            )
    return Affine(matrix, offset)


def check_bakeable(hn: Hypernetwork, strength: Strength) -> None:
    """Refuse what cannot be baked: a step range, a non-linear module (every module is checked)."""
    if strength.start != 0.0 or strength.stop != 1.0:
        raise BakeError(
            f"a step range (start={strength.start:g}, stop={strength.stop:g}) cannot be baked: a baked file changes "
            "every sampling step",
            hn.path,
        )
    for width in hn.widths:
        for branch, module in zip("kv", hn.layers[width]):
            module_map(module, f"width {width} ({branch})", hn.path)


def stack_maps(stack: Sequence[tuple[Hypernetwork, Strength]], width: int, kind: str) -> tuple[Affine, Affine] | None:
    """The composite (K, V) maps of ``stack`` for attention inputs of ``width`` in ``kind`` ("self"/"cross")
    attention, or ``None`` when no entry changes that width."""
    maps = [Affine.identity(width), Affine.identity(width)]
    changed = False
    for hn, strength in stack:
        pair = hn.layers.get(width)
        m = strength.for_kind(kind)
        if pair is None or m == 0:
            continue
        changed = True
        for branch, module in enumerate(pair):
            f = module_map(module, f"width {width} ({'kv'[branch]})", hn.path)
            step = Affine(torch.eye(width, dtype=torch.float64) + m * f.matrix, m * f.offset)
            maps[branch] = maps[branch].then(step)
    return (maps[0], maps[1]) if changed else None
