"""Creating a new hypernetwork with A1111's options and initialisation (nothing is written to disk)."""

from __future__ import annotations

import contextlib
import itertools
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

import torch

from ..errors import ActivationError, HypernetFormatError
from ..formats.metadata import HypernetMetadata
from .activations import UnusableActivationError
from .hypernetwork import Hypernetwork
from .module import MAX_WIDTH, HypernetworkModule, layer_widths
from .options import WEIGHT_INITIALIZATIONS
from .tensor_modes import ordinary_tensors

# --------------------------------------------------------------------- creating
MAX_CREATE_BYTES = 4 * 1024**3
"""The largest hypernetwork :func:`create` builds by default (as a float32 file); real ones are far smaller."""



def create(
    name: str,
    sizes: Iterable[int] = (768, 320, 640, 1280),
    layer_structure: Sequence[float] | str = (1, 2, 1),
    activation_func: str | None = "linear",
    weight_initialization: str = "Normal",
    is_layer_norm: bool = False,
    use_dropout: bool = False,
    dropout_structure: Sequence[float] | str | None = None,
    activate_output: bool = False,
    optional_info: str | None = None,
    seed: int | None = None,
    *,
    max_bytes: int | None = MAX_CREATE_BYTES,
) -> Hypernetwork:
    """A new hypernetwork with A1111's creation options and initialisation.

    ``layer_structure``/``dropout_structure`` accept lists or A1111's comma
    strings (``"1, 2, 1"``).  As in A1111, ``dropout_structure`` is used only
    with ``use_dropout`` and is all zeros otherwise.  ``seed`` makes the
    initial weights (and so the saved file) reproducible.  Nothing is written to disk.

    Every argument is checked before anything is allocated: a bad one raises
    :class:`~lib_hypernet.HypernetFormatError` (a ``ValueError``; :class:`~lib_hypernet.ActivationError`
    for the activation), as does a network whose float32 weights would exceed ``max_bytes``
    (``None``: no limit).
    """
    if not isinstance(name, str):
        raise HypernetFormatError(f"name must be a string, got {name!r}")
    widths = _parse_sizes(sizes)
    ls = _parse_structure(layer_structure, "layer_structure")
    if len(ls) < 2 or ls[0] != 1 or ls[-1] != 1:
        raise HypernetFormatError(f"layer_structure must start and end with 1 (e.g. 1, 2, 1), got {_listed(ls)}")
    if any(not x > 0 for x in ls):
        raise HypernetFormatError(f"layer_structure entries must be positive, got {_listed(ls)}")
    for flag, value in (("is_layer_norm", is_layer_norm), ("use_dropout", use_dropout),
                        ("activate_output", activate_output)):
        if not isinstance(value, bool):
            raise HypernetFormatError(f"{flag} must be True or False, got {value!r}")
    if use_dropout and dropout_structure not in (None, ""):
        dropout: list[float] = _parse_structure(dropout_structure, "dropout_structure")
        if len(dropout) != len(ls):
            raise HypernetFormatError(f"dropout_structure {dropout} must have as many entries as layer_structure {ls}")
        if any(not 0 <= p < 1 for p in dropout):
            raise HypernetFormatError(f"dropout probabilities must be in [0, 1), got {dropout}")
    else:
        dropout = [0] * len(ls)
    if weight_initialization not in WEIGHT_INITIALIZATIONS:
        raise HypernetFormatError(
            f"unknown weight_initialization {weight_initialization!r}; use one of {', '.join(WEIGHT_INITIALIZATIONS)}"
        )
    if activation_func is not None and not isinstance(activation_func, str):
        raise ActivationError(f"activation_func must be a name such as 'relu' or None, got {activation_func!r}")
    if optional_info is not None and not isinstance(optional_info, str):
        raise HypernetFormatError(f"optional_info must be a string or None, got {optional_info!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise HypernetFormatError(f"seed must be a whole number or None, got {seed!r}")
    for width in widths:
        if min(layer_widths(width, ls)) < 1:
            raise HypernetFormatError(f"layer_structure {_listed(ls)} gives a layer of width 0 for size {width}")
    params = estimate_parameters(widths, ls, is_layer_norm)
    if max_bytes is not None and params * 4 > max_bytes:
        raise HypernetFormatError(
            f"sizes {', '.join(map(str, widths))} with layer_structure {_listed(ls)} would make "
            f"{params:,} parameters, a {_gib(params * 4)} file (the limit is {_gib(max_bytes)}); "
            "Stable Diffusion's sizes are 320 to 2048 (SD1: 768, 320, 640, 1280)"
        )
    layers = {}
    rng = torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext()
    with rng, ordinary_tensors():
        if seed is not None:
            torch.manual_seed(int(seed))
        for width in widths:
            layers[width] = _new_pair(width, ls, activation_func, weight_initialization, is_layer_norm,
                                      activate_output, dropout)
    meta = HypernetMetadata(
        name=name,
        layer_structure=ls,
        activation_func=activation_func,
        is_layer_norm=is_layer_norm,
        weight_initialization=weight_initialization,
        activate_output=activate_output,
        use_dropout=use_dropout,
        dropout_structure=dropout,
        last_layer_dropout=len(dropout) >= 2 and dropout[-2] != 0,
        optional_info=optional_info,
    )
    return Hypernetwork(layers, meta)


def estimate_parameters(sizes: Iterable[int], layer_structure: Sequence[float], is_layer_norm: bool = False) -> int:
    """The parameter count of the k and v modules of all ``sizes`` (without building them).

    Counts Linear weights and biases and LayerNorm weights and biases; a parametric activation
    (PReLU: one weight) adds a negligible few.
    """
    total = 0
    for size in sizes:
        dims = layer_widths(size, layer_structure)
        for d_in, d_out in itertools.pairwise(dims):
            total += d_in * d_out + d_out + (2 * d_out if is_layer_norm else 0)
    return 2 * total


def _parse_sizes(sizes: Iterable[int]) -> list[int]:
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Iterable):
        raise HypernetFormatError(f"sizes must be a list of whole numbers such as [768, 320, 640, 1280], got {sizes!r}")
    values = list(sizes)
    for size in values:
        if isinstance(size, bool) or not isinstance(size, numbers.Integral):
            raise HypernetFormatError(f"sizes must be whole numbers such as 768, got {size!r} in {values!r}")
        if not 1 <= size <= MAX_WIDTH:
            raise HypernetFormatError(f"sizes must be positive widths such as 768, got {size!r} in {values!r}")
    widths = sorted({int(s) for s in values})
    if not widths:
        raise HypernetFormatError("a hypernetwork needs at least one module size (e.g. 768)")
    return widths


