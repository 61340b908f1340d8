"""tests/fuzz: the hypothesis fuzzer of the file readers (tests/helpers/fuzzing.py), a bounded seeded run and its
positive controls.  Needs hypothesis (requirements-test.txt): imported here, so a missing one is an error.
"""

from __future__ import annotations

import pytest
from fuzzing import Fuzzer


@pytest.fixture(scope="module")
def fuzzer(tmp_path_factory: pytest.TempPathFactory) -> Fuzzer:
    """A fuzzer with its seeds built in a fresh folder (200 MB RSS budget, 60 s hang limit)."""
    work = tmp_path_factory.mktemp("fuzz")
    return Fuzzer(work, work / "failures", rss_budget_mb=200, hang_s=60)
