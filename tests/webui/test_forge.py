"""The extension inside the Forge 2 stand-in (tests/forge_stub): detection, the patch route through Forge's
real per-generation order (reset → activate → reset → ToMe → process_before_every_sampling → sampling that
reads ``forge_objects.unet`` every step; hires fix calls it twice), equal to our A1111 path (hooks on the same
UNet), and everything around it (messages, infotext, settings, routes)."""

from __future__ import annotations

import os
import sys

import pytest
import torch
import webui_util as wu
from hn_testutil import FORGE_STUB_DIR

sys.path.insert(0, str(FORGE_STUB_DIR))

import forge
from fastapi.testclient import TestClient
from forge_util import STACK_CASE_IDS, STACK_CASES, check_convert_after_a_generation, hn, max_out_diff, reference
from modules import errors, extra_networks, extra_networks_hypernet, scripts, shared, ui_extra_networks

from lib_hypernet.engine.patch import is_hypernet_patch
from lib_hypernet.webui import a1111, host
from lib_hypernet.webui import forge as forge_adapter

TAGGED = "<hypernet:x:0.8>a cat"


@pytest.fixture
def app(tmp_path):
    forge.reset(tmp_path, "forge")
    try:
        wu.write_hn("x", seed=1)
        wu.write_hn("y", seed=2)
        yield forge.start()
    finally:
        forge.unload()


def restart(tmp_path, **state):
    """Same files, another harness setting (dtype, ToMe, model)."""
    forge.unload()
    forge.reset(tmp_path, "forge", **state)
    wu.write_hn("x", seed=1)
    wu.write_hn("y", seed=2)
    forge.start()




def our_patches(unet_patcher):
    patches = unet_patcher.model_options["transformer_options"].get("patches", {})
    return [p for name in ("attn1_patch", "attn2_patch") for p in patches.get(name, []) if is_hypernet_patch(p)]



def test_detects_forge_and_registers_the_forge_adapter(app):
    assert host.detect() == host.FORGE
    extension = wu.extension()
    assert isinstance(extension, forge_adapter.ForgeHypernetExtension)
    always_on = [s for s in scripts.scripts_txt2img.alwayson_scripts if s.title() == "Hypernetworks"]
    assert len(always_on) == 1 and type(always_on[0]) is forge_adapter.HypernetScript
    assert isinstance(extra_networks.extra_network_registry["hypernet"], a1111.ExtraNetworkHypernet)
    assert "hypernetworks" not in [p.name for p in ui_extra_networks.extra_pages]  # Forge 2 has no built-in page
    forge.txt2img("a cat")
    assert not hasattr(shared.sd_model, "model")  # a ForgeDiffusionEngine: no .model, not a torch module
    assert not isinstance(shared.sd_model, torch.nn.Module)


@pytest.mark.parametrize(("prompt", "stack"), STACK_CASES, ids=STACK_CASE_IDS)
def test_equals_the_a1111_path(app, prompt, stack):
    none = forge.txt2img("a cat", steps=4)
    tagged = forge.txt2img(prompt, steps=4)
    expected = reference("a cat", stack(), steps=4)
    assert max_out_diff(tagged, expected) < 1e-5
    assert max_out_diff(tagged, none) > 1e-3
    assert errors.records == []
    assert extra_networks_hypernet.activations == []  # the built-in (no-op) network never ran


def test_step_range_leaves_other_steps_bit_identical(app):
    none = forge.txt2img("a cat", steps=4)
    late = forge.txt2img("<hypernet:x:0.8:start=0.5>a cat", steps=4)
    assert all(torch.equal(a, b) for a, b in zip(late.unet_outputs[:2], none.unet_outputs[:2]))
    assert max_out_diff(late, none) > 1e-3


def test_zero_and_no_tag_are_bit_identical_to_none(app):
    none = forge.txt2img("a cat")
    clones = forge.UnetPatcher.clones_made
    for prompt in ("<hypernet:x:0>a cat", "<hypernet:x:0:self=0:cross=0>a cat", "a cat"):
        assert wu.same(forge.txt2img(prompt), none), prompt
    assert forge.UnetPatcher.clones_made == clones  # nothing patched at all


def test_nothing_leaks_into_the_next_generation(app):
    none = forge.txt2img("a cat")
    forge.txt2img(TAGGED)
    sd_model = shared.sd_model
    assert our_patches(sd_model.forge_objects_original.unet) == []
    assert our_patches(sd_model.forge_objects_after_applying_lora.unet) == []
    assert not wu.extension().patch.active
    assert wu.same(forge.txt2img("a cat"), none)
    assert wu.hooks_left(forge.diffusion_model()) == []


