"""``python -m lib_hypernet.ui``: the standalone library page (see :mod:`lib_hypernet.ui.standalone`)."""

from __future__ import annotations

import sys

from .standalone import main

if __name__ == "__main__":
    sys.exit(main())
