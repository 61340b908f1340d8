"""Test harness driving the ``modules`` stand-in through A1111 1.10.1's startup order (spec §7.2).

Usage::

    sys.path.insert(0, "tests/webui_stub")
    import webui
    webui.reset(tmp_path)
    app = webui.start([extension_dir])
    processed = webui.txt2img("a cat <hypernet:foo:0.8>", steps=2)

Startup (:func:`start`): preload.py -> parse args -> shared init (config.json, onchange hooks) ->
``scripts.load_scripts`` -> ``list_optimizers`` -> model load (``hijack`` -> ``model_loaded`` -> dummy-p
``extra_networks.activate``) -> ``reload_hypernetworks`` -> extra-network pages + registry reset and defaults ->
then, with the UI: ``before_ui`` -> create_ui (``ui_settings``, script init, ``opts.reorder``, ``ui_tabs``) ->
``app_started(demo, app)``; with ``nowebui``: create_ui (the built-in ``Api.__init__`` calls it when the
script runners are empty) -> ``before_ui`` -> ``app_started(None, app)``.
"""
from __future__ import annotations

import os
import sys
from typing import Any

import torch

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import conditions  # noqa: E402
from modules import (  # noqa: E402
    cache,
    devices,
    errors,
    extra_networks,
    extra_networks_hypernet,
    harness,
    hashes,
    infotext_utils,
    initialize_util,
    paths,
    processing,
    script_callbacks,
    script_loading,
    scripts,
    sd_hijack,
    sd_hijack_optimizations,
    sd_models,
    sd_vae,
    shared,
    shared_cmd_options,
    ui_extra_networks,
)
from modules.hypernetworks import hypernetwork  # noqa: E402


class DummyDemo:
    """Stands in for the ``gr.Blocks`` passed to ``on_app_started`` in UI mode."""

    def __init__(self):
        self.closed = False
        self.ui_tabs: list = []

    def queue(self, *args, **kwargs) -> DummyDemo:
        return self

    def close(self) -> None:
        self.closed = True


def _make_app(ui: bool = False):
    """A fresh app, as the webui makes it: with the UI, gradio's ``App`` (``Blocks.launch`` builds it with
    ``default_response_class=ORJSONResponse``, which refuses non-string dict keys, and a ``tokens`` dict of
    login sessions); API-only (``--nowebui``), a plain ``FastAPI()``. None when fastapi is not installed."""
    try:
        from fastapi import FastAPI
    except ImportError:
        return None
    if ui:
        try:
            from gradio.routes import App, ORJSONResponse
        except ImportError:
            return FastAPI()
        return App(default_response_class=ORJSONResponse, docs_url="/docs", redoc_url="/redoc")
    return FastAPI()


def optimization_title(name: str) -> str:
    """Map an optimizer name ('sdp') or title, 'Automatic' or 'None' to the option value (its title)."""
    found: list = []
    sd_hijack_optimizations.list_optimizers(found)
    for o in found:
        if name in (o.name, o.title()):
            return o.title()
    if name in ("Automatic", "None"):
        return name
    raise ValueError(f"unknown cross-attention optimization {name!r}")


def reset(tmp_dir: str | os.PathLike | None = None) -> str:
    """Forget everything (callbacks, registries, scripts, opts, model, caches, records) and use a fresh data
    dir ``tmp_dir`` (a new temp dir when None). Restores the pristine ldm ``CrossAttention.forward``.

    Also sets ``torch.set_num_threads($WEBUI_STUB_TORCH_THREADS or 1)``: on a busy 2-core box, 2 OpenMP threads make
    the tiny UNet ~100x slower, and a fixed thread count keeps results bit-reproducible across runs."""
    torch.set_num_threads(int(os.environ.get("WEBUI_STUB_TORCH_THREADS", "1")))
    if tmp_dir is not None:
        os.makedirs(tmp_dir, exist_ok=True)
    data_path = paths.set_data_dir(os.fspath(tmp_dir) if tmp_dir is not None else None)
    shared_cmd_options.new_parser()
    shared_cmd_options.parse([])
    shared.reset()
    devices.reset()
    errors.clear()
    cache.clear()
    hashes.calls.clear()
    script_callbacks.clear_callbacks()
    extra_networks.initialize()
    ui_extra_networks.initialize()
    scripts.reset()
    sd_hijack.reset()
    sd_models.reset()
    sd_vae.reset()
    hypernetwork.loader = hypernetwork._default_loader
    hypernetwork.load_calls.clear()
    hypernetwork.disk_loads.clear()
    extra_networks_hypernet.activations.clear()
    harness.clear()
    harness.update(started=False, app=None, nowebui=False, ui_tabs=[])
    return data_path


