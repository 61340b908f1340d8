"""The .pt files we write load in A1111 1.10.1 with safe unpickling on, on any torch version.

``hn_testutil.a1111_safe_check`` is our own re-statement of A1111's ``modules/safe.py`` check
(zip entry-name regex, exactly one ``*/data.pkl``, five pickles for the legacy format, the
restricted unpickler's allow-list from spec §3.6).  It is validated here against the verdicts
A1111 itself recorded for every fixture in manifest.json.
"""

from __future__ import annotations

import zipfile
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from hn_testutil import TouchViaOpen, a1111_safe_check, fixture_pt_params, raw_torch_load

import lib_hypernet
from lib_hypernet.formats.optim import optim_path
from lib_hypernet.formats.safe_unpickle import a1111_zip_entries_rejected

A1111_KEY_ORDER = [
    "step", "name", "layer_structure", "activation_func", "is_layer_norm", "weight_initialization",
    "sd_checkpoint", "sd_checkpoint_name", "activate_output", "use_dropout", "dropout_structure",
    "last_layer_dropout", "optional_info",
]


def test_checker_reproduces_a1111_verdicts(fixtures_dir: Path, manifest: dict) -> None:
    """Every fixture (written by torch 2.12's zip format) was rejected by A1111; our checker says the same."""
    for case in manifest["cases"]:
        assert a1111_safe_check(fixtures_dir / case["file"]) == case["a1111_safe_unpickle_check"]
        if "optim_file" in case:
            optim = case["optim_file"]
            assert a1111_safe_check(fixtures_dir / optim["file"]) == optim["a1111_safe_unpickle_check"]


def test_checker_refuses_forbidden_global_in_legacy_file(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    torch.save({"x": TouchViaOpen(marker)}, path, _use_new_zipfile_serialization=False)
    verdict = a1111_safe_check(path)
    assert verdict.startswith("rejected: global") and "forbidden" in verdict
    assert not marker.exists()


@pytest.mark.parametrize(
    "options",
    [
        {"activation_func": "relu"},
        {"activation_func": "prelu", "layer_structure": [1, 1.5, 1]},
        {"activation_func": "tanh", "is_layer_norm": True, "use_dropout": True,
         "layer_structure": "1, 2, 2, 1", "dropout_structure": "0, 0.3, 0.2, 0"},
    ],
    ids=["relu", "prelu", "dropout_ln"],
)
def test_created_pt_passes_a1111_check(options: dict, tmp_path: Path) -> None:
    hn = lib_hypernet.create("made", sizes=[8, 16], seed=5, optional_info="info", **options)
    pt = tmp_path / "made.pt"
    hn.save(pt)
    assert a1111_safe_check(pt) == "ok"
    assert a1111_zip_entries_rejected(pt) == []

    st = tmp_path / "made.safetensors"
    hn.save(st)
    back = tmp_path / "back.pt"
    lib_hypernet.load(st).save(back)
    assert a1111_safe_check(back) == "ok"


@pytest.mark.parametrize("file_name", fixture_pt_params())
def test_resaved_fixtures_pass_a1111_check(file_name: str, fixtures_dir: Path, tmp_path: Path) -> None:
    hn = lib_hypernet.load(fixtures_dir / file_name)
    pt = tmp_path / file_name
    hn.save(pt)
    assert a1111_safe_check(pt) == "ok"
    st = tmp_path / "x.safetensors"
    hn.save(st)
    back = tmp_path / "back.pt"
    lib_hypernet.load(st).save(back)
    assert a1111_safe_check(back) == "ok"


def test_optim_we_write_passes_a1111_check(tmp_path: Path) -> None:
    hn = lib_hypernet.create("made", sizes=[8], activation_func="relu", seed=1)
    pt = tmp_path / "made.pt"
    hn.save(pt)
    params = [p.detach().clone().requires_grad_(True) for p in hn.parameters()]
    opt = torch.optim.AdamW(params)
    sum(p.sum() for p in params).backward()
    opt.step()
    lib_hypernet.save_optimizer_state(pt, opt.state_dict(), "AdamW")
    assert a1111_safe_check(optim_path(pt)) == "ok"


def test_plain_torch_save_fails_a1111_check(tmp_path: Path) -> None:
    """Why we write the legacy format: this torch's default zip format has entries A1111's regex refuses."""
    hn = lib_hypernet.create("plain", sizes=[8], activation_func="relu", seed=1)
    pt = tmp_path / "plain.pt"
    torch.save(hn.state_dict(), pt)
    names = zipfile.ZipFile(pt).namelist()
    assert "plain/.format_version" in names
    verdict = a1111_safe_check(pt)
    assert verdict.startswith("rejected: bad file inside plain.pt: plain/.")
    assert "plain/.format_version" in a1111_zip_entries_rejected(pt)
    # our own loader still reads it (it is a valid, safe torch file)
    assert lib_hypernet.load(pt).widths == [8]


def test_written_pt_loads_weights_only_with_a1111_layout(fixtures_dir: Path, tmp_path: Path) -> None:
    reference = raw_torch_load(fixtures_dir / "act_relu.pt")  # written by A1111 1.10.1's save
    hn = lib_hypernet.create("ours", sizes=[8, 16], layer_structure="1, 2, 1", activation_func="relu", seed=9)
    pt = tmp_path / "ours.pt"
    hn.save(pt)
    ours = torch.load(pt, map_location="cpu", weights_only=True)

    assert list(reference) == [8, 16, *A1111_KEY_ORDER]
    assert list(ours) == list(reference)
    for key in reference:
        assert type(ours[key]) is type(reference[key]), key
        if isinstance(key, int):
            assert type(ours[key]) is tuple and len(ours[key]) == 2
            for ours_sd, ref_sd in zip(ours[key], reference[key]):
                assert isinstance(ours_sd, OrderedDict)
                assert type(ours_sd) is type(ref_sd)
                assert list(ours_sd) == list(ref_sd)
                for name, tensor in ours_sd.items():
                    assert type(tensor) is type(ref_sd[name]) is torch.Tensor
                    assert tensor.dtype == ref_sd[name].dtype == torch.float32
                    assert tensor.shape == ref_sd[name].shape
                    assert tensor.device.type == "cpu"
                    assert not tensor.requires_grad
        elif isinstance(reference[key], list):
            assert [type(x) for x in ours[key]] == [type(x) for x in reference[key]], key
    # value-level agreement for the fields a fresh A1111 create writes
    for key in ("step", "layer_structure", "activation_func", "is_layer_norm", "weight_initialization",
                "sd_checkpoint", "sd_checkpoint_name", "activate_output", "use_dropout", "dropout_structure",
                "last_layer_dropout", "optional_info"):
        assert ours[key] == reference[key], key
    assert ours["name"] == "ours"
