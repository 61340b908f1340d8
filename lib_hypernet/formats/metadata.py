"""The metadata of an A1111 hypernetwork file: one frozen record, its keys in A1111's order, and the check.

Both formats store exactly these keys (``.pt`` as pickled values, ``.safetensors`` as JSON strings);
:class:`~lib_hypernet.Hypernetwork` exposes them as attributes of the same names.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import HypernetFormatError, short_repr

# Metadata numbers beyond these cannot be real (and would overflow float conversions).
MAX_METADATA_INT = 1 << 63
MAX_LAYER_STRUCTURE_LEN = 100


@dataclass(frozen=True)
class HypernetMetadata:
    """The 13 metadata keys of a hypernetwork file, with A1111's load defaults (a missing key gets these).

    Field order is the order A1111 writes the keys in.
    """

    step: int = 0
    name: str | None = None
    layer_structure: list[float] = dataclasses.field(default_factory=lambda: [1, 2, 1])
    activation_func: str | None = None
    is_layer_norm: bool = False
    weight_initialization: str | None = "Normal"
    sd_checkpoint: str | None = None
    sd_checkpoint_name: str | None = None
    activate_output: bool = True
    use_dropout: bool = False
    dropout_structure: list[float] | None = None
    last_layer_dropout: bool = False
    optional_info: str | None = None

    def replace(self, **changes: Any) -> HypernetMetadata:
        """A copy with ``changes`` (keyword names are the field names; anything else is a ``TypeError``)."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """``{key: value}`` in A1111's key order (lists copied)."""
        return {f: _copy(getattr(self, f)) for f in METADATA_FIELDS}


METADATA_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(HypernetMetadata))
"""The file keys, in the order A1111 writes them."""

# How each key is checked when read from a file (a key's type decides what the checker accepts).
_KINDS = {
    "step": "int", "name": "str?", "layer_structure": "structure", "activation_func": "str?",
    "is_layer_norm": "bool", "weight_initialization": "str?", "sd_checkpoint": "str?", "sd_checkpoint_name": "str?",
    "activate_output": "bool", "use_dropout": "bool", "dropout_structure": "structure?", "last_layer_dropout": "bool",
    "optional_info": "str?",
}
_DEFAULTS = HypernetMetadata()


def read_metadata(raw: Mapping[Any, Any], path: str | None = None) -> HypernetMetadata:
    """The metadata of an A1111-layout dict, checked, with A1111's defaults for missing keys.

    Raises :class:`~lib_hypernet.HypernetFormatError` naming ``path`` for a value of the wrong type.
    """
    values: dict[str, Any] = {}
    for key in METADATA_FIELDS:
        value = raw.get(key, getattr(_DEFAULTS, key))
        if not _CHECKS[_KINDS[key]](value):
            raise HypernetFormatError(f"metadata {key!r} has an invalid value {short_repr(value)}", path)
        values[key] = _CONVERT[_KINDS[key]](value)
    return HypernetMetadata(**values)


def is_number(value: Any) -> bool:
    """A real number that converts to a finite float without overflow (ints within +-2**63)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    if isinstance(value, numbers.Integral):
        try:
            return abs(int(value)) <= MAX_METADATA_INT
        except (TypeError, ValueError, OverflowError):
            return False
    try:
        return math.isfinite(float(value)) and abs(float(value)) <= MAX_METADATA_INT
    except (TypeError, ValueError, OverflowError):
        return False


def plain_number(x: Any) -> int | float:
    """Numpy scalars and the like become Python ints/floats (ints stay ints, as A1111 writes them)."""
    return int(x) if isinstance(x, numbers.Integral) else float(x)


def _structure(v: Any, *, empty_ok: bool) -> bool:
    return (isinstance(v, (list, tuple)) and (empty_ok or len(v) > 0) and len(v) <= MAX_LAYER_STRUCTURE_LEN
            and all(is_number(x) for x in v))


_CHECKS: dict[str, Callable[[Any], bool]] = {
    "bool": lambda v: isinstance(v, (bool, int)) or v is None,
    "int": lambda v: is_number(v) and float(v).is_integer(),
    "structure": lambda v: _structure(v, empty_ok=False),
    "structure?": lambda v: v is None or _structure(v, empty_ok=True),
    "str?": lambda v: v is None or isinstance(v, str),
}
_CONVERT: dict[str, Callable[[Any], Any]] = {
    "bool": bool,
    "int": int,
    "structure": lambda v: [plain_number(x) for x in v],
    "structure?": lambda v: None if v is None else [plain_number(x) for x in v],
    "str?": lambda v: v,
}


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


__all__ = ["METADATA_FIELDS", "HypernetMetadata", "is_number", "plain_number", "read_metadata"]
