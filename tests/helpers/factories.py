"""The one factory of the tests' "seeded, visibly strong hypernetwork" (imported by plain name, like every helper).

``lib_hypernet.create`` initialises a hypernetwork so that it barely changes anything (A1111's initialisation);
tests that must SEE a hypernetwork's effect overwrite its weights with seeded noise.  Every suite keeps its own
numbers (``std``, ``per_layer``, ``seed_offset``): the expected values of the tests depend on them bit for bit.
Needs only torch and lib_hypernet (the core test folders use it too).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

import lib_hypernet

# per_layer: a Linear's weights shrink with its input width beyond this one (the engine tests' context width),
# so that wide layers do not blow the outputs up.
_PER_LAYER_WIDTH = 48


def strong_hypernetwork(
    name: str,
    sizes: Iterable[int],
    *,
    seed: int,
    std: float,
    per_layer: bool = False,
    seed_offset: int = 1000,
    **create_options: Any,
) -> lib_hypernet.Hypernetwork:
    """``lib_hypernet.create(name, sizes, seed=seed, **create_options)`` (relu unless ``activation_func`` says
    otherwise) with every parameter overwritten from ``torch.Generator().manual_seed(seed + seed_offset)``.

    Flat (default): every parameter, in ``parameters()`` order, is N(0, std).  ``per_layer``: layer by layer,
    a Linear's weight is N(0, std * min(1, sqrt(48 / in_features))) and its bias N(0, std); a LayerNorm's weight
    1 + N(0, 0.1) and bias N(0, 0.1); a PReLU's weight uniform in [0.05, 0.45).
    """
    create_options.setdefault("activation_func", "relu")
    hn = lib_hypernet.create(name, sizes=list(sizes), seed=seed, **create_options)
    gen = torch.Generator().manual_seed(seed + seed_offset)
    with torch.no_grad():
        if not per_layer:
            for p in hn.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * std)
            return hn
        for module in hn.modules():
            for layer in module.linear:
                if isinstance(layer, torch.nn.Linear):
                    scale = std * min(1.0, math.sqrt(_PER_LAYER_WIDTH / layer.in_features))
                    layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) * scale)
                    layer.bias.copy_(torch.randn(layer.bias.shape, generator=gen) * std)
                elif isinstance(layer, torch.nn.LayerNorm):
                    layer.weight.copy_(1 + 0.1 * torch.randn(layer.weight.shape, generator=gen))
                    layer.bias.copy_(0.1 * torch.randn(layer.bias.shape, generator=gen))
                elif isinstance(layer, torch.nn.PReLU):
                    layer.weight.copy_(0.05 + 0.4 * torch.rand(layer.weight.shape, generator=gen))
    return hn