def load_model(model: str = "sd1-tiny", **kwargs: Any):
    """``sd_models.load_model(config=model)``, then re-apply the optimization if none is current (initialize.py)."""
    sd_model = sd_models.load_model(config=model, **kwargs)
    if sd_hijack.current_optimizer is None:
        sd_hijack.apply_optimizations()
    return sd_model


def create_ui() -> list:
    """What ``ui.create_ui`` does that extensions can observe; returns the ``ui_tabs`` results."""
    script_callbacks.ui_settings_callback()
    scripts.scripts_current = scripts.scripts_txt2img
    scripts.scripts_txt2img.initialize_scripts(is_img2img=False)
    scripts.scripts_img2img.initialize_scripts(is_img2img=True)
    shared.opts.reorder()
    tabs = script_callbacks.ui_tabs_callback()
    harness["ui_tabs"] = tabs
    return tabs


def _initialize_rest(model: str | None, model_load: str) -> None:
    scripts.load_scripts(harness["extension_dirs"])
    sd_vae.refresh_vae_list()
    script_callbacks.on_list_optimizers(sd_hijack_optimizations.list_optimizers)
    sd_hijack.list_optimizers()
    if model and model_load == "early" and shared.sd_model is None:
        load_model(model)
    elif shared.sd_model is not None and sd_hijack.current_optimizer is None:
        sd_hijack.apply_optimizations()
    shared.reload_hypernetworks()
    ui_extra_networks.initialize()
    ui_extra_networks.register_default_pages()
    extra_networks.initialize()
    extra_networks.register_default_extra_networks()


def start(extension_dirs: list[str | os.PathLike] = (), *, model: str | None = "sd1-tiny",
          optimization: str | None = "Doggettx", nowebui: bool = False, args: list[str] | None = None,
          settings: dict[str, Any] | None = None, model_load: str = "early", real_conditions: bool = True):
    """Boot the stand-in webui with ``extension_dirs`` (each a dir holding ``scripts/*.py``); returns the app.

    ``optimization``: value stored as if read from config.json (name or title; None keeps 'Automatic', which on
    this CPU stand-in selects InvokeAI, as A1111 does on CPU). ``settings``: more config.json values.
    ``model_load``: 'early' (model ready before the registries are reset, the usual order), 'late' (the
    model-loading thread finishes after before_ui/create_ui) or 'none'. ``args``: extra command-line args.
    ``real_conditions``: install the real webui's process-wide patches first (``conditions.apply``: the
    pure-Python ``pickle.Unpickler`` of pytorch_lightning, ``modules.safe``'s ``torch.load``); :func:`unload`
    undoes them.
    """
    if real_conditions:
        conditions.apply()
    if "started" not in harness:
        reset()
    harness["extension_dirs"] = [os.path.abspath(os.fspath(d)) for d in extension_dirs]
    harness["nowebui"] = nowebui
    harness["model"] = model

    parser = shared_cmd_options.new_parser()
    script_loading.preload_extensions(harness["extension_dirs"], parser)
    shared_cmd_options.parse(list(args or []) + (["--nowebui"] if nowebui else []))

    if os.path.exists(shared.cmd_opts.ui_settings_file):
        shared.opts.load(shared.cmd_opts.ui_settings_file)
    shared.config_filename = shared.cmd_opts.ui_settings_file
    if optimization is not None:
        shared.opts.data["cross_attention_optimization"] = optimization_title(optimization)
    shared.opts.data.update(settings or {})
    initialize_util.configure_opts_onchange()

    _initialize_rest(model, model_load)

    if nowebui:
        app = _make_app(ui=False)
        create_ui()
        script_callbacks.before_ui_callback()
        if model and model_load == "late":
            load_model(model)
        harness.update(app=app, started=True)
        script_callbacks.app_started_callback(None, app)
        return app

    script_callbacks.before_ui_callback()
    create_ui()
    shared.demo = DummyDemo()
    shared.demo.ui_tabs = harness["ui_tabs"]
    if model and model_load == "late":
        load_model(model)
    app = _make_app(ui=True)
    harness.update(app=app, started=True)
    script_callbacks.app_started_callback(shared.demo, app)
    return app


