"""Fast tests of the A1111 stand-in itself (run: .venv/bin/python -m pytest tests/webui_stub -q)."""
from __future__ import annotations

import gc
import os
import sys
import weakref
from collections import OrderedDict

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ldm.modules.attention
import webui
from modules import (
    errors,
    extra_networks,
    extra_networks_hypernet,
    infotext_utils,
    script_callbacks,
    scripts,
    sd_hijack,
    sd_hijack_optimizations,
    shared,
)
from modules.hypernetworks import hypernetwork

EXT_SCRIPT = '''
import os, sys
import stubext_helper                      # resolves from the extension root via sys.path
from modules import scripts, script_callbacks, extra_networks, shared

LOG = stubext_helper.LOG
LOG.append(("import", scripts.basedir(), sys.path[0]))


class RecordingNet(extra_networks.ExtraNetwork):
    def __init__(self):
        super().__init__("hypernet")

    def activate(self, p, params_list):
        LOG.append(("activate", p, [list(x.items) for x in params_list]))

    def deactivate(self, p):
        LOG.append(("deactivate",))


script_callbacks.on_before_ui(lambda: LOG.append(("before_ui", 1)))
script_callbacks.on_before_ui(lambda: extra_networks.register_extra_network(RecordingNet()), name="register")
script_callbacks.on_model_loaded(lambda m: LOG.append(("model_loaded", m)))
script_callbacks.on_cfg_denoiser(lambda params: LOG.append(("cfg_denoiser", params.sampling_step, params.total_sampling_steps)))
script_callbacks.on_app_started(lambda demo, app: LOG.append(("app_started", demo, app)))
script_callbacks.on_ui_settings(lambda: LOG.append(("ui_settings",)))


class Recorder(scripts.Script):
    def title(self):
        return "recorder"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def process(self, p, *args):
        LOG.append(("process", args))

    def before_process_batch(self, p, *args, **kwargs):
        LOG.append(("before_process_batch", list(p.prompts)))

    def after_extra_networks_activate(self, p, *args, **kwargs):
        LOG.append(("after_extra_networks_activate", sorted(kwargs)))

    def process_batch(self, p, *args, **kwargs):
        LOG.append(("process_batch",))

    def process_before_every_sampling(self, p, *args, **kwargs):
        LOG.append(("process_before_every_sampling", sorted(kwargs)))

    def before_hr(self, p, *args):
        LOG.append(("before_hr",))

    def postprocess(self, p, processed, *args):
        LOG.append(("postprocess",))
'''


@pytest.fixture()
def stub(tmp_path):
    webui.reset(tmp_path / "data")
    yield tmp_path
    webui.unload()


@pytest.fixture()
def ext(tmp_path):
    """A throw-away extension: scripts/stubext.py plus a helper module at the extension root."""
    root = tmp_path / "stub-ext"
    (root / "scripts").mkdir(parents=True)
    (root / "scripts" / "stubext.py").write_text(EXT_SCRIPT)
    (root / "stubext_helper.py").write_text("LOG = []\n")
    sys.modules.pop("stubext_helper", None)
    yield root
    sys.modules.pop("stubext_helper", None)


def _log():
    return sys.modules["stubext_helper"].LOG


@pytest.mark.parametrize("prompt, stripped, name, items, positional, named", [
    ("a <hypernet:foo:0.8> b", "a  b", "hypernet", ["foo", "0.8"], ["foo", "0.8"], {}),
    ("<hypernet:foo>", "", "hypernet", ["foo"], ["foo"], {}),
    ("<hypernet:foo bar:0.5>", "", "hypernet", ["foo bar", "0.5"], ["foo bar", "0.5"], {}),
    ("<hypernet:a=b=c:x=1>", "", "hypernet", ["a=b=c", "x=1"], ["a=b=c"], {"x": "1"}),
    ("<hypernet:foo:>", "", "hypernet", ["foo", ""], ["foo", ""], {}),
])
def test_parse_prompt_spec_table(prompt, stripped, name, items, positional, named):
    text, data = extra_networks.parse_prompt(prompt)
    assert text == stripped and list(data) == [name]
    (params,) = data[name]
    assert (params.items, params.positional, params.named) == (items, positional, named)


