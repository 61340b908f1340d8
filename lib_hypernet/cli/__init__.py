"""The ``hypernet`` command line (``python -m lib_hypernet``): arguments, commands, text, ``--json``.

:mod:`.parser` the arguments and exit statuses (no torch: help and usage errors answer at once), :mod:`.commands`
the commands, :mod:`.render` their text, :mod:`.schema` their one ``--json`` form, :mod:`.messages` the error
lines, :mod:`.progress` the progress bar.  Every file it writes goes through :mod:`lib_hypernet.library.actions`,
like the panel and the HTTP API."""

from __future__ import annotations


def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 file errors, 2 usage errors, 130 interrupted)."""
    from .parser import main as run

    return run(argv, prog=prog)


__all__ = ["main"]
