"""The extension inside the reForge stand-in (tests/forge_stub, ``ldm_patched`` shape): a real torch UNet at
``sd_model.model.diffusion_model`` with ``nn.Linear``-subclass projections, Forge's per-generation order, no
autocast.  The adapter uses the patch route (as on Forge 2); checked against our A1111 path (hooks on the same
UNet's projections) in fp32/fp16/bf16, with hires fix, ToMe and LoRA; under ToMe only the patches still tell
self- from cross-attention."""

from __future__ import annotations

import sys

import pytest
import torch
import webui_util as wu
from hn_testutil import FORGE_STUB_DIR

sys.path.insert(0, str(FORGE_STUB_DIR))

import forge
from forge_common.ops import ManualCastLinear
from forge_util import STACK_CASE_IDS, STACK_CASES, check_convert_after_a_generation, hn, max_out_diff, reference
from modules import errors, extra_networks_hypernet, scripts, shared

from lib_hypernet.webui import forge as forge_adapter
from lib_hypernet.webui import host

TAGGED = "<hypernet:x:0.8>a cat"


def boot(tmp_path, **state):
    forge.reset(tmp_path, "reforge", **state)
    wu.write_hn("x", seed=1)
    wu.write_hn("y", seed=2)
    return forge.start()


@pytest.fixture
def app(tmp_path):
    try:
        yield boot(tmp_path)
    finally:
        forge.unload()





def test_detects_reforge_and_uses_the_a1111_way(app):
    assert host.detect() == host.REFORGE
    always_on = [s for s in scripts.scripts_txt2img.alwayson_scripts if s.title() == "Hypernetworks"]
    assert len(always_on) == 1 and type(always_on[0]) is forge_adapter.HypernetScript
    assert isinstance(wu.extension(), forge_adapter.ForgeHypernetExtension)
    forge.txt2img("a cat")
    unet = shared.sd_model.model.diffusion_model
    assert unet is forge.diffusion_model()
    to_k = [m.to_k for m in unet.modules() if hasattr(m, "to_k")]
    assert to_k and all(isinstance(m, ManualCastLinear) and isinstance(m, torch.nn.Linear) for m in to_k)
    forge.txt2img(TAGGED)
    assert wu.hooks_left(unet) == []  # the patch route: no hooks


@pytest.mark.parametrize(("prompt", "stack"), STACK_CASES, ids=STACK_CASE_IDS)
def test_equals_the_a1111_path(app, prompt, stack):
    none = forge.txt2img("a cat", steps=4)
    tagged = forge.txt2img(prompt, steps=4)
    expected = reference("a cat", stack(), steps=4)
    assert max_out_diff(tagged, expected) < 1e-5
    assert max_out_diff(tagged, none) > 1e-3
    assert errors.records == [] and extra_networks_hypernet.activations == []


def test_zero_no_tag_and_no_leak(app):
    none = forge.txt2img("a cat")
    for prompt in ("<hypernet:x:0>a cat", "a cat"):
        assert wu.same(forge.txt2img(prompt), none)
    forge.txt2img(TAGGED)
    assert wu.hooks_left(forge.diffusion_model()) == []
    assert wu.same(forge.txt2img("a cat"), none)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_activations(tmp_path, dtype):
    try:
        boot(tmp_path, dtype=dtype)
        none = forge.txt2img("a cat")
        tagged = forge.txt2img(TAGGED)
        expected = reference("a cat", [(hn("x"), 0.8)])
        assert all(torch.isfinite(o).all() for o in tagged.unet_outputs)
        assert max_out_diff(tagged, expected) < 1e-2
        assert max_out_diff(tagged, none) > 1e-3
        assert errors.records == []
    finally:
        forge.unload()


def test_hires_tome_and_lora(tmp_path):
    try:
        boot(tmp_path, tome=0.5)
        kwargs = dict(enable_hr=True, hr_scale=1.5, denoising_strength=0.6, steps=2)
        none = forge.txt2img("<lora:delta:1>a cat", **kwargs)
        tagged = forge.txt2img("<lora:delta:1><hypernet:x:0.8>a cat", **kwargs)
        expected = reference("<lora:delta:1>a cat", [(hn("x"), 0.8)], **kwargs)
        assert max_out_diff(tagged, expected) < 1e-5
        assert max_out_diff(tagged, none) > 1e-3
        assert wu.hooks_left(forge.diffusion_model()) == []
    finally:
        forge.unload()


def test_self_cross_split_under_tome(tmp_path):
    """ToMe gives attn1 merged tokens as Q and the full tokens as K/V: the patch still knows it is self-attention."""
    try:
        boot(tmp_path, tome=0.5)
        none = forge.txt2img("a cat")
        self_only = forge.txt2img("<hypernet:x:self=0.8:cross=0>a cat")
        cross_only = forge.txt2img("<hypernet:x:self=0:cross=0.8>a cat")
        both = forge.txt2img(TAGGED)
        assert max_out_diff(self_only, none) > 1e-3 and max_out_diff(cross_only, none) > 1e-3
        assert max_out_diff(self_only, both) > 1e-3 and max_out_diff(cross_only, both) > 1e-3
        expected = reference("a cat", [(hn("x"), 0.8)])  # uniform strength: the hook route agrees
        assert max_out_diff(both, expected) < 1e-5
    finally:
        forge.unload()


def test_convert_and_save_after_a_generation(tmp_path):
    """reForge generates under inference_mode (processing.py:997) too: the file just used converts."""
    check_convert_after_a_generation(tmp_path, "reforge")
