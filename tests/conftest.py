"""Shared pytest fixtures for the lib_hypernet tests.

The A1111 golden fixtures live in ``tests/fixtures/a1111`` (copied into the repository with
their README); a missing fixture fails the tests that need it, it never skips them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

# The test tensors are tiny: intra-op threads only add overhead (10x slower on a busy 2-core box).
torch.set_num_threads(1)

REPO_ROOT = Path(__file__).resolve().parents[1]
HELPERS = Path(__file__).resolve().parent / "helpers"
for _p in (str(REPO_ROOT), str(HELPERS)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from hn_testutil import require_fixtures  # noqa: E402


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The A1111 golden fixture folder (a missing one is an error)."""
    return require_fixtures()


@pytest.fixture(scope="session")
def manifest(fixtures_dir: Path) -> dict:
    with open(fixtures_dir / "manifest.json", encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="session")
def expected(fixtures_dir: Path) -> dict:
    """All inputs and A1111 outputs of the fixture set (``expected.safetensors``)."""
    from safetensors.torch import load_file

    return load_file(str(fixtures_dir / "expected.safetensors"))


@pytest.fixture(scope="session")
def cases_by_name(manifest: dict) -> dict:
    return {case["case"]: case for case in manifest["cases"]}