def test_hires_fix_double_call_is_idempotent(app, monkeypatch):
    seen = []
    original = forge.calc_cond_uncond_batch

    def spy(unet, *args):
        seen.append(len(our_patches(unet)))
        return original(unet, *args)

    monkeypatch.setattr(forge, "calc_cond_uncond_batch", spy)
    kwargs = dict(enable_hr=True, hr_scale=1.5, denoising_strength=0.6, steps=2)
    tagged = forge.txt2img(TAGGED, **kwargs)
    assert seen == [2, 2, 2, 2]  # one attn1 and one attn2 patch in every step of both passes
    seen.clear()
    expected = reference("a cat", [(hn("x"), 0.8)], **kwargs)
    assert seen == [0, 0, 0, 0]
    assert max_out_diff(tagged, expected) < 1e-5
    assert [c["pass"] for c in tagged.unet_calls] == ["first", "first", "hr", "hr"]


def test_hires_pass_uses_its_own_tags(app, monkeypatch):
    seen = []
    original = forge.calc_cond_uncond_batch

    def spy(unet, *args):
        seen.append(len(our_patches(unet)))
        return original(unet, *args)

    monkeypatch.setattr(forge, "calc_cond_uncond_batch", spy)
    kwargs = dict(enable_hr=True, hr_scale=1.5, denoising_strength=0.6, steps=2)
    first_only = forge.txt2img(TAGGED, hr_prompt="a cat", **kwargs)
    assert seen == [2, 2, 0, 0]
    seen.clear()
    both = forge.txt2img(TAGGED, hr_prompt="<hypernet:y:0.5>a cat", **kwargs)
    assert seen == [2, 2, 2, 2]
    assert all(torch.equal(a, b) for a, b in zip(both.unet_outputs[:2], first_only.unet_outputs[:2]))
    assert max_out_diff(both, first_only) > 1e-3
    assert wu.extension().patch.stack == []  # deactivated after the batch


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_activations(tmp_path, app, dtype):
    restart(tmp_path, dtype=dtype)
    none = forge.txt2img("a cat")
    tagged = forge.txt2img(TAGGED)
    expected = reference("a cat", [(hn("x"), 0.8)])
    assert all(torch.isfinite(o).all() for o in tagged.unet_outputs)
    assert max_out_diff(tagged, expected) < 1e-2
    assert max_out_diff(tagged, none) > 1e-3
    assert errors.records == []


def test_clone_copies_no_weights(app, monkeypatch):
    """Forge deep-copies model_options on every clone(): no tensor is copied, the patches stay the same objects."""
    import copy

    deep_copies = []
    real = copy.deepcopy

    def counting(obj, memo=None):
        if isinstance(obj, torch.Tensor):
            deep_copies.append(obj.shape)
        return real(obj, memo)

    forge.txt2img("a cat")  # the model loads first
    extension = wu.extension()
    seen = []
    original = forge.calc_cond_uncond_batch

    def spy(unet, *args):
        seen.append(our_patches(unet))
        unet.clone()  # what any other script's clone would do
        return original(unet, *args)

    monkeypatch.setattr(copy, "deepcopy", counting)
    monkeypatch.setattr(forge, "calc_cond_uncond_batch", spy)
    forge.txt2img(TAGGED, enable_hr=True, hr_scale=1.5, denoising_strength=0.6)
    assert deep_copies == []
    assert len(seen) == 4 and all(p[0] is extension.patch.attn1 and p[1] is extension.patch.attn2 for p in seen)


def test_with_tome_lora_and_a_replace_patch(tmp_path, app, monkeypatch):
    restart(tmp_path, tome=0.5)

    def replace(q, k, v, extra_options):
        from forge_common.attention import attention_function

        return attention_function(q, torch.cat([k, k[:, :3]], 1), torch.cat([v, v[:, :3] * 0.5], 1), extra_options["n_heads"])

    real = forge.apply_token_merging

    def tome_and_ip_adapter(sd_model, ratio):
        real(sd_model, ratio)
        unet = sd_model.forge_objects.unet.clone()
        for block in (("input", 0), ("input", 1), ("middle", 0), ("output", 0), ("output", 1)):
            unet.set_model_attn2_replace(replace, *block)
        sd_model.forge_objects.unet = unet

    monkeypatch.setattr(forge, "apply_token_merging", tome_and_ip_adapter)
    none = forge.txt2img("<lora:delta:1>a cat")
    tagged = forge.txt2img("<lora:delta:1><hypernet:x:0.8>a cat")
    expected = reference("<lora:delta:1>a cat", [(hn("x"), 0.8)])
    assert max_out_diff(tagged, expected) < 1e-5
    assert max_out_diff(tagged, none) > 1e-3
    assert max_out_diff(none, forge.txt2img("a cat")) > 1e-3  # the LoRA did something