def reload_ui():
    """Settings -> Reload UI: before_reload -> script_unloaded (reverse) -> re-run scripts and registries ->
    before_ui -> create_ui -> app_started with a new demo/app. Returns the new app."""
    assert not harness.get("nowebui"), "Reload UI does not exist in --nowebui mode"
    script_callbacks.app_reload_callback()
    script_callbacks.script_unloaded_callback()
    _initialize_rest(None, "none")
    script_callbacks.before_ui_callback()
    create_ui()
    shared.demo = DummyDemo()
    shared.demo.ui_tabs = harness["ui_tabs"]
    app = _make_app(ui=True)
    harness["app"] = app
    script_callbacks.app_started_callback(shared.demo, app)
    return app


def unload() -> None:
    """Test teardown: fire ``script_unloaded`` (extensions undo their patches), drop the model, restore the
    pristine ldm forward and clear callbacks/registries. Call :func:`reset` before starting again."""
    script_callbacks.script_unloaded_callback()
    script_callbacks.clear_callbacks()
    extra_networks.initialize()
    ui_extra_networks.initialize()
    sd_models.model_data.set_sd_model(None)
    sd_hijack.reset()
    shared.loaded_hypernetworks = []
    harness["started"] = False
    conditions.undo()
    devices.torch_gc()


def txt2img(prompt: str = "", *, script_args: dict[str, list] | None = None, is_api: bool = False,
            **kwargs: Any) -> processing.Processed:
    """Run txt2img like the UI/API: ``p.scripts = scripts.scripts_txt2img``, ``p.script_args`` laid out per script
    class name (``script_args={"MyScript": [True, 0.5]}``), then ``process_images``. Defaults: 64x64, 2 steps,
    seed 1. Returns ``Processed`` (``.images`` = final latents, ``.unet_outputs``, ``.infotexts``)."""
    runner = scripts.scripts_txt2img
    if not runner.scripts:
        runner.initialize_scripts(is_img2img=False)
    kwargs.setdefault("steps", 2)
    kwargs.setdefault("seed", 1)
    p = processing.StableDiffusionProcessingTxt2Img(prompt=prompt, **kwargs)
    p.is_api = is_api
    p.scripts = runner
    p.script_args = runner.layout_args(script_args or {})
    shared.state.begin(job="scripts_txt2img")
    try:
        processed = runner.run(p, *p.script_args)
        if processed is None:
            processed = processing.process_images(p)
    finally:
        shared.state.end()
        p.close()
    return processed


def set_optimization(name: str) -> bool:
    """Settings change of ``cross_attention_optimization`` via ``opts.set`` (its onchange runs
    ``model_hijack.redo_hijack(shared.sd_model)``; no ``model_loaded`` callbacks). True if it changed."""
    return shared.opts.set("cross_attention_optimization", optimization_title(name))


def change_vae(name: str = "stub-vae.safetensors"):
    """Select VAE ``name`` (file created under models/VAE): undo_hijack -> hijack -> ``model_loaded``.
    Selecting the already-loaded VAE does nothing (A1111's early return)."""
    path = os.path.join(paths.models_path, "VAE", name)
    if name not in ("Automatic", "None") and not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(name.encode() * 16)
    sd_vae.refresh_vae_list()
    shared.opts.set("sd_vae", name)
    return shared.sd_model


def change_checkpoint(name: str = "stub-other", *, model: str | None = None):
    """Select checkpoint ``name`` (created if needed) through the ``sd_model_checkpoint`` setting.

    Same config as the loaded model: the SAME model object gets new weights (hijack + ``model_loaded``), as A1111
    does. A different ``model`` config: full load into a NEW object (``model_loaded`` + dummy-p activate)."""
    config = model or (shared.sd_model.used_config if shared.sd_model is not None else harness.get("model") or "sd1-tiny")
    info = sd_models.register_checkpoint(name, config)
    shared.opts.set("sd_model_checkpoint", info.title)
    return shared.sd_model


def paste_infotext(text: str) -> dict:
    """Paste-button / png-info behaviour: ``parse_generation_parameters`` then ``infotext_pasted`` callbacks."""
    return infotext_utils.paste_infotext(text)
