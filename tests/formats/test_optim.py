"""Optimizer-state side files: matched to the .pt actually on disk (A1111 bug §8.3 fixed), never read by load()."""

from __future__ import annotations

import builtins
import io
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from hn_testutil import TouchViaOpen

import lib_hypernet
from lib_hypernet.formats.hashing import legacy_model_hash
from lib_hypernet.formats.optim import optim_path

MIB = 1024 * 1024


def _adamw_state(hn: lib_hypernet.Hypernetwork) -> dict[str, Any]:
    params = [p.detach().clone().requires_grad_(True) for p in hn.parameters()]
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    sum((p * p).sum() for p in params).backward()
    optimizer.step()
    return optimizer.state_dict()


@pytest.fixture
def small(tmp_path: Path) -> tuple[lib_hypernet.Hypernetwork, Path]:
    hn = lib_hypernet.create("small", sizes=[8, 16], activation_func="relu", seed=1)
    pt = tmp_path / "small.pt"
    hn.save(pt)
    return hn, pt


@pytest.fixture(scope="module")
def big_pt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real hypernetwork file over 1 MiB (width 768), so its legacy hash is meaningful."""
    hn = lib_hypernet.create("big", sizes=[768], layer_structure=[1, 0.25, 1], activation_func="relu", seed=2)
    pt = tmp_path_factory.mktemp("big") / "big.pt"
    hn.save(pt)
    assert pt.stat().st_size > MIB
    return pt


def _write_optim(pt: Path, stored_hash: Any, state: dict | None = None, **extra: Any) -> None:
    data: dict[str, Any] = {"optimizer_name": "AdamW", "optimizer_state_dict": state or {"state": {}, "param_groups": []}}
    if stored_hash is not ...:
        data["hash"] = stored_hash
    data.update(extra)
    torch.save(data, optim_path(pt))


def test_save_then_load_ok(small: tuple[lib_hypernet.Hypernetwork, Path]) -> None:
    hn, pt = small
    state = _adamw_state(hn)
    stored = lib_hypernet.save_optimizer_state(pt, state, "AdamW")
    assert stored == lib_hypernet.shorthash(pt)
    assert optim_path(pt) == str(pt) + ".optim"

    raw = torch.load(optim_path(pt), weights_only=True)
    assert list(raw) == ["optimizer_name", "hash", "optimizer_state_dict"]  # A1111's layout

    result = lib_hypernet.load_optimizer_state(pt)
    assert result.status == "ok", result.reason
    assert result.ok
    assert result.optimizer_name == "AdamW"
    assert result.stored_hash == result.expected_hash == stored
    loaded = result.state_dict
    assert len(loaded["state"]) == len(state["state"]) == len(list(hn.parameters()))
    for index, entry in state["state"].items():
        for key, value in entry.items():
            assert torch.equal(loaded["state"][index][key], value)
    assert loaded["param_groups"][0]["lr"] == 1e-3
    # the state dict is usable by a fresh optimizer
    params = [p.detach().clone().requires_grad_(True) for p in hn.parameters()]
    torch.optim.AdamW(params).load_state_dict(loaded)
    # passing a precomputed sha256 gives the same verdict
    assert lib_hypernet.load_optimizer_state(pt, pt_sha256=lib_hypernet.sha256(pt)).ok


def test_other_optimizer_name_kept(small: tuple[lib_hypernet.Hypernetwork, Path]) -> None:
    _, pt = small
    lib_hypernet.save_optimizer_state(pt, {"state": {}, "param_groups": []}, "SGD")
    assert lib_hypernet.load_optimizer_state(pt).optimizer_name == "SGD"


def test_each_copy_matches_its_own_pt(small: tuple[lib_hypernet.Hypernetwork, Path], tmp_path: Path) -> None:
    """A1111 §8.3: an intermediate save stored the hash of the file it was loaded from; ours hash the target."""
    hn, first = small
    lib_hypernet.save_optimizer_state(first, _adamw_state(hn), "AdamW")
    hn.step = 500
    with torch.no_grad():
        hn.layers[8][0].linear[0].weight.add_(0.5)
    second = tmp_path / "small-500.pt"
    hn.save(second)
    lib_hypernet.save_optimizer_state(second, _adamw_state(hn), "AdamW")

    a, b = lib_hypernet.load_optimizer_state(first), lib_hypernet.load_optimizer_state(second)
    assert a.ok and b.ok, (a.reason, b.reason)
    assert a.stored_hash != b.stored_hash
    assert a.stored_hash == lib_hypernet.shorthash(first)
    assert b.stored_hash == lib_hypernet.shorthash(second)

    # A1111's behaviour (the first .optim copied next to the second file) is detected as stale
    shutil.copy(optim_path(first), optim_path(second))
    assert lib_hypernet.load_optimizer_state(second).status == "stale"


def test_modified_pt_makes_optim_stale(small: tuple[lib_hypernet.Hypernetwork, Path]) -> None:
    hn, pt = small
    lib_hypernet.save_optimizer_state(pt, _adamw_state(hn))
    hn.step = 1
    hn.save(pt)
    result = lib_hypernet.load_optimizer_state(pt)
    assert result.status == "stale"
    assert result.state_dict is None
    assert not result.ok
    assert result.expected_hash == lib_hypernet.shorthash(pt)
    assert result.stored_hash != result.expected_hash


def test_legacy_hash_accepted_for_large_file(big_pt: Path) -> None:
    legacy = legacy_model_hash(big_pt)
    assert legacy != "e3b0c442"
    _write_optim(big_pt, legacy)
    result = lib_hypernet.load_optimizer_state(big_pt)
    assert result.status == "ok", result.reason
    assert result.state_dict == {"state": {}, "param_groups": []}
    _write_optim(big_pt, legacy.upper())
    assert lib_hypernet.load_optimizer_state(big_pt).ok


def test_wrong_legacy_hash_is_stale_for_large_file(big_pt: Path) -> None:
    legacy = legacy_model_hash(big_pt)
    wrong = "0" * 8 if legacy != "0" * 8 else "1" * 8
    _write_optim(big_pt, wrong)
    assert lib_hypernet.load_optimizer_state(big_pt).status == "stale"
    _write_optim(big_pt, "e3b0c442")
    assert lib_hypernet.load_optimizer_state(big_pt).status == "stale"


def test_legacy_hash_refused_for_small_file(small: tuple[lib_hypernet.Hypernetwork, Path]) -> None:
    _, pt = small
    assert pt.stat().st_size < MIB
    assert legacy_model_hash(pt) == "e3b0c442"
    _write_optim(pt, "e3b0c442")  # "matches", but every small file has this legacy hash
    result = lib_hypernet.load_optimizer_state(pt)
    assert result.status == "stale"
    assert "1 MiB" in result.reason


@pytest.mark.parametrize("stored", [..., None, "", 12345], ids=["absent", "none", "empty", "int"])
def test_optim_without_hash_is_stale(stored: Any, small: tuple[lib_hypernet.Hypernetwork, Path]) -> None:
    _, pt = small
    _write_optim(pt, stored)
    result = lib_hypernet.load_optimizer_state(pt)
    assert result.status == "stale"
    assert result.state_dict is None


@pytest.mark.parametrize(
    "content",
    [b"garbage bytes, not a torch file", b"", b"PK\x03\x04broken zip"],
    ids=["garbage", "empty", "broken-zip"],
)
def test_garbage_optim_is_unreadable(content: bytes, small: tuple[lib_hypernet.Hypernetwork, Path]) -> None:
    _, pt = small
    Path(optim_path(pt)).write_bytes(content)
    result = lib_hypernet.load_optimizer_state(pt)
    assert result.status == "unreadable"
    assert result.state_dict is None


@pytest.mark.parametrize("obj", [[1, 2], {"hash": "abc"}, {"optimizer_state_dict": [1]}], ids=["list", "no-state", "bad-state"])
def test_wrong_optim_structure_is_unreadable(obj: Any, small: tuple[lib_hypernet.Hypernetwork, Path]) -> None:
    _, pt = small
    torch.save(obj, optim_path(pt))
    assert lib_hypernet.load_optimizer_state(pt).status == "unreadable"


def test_missing_optim(small: tuple[lib_hypernet.Hypernetwork, Path]) -> None:
    _, pt = small
    result = lib_hypernet.load_optimizer_state(pt)
    assert result.status == "missing"
    assert result.state_dict is None
    assert result.optimizer_name == "AdamW"


def test_optim_beside_missing_pt_is_unreadable(tmp_path: Path) -> None:
    pt = tmp_path / "gone.pt"
    _write_optim(pt, "0123456789")
    result = lib_hypernet.load_optimizer_state(pt)
    assert result.status == "unreadable"


def test_load_never_opens_optim(small: tuple[lib_hypernet.Hypernetwork, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    hn, pt = small
    lib_hypernet.save_optimizer_state(pt, _adamw_state(hn))
    opened: list[str] = []
    real_open, real_io_open, real_os_open, real_torch_load = builtins.open, io.open, os.open, torch.load

    def spy_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, (str, bytes, os.PathLike)):
            opened.append(os.fsdecode(file))
        return real_open(file, *args, **kwargs)

    def spy_io_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, (str, bytes, os.PathLike)):
            opened.append(os.fsdecode(file))
        return real_io_open(file, *args, **kwargs)

    def spy_os_open(file: Any, *args: Any, **kwargs: Any) -> Any:  # open_regular opens with os.open
        if isinstance(file, (str, bytes, os.PathLike)):
            opened.append(os.fsdecode(file))
        return real_os_open(file, *args, **kwargs)

    def spy_torch_load(f: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(f, (str, bytes, os.PathLike)):
            opened.append(os.fsdecode(f))
        return real_torch_load(f, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(io, "open", spy_io_open)
    monkeypatch.setattr(os, "open", spy_os_open)
    monkeypatch.setattr(torch, "load", spy_torch_load)
    loaded = lib_hypernet.load(pt)
    monkeypatch.undo()
    assert loaded.widths == [8, 16]
    assert any(p == str(pt) for p in opened), "the spy did not see the .pt being opened"
    assert not any(p.endswith(".optim") for p in opened)


def test_load_ignores_malicious_optim(small: tuple[lib_hypernet.Hypernetwork, Path], tmp_path: Path) -> None:
    _, pt = small
    marker = tmp_path / "marker"
    _write_optim(pt, lib_hypernet.shorthash(pt), state={"x": TouchViaOpen(marker)})
    assert lib_hypernet.load(pt).widths == [8, 16]
    assert not marker.exists()
    assert lib_hypernet.load_optimizer_state(pt).status == "unreadable"
    assert not marker.exists()