def test_not_a_unet_says_so(tmp_path, app):
    restart(tmp_path, model="flux-tiny")
    none = forge.txt2img("a cat")
    tagged = forge.txt2img(TAGGED)
    assert wu.same(tagged, none)
    assert forge_adapter.NEEDS_UNET in wu.comments(tagged)


def test_messages_infotext_and_paste_back(app):
    res = forge.txt2img("<hypernet:nope><hypernet:x:0.8>a cat")
    text = res.infotexts[0]
    assert f'Hypernet hashes: "x: {wu.lib_hypernet.shorthash(os.path.join(wu.hn_dir(), "x.pt"))}"' in text
    assert any("nope" in c for c in wu.comments(res))
    assert wu.webui.paste_infotext(text)["Prompt"].startswith("<hypernet:nope><hypernet:x:0.8>")


def test_matched_nothing_is_reported(app):
    wu.write_hn("wide", sizes=(1280,), seed=3)
    wu.extension().refresh()
    res = forge.txt2img("<hypernet:wide:0.8>a cat")
    assert any("wide" in c for c in wu.comments(res))


def test_precision_setting(app):
    fp32 = forge.txt2img(TAGGED)
    shared.opts.set("hypernet_precision", "bfloat16")
    bf16 = forge.txt2img(TAGGED)
    assert wu.extension().patch.compute_dtype == torch.bfloat16
    assert 0 < max_out_diff(bf16, fp32) < 5e-2


def test_routes(app):
    client = TestClient(app)
    names = [item["name"] for item in client.get("/hypernet/v1/hypernetworks").json()]
    assert sorted(names) == ["x", "y"]
    assert client.get("/hypernet/v1/hypernetworks/x").status_code == 200


def test_a_broken_patcher_never_breaks_a_generation(app, monkeypatch):
    forge.txt2img("a cat")

    def broken(self):
        raise RuntimeError("no clone today")

    monkeypatch.setattr(forge.UnetPatcher, "clone", broken)
    none = forge.txt2img("a cat")
    assert wu.same(forge.txt2img(TAGGED), none)


def test_detection_follows_the_host_packages():
    try:
        for name, expected in ((None, host.A1111), ("forge", host.FORGE), ("reforge", host.REFORGE), (None, host.A1111)):
            forge.use_host(name)
            assert host.detect() == expected, name
        forge.use_host("forge")
        from lib_hypernet import webui

        assert webui.adapter() is forge_adapter and webui.script_class() is forge_adapter.HypernetScript
        forge.use_host(None)
        assert webui.adapter() is a1111 and webui.script_class() is a1111.HypernetScript
    finally:
        forge.use_host(None)


def test_convert_and_save_after_a_generation(tmp_path):
    """Forge generates under inference_mode: the file a generation just used converts and saves."""
    check_convert_after_a_generation(tmp_path, "forge")


@pytest.mark.parametrize(("host_name", "line"), [("forge", "Forge 2 detected"), ("reforge", "reForge detected"),
                                                 (None, "A1111 detected")])
def test_the_start_up_line_reaches_the_console(tmp_path, monkeypatch, capsys, host_name, line):
    """The webuis configure logging only with SD_WEBUI_LOG_LEVEL: without it our INFO lines need our handler."""
    import logging

    monkeypatch.delenv("SD_WEBUI_LOG_LEVEL", raising=False)
    forge.reset(tmp_path, "forge")
    forge.use_host(host_name)
    try:
        forge.start()
        assert f"hypernetworks: {line}" in capsys.readouterr().err
    finally:
        forge.unload()
    handlers = logging.getLogger("lib_hypernet").handlers
    assert not [h for h in handlers if isinstance(h, logging.StreamHandler)]  # removed with the script (on_script_unloaded)
    monkeypatch.setenv("SD_WEBUI_LOG_LEVEL", "WARNING")  # the webui's own logging decides
    forge.reset(tmp_path, "forge")
    try:
        forge.start()
        assert line not in capsys.readouterr().err
    finally:
        forge.unload()