def _listed(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{x:g}" for x in values) + "]"


def _gib(n: int) -> str:
    return f"{n / 1024**3:,.1f} GiB" if n >= 1024**3 else f"{n / 1024**2:,.1f} MiB"


def _new_pair(
    width: int,
    layer_structure: list[float],
    activation_func: str | None,
    weight_initialization: str,
    is_layer_norm: bool,
    activate_output: bool,
    dropout: list[float],
) -> tuple[HypernetworkModule, HypernetworkModule]:
    modules = []
    for _ in "kv":
        try:
            with torch.device("meta"):  # no default initialisation: A1111's own follows
                module = HypernetworkModule(width, layer_structure, activation_func, is_layer_norm, activate_output, dropout)
        except KeyError as exc:
            raise ActivationError(f"unknown activation function {activation_func!r}") from exc
        except (TypeError, UnusableActivationError) as exc:
            raise ActivationError(f"cannot use activation function {activation_func!r}: {exc}") from exc
        except ValueError as exc:
            raise HypernetFormatError(str(exc)) from exc
        module.to_empty(device="cpu")
        for layer in module.linear:
            reset = getattr(layer, "reset_parameters", None)
            if type(layer) not in (torch.nn.Linear, torch.nn.LayerNorm) and callable(reset):
                reset()  # e.g. PReLU's weight (0.25)
        _initialise(module, weight_initialization, activation_func)
        module.requires_grad_(False)
        modules.append(module)
    return modules[0], modules[1]


def _parse_structure(value: Sequence[float] | str, what: str) -> list[float]:
    """A1111's comma string (``"1, 2, 1"``) or a sequence of real numbers, as floats."""
    try:
        if isinstance(value, str):
            items = [float(x.strip()) for x in value.split(",")]
        else:
            if isinstance(value, (bytes, Mapping)) or not isinstance(value, Iterable):
                raise TypeError
            listed = list(value)
            if any(isinstance(x, bool) or not isinstance(x, numbers.Real) for x in listed):
                raise TypeError
            items = [float(x) for x in listed]
    except (ValueError, TypeError) as exc:
        raise HypernetFormatError(f"{what} must be numbers separated by commas, got {value!r}") from exc
    if any(not math.isfinite(x) for x in items):
        raise HypernetFormatError(f"{what} must be finite numbers, got {value!r}")
    return items


def _initialise(module: HypernetworkModule, scheme: str, activation_func: str | None) -> None:
    """A1111's initialisation: every LayerNorm and 'Normal' Linear get N(0, 0.01) weights and zero bias."""
    nonlinearity: Literal["leaky_relu", "relu"] = "leaky_relu" if activation_func == "leakyrelu" else "relu"
    init = torch.nn.init
    with torch.no_grad():
        for layer in module.linear:
            if not (type(layer) is torch.nn.Linear or type(layer) is torch.nn.LayerNorm):
                continue
            weight, bias = layer.weight, layer.bias
            assert isinstance(weight, torch.Tensor) and isinstance(bias, torch.Tensor)
            if scheme == "Normal" or type(layer) is torch.nn.LayerNorm:
                init.normal_(weight, mean=0.0, std=0.01)
            elif scheme == "XavierUniform":
                init.xavier_uniform_(weight)
            elif scheme == "XavierNormal":
                init.xavier_normal_(weight)
            elif scheme == "KaimingUniform":
                init.kaiming_uniform_(weight, nonlinearity=nonlinearity)
            else:
                init.kaiming_normal_(weight, nonlinearity=nonlinearity)
            init.zeros_(bias)


__all__ = ["MAX_CREATE_BYTES", "WEIGHT_INITIALIZATIONS", "create", "estimate_parameters"]
