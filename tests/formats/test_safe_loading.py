"""A .pt / .optim whose unpickling would run code is refused before anything from it runs."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from hn_testutil import OPEN_GLOBALS, SYSTEM_GLOBALS, TouchViaOpen, TouchViaSystem, raw_torch_load
from hostile_util import good_raw

import lib_hypernet
from lib_hypernet.formats.optim import optim_path

PAYLOADS = {"system": (TouchViaSystem, SYSTEM_GLOBALS), "open": (TouchViaOpen, OPEN_GLOBALS)}
CONTAINERS = {"zip": True, "legacy": False}


def _save(obj: Any, path: Path, zip_format: bool) -> None:
    torch.save(obj, path, _use_new_zipfile_serialization=zip_format)


@pytest.mark.parametrize("container", sorted(CONTAINERS))
@pytest.mark.parametrize("payload", sorted(PAYLOADS))
@pytest.mark.parametrize("where", ["top_level", "inside_hypernetwork"])
def test_malicious_pt_refused(container: str, payload: str, where: str, tmp_path: Path) -> None:
    cls, global_names = PAYLOADS[payload]
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    if where == "top_level":
        obj: Any = cls(marker)
    else:
        obj = good_raw()
        obj["optional_info"] = cls(marker)
    _save(obj, path, CONTAINERS[container])

    with pytest.raises(lib_hypernet.UnsafeFileError) as info:
        lib_hypernet.load(path)
    err = info.value
    assert isinstance(err, lib_hypernet.HypernetError)
    assert err.global_name in global_names
    assert err.global_name in str(err)
    assert str(path) in str(err)
    assert err.path == str(path)
    assert not marker.exists()

    with pytest.raises(lib_hypernet.UnsafeFileError):
        lib_hypernet.check_torch_file(path)
    assert not marker.exists()


@pytest.mark.parametrize("container", sorted(CONTAINERS))
def test_payload_really_runs_without_protection(container: str, tmp_path: Path) -> None:
    """Positive control: the same file does create the marker when unpickled without restrictions."""
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    _save({"x": TouchViaOpen(marker)}, path, CONTAINERS[container])
    with pytest.raises(lib_hypernet.UnsafeFileError):
        lib_hypernet.load(path)
    assert not marker.exists()
    obj = torch.load(path, weights_only=False)
    obj["x"].close()
    assert marker.exists()


@pytest.mark.parametrize("container", sorted(CONTAINERS))
@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_malicious_optim_is_unreadable_and_never_runs(container: str, payload: str, tmp_path: Path) -> None:
    cls, _ = PAYLOADS[payload]
    marker = tmp_path / "marker"
    pt = tmp_path / "good.pt"
    lib_hypernet.create("good", sizes=[8], activation_func="relu", seed=0).save(pt)
    evil = {"optimizer_name": "AdamW", "hash": lib_hypernet.shorthash(pt), "optimizer_state_dict": {"x": cls(marker)}}
    _save(evil, Path(optim_path(pt)), CONTAINERS[container])

    hn = lib_hypernet.load(pt)  # the .optim beside it is never read for inference
    assert hn.widths == [8]
    assert not marker.exists()

    state = lib_hypernet.load_optimizer_state(pt)
    assert state.status == "unreadable"
    assert state.state_dict is None
    assert not state.ok
    assert "optim" in state.reason
    assert not marker.exists()


def test_malicious_global_in_a1111_fixture_dict(fixtures_dir: Path, tmp_path: Path) -> None:
    """A real A1111 file with one value swapped for a payload (the realistic attack) is refused."""
    raw = copy.deepcopy(raw_torch_load(fixtures_dir / "act_relu.pt"))
    marker = tmp_path / "marker"
    raw["name"] = TouchViaSystem(marker)
    path = tmp_path / "act_relu.pt"
    torch.save(raw, path)
    with pytest.raises(lib_hypernet.UnsafeFileError) as info:
        lib_hypernet.load(path)
    assert info.value.global_name in SYSTEM_GLOBALS
    assert not marker.exists()


def test_clean_files_pass_check(fixtures_dir: Path, tmp_path: Path) -> None:
    for path in sorted(fixtures_dir.glob("*.pt*")):
        assert lib_hypernet.check_torch_file(path) == "zip"
    ours = tmp_path / "ours.pt"
    lib_hypernet.create("ours", sizes=[8], seed=0).save(ours)
    assert lib_hypernet.check_torch_file(ours) == "legacy"
    shutil.copy(ours, tmp_path / "copy.pt")
    assert lib_hypernet.load(tmp_path / "copy.pt").widths == [8]
