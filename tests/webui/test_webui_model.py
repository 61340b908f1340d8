"""The webui extension inside the A1111 stand-in: hooks on the real ldm UNet survive what the webui does to the
model (class-level forward swaps, VAE and checkpoint changes, full model changes), go away when unused, and
leave the model bit-identical when the extension is unloaded."""

from __future__ import annotations

import copy
import gc
import os
import weakref

import torch
import webui_util as wu
from modules import errors, extra_networks, extra_networks_hypernet, processing, script_callbacks, sd_hijack, shared

OPTIMIZATIONS = ("None", "Doggettx", "xformers", "sdp", "sdp-no-mem", "sub-quadratic", "V1", "InvokeAI")
TAGGED = "<hypernet:x:0.8>a cat"


def test_hooks_are_on_the_real_ldm_unet(app):
    from ldm.modules.diffusionmodules.openaimodel import UNetModel

    unet = wu.unet()
    assert type(unet) is UNetModel
    assert wu.lib_hypernet.install(unet) is wu.extension().handle
    assert wu.hooks_left() == []  # idle: nothing attached

    seen = []

    def record(params):  # during sampling, the attention projections carry the extension's hooks
        seen.append(len([n for n, m in unet.named_modules() if m._forward_pre_hooks and n.endswith(("to_k", "to_v"))]))

    script_callbacks.on_cfg_denoiser(record)
    wu.gen(TAGGED)
    n_attention = len([m for m in unet.modules() if isinstance(getattr(m, "to_k", None), torch.nn.Linear)])
    assert seen == [2 * n_attention, 2 * n_attention]
    assert wu.hooks_left() == []


def test_class_level_forward_swaps_keep_hypernetworks(app):
    results = {}
    for name in OPTIMIZATIONS:
        assert wu.webui.set_optimization(name) or name == "Doggettx"
        expected_forward = sd_hijack.current_optimizer.name if sd_hijack.current_optimizer else None
        assert expected_forward == (None if name == "None" else name)
        none = wu.gen()
        tagged = wu.gen(TAGGED)
        assert not wu.same(tagged, none), name
        assert wu.max_diff(tagged, none) > 1e-2, name
        results[name] = (none, tagged)
    reference_none, reference = results["None"]
    for name, (none, tagged) in results.items():
        assert wu.max_diff(none, reference_none) < 1e-4, name
        assert wu.max_diff(tagged, reference) < 1e-4, name
    assert errors.records == []
    assert extra_networks_hypernet.activations == []


def test_vae_and_same_config_checkpoint_changes(app):
    model = shared.sd_model
    before = wu.gen(TAGGED)
    wu.webui.change_vae()
    assert shared.sd_model is model
    none = wu.gen()
    after_vae = wu.gen(TAGGED)
    assert wu.same(after_vae, before)
    assert not wu.same(after_vae, none)

    wu.webui.change_checkpoint("stub-other")
    assert shared.sd_model is model  # same object, new weights
    assert wu.lib_hypernet.install(wu.unet()) is wu.extension().handle
    none = wu.gen()
    tagged = wu.gen(TAGGED)
    assert not wu.same(tagged, none)
    assert not wu.same(tagged, before)
    assert wu.comments(tagged) == []
    assert errors.records == []


def test_full_model_change_to_another_config(app):
    old_model_ref = weakref.ref(shared.sd_model)
    old_unet_ref = weakref.ref(wu.unet())
    wu.gen(TAGGED)
    wu.webui.change_checkpoint("stub-sd2", model="sd2-tiny")
    widths = wu.attention_widths()
    assert 1024 in widths and 768 not in widths
    wu.write_hn("x2", sizes=widths, seed=11)
    none = wu.gen()
    tagged = wu.gen("<hypernet:x2:0.8>a cat")
    assert not wu.same(tagged, none)
    assert wu.comments(tagged) == []
    assert wu.lib_hypernet.install(wu.unet()) is wu.extension().handle
    # the SD1 hypernetwork on the SD2 model: its 768 modules match nothing
    sd1_on_sd2 = wu.gen(TAGGED)
    assert any("self-attention only" in c or "matched no attention layer" in c for c in wu.comments(sd1_on_sd2))
    gc.collect()
    assert old_model_ref() is None
    assert old_unet_ref() is None
    assert errors.records == []


