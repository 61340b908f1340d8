"""A byte-reproducible writer for torch's legacy (non-zip) ``torch.save`` format.

The file is what ``torch.save(obj, f, _use_new_zipfile_serialization=False)`` writes —
five pickles (protocol 2) and then the raw storage bytes — with one difference: torch
names each storage by its memory address, so the same weights saved twice differ in
bytes (and therefore in sha256 and A1111's short hash).  Here storages are named
``"0"``, ``"1"``, … in the order the pickle first meets them, so the same object gives
the same bytes in every process.

Layout (what ``torch.load`` and A1111 1.10.1's restricted loader read)::

    pickle  MAGIC_NUMBER                        (0x1950a86a20f9469cfc6c)
    pickle  PROTOCOL_VERSION                    (1001)
    pickle  sys_info                            {"protocol_version", "little_endian", "type_sizes"}
    pickle  the object; every tensor is         torch._utils._rebuild_tensor_v2(
                                                    persistent ("storage", torch.<T>Storage, key, "cpu", numel, None),
                                                    offset, size, stride, requires_grad, OrderedDict())
    pickle  the storage keys, in data order     ["0", "1", ...]
    per key int64 numel, then the storage's bytes (little-endian)

Only globals in A1111's allow-list are referenced (``collections.OrderedDict``,
``torch._utils._rebuild_tensor_v2``/``_rebuild_parameter``, ``torch.<T>Storage``).
"""

from __future__ import annotations

import ctypes
import pickle
import struct
import sys
from collections import OrderedDict
from typing import Any, BinaryIO

import torch

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
PICKLE_PROTOCOL = 2
# torch.serialization's SHORT_SIZE, INT_SIZE, LONG_SIZE (fixed by the format, not by the platform).
TYPE_SIZES = {"short": 2, "int": 4, "long": 4}

# The legacy storage class torch pickles for each dtype (torch.storage._dtype_to_storage_type_map()).
_STORAGE_TYPES: dict[torch.dtype, str] = {
    torch.float64: "DoubleStorage",
    torch.float32: "FloatStorage",
    torch.float16: "HalfStorage",
    torch.bfloat16: "BFloat16Storage",
    torch.int64: "LongStorage",
    torch.int32: "IntStorage",
    torch.int16: "ShortStorage",
    torch.int8: "CharStorage",
    torch.uint8: "ByteStorage",
    torch.bool: "BoolStorage",
}


class _StorageRef:
    """Stands in a tensor's pickle for its storage; pickled as a persistent id."""

    __slots__ = ("key", "numel", "storage_type")

    def __init__(self, key: str, storage_type: type, numel: int) -> None:
        self.key = key
        self.storage_type = storage_type
        self.numel = numel