def test_parse_prompts_and_params_details():
    text, data = extra_networks.parse_prompt("x <hyper-net:x> <HyperNet:y:1>")
    assert text == "x <hyper-net:x> " and list(data) == ["HyperNet"]
    prompts, data = extra_networks.parse_prompts(["<hypernet:a:1> p", "<hypernet:b:2> q"])
    assert prompts == [" p", " q"] and [x.items for x in data["hypernet"]] == [["a", "1"]]
    assert extra_networks.ExtraNetworkParams(items=["n", 0.5]).positional == ["n", 0.5]
    assert extra_networks.ExtraNetworkParams(items=["a"]) == extra_networks.ExtraNetworkParams(items=["a"])


def test_callbacks_reverse_order_and_errors(stub):
    calls = []
    script_callbacks.on_before_ui(lambda: calls.append("first"))
    script_callbacks.on_before_ui(lambda: 1 / 0)
    script_callbacks.on_before_ui(lambda: calls.append("third"))
    script_callbacks.on_script_unloaded(lambda: calls.append("u1"))
    script_callbacks.on_script_unloaded(lambda: calls.append("u2"))
    script_callbacks.on_model_loaded(lambda m: calls.append("m1"))
    script_callbacks.on_model_loaded(lambda m: calls.append("m2"))
    script_callbacks.before_ui_callback()
    script_callbacks.script_unloaded_callback()
    script_callbacks.model_loaded_callback(None)
    assert calls == ["third", "first", "u2", "u1", "m1", "m2"]
    assert any("Error executing callback before_ui" in m for m in errors.messages())
    names = [c.name for c in script_callbacks.callback_map["callbacks_before_ui"]]
    assert names[0].startswith("base/") and names[1].endswith("before_ui-1")


def test_load_scripts_sets_and_restores_syspath_and_basedir(stub, ext):
    path_before = list(sys.path)
    webui.start([ext], model=None)
    assert sys.path == path_before and scripts.basedir() != str(ext)
    assert ("import", str(ext), str(ext)) in _log()
    runner = scripts.scripts_txt2img
    assert [type(s).__name__ for s in runner.alwayson_scripts] == ["Recorder"]
    # before_ui runs in reverse: the registering callback (2nd) first, then the logger
    assert isinstance(extra_networks.extra_network_registry["hypernet"], object)
    assert not getattr(extra_networks.extra_network_registry["hypernet"], "builtin", False)
    assert [e[0] for e in _log()].count("before_ui") == 1 and ("ui_settings",) in _log()


def _unet_out(unet):
    g = torch.Generator().manual_seed(0)
    x, ctx = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 77, 768, generator=g)
    with torch.no_grad():
        return unet(x, timesteps=torch.tensor([500, 500]), context=ctx)


