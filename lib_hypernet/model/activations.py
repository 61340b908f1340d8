"""The activation functions a hypernetwork file may name, resolved exactly as A1111 1.10.1 does.

A1111 starts from seven fixed names (note ``swish`` is :class:`torch.nn.Hardswish`,
not SiLU) and then adds every class defined in ``torch.nn.modules.activation``
under its lower-cased class name.  Names are case-sensitive; ``"linear"`` and
``None`` mean "no activation module".  Classes are instantiated without
arguments, so ``threshold`` and ``multiheadattention`` cannot be built.
"""

from __future__ import annotations

import inspect
from typing import cast

import torch

_FIXED: dict[str, type[torch.nn.Module]] = {
    "linear": torch.nn.Identity,
    "relu": torch.nn.ReLU,
    "leakyrelu": torch.nn.LeakyReLU,
    "elu": torch.nn.ELU,
    "swish": torch.nn.Hardswish,
    "tanh": torch.nn.Tanh,
    "sigmoid": torch.nn.Sigmoid,
}

ACTIVATIONS: dict[str, type[torch.nn.Module]] = dict(_FIXED)
ACTIVATIONS.update(
    {
        name.lower(): cast("type[torch.nn.Module]", cls)
        for name, cls in inspect.getmembers(torch.nn.modules.activation)
        if inspect.isclass(cls) and cls.__module__ == "torch.nn.modules.activation"
    }
)

# Accepted by A1111's constructor and loader but unusable: GLU halves the width, so the
# following Linear gets the wrong input size and the first generation fails.  We refuse
# it up front instead of breaking a generation.
UNUSABLE: dict[str, str] = {
    "glu": "GLU halves the feature width, so the next Linear layer cannot take its output "
    "(A1111 loads such a file but every generation using it fails)",
}

# Names offered by A1111's "Create hypernetwork" UI (it hides these two).
HIDDEN_IN_CREATE_UI = ("hardswish", "multiheadattention")

# Activations that act on each element independently and have no parameters: a fused
# implementation may run them on concatenated or flattened tensors.
ELEMENTWISE = frozenset(
    {
        "relu", "leakyrelu", "elu", "swish", "tanh", "sigmoid", "celu", "gelu", "hardshrink",
        "hardsigmoid", "hardswish", "hardtanh", "logsigmoid", "mish", "relu6", "rrelu", "selu",
        "silu", "softplus", "softshrink", "softsign", "tanhshrink",
    }
)


class UnusableActivationError(ValueError):
    """The activation builds but cannot work in a hypernetwork MLP (see ``UNUSABLE``)."""


def adds_activation_module(activation_func: str | None) -> bool:
    """Whether A1111 inserts an activation module for this name (``linear``/``None`` do not)."""
    return not (activation_func == "linear" or activation_func is None)


def make_activation(activation_func: str) -> torch.nn.Module:
    """Instantiate an activation module by its A1111 name.

    Raises ``KeyError`` for unknown names, :class:`UnusableActivationError` (a ``ValueError``) for unusable ones and
    ``TypeError`` when the class needs constructor arguments (as A1111 does).
    """
    if activation_func in UNUSABLE:
        raise UnusableActivationError(UNUSABLE[activation_func])
    cls = ACTIVATIONS[activation_func]
    return cls()


def creatable_activations() -> list[str]:
    """Names usable for a new hypernetwork (those that build and work), sorted."""
    names = []
    for name in ACTIVATIONS:
        if name in UNUSABLE:
            continue
        try:
            make_activation(name)
        except TypeError:
            continue
        names.append(name)
    return sorted(names)
