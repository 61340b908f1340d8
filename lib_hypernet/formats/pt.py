"""A1111's ``.pt`` hypernetwork files: a ``torch.save`` of a plain dict.

Reading never executes code from the file (allow-list check, then
``torch.load(weights_only=True)``).  Writing uses torch's legacy (non-zip)
serialization, because A1111 1.10.1's restricted loader rejects the
``.format_version``/``.storage_alignment`` zip entries newer torch writes,
through our own byte-reproducible writer (:mod:`.pt_legacy_writer`).
"""

from __future__ import annotations

import os
import pickle
import zipfile
from typing import Any

import torch

from .._compat import safe_globals
from ..errors import HypernetFileError, HypernetFormatError, UnsafeFileError
from ..fileio import atomic_write
from . import pt_legacy_writer
from .safe_unpickle import check_torch_file


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
    """Safely read any ``torch.save`` file (``.pt`` or ``.optim``) into plain Python objects on the CPU."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise HypernetFileError("file not found", path)
    if os.path.getsize(path) == 0:
        raise HypernetFormatError("the file is empty (an interrupted download or copy?)", path)
    check_torch_file(path)
    try:
        with safe_globals(_numpy_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except UnsafeFileError:
        raise
    except pickle.UnpicklingError as exc:
        raise UnsafeFileError(f"refused by torch's weights-only loader: {exc}".splitlines()[0], path) from exc
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, OSError, KeyError, TypeError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HypernetFormatError(f"not a readable PyTorch file (truncated or corrupt?): {first_line}", path) from exc


def write_torch_file(path: str | os.PathLike[str], obj: Any) -> None:
    """Atomically write ``obj`` in torch's legacy format, which every A1111 version (and torch) loads.

    Byte-reproducible: the same object gives the same bytes in every process (see
    :mod:`~lib_hypernet.formats.pt_legacy_writer`).
    """
    atomic_write(path, lambda f: pt_legacy_writer.save_legacy(obj, f))
