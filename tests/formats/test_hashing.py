"""sha256 / shorthash / legacy hash as A1111 computes them (lib_hypernet.formats.hashing)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

import lib_hypernet

MIB = 1024 * 1024


def _fixture_files(manifest: dict) -> list[dict]:
    files = []
    for case in manifest["cases"]:
        files.append(case)
        if "optim_file" in case:
            files.append(case["optim_file"])
    return files


def test_hashes_match_manifest(fixtures_dir: Path, manifest: dict) -> None:
    for entry in _fixture_files(manifest):
        path = fixtures_dir / entry["file"]
        assert lib_hypernet.sha256(path) == entry["sha256"], entry["file"]
        assert path.stat().st_size == entry["file_size"]
    for case in manifest["cases"]:
        path = fixtures_dir / case["file"]
        assert lib_hypernet.shorthash(path) == case["shorthash"] == case["sha256"][:10]
        assert lib_hypernet.legacy_model_hash(path) == case["legacy_model_hash"] == "e3b0c442"


def test_sha256_matches_hashlib_and_reports_progress(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    data = os.urandom(2 * MIB + 123)
    path.write_bytes(data)
    seen: list[int] = []
    assert lib_hypernet.sha256(path, progress=seen.append) == hashlib.sha256(data).hexdigest()
    assert sum(seen) == len(data)
    assert lib_hypernet.shorthash(path) == hashlib.sha256(data).hexdigest()[:10]


def test_legacy_hash_of_large_file(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    data = os.urandom(MIB + 200 * 1024)
    path.write_bytes(data)
    legacy = lib_hypernet.legacy_model_hash(path)
    assert legacy != "e3b0c442"
    assert legacy == hashlib.sha256(data[MIB : MIB + 64 * 1024]).hexdigest()[:8]


def test_legacy_hash_of_small_and_partial_files(tmp_path: Path) -> None:
    small = tmp_path / "small.bin"
    small.write_bytes(os.urandom(MIB))  # exactly 1 MiB: nothing at the offset
    assert lib_hypernet.legacy_model_hash(small) == "e3b0c442"
    partial = tmp_path / "partial.bin"
    data = os.urandom(MIB + 100)
    partial.write_bytes(data)
    assert lib_hypernet.legacy_model_hash(partial) == hashlib.sha256(data[MIB:]).hexdigest()[:8]


@pytest.mark.parametrize("func", [lib_hypernet.sha256, lib_hypernet.shorthash, lib_hypernet.legacy_model_hash])
def test_hash_of_missing_file(func, tmp_path: Path) -> None:
    path = tmp_path / "missing.pt"
    with pytest.raises(lib_hypernet.HypernetFileError) as info:
        func(path)
    assert str(path) in str(info.value)
