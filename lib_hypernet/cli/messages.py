"""The command line's lines on stderr (``error: …``, ``warning: …``), its words for an error, and the usage
error a command raises after parsing; standard library only, like the parser."""

from __future__ import annotations

import sys

from ..errors import HypernetError, HypernetExistsError

FORCE_HINT = "pass --force to overwrite it"


class UsageError(Exception):
    """A bad combination of arguments found after parsing (exit status 2)."""


def print_error(message: str) -> None:
    """``error: message`` on stderr, on one line."""
    sys.stdout.flush()
    print("error: " + " ".join(str(message).splitlines()), file=sys.stderr)


def print_warning(message: str) -> None:
    """``warning: message`` on stderr, on one line."""
    sys.stdout.flush()
    print("warning: " + " ".join(str(message).splitlines()), file=sys.stderr)


def error_text(exc: HypernetError) -> str:
    """The command line's words for an error: a refusal to overwrite says how to ask for it."""
    return f"{exc}; {FORCE_HINT}" if isinstance(exc, HypernetExistsError) else str(exc)
