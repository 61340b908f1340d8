"""The :class:`Hypernetwork` object: layers per attention width plus the A1111 metadata record."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

import torch

from .. import formats
from ..errors import HypernetFormatError
from ..formats.metadata import METADATA_FIELDS, HypernetMetadata
from .decode import decode
from .module import HypernetworkModule, parse_dropout_structure
from .tensor_modes import ordinary, ordinary_tensors


class Hypernetwork:
    """A loaded or freshly created hypernetwork.

    ``layers[width]`` is ``(module_k, module_v)``; ``meta`` is the file's metadata record, and each of its
    fields also reads (and writes: the record is replaced) as an attribute of the same name
    (``hn.step``, ``hn.layer_structure``, …).  Modules are always in eval mode with
    ``requires_grad=False`` (dropout never runs at inference).
    """

    meta: HypernetMetadata

    def __init__(
        self,
        layers: Mapping[int, tuple[HypernetworkModule, HypernetworkModule]] | None = None,
        meta: HypernetMetadata | None = None,
        *,
        path: str | None = None,
        file_format: str | None = None,
        **fields: Any,
    ) -> None:
        """``fields`` (metadata field names) change ``meta``; an unknown name is a ``TypeError``."""
        meta = (meta or HypernetMetadata()).replace(**fields)
        if meta.dropout_structure is None:
            meta = meta.replace(dropout_structure=parse_dropout_structure(
                meta.layer_structure, meta.use_dropout, meta.last_layer_dropout))
        self.meta = meta
        self.layers: dict[int, tuple[HypernetworkModule, HypernetworkModule]] = dict(layers or {})
        self.path = path
        self.file_format = file_format
        self.ignored_keys: list[str] = []
        self.source_sha256: str | None = None
        self.eval()

    def __getattr__(self, name: str) -> Any:
        if name in METADATA_FIELDS:
            return getattr(self.__dict__["meta"], name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in METADATA_FIELDS:
            value, name = self.meta.replace(**{name: value}), "meta"
        object.__setattr__(self, name, value)

    # ----------------------------------------------------------------- properties
    @property
    def widths(self) -> list[int]:
        return sorted(self.layers)

    @property
    def param_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def parameters(self) -> Iterator[torch.nn.Parameter]:
        for module_k, module_v in self.layers.values():
            yield from module_k.parameters()
            yield from module_v.parameters()

    def modules(self) -> Iterator[HypernetworkModule]:
        for pair in self.layers.values():
            yield from pair

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def metadata(self) -> dict[str, Any]:
        """The A1111 metadata fields with their current values."""
        return self.meta.as_dict()

    # ----------------------------------------------------------------- state
    def eval(self) -> Hypernetwork:
        for module in self.modules():
            module.eval()
            module.requires_grad_(False)
        return self

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Hypernetwork:
        with ordinary_tensors():  # moved weights stay ordinary tensors, even during a Forge generation
            for module in self.modules():
                module.to(device=device, dtype=dtype)
        return self

    def state_dict(self) -> dict[Any, Any]:
        """The dict A1111 writes into a ``.pt`` (same keys, same order, same value types)."""
        raw: dict[Any, Any] = {}
        for width in self.widths:
            module_k, module_v = self.layers[width]
            raw[width] = (_cpu_state(module_k), _cpu_state(module_v))
        raw.update(self.meta.as_dict())
        ds = self.dropout_structure
        raw["last_layer_dropout"] = (ds[-2] != 0) if ds is not None and len(ds) >= 2 else self.last_layer_dropout
        raw["optional_info"] = self.optional_info or None
        return raw

    def save(self, path: str | os.PathLike[str], *, source_sha256: str | None = None) -> None:
        """Write atomically; ``.pt`` (A1111-loadable on any torch) or ``.safetensors`` by suffix.

        The same object always gives the same bytes.  What :func:`load` would refuse (no layers,
        weights that do not fit the structure, NaN weights, metadata of the wrong type) is refused
        here with a :class:`~lib_hypernet.HypernetFormatError` naming ``path``, and nothing is written.
        """
        formats.format_of(path)
        raw = self.state_dict()
        try:
            from_state_dict(raw, path=os.fspath(path))  # exactly the checks load() makes
        except HypernetFormatError as exc:
            raise type(exc)(f"not saved, because the file could not be loaded back: {exc.reason}", path) from exc
        formats.write_raw(path, raw, source_sha256=source_sha256 or self.source_sha256)

    def __repr__(self) -> str:
        return (
            f"Hypernetwork(name={self.name!r}, widths={self.widths}, layer_structure={self.layer_structure}, "
            f"activation_func={self.activation_func!r}, is_layer_norm={self.is_layer_norm})"
        )


def _cpu_state(module: torch.nn.Module) -> OrderedDict[str, torch.Tensor]:
    return OrderedDict((k, ordinary(v.detach().to("cpu"))) for k, v in module.state_dict().items())



# --------------------------------------------------------------------- loading
# --------------------------------------------------------------------- loading
def load(path: str | os.PathLike[str]) -> Hypernetwork:
    """Load a ``.pt`` (A1111 format, safely) or ``.safetensors`` hypernetwork.

    Never reads the ``.optim`` side file (see :func:`lib_hypernet.load_optimizer_state`).
    Raises a :class:`~lib_hypernet.errors.HypernetError` subclass naming the file.
    """
    path = os.fspath(path)
    with ordinary_tensors():  # Forge loads during generation, under inference_mode
        raw = formats.read_raw(path)
        hn = from_state_dict(raw, path=path)
    hn.file_format = formats.format_of(path)
    return hn



def from_state_dict(raw: Mapping[Any, Any], *, path: str | None = None, name: str | None = None) -> Hypernetwork:
    """Build a :class:`Hypernetwork` from an A1111-layout dict, applying A1111's load defaults.

    The weights become ordinary tensors whatever mode the caller (or the dict's tensors) were in."""
    stem = os.path.splitext(os.path.basename(path))[0] if path else None
    with ordinary_tensors():
        decoded = decode(raw, path)
    hn = Hypernetwork(decoded.layers, decoded.meta.replace(name=decoded.meta.name or name or stem), path=path)
    hn.ignored_keys = decoded.ignored_keys
    hn.source_sha256 = decoded.source_sha256
    return hn


__all__ = ["Hypernetwork", "from_state_dict", "load"]
