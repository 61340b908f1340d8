"""One hypernetwork MLP (``x + m·MLP(x)``) built exactly like A1111 1.10.1 builds it.

The layout of ``HypernetworkModule.linear`` decides the state-dict key names
(``linear.<index>.weight``), so the construction order must not change:
for each step ``i`` of ``layer_structure``: ``Linear`` → activation (skipped
after the last Linear unless ``activate_output``) → ``LayerNorm`` (after every
Linear, the last one included) → ``Dropout`` when ``dropout_structure[i+1] > 0``.
Widths are ``int(dim * ratio)``, i.e. truncated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from .activations import adds_activation_module, make_activation

# NovelAI-era key names and their A1111 equivalents (A1111's ``fix_old_state_dict``).
OLD_KEY_NAMES = {
    "linear1.weight": "linear.0.weight",
    "linear1.bias": "linear.0.bias",
    "linear2.weight": "linear.1.weight",
    "linear2.bias": "linear.1.bias",
}


# Larger layers cannot be real (torch cannot even describe them on the meta device).
MAX_WIDTH = 1 << 31


def parse_dropout_structure(
    layer_structure: Sequence[float] | None, use_dropout: bool, last_layer_dropout: bool
) -> list[float]:
    """Dropout probabilities per layer-structure entry, derived as A1111 derives them."""
    if layer_structure is None:
        layer_structure = [1, 2, 1]
    if not use_dropout:
        return [0] * len(layer_structure)
    return [0] + [0.3] * (len(layer_structure) - 3) + [0.3 if last_layer_dropout else 0] + [0]


def _finite(value: float) -> bool:
    """A finite number whose products with a width fit a float (huge ints would overflow)."""
    try:
        return math.isfinite(value) and abs(value) < 1e200
    except (TypeError, OverflowError):
        return False


def layer_widths(dim: int, layer_structure: Sequence[float]) -> list[int]:
    """The feature widths A1111 uses: ``int(dim * ratio)`` for every entry (truncation)."""
    return [int(dim * ratio) for ratio in layer_structure]


def fix_old_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename NovelAI ``linear1``/``linear2`` keys; returns a new dict (the input is not mutated)."""
    fixed = dict(state_dict)
    for old, new in OLD_KEY_NAMES.items():
        if old in fixed:
            fixed[new] = fixed.pop(old)
    return fixed


def build_layers(
    dim: int,
    layer_structure: Sequence[float],
    activation_func: str | None,
    add_layer_norm: bool,
    activate_output: bool,
    dropout_structure: Sequence[float] | None,
) -> list[torch.nn.Module]:
    """The ``nn.Sequential`` contents of one module, in A1111's order.

    Raises ``ValueError``/``KeyError``/``TypeError`` on bad structure or activation;
    :mod:`lib_hypernet.model.hypernetwork` turns those into :class:`HypernetFormatError`.
    """
    if len(layer_structure) < 2 or layer_structure[0] != 1 or layer_structure[-1] != 1:
        raise ValueError(f"layer_structure must start and end with 1, got {list(layer_structure)}")
    if not all(_finite(ratio) for ratio in layer_structure):
        raise ValueError(f"layer_structure entries must be finite numbers, got {list(layer_structure)}")
    if dropout_structure is not None and not all(_finite(p) for p in dropout_structure):
        raise ValueError(f"dropout_structure entries must be finite numbers, got {list(dropout_structure)}")
    widths = layer_widths(dim, layer_structure)
    if min(widths) < 1:
        raise ValueError(f"layer_structure {list(layer_structure)} gives a layer of width 0 for dim {dim}")
    if max(widths) > MAX_WIDTH:
        raise ValueError(
            f"layer_structure {list(layer_structure)} gives a layer of width {max(widths)} for dim {dim}, "
            "far beyond any real hypernetwork"
        )
    if dropout_structure is not None and len(dropout_structure) < len(layer_structure):
        raise ValueError(
            f"dropout_structure {list(dropout_structure)} is shorter than layer_structure {list(layer_structure)}"
        )
    last = len(layer_structure) - 2
    layers: list[torch.nn.Module] = []
    for i in range(len(layer_structure) - 1):
        layers.append(torch.nn.Linear(widths[i], widths[i + 1]))
        if adds_activation_module(activation_func) and (i < last or activate_output):
            layers.append(make_activation(activation_func))  # type: ignore[arg-type]
        if add_layer_norm:
            layers.append(torch.nn.LayerNorm(widths[i + 1]))
        if dropout_structure is not None and dropout_structure[i + 1] > 0:
            p = float(dropout_structure[i + 1])
            if not p < 1:
                raise ValueError(f"dropout probability must be below 1, got {p} in {list(dropout_structure)}")
            layers.append(torch.nn.Dropout(p=p))
    return layers


class HypernetworkModule(torch.nn.Module):
    """``forward(x) = x + MLP(x) * multiplier`` (the operation order of A1111, for bit-equal results).

    ``multiplier`` is an instance attribute (default 1.0) for code that expects
    A1111's object; :func:`lib_hypernet.apply_hypernetworks` passes the strength
    explicitly instead, so one module can serve several strengths at once.
    """

    def __init__(
        self,
        dim: int,
        layer_structure: Sequence[float],
        activation_func: str | None = None,
        add_layer_norm: bool = False,
        activate_output: bool = False,
        dropout_structure: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.multiplier = 1.0
        self.linear = torch.nn.Sequential(
            *build_layers(dim, layer_structure, activation_func, add_layer_norm, activate_output, dropout_structure)
        )

    def forward(self, x: torch.Tensor, multiplier: float | None = None) -> torch.Tensor:
        m = self.multiplier if multiplier is None else multiplier
        return x + self.linear(x) * (m if not self.training else 1)
