"""create → .pt → load, and .pt → .safetensors → .pt, lose nothing: metadata, tensors and outputs are identical."""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
from hn_testutil import assert_hypernetworks_equal, fixture_pt_params, typed

import lib_hypernet
from lib_hypernet.model.create import WEIGHT_INITIALIZATIONS

SIZES = [8, 16]

CONFIGS: dict[str, dict[str, Any]] = {
    "default_linear": {},
    "relu": {"activation_func": "relu"},
    "relu_layernorm": {"activation_func": "relu", "is_layer_norm": True},
    "dropout_tanh_ln": {
        "layer_structure": "1, 2, 2, 1",
        "activation_func": "tanh",
        "is_layer_norm": True,
        "use_dropout": True,
        "dropout_structure": "0, 0.3, 0.2, 0",
    },
    "dropout_list": {
        "layer_structure": [1, 2, 2, 1],
        "activation_func": "leakyrelu",
        "use_dropout": True,
        "dropout_structure": [0, 0.1, 0, 0],
    },
    "prelu": {"activation_func": "prelu"},
    "ls_1_15_1_gelu": {"layer_structure": [1, 1.5, 1], "activation_func": "gelu"},
    "activate_output_sigmoid": {"activation_func": "sigmoid", "activate_output": True},
    "swish_actout_ln": {"activation_func": "swish", "activate_output": True, "is_layer_norm": True},
    "optional_info": {"activation_func": "elu", "optional_info": "made by a test ✓"},
    **{f"init_{w}": {"activation_func": "relu", "weight_initialization": w} for w in WEIGHT_INITIALIZATIONS},
    "init_kaiming_leaky": {"activation_func": "leakyrelu", "weight_initialization": "KaimingNormal"},
}


def _outputs(hn: lib_hypernet.Hypernetwork, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    results = []
    for width in hn.widths:
        ctx = torch.randn(2, 5, width, generator=gen)
        for strength in (1.0, 0.7, -0.5):
            results.extend(lib_hypernet.apply_hypernetworks(ctx, [(hn, strength)]))
    return results


def _assert_outputs_identical(a: lib_hypernet.Hypernetwork, b: lib_hypernet.Hypernetwork) -> None:
    for x, y in zip(_outputs(a), _outputs(b), strict=True):
        assert torch.equal(x, y)


def _safetensors_header(path: Path) -> dict[str, Any]:
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(length))


