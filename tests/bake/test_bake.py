"""Baking hypernetworks into a LoRA "full" file or a merged checkpoint, on A1111's real ldm UNets at
SD1.5 and SD2 sizes (random weights): a UNet call with the baked file applied the standard way equals the
call with the hypernetworks applied A1111's way (our engine, itself checked against A1111's formula in
test_engine_*), within 1e-5 relative.  The LoRA keys are resolved with the rules of A1111's built-in Lora,
Forge 2's and ComfyUI's LoRA loaders (re-implemented here from their sources; see the README)."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from engine_util import make_hn, make_unet, reinit_, run_unet
from ldm.modules.diffusionmodules.openaimodel import UNetModel
from safetensors.torch import load_file, save_file

import lib_hypernet
from lib_hypernet import bake
from lib_hypernet.baking import BakeError, parse_spec
from lib_hypernet.errors import HypernetExistsError

RTOL = 1e-5
PREFIX = "model.diffusion_model."


def sd_unet(context_dim: int, seed: int, sd2: bool = False) -> UNetModel:
    """The UNet of SD1.5 (context 768) or SD2 (context 1024, linear projections, 64-channel heads)."""
    heads = {"num_head_channels": 64} if sd2 else {"num_heads": 8}
    with torch.device("meta"):
        unet = UNetModel(image_size=32, in_channels=4, out_channels=4, model_channels=320,
                         attention_resolutions=[4, 2, 1], num_res_blocks=2, channel_mult=[1, 2, 4, 4],
                         use_spatial_transformer=True, transformer_depth=1, context_dim=context_dim,
                         use_checkpoint=False, legacy=False, use_linear_in_transformer=sd2, **heads)
    unet = unet.to_empty(device="cpu")
    return reinit_(unet, seed).eval().requires_grad_(False)


def inputs(context_dim: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(11)
    return {"x": torch.randn(2, 4, 8, 8, generator=gen), "timesteps": torch.tensor([10, 500]),
            "context": torch.randn(2, 8, context_dim, generator=gen)}


def with_hypernetworks(unet: torch.nn.Module, stack, data) -> torch.Tensor:
    handle = lib_hypernet.install(unet)
    try:
        handle.activate(stack)
        return run_unet(unet, data)
    finally:
        handle.remove()


# ---------------------------------------------------------------------------- applying a LoRA as the hosts do
def a1111_targets(unet: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """A1111 ``networks.assign_network_names_to_compvis_modules``: ``sd_model.model.named_modules()`` with dots
    as underscores; a ``lora_unet_…`` key is looked up with ``lora_unet`` replaced by ``diffusion_model``."""
    wrapper = torch.nn.Module()
    wrapper.diffusion_model = unet
    return {name.replace(".", "_"): module for name, module in wrapper.named_modules()}


def comfy_targets(unet: torch.nn.Module) -> dict[str, str]:
    """ComfyUI / Forge 2 ``model_lora_keys_unet``: ``lora_unet_`` + the state-dict key after ``diffusion_model.``
    without ``.weight``, dots as underscores → that weight's key."""
    return {"lora_unet_" + k[: -len(".weight")].replace(".", "_"): "diffusion_model." + k
            for k in unet.state_dict() if k.endswith(".weight")}


def apply_lora(unet: torch.nn.Module, lora: dict[str, torch.Tensor], strength: float) -> torch.nn.Module:
    """W + s·diff and b + s·diff_b, every key resolved by A1111's rule and checked against ComfyUI's."""
    patched = copy.deepcopy(unet)
    a1111, comfy = a1111_targets(patched), comfy_targets(patched)
    with torch.no_grad():
        for key, value in lora.items():
            name, part = key.split(".", 1)
            assert part in ("diff", "diff_b"), key
            module = a1111[name.replace("lora_unet", "diffusion_model")]
            assert comfy[name] == "diffusion_model." + _path_of(patched, module) + ".weight"
            target = module.weight if part == "diff" else module.bias
            target += strength * value.to(target.dtype)
    return patched


def _path_of(unet: torch.nn.Module, module: torch.nn.Module) -> str:
    return next(name for name, m in unet.named_modules() if m is module)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


# ---------------------------------------------------------------------------- SD1.5
@pytest.fixture(scope="module")
def sd15(tmp_path_factory):
    unet = sd_unet(768, seed=1)
    folder = tmp_path_factory.mktemp("sd15")
    # A checkpoint of the attention layers in float32 (what a bake reads; a merge keeps the rest as it is).
    ckpt = folder / "sd15-attention.safetensors"
    save_file({PREFIX + k: v.contiguous() for k, v in unet.state_dict().items() if ".attn" in k}, ckpt)
    return unet, ckpt, folder, inputs(768)