def test_optimizations_switch_class_forward_and_agree(stub, ext):
    webui.start([ext], optimization="Doggettx")
    unet = shared.sd_model.model.diffusion_model
    assert ldm.modules.attention.MemoryEfficientCrossAttention is ldm.modules.attention.CrossAttention
    expected = {
        "None": hypernetwork.attention_CrossAttention_forward,
        "Doggettx": sd_hijack_optimizations.split_cross_attention_forward,
        "sdp": sd_hijack_optimizations.scaled_dot_product_attention_forward,
        "sdp-no-mem": sd_hijack_optimizations.scaled_dot_product_no_mem_attention_forward,
        "sub-quadratic": sd_hijack_optimizations.sub_quad_attention_forward,
        "V1": sd_hijack_optimizations.split_cross_attention_forward_v1,
        "InvokeAI": sd_hijack_optimizations.split_cross_attention_forward_invokeAI,
        "xformers": sd_hijack_optimizations.xformers_attention_forward,
    }
    loaded_before = [e for e in _log() if e[0] == "model_loaded"]
    reference = None
    for name, fn in expected.items():
        webui.set_optimization(name)
        assert ldm.modules.attention.CrossAttention.forward is fn, name
        out = _unet_out(unet)
        reference = out if reference is None else reference
        assert torch.allclose(out, reference, atol=1e-4), name
    assert [e for e in _log() if e[0] == "model_loaded"] == loaded_before  # redo_hijack, no model_loaded

    # hypernetworks in shared.loaded_hypernetworks are applied by every forward (once)
    hn = hypernetwork.StubHypernetwork("t")
    hn.layers = {768: (hypernetwork.StubHypernetworkModule(768, 1), hypernetwork.StubHypernetworkModule(768, 2))}
    shared.loaded_hypernetworks = [hn]
    with_hn = None
    for name in expected:
        webui.set_optimization(name)
        out = _unet_out(unet)
        with_hn = out if with_hn is None else with_hn
        assert torch.allclose(out, with_hn, atol=1e-4), name
    assert not torch.allclose(with_hn, reference, atol=1e-3)
    shared.loaded_hypernetworks = [hn, hn]  # double application is visible
    assert not torch.allclose(_unet_out(unet), with_hn, atol=1e-3)


def test_model_loaded_on_load_vae_checkpoint_and_dummy_p(stub, ext):
    webui.start([ext])
    loads = lambda: [e[1] for e in _log() if e[0] == "model_loaded"]  # noqa: E731
    first = shared.sd_model
    assert loads() == [first]
    webui.change_vae("a.safetensors")
    webui.change_vae("a.safetensors")  # unchanged: no reload
    assert loads() == [first, first]
    assert webui.change_checkpoint("other") is first and len(loads()) == 3  # same config: same object
    activations_before = [e for e in _log() if e[0] == "activate"]
    assert activations_before == []  # registry was empty at the startup load (early), and no full load since
    ref = weakref.ref(first)
    new = webui.change_checkpoint("xl", model="sdxl-tiny")
    assert new is not first and new.is_sdxl and loads()[-1] is new
    (dummy,) = [e[1] for e in _log() if e[0] == "activate"]
    assert dummy.all_prompts is None and dummy.scripts is None
    del first, dummy, activations_before
    _log().clear()
    gc.collect()
    assert ref() is None


def test_process_images_call_order_and_infotext(stub, ext):
    webui.start([ext])
    contexts = []
    unet = shared.sd_model.model.diffusion_model
    unet.register_forward_pre_hook(lambda m, a, kw: contexts.append(kw["context"]), with_kwargs=True)
    _log().clear()
    res = webui.txt2img("a cat <hypernet:foo:0.8>", steps=2, enable_hr=True, hr_second_pass_steps=1,
                        negative_prompt="ugly")
    kinds = [e[0] for e in _log()]
    assert kinds == ["process", "before_process_batch", "activate", "after_extra_networks_activate", "process_batch",
                     "process_before_every_sampling", "cfg_denoiser", "cfg_denoiser", "activate",
                     "after_extra_networks_activate", "before_hr", "process_before_every_sampling", "cfg_denoiser",
                     "deactivate", "postprocess"]
    assert _log()[2][2] == [["foo", "0.8"]] and _log()[1][1] == ["a cat <hypernet:foo:0.8>"]
    assert res.infotexts[0].startswith("a cat <hypernet:foo:0.8>\nNegative prompt: ugly\nSteps: 2, Sampler: Euler")
    assert len(res.unet_outputs) == 3 and res.images[0].shape == (4, 16, 16)
    assert contexts[0] is not contexts[1] and torch.equal(contexts[0], contexts[1]) and contexts[0].shape == (2, 77, 768)
    again = webui.txt2img("a cat <hypernet:foo:0.8>", steps=2, enable_hr=True, hr_second_pass_steps=1,
                          negative_prompt="ugly")
    assert all(torch.equal(a, b) for a, b in zip(res.unet_outputs, again.unet_outputs))


