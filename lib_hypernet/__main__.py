"""``python -m lib_hypernet``: the ``hypernet`` command line (see :mod:`lib_hypernet.cli`)."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m lib_hypernet"))