def test_no_hooks_after_a_generation(app):
    probe_before = wu.unet_probe()
    none = wu.gen()
    tagged = wu.gen(TAGGED)
    assert not wu.same(tagged, none)
    assert wu.hooks_left() == []
    assert torch.equal(wu.unet_probe(), probe_before)
    assert wu.same(wu.gen(), none)
    # also with hires fix, several batches and a missing file in the stack
    wu.gen("<hypernet:x:0.8><hypernet:nope>a cat", enable_hr=True, n_iter=2, hr_prompt="<hypernet:x:0.3>a cat")
    assert wu.hooks_left() == []
    assert torch.equal(wu.unet_probe(), probe_before)
    assert wu.same(wu.gen(), none)


def test_unload_restores_the_model_bit_exactly(app):
    never_hooked = copy.deepcopy(wu.unet())
    unet = wu.unet()
    # leave hypernetworks active, as an interrupted generation would
    p = processing.StableDiffusionProcessingTxt2Img(prompt=TAGGED)
    _, data = extra_networks.parse_prompt(TAGGED)
    extra_networks.activate(p, data)
    assert wu.hooks_left(unet) != []
    assert not torch.equal(wu.unet_probe(unet), wu.unet_probe(never_hooked))

    wu.webui.unload()
    assert wu.hooks_left(unet) == []
    assert torch.equal(wu.unet_probe(unet), wu.unet_probe(never_hooked))


def test_model_load_dummy_p(tmp_path):
    wu.reset(tmp_path)
    try:
        wu.write_hn("x", seed=1)
        wu.start(model_load="late", settings={"sd_hypernetwork": "x"})
        prepared = wu.extension().prepared  # set by the dummy-p activation of the registered network
        assert prepared is not None and prepared.stack == [] and prepared.messages == []
        assert errors.records == []
        assert extra_networks_hypernet.activations == []
        assert wu.hooks_left() == []
        # a full model load later (new object, dummy p again)
        wu.webui.change_checkpoint("stub-sd2", model="sd2-tiny")
        assert errors.records == []
        # and the setting still works for generations
        res = wu.gen()
        assert "<hypernet:x:1>" in res.infotexts[0]
        assert errors.records == []
    finally:
        wu.webui.unload()


def test_model_load_dummy_p_reaches_the_extension(tmp_path):
    """The dummy p (all_prompts None, scripts None) given straight to the registered network."""
    with wu.running(tmp_path, settings={"sd_hypernetwork": "x"}):
        network = extra_networks.extra_network_registry["hypernet"]
        p = processing.StableDiffusionProcessingTxt2Img()
        assert p.all_prompts is None and p.scripts is None
        network.activate(p, [])
        network.activate(p, [extra_networks.ExtraNetworkParams(items=["x", "0.5"])])
        network.deactivate(p)
        extra_networks.activate(p, {})
        assert errors.records == []
        assert wu.hooks_left() == []


def test_a_network_left_applied_by_training_is_switched_off(tmp_path):
    """A1111's Train tab leaves the trained network in shared.loaded_hypernetworks, which its attention code applies
    to every generation; the built-in tag handler emptied it at the next generation, and so does the extension."""
    from modules import shared
    from modules.hypernetworks import hypernetwork as builtin

    with wu.running(tmp_path, [("trained", {"seed": 7})], optimization="None"):  # A1111's forward reads the list
        plain = wu.gen("a cat")
        shared.loaded_hypernetworks.append(builtin.StubHypernetwork("trained").load(
            os.path.join(wu.hn_dir(), "trained.pt")))
        after_training = wu.gen("a cat")
        assert wu.same(after_training, plain)
        assert shared.loaded_hypernetworks == []