class _Pickler(pickle.Pickler):
    def __init__(self, file: BinaryIO) -> None:
        super().__init__(file, protocol=PICKLE_PROTOCOL)
        self.storages: dict[int, tuple[_StorageRef, torch.dtype, torch.Tensor]] = {}  # by storage identity

    def persistent_id(self, obj: Any) -> tuple[Any, ...] | None:
        if type(obj) is _StorageRef:
            return ("storage", obj.storage_type, obj.key, "cpu", obj.numel, None)
        return None

    def reducer_override(self, obj: Any) -> Any:
        if not isinstance(obj, torch.Tensor):
            return NotImplemented
        return self._reduce_tensor(obj)

    def _reduce_tensor(self, tensor: torch.Tensor) -> tuple[Any, tuple[Any, ...]]:
        if type(tensor) not in (torch.Tensor, torch.nn.Parameter):
            raise TypeError(f"cannot write a {type(tensor).__name__} (only plain tensors) in a legacy .pt file")
        if tensor.layout != torch.strided or tensor.is_quantized:
            raise TypeError(f"cannot write a {tensor.layout} tensor in a legacy .pt file (only dense tensors)")
        if tensor.dtype not in _STORAGE_TYPES:
            raise TypeError(f"cannot write a {tensor.dtype} tensor in a legacy .pt file")
        data = tensor.detach()
        if data.device.type != "cpu":
            data = data.to("cpu")
        storage = data.untyped_storage()
        identity = storage._cdata
        known = self.storages.get(identity)
        if known is None:
            element_size = data.element_size()
            ref = _StorageRef(str(len(self.storages)), getattr(torch, _STORAGE_TYPES[data.dtype]),
                              storage.nbytes() // element_size)
            self.storages[identity] = (ref, data.dtype, data)  # keeps the storage alive until it is written
        else:
            ref, dtype, _ = known
            if dtype != data.dtype:
                raise TypeError("cannot write tensors that view the same storage as different dtypes")
        args: tuple[Any, ...] = (ref, data.storage_offset(), tuple(data.size()), tuple(data.stride()), bool(tensor.requires_grad),
                OrderedDict())
        if type(tensor) is torch.nn.Parameter:
            inner = _Rebuilt(torch._utils._rebuild_tensor_v2, (*args[:4], False, OrderedDict()))
            return torch._utils._rebuild_parameter, (inner, bool(tensor.requires_grad), OrderedDict())
        return torch._utils._rebuild_tensor_v2, args


class _Rebuilt:
    """A nested reduce (the tensor inside a ``_rebuild_parameter`` call)."""

    __slots__ = ("args", "func")

    def __init__(self, func: Any, args: tuple[Any, ...]) -> None:
        self.func = func
        self.args = args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.func, self.args


def _storage_bytes(tensor: torch.Tensor) -> memoryview:
    """The bytes of the tensor's whole (CPU) storage, without copying them."""
    storage = tensor.untyped_storage()
    nbytes = storage.nbytes()
    if not nbytes:
        return memoryview(b"")
    return memoryview((ctypes.c_char * nbytes).from_address(storage.data_ptr())).cast("B")


def _canonical(obj: Any) -> Any:
    """A copy whose equal strings are one object and whose containers are all distinct.

    The pickle memo writes a repeated object once and then refers to it, so the bytes depend on
    object identity: whether two equal strings are one object differs between a created and a
    loaded hypernetwork.  After this copy identity follows from the values alone.
    """
    kind = type(obj)
    if kind is str:
        return sys.intern(obj)
    if kind is dict or kind is OrderedDict:
        return kind((_canonical(k), _canonical(v)) for k, v in obj.items())
    if kind is list or kind is tuple:
        return kind(_canonical(x) for x in obj)
    return obj


def save_legacy(obj: Any, f: BinaryIO) -> None:
    """Write ``obj`` to the binary file ``f`` in torch's legacy format, byte-reproducibly (see the module docstring).

    ``obj`` may hold dicts (any insertion order is kept), ``OrderedDict``, lists, tuples,
    numbers, strings, ``None`` and dense tensors on any device (written as CPU tensors).
    Raises ``TypeError`` for anything a weights-only loader could not read back.
    """
    if sys.byteorder != "little":  # pragma: no cover - every platform torch supports today
        raise TypeError("writing legacy .pt files is implemented for little-endian machines only")
    sys_info = {"protocol_version": PROTOCOL_VERSION, "little_endian": True, "type_sizes": dict(TYPE_SIZES)}
    for header in (MAGIC_NUMBER, PROTOCOL_VERSION, sys_info):
        pickle.dump(header, f, protocol=PICKLE_PROTOCOL)
    pickler = _Pickler(f)
    pickler.dump(_canonical(obj))
    storages = list(pickler.storages.values())
    pickle.dump([ref.key for ref, _, _ in storages], f, protocol=PICKLE_PROTOCOL)
    for ref, _, data in storages:
        f.write(struct.pack("<q", ref.numel))
        f.write(_storage_bytes(data))


__all__ = ["save_legacy"]