def test_builtin_hypernet_and_infotext_paste(stub):
    hn_dir = shared.cmd_opts.hypernetwork_dir
    sd = OrderedDict(weight=torch.zeros(1))
    # legacy format: under the real webui's modules.safe, a zip with torch>=2.1's .format_version is refused
    torch.save({768: (sd, sd), "name": "inner"}, os.path.join(hn_dir, "foo.pt"), _use_new_zipfile_serialization=False)
    webui.start([], settings={"sd_hypernetwork": "foo"})
    assert shared.hypernetworks == {"foo": os.path.join(hn_dir, "foo.pt")}
    res = webui.txt2img("cat <hypernet:foo:0.5>")
    assert [h.name for h in shared.loaded_hypernetworks] == ["inner"]
    assert hypernetwork.load_calls[-1] == (["foo"], [0.5]) and "<hypernet:foo:0.5>" in res.info
    assert extra_networks_hypernet.activations
    # sd_hypernetwork auto-add with the model-load dummy p: TypeError, caught and displayed
    webui.change_checkpoint("two", model="sd2-tiny")
    assert any(r["kind"] == "display" and isinstance(r["exception"], TypeError) for r in errors.records)
    seen = []
    script_callbacks.on_infotext_pasted(lambda text, params: seen.append(params["Prompt"]))
    params = webui.paste_infotext('cat\nSteps: 20, Sampler: Euler, Hypernet: foo, Hypernet strength: 0.7, '
                                  'Size: 512x768, Lora hashes: "a: 1, b: 2"')
    assert params["Prompt"] == "cat<hypernet:foo:0.7>" and seen == ["cat<hypernet:foo:0.7>"]
    assert params["Size-1"] == "512" and params["Lora hashes"] == "a: 1, b: 2"
    assert infotext_utils.quote("a: 1, b: 2") == '"a: 1, b: 2"' and infotext_utils.quote(5) == 5
    assert sd_hijack.model_hijack.optimization_method == "Doggettx"


def test_ids_of_scripts_accordions_and_tabs_are_a1111s(stub, ext):
    """A1111 1.10.1's ids (modules/scripts.py Script.elem_id, ui.py, ui_components.InputAccordion), not guesses."""
    import gradio as gr
    import webui_ui
    from modules.ui_components import InputAccordion

    webui.start([ext], model=None)
    (txt2img,) = scripts.scripts_txt2img.alwayson_scripts
    (img2img,) = scripts.scripts_img2img.alwayson_scripts
    assert txt2img.elem_id("panel") == "script_txt2img_recorder_panel"
    assert img2img.elem_id("panel") == "script_img2img_recorder_panel"

    class OneTab(scripts.Script):
        def title(self):
            return "X/Y/Z plot  2"

        def show(self, is_img2img):
            return not is_img2img

    one = OneTab()
    assert one.elem_id("x_type") == "script_xyz_plot__2_x_type"  # shown in one tab: no tab in the id
    with gr.Blocks():
        accordion = InputAccordion(False, label="A", elem_id="script_txt2img_recorder_panel")
    assert accordion.elem_id == "script_txt2img_recorder_panel-checkbox"
    assert accordion.accordion.elem_id == "script_txt2img_recorder_panel"
    demo = webui_ui.build(extra_networks=False)
    try:
        ids = webui_ui.components
        for tab in ("txt2img", "img2img"):
            assert ids[f"tab_{tab}"].id == tab
            assert f"{tab}_extra_tabs" in ids and f"{tab}_settings" in ids and f"{tab}_accordions" in ids
        assert ids["tabs"].children == [ids["tab_txt2img"], ids["tab_img2img"]]
    finally:
        demo.close()
