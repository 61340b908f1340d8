"""``python -m lib_hypernet``: the command line (see :mod:`lib_hypernet.cli.parser`).

Only the parser is imported here (no torch: ``--help`` answers at once); the commands, and torch, load once
the arguments parsed, inside :func:`~lib_hypernet.cli.parser.main`, so Ctrl-C while they load ends with one
line and exit status 130, like Ctrl-C later on, instead of a traceback.
"""

from __future__ import annotations

import sys


def run(prog: str | None = None) -> int:
    """Import and run the command line; the ``hypernet`` console script and ``python -m`` both call this."""
    try:
        from .cli.parser import main
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        return 130
    return main(prog=prog)


if __name__ == "__main__":
    sys.exit(run(prog="python -m lib_hypernet"))