def linear_hn(name: str, sizes=(768, 320, 640, 1280), seed: int = 0, **options):
    options.setdefault("activation_func", "linear")
    return make_hn(name, sizes, seed=seed, std=0.05, **options)


def test_single_network_at_several_strengths(sd15):
    unet, ckpt, folder, data = sd15
    hn = linear_hn("single", seed=1)
    report = bake([(hn, 1.0)], ckpt, folder / "single.safetensors")
    assert report.max_error < 1e-6 and not report.unmatched and len(report.layers) == 32
    lora = load_file(folder / "single.safetensors")
    plain = run_unet(unet, data)
    for s in (1.0, 0.5, -0.8):  # one network: LoRA strength s reproduces hypernetwork strength s
        expected = with_hypernetworks(unet, [(hn, s)], data)
        assert rel(expected, plain) > 1e-2  # the hypernetwork visibly changes the output
        assert rel(run_unet(apply_lora(unet, lora, s), data), expected) < RTOL


def test_baked_strength_and_self_cross_split(sd15):
    unet, ckpt, folder, data = sd15
    hn = linear_hn("split", seed=2)
    strength = lib_hypernet.Strength(0.3, 0.9)
    bake([(hn, strength)], ckpt, folder / "split.safetensors")
    expected = with_hypernetworks(unet, [(hn, strength)], data)
    assert rel(run_unet(apply_lora(unet, load_file(folder / "split.safetensors"), 1.0), data), expected) < RTOL


def test_stack_of_two_lora_and_merged(sd15):
    unet, ckpt, folder, data = sd15
    stack = [(linear_hn("first", seed=3), 0.8), (linear_hn("second", seed=4, layer_structure=[1, 1.5, 1]), 0.6)]
    expected = with_hypernetworks(unet, stack, data)
    bake(stack, ckpt, folder / "stack.safetensors")
    assert rel(run_unet(apply_lora(unet, load_file(folder / "stack.safetensors"), 1.0), data), expected) < RTOL
    report = bake(stack, ckpt, folder / "stack-merged.safetensors", mode="merge")
    assert report.max_error < 1e-6
    merged = copy.deepcopy(unet)
    baked = {k[len(PREFIX):]: v for k, v in load_file(folder / "stack-merged.safetensors").items()}
    _, unexpected = merged.load_state_dict(baked, strict=False)
    assert not unexpected
    assert rel(run_unet(merged, data), expected) < RTOL


# ---------------------------------------------------------------------------- SD2
def test_sd2_width_network(tmp_path):
    unet = sd_unet(1024, seed=5, sd2=True)
    data = inputs(1024)
    ckpt = tmp_path / "sd2-attention.safetensors"
    save_file({PREFIX + k: v.contiguous() for k, v in unet.state_dict().items() if ".attn" in k}, ckpt)
    hn = linear_hn("sd2", sizes=(1024, 320, 640, 1280), seed=6)
    expected = with_hypernetworks(unet, [(hn, 0.7)], data)
    report = bake([(hn, 0.7)], ckpt, tmp_path / "sd2.safetensors")
    assert len(report.layers) == 32
    assert rel(run_unet(apply_lora(unet, load_file(tmp_path / "sd2.safetensors"), 1.0), data), expected) < RTOL


# ---------------------------------------------------------------------------- files and dtypes (small UNet)
@pytest.fixture
def small(tmp_path):
    unet = make_unet()
    return unet, tmp_path, {"x": torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1)),
                            "timesteps": torch.tensor([10, 500]),
                            "context": torch.randn(2, 7, 48, generator=torch.Generator().manual_seed(2))}


def test_fp16_checkpoint_merge_changes_only_the_baked_tensors(small):
    unet, tmp_path, data = small
    state = {PREFIX + k: v.to(torch.float16).contiguous() for k, v in unet.state_dict().items()}
    save_file(state, tmp_path / "fp16.safetensors", metadata={"note": "kept"})
    hn = linear_hn("h", sizes=(32, 64, 48), seed=7)
    bake([(hn, 0.9)], tmp_path / "fp16.safetensors", tmp_path / "merged.safetensors", mode="merge")
    before, after = (tmp_path / "fp16.safetensors").read_bytes(), (tmp_path / "merged.safetensors").read_bytes()
    assert len(before) == len(after) and before[:1000] == after[:1000]  # same header, same layout
    merged = load_file(tmp_path / "merged.safetensors")
    changed = {k for k in state if not torch.equal(state[k], merged[k])}
    assert changed and all(k.endswith(("to_k.weight", "to_v.weight", "to_out.0.bias")) for k in changed)
    assert all(merged[k].dtype == torch.float16 for k in merged)
    # stored in float16: as exact as float16 allows (the unbaked model in float16 is the yardstick)
    fp16_unet = copy.deepcopy(unet)
    fp16_unet.load_state_dict({k[len(PREFIX):]: v.float() for k, v in state.items()})
    expected = with_hypernetworks(fp16_unet, [(hn, 0.9)], data)
    baked = copy.deepcopy(unet)
    baked.load_state_dict({k[len(PREFIX):]: v.float() for k, v in merged.items()})
    assert rel(run_unet(baked, data), expected) < 5e-3


