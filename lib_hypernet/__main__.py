"""``python -m lib_hypernet``: the command line (see :mod:`lib_hypernet.cli.commands`).

The CLI (and torch) is imported inside :func:`run`, so Ctrl-C while it starts up ends with one
line and exit status 130, like Ctrl-C later on, instead of a traceback.
"""

from __future__ import annotations

import sys


def run(prog: str | None = None) -> int:
    """Import and run the command line; the ``hypernet`` console script and ``python -m`` both call this."""
    try:
        from .cli.commands import main
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        return 130
    return main(prog=prog)


if __name__ == "__main__":
    sys.exit(run(prog="python -m lib_hypernet"))