def _is_legacy_torch_file(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(2)
    return not zipfile.is_zipfile(path) and head == b"\x80\x02"


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_create_save_load_equal(config: str, tmp_path: Path) -> None:
    created = lib_hypernet.create(config, sizes=SIZES, seed=1234, **CONFIGS[config])
    pt = tmp_path / f"{config}.pt"
    created.save(pt)
    assert _is_legacy_torch_file(pt)

    from_pt = lib_hypernet.load(pt)
    assert_hypernetworks_equal(created, from_pt)
    assert from_pt.file_format == "pt"

    st = tmp_path / f"{config}.safetensors"
    from_pt.save(st)
    from_st = lib_hypernet.load(st)
    assert from_st.file_format == "safetensors"
    assert_hypernetworks_equal(created, from_st)

    pt2 = tmp_path / f"{config}-back.pt"
    from_st.save(pt2)
    assert _is_legacy_torch_file(pt2)
    back = lib_hypernet.load(pt2)
    assert_hypernetworks_equal(created, back)

    _assert_outputs_identical(created, from_pt)
    _assert_outputs_identical(created, from_st)
    _assert_outputs_identical(created, back)


@pytest.mark.parametrize("file_name", fixture_pt_params())
def test_fixture_roundtrip(file_name: str, fixtures_dir: Path, tmp_path: Path) -> None:
    original = lib_hypernet.load(fixtures_dir / file_name)

    pt = tmp_path / file_name
    original.save(pt)
    assert _is_legacy_torch_file(pt)
    from_pt = lib_hypernet.load(pt)
    assert_hypernetworks_equal(original, from_pt)

    st = tmp_path / (Path(file_name).stem + ".safetensors")
    original.save(st)
    from_st = lib_hypernet.load(st)
    assert_hypernetworks_equal(original, from_st)

    pt2 = tmp_path / ("back-" + file_name)
    from_st.save(pt2)
    back = lib_hypernet.load(pt2)
    assert_hypernetworks_equal(original, back)

    _assert_outputs_identical(original, from_pt)
    _assert_outputs_identical(original, from_st)
    _assert_outputs_identical(original, back)


def test_safetensors_layout(tmp_path: Path) -> None:
    hn = lib_hypernet.create("layout", sizes=[8, 16], activation_func="relu", is_layer_norm=True, seed=3)
    st = tmp_path / "layout.safetensors"
    hn.save(st)
    header = _safetensors_header(st)
    meta = header.pop("__metadata__")
    assert meta["format"] == "a1111-hypernetwork"
    assert meta["format_version"] == "1"
    assert json.loads(meta["layer_structure"]) == [1.0, 2.0, 1.0]
    assert typed(json.loads(meta["layer_structure"])) == typed([1.0, 2.0, 1.0])
    assert json.loads(meta["name"]) == "layout"
    assert json.loads(meta["activation_func"]) == "relu"
    assert json.loads(meta["is_layer_norm"]) is True
    assert json.loads(meta["step"]) == 0
    assert json.loads(meta["sd_checkpoint"]) is None
    assert typed(json.loads(meta["dropout_structure"])) == typed([0, 0, 0])
    assert all(isinstance(v, str) for v in meta.values())
    expected_keys = {
        f"{width}.{branch}.linear.{index}.{param}"
        for width in (8, 16)
        for branch in "kv"
        for index in (0, 2, 3, 4)
        for param in ("weight", "bias")
    }
    assert set(header) == expected_keys
    assert "8.k.linear.0.weight" in header
    assert header["16.v.linear.3.weight"]["shape"] == [16, 32]
    assert all(entry["dtype"] == "F32" for entry in header.values())


def test_safetensors_keeps_source_hash(tmp_path: Path, fixtures_dir: Path, manifest: dict) -> None:
    case = next(c for c in manifest["cases"] if c["case"] == "act_relu")
    st = tmp_path / "act_relu.safetensors"
    hn = lib_hypernet.load(fixtures_dir / case["file"])
    hn.save(st, source_sha256=case["sha256"])
    meta = _safetensors_header(st)["__metadata__"]
    assert meta["source_sha256"] == case["sha256"]
    assert lib_hypernet.load(st).source_sha256 == case["sha256"]


def test_int_layer_structure_survives_both_formats(fixtures_dir: Path, tmp_path: Path) -> None:
    """ls_1_4_1_swish_actout stores [1, 4, 1] as ints; both formats keep them ints."""
    hn = lib_hypernet.load(fixtures_dir / "ls_1_4_1_swish_actout.pt")
    assert typed(hn.layer_structure) == typed([1, 4, 1])
    hn.save(tmp_path / "a.safetensors")
    assert typed(lib_hypernet.load(tmp_path / "a.safetensors").layer_structure) == typed([1, 4, 1])
    hn.save(tmp_path / "a.pt")
    assert typed(lib_hypernet.load(tmp_path / "a.pt").layer_structure) == typed([1, 4, 1])


def test_seed_reproducible() -> None:
    a = lib_hypernet.create("a", sizes=SIZES, activation_func="relu", is_layer_norm=True, seed=42)
    b = lib_hypernet.create("a", sizes=SIZES, activation_func="relu", is_layer_norm=True, seed=42)
    c = lib_hypernet.create("a", sizes=SIZES, activation_func="relu", is_layer_norm=True, seed=43)
    assert_hypernetworks_equal(a, b)
    assert not torch.equal(a.layers[8][0].linear[0].weight, c.layers[8][0].linear[0].weight)
    # k and v modules are initialised independently
    assert not torch.equal(a.layers[8][0].linear[0].weight, a.layers[8][1].linear[0].weight)


@pytest.mark.parametrize("scheme", WEIGHT_INITIALIZATIONS)
def test_seed_reproducible_every_init(scheme: str) -> None:
    a = lib_hypernet.create("a", sizes=[8], activation_func="relu", weight_initialization=scheme, seed=7)
    b = lib_hypernet.create("a", sizes=[8], activation_func="relu", weight_initialization=scheme, seed=7)
    assert_hypernetworks_equal(a, b)
