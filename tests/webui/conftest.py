"""tests/webui: the extension inside the A1111 stand-in (tests/webui_stub) and the Forge 2 / reForge stand-ins
(tests/forge_stub): host adapters, routes, cards, the accordion, settings, infotext, xyz, and the browser tests.

Needs the webui stack of requirements-test.txt (gradio, fastapi, ...), ldm and, for the browser tests,
Playwright with Debian's chromium (tools/setup-browser.sh).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import webui_util as wu  # puts the stand-in (tests/webui_stub) on sys.path


@pytest.fixture
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """The stand-in webui started with the real extension on the test module's ``FILES`` (``(name, write_hn
    kwargs)`` pairs; default :data:`webui_util.ONE_FILE`); always unloaded afterwards."""
    with wu.running(tmp_path, getattr(request.module, "FILES", wu.ONE_FILE)) as app:
        yield app
