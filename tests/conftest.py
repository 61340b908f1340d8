"""Shared pytest fixtures for the lib_hypernet tests.

The A1111 golden fixtures live in ``tests/fixtures/a1111`` (copied into the repository with
their README); a missing fixture fails the tests that need it, it never skips them.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

# The test tensors are tiny: intra-op threads only add overhead (10x slower on a busy 2-core box).
torch.set_num_threads(1)

# tests/helpers holds the shared helpers (hn_testutil and the others, imported by plain name); the repository
# root (lib_hypernet) comes from hn_testutil.REPO_ROOT, the one root of the tests.
HELPERS = str(Path(__file__).resolve().parent / "helpers")
if HELPERS not in sys.path:
    sys.path.insert(0, HELPERS)

from hn_testutil import REPO_ROOT, CopyFixtures, require_fixtures  # noqa: E402

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


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


@pytest.fixture
def copy_fixtures(fixtures_dir: Path) -> CopyFixtures:
    """``copy_fixtures(folder, *names)``: copies of these golden fixture files in ``folder`` (made when missing);
    returns the first copy's path."""

    def copy(folder: Path, *names: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copyfile(fixtures_dir / name, folder / name)
        return folder / names[0]

    return copy


@pytest.fixture(scope="session")
def cases_by_name(manifest: dict) -> dict:
    return {case["case"]: case for case in manifest["cases"]}
