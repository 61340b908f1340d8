"""tests/ui: the gradio panels (lib_hypernet.ui) outside any webui: the library panel's callbacks, building it with
gradio, the standalone app.  Needs gradio (requirements-test.txt), never the webui's ``modules``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hn_testutil import CopyFixtures

from lib_hypernet.library.folder import HypernetLibrary
from lib_hypernet.library.source import LibrarySource
from lib_hypernet.ui.library_panel import LibraryPanel

FIXTURES = ("act_relu.pt", "dims_24_32_48_meta.pt", "legacy_novelai.pt", "optim_fresh_a.pt", "optim_fresh_a.pt.optim")


@pytest.fixture
def folder(tmp_path: Path, copy_fixtures: CopyFixtures) -> Path:
    """A hypernetwork folder: five golden fixture files at the top (an .optim among them), one in ``styles/``."""
    root = tmp_path / "hypernetworks"
    copy_fixtures(root, *FIXTURES)
    copy_fixtures(root / "styles", "act_gelu.pt")
    return root


@pytest.fixture
def panel(folder: Path) -> LibraryPanel:
    """The library panel on ``folder``."""
    return LibraryPanel(LibrarySource(HypernetLibrary(folder)))
