"""Legacy (non-zip) torch files whose storage names torch resolves differently from the checker, and tensor
metadata torch applies: what torch loads must be exactly what the checker checked, or the file is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hostile_util import LegacyStorage, LegacyTensor, assert_refused, legacy_file, legacy_hn

import lib_hypernet

K = "linear.0.weight"


def _write(tmp_path: Path, obj, blocks, name: str = "crafted.pt") -> Path:
    path = tmp_path / name
    path.write_bytes(legacy_file(obj, blocks))
    return path


def _refused(path: Path, *keywords: str) -> None:
    assert_refused(path, *keywords, calls=(lib_hypernet.check_torch_file, lib_hypernet.load))


def _k(obj):
    return obj[8][0]


def test_positive_control_views_with_their_own_names(tmp_path: Path) -> None:
    """Two tensors as views of one storage, each view with its own name: what torch.save writes; loads."""
    obj, blocks = legacy_hn()
    weight = _k(obj)[K]
    numel = blocks[weight.args[0].pid[2]][0]
    blocks["big"] = (2 * numel, blocks.pop(weight.args[0].pid[2])[1] * 2)
    _k(obj)[K] = LegacyTensor(LegacyStorage("FloatStorage", "big", 2 * numel, ("v1", numel, numel)), 0,
                              weight.args[2], weight.args[3])
    path = _write(tmp_path, obj, blocks)
    torch.testing.assert_close(lib_hypernet.load(path).layers[8][0].linear[0].weight,
                               torch.load(path, weights_only=True)[8][0][K])


def test_view_named_like_another_root_storage(tmp_path: Path) -> None:
    """(a) torch returns the float64 storage named "x64" for the view the checker read as float32 data."""
    obj, blocks = legacy_hn()
    weight = _k(obj)[K]
    numel = blocks[weight.args[0].pid[2]][0]
    blocks["x64"] = (numel, torch.full((numel,), 7.0, dtype=torch.float64).numpy().tobytes())
    blocks["big"] = (numel, blocks.pop(weight.args[0].pid[2])[1])
    extra = LegacyTensor(LegacyStorage("DoubleStorage", "x64", numel), 0, (numel,), (1,))
    _k(obj)[K] = LegacyTensor(LegacyStorage("FloatStorage", "big", numel, ("x64", 0, numel)), 0,
                              weight.args[2], weight.args[3])
    obj = {"extra": extra, **obj}
    path = _write(tmp_path, obj, blocks)
    assert torch.load(path, weights_only=True)[8][0][K].dtype == torch.float64  # the differential is real
    _refused(path, "view")


def test_root_named_like_an_earlier_view(tmp_path: Path) -> None:
    """(b) torch reads the second data block into the first storage."""
    obj, blocks = legacy_hn()
    weight, bias = _k(obj)[K], _k(obj)["linear.0.bias"]
    numel = blocks[weight.args[0].pid[2]][0]
    blocks["big"] = (numel, blocks.pop(weight.args[0].pid[2])[1])
    _k(obj)[K] = LegacyTensor(LegacyStorage("FloatStorage", "big", numel, ("b", 0, numel)), 0,
                              weight.args[2], weight.args[3])
    bias_key = bias.args[0].pid[2]
    blocks["b"] = blocks.pop(bias_key)
    _k(obj)["linear.0.bias"] = LegacyTensor(LegacyStorage("FloatStorage", "b", blocks["b"][0]), 0,
                                            bias.args[2], bias.args[3])
    _refused(_write(tmp_path, obj, blocks), "view")


def test_one_view_name_with_two_offsets(tmp_path: Path) -> None:
    """(c) the checker checked elements 32-40, torch returns 0-8 for both tensors."""
    obj, blocks = legacy_hn()
    bias_k, bias_v = _k(obj)["linear.0.bias"], obj[8][1]["linear.0.bias"]
    n = blocks[bias_k.args[0].pid[2]][0]
    data = torch.arange(4 * n, dtype=torch.float32) / 100
    blocks["shared"] = (4 * n, data.numpy().tobytes())
    del blocks[bias_k.args[0].pid[2]], blocks[bias_v.args[0].pid[2]]
    _k(obj)["linear.0.bias"] = LegacyTensor(LegacyStorage("FloatStorage", "shared", 4 * n, ("v", 0, n)), 0,
                                            bias_k.args[2], bias_k.args[3])
    obj[8][1]["linear.0.bias"] = LegacyTensor(LegacyStorage("FloatStorage", "shared", 4 * n, ("v", 2 * n, n)), 0,
                                              bias_v.args[2], bias_v.args[3])
    path = _write(tmp_path, obj, blocks)
    loaded = torch.load(path, weights_only=True)
    assert torch.equal(loaded[8][0]["linear.0.bias"], loaded[8][1]["linear.0.bias"])  # both got elements 0..n
    _refused(path, "view")


def test_one_view_name_reused_identically_is_fine(tmp_path: Path) -> None:
    obj, blocks = legacy_hn()
    bias_k, bias_v = _k(obj)["linear.0.bias"], obj[8][1]["linear.0.bias"]
    n = blocks[bias_k.args[0].pid[2]][0]
    blocks["shared"] = (2 * n, (torch.arange(2 * n, dtype=torch.float32) / 100).numpy().tobytes())
    del blocks[bias_k.args[0].pid[2]], blocks[bias_v.args[0].pid[2]]
    for module, old in ((_k(obj), bias_k), (obj[8][1], bias_v)):
        module["linear.0.bias"] = LegacyTensor(LegacyStorage("FloatStorage", "shared", 2 * n, ("v", n, n)), 0,
                                               old.args[2], old.args[3])
    hn = lib_hypernet.load(_write(tmp_path, obj, blocks))
    torch.testing.assert_close(hn.layers[8][0].linear[0].bias, torch.arange(n, 2 * n, dtype=torch.float32) / 100)


@pytest.mark.parametrize("metadata", [{"neg": True}, {"conj": True}, {"x": 1}, [1]], ids=["neg", "conj", "other", "list"])
def test_tensor_metadata_torch_would_apply(metadata, tmp_path: Path) -> None:
    """``_rebuild_tensor_v2``'s metadata: {"neg": True} loads negated weights; torch.save writes none."""
    obj, blocks = legacy_hn()
    weight = _k(obj)[K]
    _k(obj)[K] = LegacyTensor(*weight.args[:4], metadata=metadata)
    _refused(_write(tmp_path, obj, blocks), "malformed tensor")


@pytest.mark.parametrize("metadata", [None, {}], ids=["none", "empty"])
def test_tensor_metadata_torch_save_writes(metadata, tmp_path: Path) -> None:
    obj, blocks = legacy_hn()
    weight = _k(obj)[K]
    _k(obj)[K] = LegacyTensor(*weight.args[:4], metadata=metadata)
    assert lib_hypernet.load(_write(tmp_path, obj, blocks)).widths == [8]
