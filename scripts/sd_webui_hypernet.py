"""sd-webui-hypernet: the webui glue.

Reads webui state, calls ``lib_hypernet``, registers callbacks.  All logic lives in
``lib_hypernet`` (tags, files, caches, messages, infotext, the apply engine).
"""

from __future__ import annotations

import logging
import os
import secrets
import weakref
from typing import Any

import gradio as gr
import torch
from fastapi import Depends, HTTPException
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from modules import extra_networks, paths, script_callbacks, scripts, shared
from pydantic import BaseModel

import lib_hypernet
from lib_hypernet import infotext
from lib_hypernet.library import HypernetLibrary
from lib_hypernet.service import CONTEXT_WIDTHS, HypernetService, Prepared

log = logging.getLogger("sd_webui_hypernet")

DEFAULT_STRENGTH_CHOICES = ("Extra networks default multiplier", "1.0 (like A1111's built-in hypernetworks)")
PRECISION_CHOICES = {"Automatic": None, "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}

# Settings, added at import (not in on_ui_settings) so they exist in API-only mode too.
shared.options_templates.update(shared.options_section(("hypernet", "Hypernetworks"), {
    "hypernet_default_strength": shared.OptionInfo(
        DEFAULT_STRENGTH_CHOICES[0], "Strength of <hypernet:name> written without a number", gr.Radio,
        {"choices": list(DEFAULT_STRENGTH_CHOICES)},
    ),
    "hypernet_memory_limit": shared.OptionInfo(
        3, "Hypernetworks kept loaded in memory", gr.Number, {"precision": 0},
    ).info("a file that changed on disk is always reloaded"),
    "hypernet_infotext_hashes": shared.OptionInfo(
        True, 'Write "Hypernet hashes" into generation parameters',
    ).info("lets pasted parameters find a renamed file again"),
    "hypernet_warnings": shared.OptionInfo(
        True, "Explain hypernetwork problems in the generation info",
    ).info("missing or broken files, bad tags, a hypernetwork that changed nothing, another base model"),
    "hypernet_precision": shared.OptionInfo(
        "Automatic", "Hypernetwork compute precision", gr.Radio, {"choices": list(PRECISION_CHOICES)},
    ).info("Automatic = like A1111: the webui's autocast, else float32"),
}))


def _opt(key: str, default: Any) -> Any:
    return getattr(shared.opts, key, default)


def _hypernetwork_dir() -> str:
    folder = getattr(shared.cmd_opts, "hypernetwork_dir", None)
    return folder or os.path.join(paths.models_path, "hypernetworks")


def _hash_cache_path() -> str:
    folder = os.environ.get("SD_WEBUI_CACHE_DIR") or os.path.join(paths.data_path, "cache")
    return os.path.join(folder, "sd-webui-hypernet-hashes.json")


def _unet(sd_model: Any) -> torch.nn.Module | None:
    unet = getattr(getattr(sd_model, "model", None), "diffusion_model", None)
    return unet if isinstance(unet, torch.nn.Module) else None


def _model_family(sd_model: Any) -> str | None:
    for flag, family in (("is_sdxl", "SDXL"), ("is_sd2", "SD2"), ("is_sd1", "SD1")):
        if getattr(sd_model, flag, False):
            return family
    unet = _unet(sd_model)
    width = getattr(unet, "context_dim", None) if unet is not None else None
    return CONTEXT_WIDTHS.get(width) if isinstance(width, int) else None


class HypernetExtension:
    """The extension's state: the library of files, and the handle on the current model's UNet."""

    def __init__(self) -> None:
        self.library = HypernetLibrary(None, hash_cache=lib_hypernet.HashCache.load(_hash_cache_path()))
        self.service = HypernetService(self.library)
        self.handle: lib_hypernet.HypernetHandle | None = None
        self._model_ref: weakref.ref[Any] | None = None
        self.prepared: Prepared | None = None  # what the current activation applies

    # -------------------------------------------------------------- files
    def refresh(self) -> None:
        self.library.root = os.path.abspath(_hypernetwork_dir())
        self.library.set_memory_limit(int(_opt("hypernet_memory_limit", 3)))
        self.library.refresh()
        names = {name: f.path for name, f in self.library.files.items()}
        shared.hypernetworks.clear()  # the "Add hypernetwork to prompt" dropdown lists these
        shared.hypernetworks.update(names)

    def save_hashes(self) -> None:
        if self.library.hash_cache.dirty:
            try:
                os.makedirs(os.path.dirname(_hash_cache_path()), exist_ok=True)
                self.library.hash_cache.save(_hash_cache_path())
            except (OSError, lib_hypernet.HypernetError) as exc:
                log.warning("hypernetworks: cannot save the hash cache: %s", exc)

    # -------------------------------------------------------------- model
    def attach(self, sd_model: Any) -> None:
        """on_model_loaded: hook the new UNet; let go of a replaced one (keeping what was active)."""
        unet = _unet(sd_model)
        previous = self.handle
        if unet is None:
            log.warning("hypernetworks: this model has no UNet at model.diffusion_model; hypernetworks are off")
            return
        handle = lib_hypernet.install(unet)
        if previous is not None and previous is not handle:
            stack = previous.stack
            previous.remove()
            if stack:
                handle.activate(stack)
        self.handle = handle
        self._model_ref = weakref.ref(sd_model)

    def current_handle(self) -> lib_hypernet.HypernetHandle | None:
        sd_model = shared.sd_model
        if sd_model is not None and (self._model_ref is None or self._model_ref() is not sd_model or self.handle is None):
            self.attach(sd_model)
        return self.handle

    # -------------------------------------------------------------- generation
    def activate(self, p: Any, params_list: list[Any]) -> None:
        self.flush_report(p)
        if not self.library.refreshed:
            self.refresh()
        self.library.set_memory_limit(int(_opt("hypernet_memory_limit", 3)))
        default = (
            float(_opt("extra_networks_default_multiplier", 1.0))
            if _opt("hypernet_default_strength", DEFAULT_STRENGTH_CHOICES[0]) == DEFAULT_STRENGTH_CHOICES[0]
            else 1.0
        )
        tags = [list(params.items) for params in params_list]
        self._add_setting_hypernetwork(p, tags, default)
        prepared = self.service.prepare(tags, default_multiplier=default,
                                        with_hashes=bool(_opt("hypernet_infotext_hashes", True)))
        checkpoint = getattr(shared.sd_model, "sd_checkpoint_info", None)
        prepared.messages += self.service.base_model_messages(
            prepared, getattr(checkpoint, "shorthash", None), getattr(checkpoint, "model_name", None)
        )
        handle = self.current_handle()
        if handle is None:
            if prepared.stack:
                prepared.messages.append("Hypernetworks not applied: no model is loaded")
            self.prepared = None
        else:
            handle.compute_dtype = PRECISION_CHOICES.get(_opt("hypernet_precision", "Automatic"))
            handle.activate(prepared.stack)
            self.prepared = prepared
        if prepared.hashes and isinstance(getattr(p, "extra_generation_params", None), dict):
            seen = getattr(p, "hypernet_hashes", None) or {}
            seen.update({name: value for name, value in prepared.hashes if name not in seen})
            p.hypernet_hashes = seen
            p.extra_generation_params[infotext.KEY] = infotext.format_hashes(seen.items())
        self.say(p, prepared.messages)
        self.save_hashes()

    def _add_setting_hypernetwork(self, p: Any, tags: list[list[Any]], default: float) -> None:
        """The built-in "Add hypernetwork to prompt" setting (``sd_hypernetwork``)."""
        name = _opt("sd_hypernetwork", "None")
        if getattr(p, "all_prompts", None) is None:  # the webui's model-load dummy p: not a generation
            return
        if not name or name == "None" or any(items and items[0] == name for items in tags):
            return
        tags.append([name, default])
        tag = f"<hypernet:{name}:{default:g}>"  # once, though activate runs per batch and for the hires pass
        p.all_prompts = [prompt if prompt.endswith(tag) else prompt + tag for prompt in p.all_prompts]

    def flush_report(self, p: Any) -> None:
        """Turn what the last activation changed into messages (before it is replaced or deactivated)."""
        handle, prepared = self.handle, self.prepared
        if handle is None or prepared is None or not prepared.stack:
            return
        if handle.calls == 0:
            return  # the model was not called since the activation: nothing to say yet
        reports = handle.report(since_activate=True)
        self.say(p, self.service.report_messages(prepared, reports, _model_family(shared.sd_model)))

    def deactivate(self, p: Any) -> None:
        self.flush_report(p)
        if self.handle is not None:
            self.handle.deactivate()
        self.prepared = None

    def say(self, p: Any, messages: list[str]) -> None:
        for message in messages:
            log.warning("hypernetworks: %s", message)
            if _opt("hypernet_warnings", True) and hasattr(p, "comment"):
                p.comment(message)

    def on_step(self, params: Any) -> None:
        if self.handle is not None and self.handle.active:
            self.handle.set_step(params.sampling_step, params.total_sampling_steps)

    def unload(self) -> None:
        if self.handle is not None:
            self.handle.remove()
        self.handle = None
        self.prepared = None
        self.save_hashes()


EXTENSION = HypernetExtension()


class ExtraNetworkHypernet(extra_networks.ExtraNetwork):
    """``<hypernet:name:strength:…>``: replaces the webui's built-in handler of the same name."""

    def __init__(self) -> None:
        super().__init__("hypernet")

    def activate(self, p: Any, params_list: list[Any]) -> None:
        try:
            EXTENSION.activate(p, params_list)
        except Exception:  # never let the webui fall back to stale hypernetworks
            log.exception("hypernetworks: activation failed; generating without hypernetworks")
            if EXTENSION.handle is not None:
                EXTENSION.handle.deactivate()

    def deactivate(self, p: Any) -> None:
        try:
            EXTENSION.deactivate(p)
        except Exception:
            log.exception("hypernetworks: deactivation failed")


class HypernetScript(scripts.Script):
    """Always-on, no UI: makes sure nothing stays applied after a generation."""

    def title(self) -> str:
        return "Hypernetworks"

    def show(self, is_img2img: bool) -> Any:
        return scripts.AlwaysVisible

    def postprocess_batch(self, p: Any, *args: Any, **kwargs: Any) -> None:
        # The batch is sampled (hires pass included).  Report and unhook now: the webui calls deactivate
        # only when the first-pass prompt has tags, and comments added in postprocess miss Processed.
        EXTENSION.deactivate(p)

    def postprocess(self, p: Any, processed: Any, *args: Any) -> None:
        EXTENSION.deactivate(p)


# ------------------------------------------------------------------ callbacks
def on_before_ui() -> None:
    extra_networks.register_extra_network(ExtraNetworkHypernet())
    EXTENSION.refresh()


def on_model_loaded(sd_model: Any) -> None:
    EXTENSION.attach(sd_model)


def on_cfg_denoiser(params: Any) -> None:
    EXTENSION.on_step(params)


def on_infotext_pasted(text: str, params: dict[str, Any]) -> None:
    if not EXTENSION.library.refreshed:
        EXTENSION.refresh()
    EXTENSION.service.restore_pasted(params)
    EXTENSION.save_hashes()


def on_script_unloaded() -> None:
    EXTENSION.unload()


class ConvertRequest(BaseModel):
    name: str
    overwrite: bool = False


def on_app_started(demo: Any, app: Any) -> None:
    credentials = {}
    if getattr(shared.cmd_opts, "api_auth", None):
        for pair in shared.cmd_opts.api_auth.strip().split(","):
            user, _, password = pair.strip().partition(":")
            credentials[user] = password
    security = HTTPBasic(auto_error=bool(credentials))

    def auth(given: HTTPBasicCredentials | None = Depends(security)) -> None:
        if not credentials:
            return
        if given is not None and given.username in credentials and secrets.compare_digest(
            given.password, credentials[given.username]
        ):
            return
        raise HTTPException(status_code=401, detail="Incorrect username or password",
                            headers={"WWW-Authenticate": "Basic"})

    def run(fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except lib_hypernet.HypernetNotFoundError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from exc
        except lib_hypernet.HypernetError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc
        finally:
            EXTENSION.save_hashes()

    def list_hypernetworks(refresh: bool = False) -> list[dict[str, Any]]:
        if refresh or not EXTENSION.library.refreshed:
            EXTENSION.refresh()
        return run(EXTENSION.service.list)

    def refresh_hypernetworks() -> dict[str, Any]:
        EXTENSION.refresh()
        return {"count": len(EXTENSION.library.files), "duplicates": EXTENSION.library.duplicates}

    def hypernetwork_info(name: str) -> dict[str, Any]:
        if not EXTENSION.library.refreshed:
            EXTENSION.refresh()
        return run(EXTENSION.service.info, name)

    def convert_hypernetwork(request: ConvertRequest) -> dict[str, Any]:
        if not EXTENSION.library.refreshed:
            EXTENSION.refresh()
        result = run(EXTENSION.service.convert, request.name, overwrite=request.overwrite)
        EXTENSION.refresh()
        return result

    deps = [Depends(auth)]
    app.add_api_route("/hypernet/v1/hypernetworks", list_hypernetworks, methods=["GET"], dependencies=deps)
    app.add_api_route("/hypernet/v1/refresh", refresh_hypernetworks, methods=["POST"], dependencies=deps)
    app.add_api_route("/hypernet/v1/hypernetworks/{name:path}", hypernetwork_info, methods=["GET"], dependencies=deps)
    app.add_api_route("/hypernet/v1/convert", convert_hypernetwork, methods=["POST"], dependencies=deps)


script_callbacks.on_before_ui(on_before_ui)
script_callbacks.on_model_loaded(on_model_loaded)
script_callbacks.on_cfg_denoiser(on_cfg_denoiser)
script_callbacks.on_infotext_pasted(on_infotext_pasted)
script_callbacks.on_script_unloaded(on_script_unloaded)
script_callbacks.on_app_started(on_app_started)
