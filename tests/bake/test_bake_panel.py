"""The Bake section of the library panel (tab and standalone): tags in, a LoRA or merged file out, through the
write policy; the panel reports the check or what is wrong, and never raises."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pytest
from engine_util import make_hn, make_unet
from safetensors.torch import load_file, save_file

from lib_hypernet.library.folder import HypernetLibrary
from lib_hypernet.library.source import BakeFolders, LibrarySource
from lib_hypernet.ui.bake_panel import run_bake
from lib_hypernet.ui.library_panel import build_library_panel


@pytest.fixture
def source(tmp_path: Path) -> LibrarySource:
    hn_dir, ckpt_dir, lora_dir = tmp_path / "hypernetworks", tmp_path / "Stable-diffusion", tmp_path / "Lora"
    for folder in (hn_dir, ckpt_dir / "sub", lora_dir):
        folder.mkdir(parents=True)
    save_file({"model.diffusion_model." + k: v.contiguous() for k, v in make_unet().state_dict().items()},
              ckpt_dir / "sub" / "model.safetensors")
    make_hn("lin", activation_func="linear", seed=3).save(hn_dir / "lin.pt")
    make_hn("other", activation_func="linear", seed=4).save(hn_dir / "other.safetensors")
    make_hn("rel", seed=5).save(hn_dir / "rel.pt")
    return LibrarySource(HypernetLibrary(str(hn_dir)),
                         bake_folders=BakeFolders(str(ckpt_dir), str(lora_dir), str(ckpt_dir)))


def test_bake_a_stack_into_a_lora_and_a_merge(source: LibrarySource) -> None:
    assert source.checkpoints() == ["sub/model.safetensors"]
    steps: list[tuple[int, int]] = []
    shown = run_bake(source, "<hypernet:lin:0.8> <hypernet:other:0.5:self=0>", "sub/model.safetensors", "LoRA file",
                     "both", False, lambda step, desc: steps.append(step))
    assert "Wrote a LoRA file" in shown and "14 attention layers" in shown and steps[-1] == (4, 4)
    lora = Path(source.bake_folders.lora) / "both.safetensors"
    assert all(k.startswith("lora_unet_") for k in load_file(lora))
    shown = run_bake(source, "<hypernet:lin>", "sub/model.safetensors", "Merged checkpoint", "merged", False)
    assert "Wrote a merged checkpoint" in shown and (Path(source.bake_folders.merged) / "merged.safetensors").exists()


def test_what_is_wrong_is_one_line(source: LibrarySource) -> None:
    ckpt = "sub/model.safetensors"
    assert "activation ReLU" in run_bake(source, "<hypernet:rel:1>", ckpt, "LoRA file", "x", False)
    assert "as tags" in run_bake(source, "lin", ckpt, "LoRA file", "x", False)
    assert "not found" in run_bake(source, "<hypernet:nothere:1>", ckpt, "LoRA file", "x", False).lower()
    assert "no checkpoint" in run_bake(source, "<hypernet:lin:1>", "gone.safetensors", "LoRA file", "x", False)
    assert "Wrote" in run_bake(source, "<hypernet:lin:1>", ckpt, "LoRA file", "x", False)
    again = run_bake(source, "<hypernet:lin:1>", ckpt, "LoRA file", "x", False)
    assert "tick 'Overwrite'" in again
    assert "Wrote" in run_bake(source, "<hypernet:lin:1>", ckpt, "LoRA file", "x", True)
    assert "name" in run_bake(source, "<hypernet:lin:1>", ckpt, "LoRA file", "../escape", False).lower()
    assert not (Path(source.bake_folders.lora).parent / "escape.safetensors").exists()


def test_the_panel_has_the_section_only_with_bake_folders(source: LibrarySource, tmp_path: Path) -> None:
    with gr.Blocks():
        panel = build_library_panel(source)
    assert panel.bake is not None and panel.bake.checkpoint is not None
    with gr.Blocks():
        plain = build_library_panel(LibrarySource(HypernetLibrary(str(tmp_path / "hypernetworks"))))
    assert plain.bake is None
