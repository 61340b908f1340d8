"""A1111's ``.pt`` hypernetwork files: a ``torch.save`` of a plain dict.

Reading never executes code from the file (the checks of :mod:`.safe_unpickle`, then the
original ``torch.serialization.load(weights_only=True)`` on the same open file).  Writing uses
torch's legacy (non-zip)
serialization, because A1111 1.10.1's restricted loader rejects the
``.format_version``/``.storage_alignment`` zip entries newer torch writes,
through our own byte-reproducible writer (:mod:`.pt_legacy_writer`).
"""

from __future__ import annotations

import os
import pickle
from typing import Any, BinaryIO

import torch

from .._compat import safe_globals
from ..errors import HypernetFileError, HypernetFormatError, UnsafeFileError
from . import pt_legacy_writer
from .fileio import atomic_write
from .fileview import open_regular
from .safe_unpickle import inspect_open_file


def _numpy_safe_globals() -> list[Any]:
    try:
        import numpy as np
    except ImportError:
        return []
    found: list[Any] = [np.dtype]
    for module_name in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            module = __import__(module_name, fromlist=["scalar"])
        except ImportError:
            continue
        found.append(module.scalar)
        break
    found.extend(type(np.dtype(code)) for code in ("i8", "i4", "f8", "f4", "?"))
    return found


def read_torch_file(path: str | os.PathLike[str]) -> Any:
    """Safely read any ``torch.save`` file (``.pt`` or ``.optim``) into plain Python objects on the CPU.

    The file is opened once: :func:`inspect_open_file` checks it (nothing executed, memory bounded),
    then the same open file goes to the original ``torch.serialization.load`` with ``weights_only=True``
    -- never to ``torch.load``, which a host may have replaced (A1111's ``modules/safe.py`` returns
    ``None`` for zips newer torch writes).  Every failure is a :class:`HypernetError` naming the file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise HypernetFileError("file not found", path)
    with open_regular(path) as f:
        info = inspect_open_file(f, path)
        f.seek(0)
        obj = _original_torch_load(f, path)
    if obj is None and info.value is not None:
        raise HypernetFileError(
            "torch's loader returned nothing for a file that holds data (did another extension replace "
            "torch.serialization.load?); the file itself passed every check",
            path,
        )
    return obj


def _original_torch_load(f: BinaryIO, path: str) -> Any:
    try:
        with safe_globals(_numpy_safe_globals()):
            return torch.serialization.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        message = _first_line(exc)
        if "weights only" in message.lower() or "weights_only" in message.lower():
            raise UnsafeFileError(f"refused by torch's weights-only loader: {message}", path) from exc
        raise HypernetFormatError(f"not a readable PyTorch file (truncated or corrupt?): {message}", path) from exc
    except Exception as exc:  # torch's reader raises many kinds; every bad file must give ours
        raise HypernetFormatError(
            f"not a readable PyTorch file (truncated or corrupt?): {type(exc).__name__}: {_first_line(exc)}", path
        ) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= 300 else line[:300] + "…"


def write_torch_file(path: str | os.PathLike[str], obj: Any) -> None:
    """Atomically write ``obj`` in torch's legacy format, which every A1111 version (and torch) loads.

    Byte-reproducible: the same object gives the same bytes in every process (see
    :mod:`~lib_hypernet.formats.pt_legacy_writer`).
    """
    atomic_write(path, lambda f: pt_legacy_writer.save_legacy(obj, f))
