"""The ``hypernet`` command line (``python -m lib_hypernet``): :mod:`.commands` holds the parser and the
commands, :mod:`.progress` the progress bar.  Every file it writes goes through
:mod:`lib_hypernet.library.actions`, like the panel and the HTTP API."""

from __future__ import annotations


def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 file errors, 2 usage errors, 130 interrupted)."""
    from .commands import main as run

    return run(argv, prog=prog)


__all__ = ["main"]
