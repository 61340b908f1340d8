"""Check a PyTorch pickle for forbidden globals without executing anything.

``check_torch_file`` walks the pickle(s) of a ``torch.save`` file (zip or legacy
format) with an unpickler whose ``find_class`` only knows an allow-list, and
whose allowed names resolve to an inert stand-in: no function from the file is
ever called, not even an allowed one.  A file naming any other global raises
:class:`~lib_hypernet.errors.UnsafeFileError` with the global's name.

Only after this check passes do we hand the file to
``torch.load(weights_only=True)``, which applies torch's own restrictions.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import zipfile
from typing import Any

from ..errors import HypernetFormatError, UnsafeFileError

_STORAGE_TYPES = {
    f"{kind}Storage"
    for kind in ("Float", "Half", "BFloat16", "Double", "Int", "Long", "Short", "Char", "Byte", "Bool")
}

# (module, name) pairs a hypernetwork or optimizer-state file may reference.
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("collections", "OrderedDict"),
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch._utils", "_rebuild_parameter"),
        ("torch", "Size"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("__builtin__", "set"),
        ("_codecs", "encode"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "dtype"),
    }
    | {("torch", name) for name in _STORAGE_TYPES}
)

# What A1111 1.10.1's restricted loader (modules/safe.py) allows, for telling users whether A1111 loads a file.
A1111_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("collections", "OrderedDict"),
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch._utils", "_rebuild_parameter"),
        ("torch._utils", "_rebuild_device_tensor_from_numpy"),
        ("torch", "float32"),
        ("torch.nn.modules.container", "ParameterDict"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy", "dtype"),
        ("numpy", "ndarray"),
        ("_codecs", "encode"),
        ("__builtin__", "set"),
    }
    | {("torch", f"{kind}Storage") for kind in ("Float", "Half", "Int", "Long", "Double", "Byte", "BFloat16")}
)
# A1111 1.10.1's restricted loader accepts only these zip entry names.
A1111_ZIP_NAME_RE = re.compile(r"^([^/]+)/((data/\d+)|version|byteorder|.data/serialization_id|(data\.pkl))$")
_DATA_PKL_RE = re.compile(r"^([^/]+)/data\.pkl$")


class _Inert:
    """What every allowed global resolves to during the check: accepts anything, does nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> _Inert:
        return _Inert()

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass


class _CheckingUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, path: str, allowed: frozenset[tuple[str, str]] = ALLOWED_GLOBALS) -> None:
        super().__init__(file)
        self._path = path
        self._allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._allowed:
            return _Inert
        raise UnsafeFileError(
            f"refused to load: the file references the Python global '{module}.{name}', which a hypernetwork "
            "never needs (it could run code). Nothing from the file was executed. "
            "Only use this file if you trust its source, and convert it to .safetensors in a sandbox.",
            self._path,
            global_name=f"{module}.{name}",
        )

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise HypernetFormatError(
                f"not a readable PyTorch file (truncated, corrupt or another format: unexpected persistent id "
                f"{pid!r} in the pickle)",
                self._path,
            )
        return _Inert()


def is_zip_file(path: str | os.PathLike[str]) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def check_torch_file(path: str | os.PathLike[str]) -> str:
    """Verify every pickle in a torch file against the allow-list.

    Returns ``"zip"`` or ``"legacy"`` (the container format).  Raises
    :class:`UnsafeFileError` for a forbidden global and :class:`HypernetFormatError`
    when the file is not a readable torch file at all.
    """
    path = os.fspath(path)
    if is_zip_file(path):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
                pickles = [n for n in names if _DATA_PKL_RE.match(n)]
                if len(pickles) != 1:
                    raise HypernetFormatError(
                        f"not a PyTorch file: expected one '<name>/data.pkl' in the zip, found {len(pickles)}", path
                    )
                data = archive.read(pickles[0])
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise HypernetFormatError(f"the zip container is corrupt or truncated ({exc}); download it again", path) from exc
        _check_pickles(io.BytesIO(data), path, count=1)
        return "zip"
    with open(path, "rb") as f:
        # legacy torch.save: magic number, protocol, sys info, the object, the storage keys.
        _check_pickles(f, path, count=5)
    return "legacy"


def _check_pickles(file: Any, path: str, count: int, allowed: frozenset[tuple[str, str]] = ALLOWED_GLOBALS) -> None:
    unpickler = _CheckingUnpickler(file, path, allowed)
    for _ in range(count):
        try:
            unpickler.load()
        except (UnsafeFileError, HypernetFormatError):
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
                MemoryError, RecursionError, UnicodeDecodeError) as exc:
            raise HypernetFormatError(
                f"not a readable PyTorch file (truncated, corrupt or another format: {type(exc).__name__}: {exc})", path
            ) from exc


def a1111_zip_entries_rejected(path: str | os.PathLike[str]) -> list[str]:
    """Why A1111 1.10.1's restricted loader would refuse this file (empty when it loads it).

    Lists zip entries outside A1111's allowed names (the ``.format_version`` and
    ``.storage_alignment`` that torch >= 2.x writes) and pickle globals outside A1111's
    allow-list (as ``"global module.name"``).  Never raises.
    """
    path = os.fspath(path)
    try:
        if is_zip_file(path):
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
                rejected = [n for n in names if not A1111_ZIP_NAME_RE.match(n)]
                pickles = [n for n in names if _DATA_PKL_RE.match(n)]
                if len(pickles) != 1:
                    return [*rejected, f"{len(pickles)} data.pkl entries"]
                data = io.BytesIO(archive.read(pickles[0]))
            return rejected + _a1111_global_rejections(data, path, 1)
        with open(path, "rb") as f:
            return _a1111_global_rejections(f, path, 5)
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        return [f"unreadable ({exc})"]


def _a1111_global_rejections(file: Any, path: str, count: int) -> list[str]:
    try:
        _check_pickles(file, path, count, A1111_GLOBALS)
    except UnsafeFileError as exc:
        return [f"global {exc.global_name}"]
    except HypernetFormatError as exc:
        return [exc.reason]
    return []
