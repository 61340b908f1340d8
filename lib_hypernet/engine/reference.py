"""The reference application of a stack of hypernetworks to one attention input (A1111's formula)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .._compat import autocast_dtype
from ..model.hypernetwork import Hypernetwork
from .strength import StrengthLike, as_strength

Stack = Sequence[tuple[Hypernetwork, StrengthLike]]


def run_module(module: torch.nn.Module, x: torch.Tensor, strength: float) -> torch.Tensor:
    """``x + strength·MLP(x)`` computed like A1111: under the host's autocast when one is active,
    otherwise in the module's dtype and device, returned in ``x``'s dtype and device."""
    if autocast_dtype(x.device.type) is not None:
        return module(x, strength)
    param = next(module.parameters())
    y = module(x.to(device=param.device, dtype=param.dtype), strength)
    return y.to(device=x.device, dtype=x.dtype)


def apply_hypernetworks(
    context: torch.Tensor, stack: Stack, kind: str = "cross"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(context_k, context_v)`` after applying each ``(hypernetwork, strength)`` in order.

    A hypernetwork without modules for ``context``'s width (last dimension) leaves it
    unchanged; strength 0 is skipped (exactly the identity).  ``kind`` (``"self"`` or
    ``"cross"``) picks the strength when a :class:`~lib_hypernet.Strength` is given.
    """
    context_k = context_v = context
    width = context.shape[-1]
    for hn, strength in stack:
        pair = hn.layers.get(width)
        m = as_strength(strength).for_kind(kind)
        if pair is None or m == 0:
            continue
        context_k = run_module(pair[0], context_k, m)
        context_v = run_module(pair[1], context_v, m)
    return context_k, context_v
