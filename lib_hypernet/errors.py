"""Exception types raised by :mod:`lib_hypernet`.

Every error carries the file it is about (``path``, possibly ``None`` for
in-memory objects) and a message that says what to do.  Callers that want to
keep going after one bad file catch :class:`HypernetError`.
"""

from __future__ import annotations

import os
import reprlib
from typing import Any

_REPR = reprlib.Repr()
_REPR.maxstring = 80
_REPR.maxother = 80
_REPR.maxlevel = 3


def short_repr(value: Any) -> str:
    """A bounded repr for error messages (a file's values may be huge)."""
    return _REPR.repr(value)


def shorten(text: str, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters (user input echoed in messages and logs)."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


class HypernetError(Exception):
    """Base class of every error raised by lib_hypernet."""

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None) -> None:
        self.path = os.fspath(path) if path is not None else None
        self.reason = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class HypernetFormatError(HypernetError, ValueError):
    """The file is readable but is not a valid hypernetwork (keys, shapes, metadata, values)."""


class UnsafeFileError(HypernetError):
    """The file's pickle references a global outside the allow-list; nothing was executed."""

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None, global_name: str | None = None) -> None:
        self.global_name = global_name
        super().__init__(message, path)


class HypernetFileError(HypernetError, OSError):
    """The file is missing, truncated, or cannot be read or written."""


class ActivationError(HypernetFormatError):
    """The activation function is unknown or cannot be built the way A1111 builds it."""


class HypernetNotFoundError(HypernetError, LookupError):
    """No hypernetwork file answers to a name (or several do); ``candidates`` lists close or clashing names."""

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None, *, name: str = "",
                 candidates: list[str] | None = None) -> None:
        self.name = name
        self.candidates = list(candidates or [])
        super().__init__(message, path)


class HypernetExistsError(HypernetFileError, FileExistsError):
    """The file to write already exists and overwriting was not asked for (each front end says how to ask)."""


class OutsideFolderError(HypernetFileError, PermissionError):
    """The file to write resolves outside the hypernetwork folder (through a symbolic link)."""


class InvalidNameError(HypernetError, ValueError):
    """A name for a new file that A1111's rules refuse; ``rule`` says which.

    ``"separator"``: it has a folder in it; ``"hidden"``: it starts with a dot (the webui skips
    hidden files); ``"empty"``: nothing is left once reduced to the allowed characters.
    """

    def __init__(self, message: str, *, name: str, rule: str) -> None:
        self.name = name
        self.rule = rule
        super().__init__(message)
