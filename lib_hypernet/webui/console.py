"""Our log lines on the webui's console.

A1111 and Forge configure logging only when ``SD_WEBUI_LOG_LEVEL`` is set; otherwise Python's last-resort
handler prints WARNING and above, so an INFO line such as "Forge 2 detected" never shows.  Without that
variable the extension gives its own logger a console handler (INFO); with it, the webui's handler and
level decide, as for every other extension.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

LOGGER_NAME = "lib_hypernet"


class _ConsoleHandler(logging.StreamHandler):
    """Marks our handler so a script reload never adds a second one."""


def show_log_lines() -> Callable[[], None]:
    """Attach the console handler where the webui configured no logging; returns what undoes it."""
    logger = logging.getLogger(LOGGER_NAME)
    if os.environ.get("SD_WEBUI_LOG_LEVEL") or any(isinstance(h, _ConsoleHandler) for h in logger.handlers):
        return lambda: None
    handler = _ConsoleHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.setLevel(logging.INFO)
    previous_level = logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)

    def remove() -> None:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)

    return remove
