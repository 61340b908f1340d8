"""``hypernet bake``: the command line of a bake (a small real ldm UNet's checkpoint)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from engine_util import make_hn, make_unet
from safetensors.torch import load_file, save_file

from lib_hypernet.cli import main


@pytest.fixture
def files(tmp_path: Path) -> Path:
    unet = make_unet()
    save_file({"model.diffusion_model." + k: v.contiguous() for k, v in unet.state_dict().items()},
              tmp_path / "ck.safetensors")
    make_hn("lin", activation_func="linear", seed=3).save(tmp_path / "lin.pt")
    make_hn("rel", seed=3).save(tmp_path / "rel.pt")
    return tmp_path


def test_lora_and_merge(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ck = str(files / "ck.safetensors")
    assert main(["bake", f"{files / 'lin.pt'}:0.7:self=0.5", "--checkpoint", ck, "--lora", str(files / "l.safetensors")]) == 0
    out = capsys.readouterr()
    assert "wrote" in out.out and "14 attention layers" in out.out and "one checkpoint" in out.err
    assert all(key.startswith("lora_unet_") for key in load_file(files / "l.safetensors"))
    assert main(["bake", str(files / "lin.pt"), "--checkpoint", ck, "--merge", str(files / "m.safetensors"), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    result = document["results"][0]
    assert document["ok"] and result["status"] == "written" and result["bake"]["mode"] == "merge"
    assert len(result["bake"]["layers"]) == 14 and result["bake"]["max_error"] < 1e-6


def test_refusals_and_usage_errors(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ck = str(files / "ck.safetensors")
    assert main(["bake", str(files / "rel.pt"), "--checkpoint", ck, "--lora", str(files / "x.safetensors")]) == 1
    assert "activation ReLU" in capsys.readouterr().err and not (files / "x.safetensors").exists()
    (files / "x.safetensors").write_bytes(b"keep")
    assert main(["bake", str(files / "lin.pt"), "--checkpoint", ck, "--lora", str(files / "x.safetensors")]) == 1
    assert "--force" in capsys.readouterr().err and (files / "x.safetensors").read_bytes() == b"keep"
    assert main(["bake", f"{files / 'lin.pt'}:abc", "--checkpoint", ck, "--lora", str(files / "y.safetensors")]) == 2
    assert "must be a number" in capsys.readouterr().err
    assert main(["bake", str(files / "lin.pt"), "--checkpoint", ck]) == 2  # --lora or --merge is required