def test_ckpt_input_through_the_safe_loader(small):
    unet, tmp_path, data = small
    torch.save({"state_dict": {PREFIX + k: v for k, v in unet.state_dict().items()}, "global_step": 10},
               tmp_path / "model.ckpt")
    hn = linear_hn("h", sizes=(32, 64, 48), seed=8)
    expected = with_hypernetworks(unet, [(hn, 0.5)], data)
    bake([(hn, 0.5)], tmp_path / "model.ckpt", tmp_path / "from-ckpt.safetensors", mode="merge")
    baked = copy.deepcopy(unet)
    baked.load_state_dict({k[len(PREFIX):]: v for k, v in load_file(tmp_path / "from-ckpt.safetensors").items()})
    assert rel(run_unet(baked, data), expected) < RTOL


def test_lora_metadata_records_sources_strengths_and_checkpoint(small):
    unet, tmp_path, _ = small
    save_file({PREFIX + k: v.contiguous() for k, v in unet.state_dict().items()}, tmp_path / "c.safetensors")
    hn = linear_hn("meta", sizes=(32, 64, 48), seed=9)
    hn.save(tmp_path / "meta.safetensors")
    report = bake([(tmp_path / "meta.safetensors", lib_hypernet.Strength(0.2, 0.4))], tmp_path / "c.safetensors",
                  tmp_path / "lora.safetensors")
    from safetensors import safe_open

    with safe_open(tmp_path / "lora.safetensors", "pt") as f:
        record = json.loads(f.metadata()["sd_webui_hypernet_bake"])
    assert record["checkpoint"]["sha256"] == report.checkpoint_sha256 == lib_hypernet.sha256(tmp_path / "c.safetensors")
    assert record["sources"] == [{"name": "meta", "file": "meta.safetensors",
                                  "sha256": lib_hypernet.sha256(tmp_path / "meta.safetensors"),
                                  "self": 0.2, "cross": 0.4}]
    assert any("another checkpoint" in w or "one checkpoint" in w for w in report.warnings)


# ---------------------------------------------------------------------------- refusals
@pytest.mark.parametrize(("options", "words"), [
    ({"activation_func": "relu"}, ["activation ReLU", "layer 1"]),
    ({"activation_func": "linear", "is_layer_norm": True}, ["layer norm", "layer 1"]),
])
def test_non_linear_networks_are_refused_with_the_reason(small, options, words):
    unet, tmp_path, _ = small
    save_file({PREFIX + k: v.contiguous() for k, v in unet.state_dict().items()}, tmp_path / "c.safetensors")
    hn = make_hn("nl", (32, 64, 48), seed=1, **options)
    with pytest.raises(BakeError) as info:
        bake([(hn, 1.0)], tmp_path / "c.safetensors", tmp_path / "out.safetensors")
    assert all(w in str(info.value) for w in words), info.value
    assert not (tmp_path / "out.safetensors").exists()


def test_step_range_existing_output_and_nothing_matching_are_refused(small):
    unet, tmp_path, _ = small
    save_file({PREFIX + k: v.contiguous() for k, v in unet.state_dict().items()}, tmp_path / "c.safetensors")
    hn = linear_hn("h", sizes=(32, 64, 48), seed=2)
    with pytest.raises(BakeError, match="step range"):
        bake([(hn, lib_hypernet.Strength(1, 1, 0.0, 0.5))], tmp_path / "c.safetensors", tmp_path / "o.safetensors")
    (tmp_path / "o.safetensors").write_bytes(b"keep")
    with pytest.raises(HypernetExistsError):
        bake([(hn, 1.0)], tmp_path / "c.safetensors", tmp_path / "o.safetensors")
    assert (tmp_path / "o.safetensors").read_bytes() == b"keep"
    with pytest.raises(BakeError, match="no attention layer"):
        bake([(linear_hn("odd", sizes=(8, 16), seed=3), 1.0)], tmp_path / "c.safetensors", tmp_path / "p.safetensors")


def test_spec_grammar():
    assert parse_spec("a.pt") == ("a.pt", lib_hypernet.Strength(1, 1))
    assert parse_spec("dir/a.pt:0.5") == ("dir/a.pt", lib_hypernet.Strength(0.5, 0.5))
    assert parse_spec("C:/x/a.pt:0.8:self=0.2") == ("C:/x/a.pt", lib_hypernet.Strength(0.2, 0.8))
    assert parse_spec("a.pt:cross=1:self=0") == ("a.pt", lib_hypernet.Strength(0.0, 1.0))
