"""Stand-in of ``modules/script_callbacks.py`` (spec §7.2): same registration functions, parameter classes and
firing semantics (per-callback try/except reported via ``errors.report``; before_ui and script_unloaded run in
reverse registration order). Simplified: no metadata.ini / ``prioritized_callbacks_*`` ordering.
"""
from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from typing import Any

from modules import errors


class ImageSaveParams:
    def __init__(self, image, p, filename, pnginfo):
        self.image = image
        self.p = p
        self.filename = filename
        self.pnginfo = pnginfo


class ExtraNoiseParams:
    def __init__(self, noise, x, xi):
        self.noise = noise
        self.x = x
        self.xi = xi


class CFGDenoiserParams:
    def __init__(self, x, image_cond, sigma, sampling_step, total_sampling_steps, text_cond, text_uncond, denoiser=None):
        self.x = x
        self.image_cond = image_cond
        self.sigma = sigma
        self.sampling_step = sampling_step
        self.total_sampling_steps = total_sampling_steps
        self.text_cond = text_cond
        self.text_uncond = text_uncond
        self.denoiser = denoiser


class CFGDenoisedParams:
    def __init__(self, x, sampling_step, total_sampling_steps, inner_model):
        self.x = x
        self.sampling_step = sampling_step
        self.total_sampling_steps = total_sampling_steps
        self.inner_model = inner_model


class AfterCFGCallbackParams:
    def __init__(self, x, sampling_step, total_sampling_steps):
        self.x = x
        self.sampling_step = sampling_step
        self.total_sampling_steps = total_sampling_steps


class UiTrainTabParams:
    def __init__(self, txt2img_preview_params):
        self.txt2img_preview_params = txt2img_preview_params


class ImageGridLoopParams:
    def __init__(self, imgs, cols, rows):
        self.imgs = imgs
        self.cols = cols
        self.rows = rows


@dataclasses.dataclass
class BeforeTokenCounterParams:
    prompt: str
    steps: int
    styles: list
    is_positive: bool = True


@dataclasses.dataclass
class ScriptCallback:
    script: str
    callback: Any
    name: str = "unnamed"


_CATEGORIES = ["app_started", "model_loaded", "ui_tabs", "ui_train_tabs", "ui_settings", "before_image_saved",
               "image_saved", "extra_noise", "cfg_denoiser", "cfg_denoised", "cfg_after_cfg", "before_component",
               "after_component", "image_grid", "infotext_pasted", "script_unloaded", "before_ui", "on_reload",
               "list_optimizers", "list_unets", "before_token_counter"]
callback_map: dict[str, list[ScriptCallback]] = {f"callbacks_{c}": [] for c in _CATEGORIES}


def _caller_filename() -> str:
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back
    return frame.f_code.co_filename if frame is not None else "unknown file"


def _extension_name(filename: str) -> str:
    """'<ext dir name, lower-cased>' for ``<ext>/scripts/x.py``, else 'base' (simplified canonical name)."""
    parent = os.path.dirname(os.path.abspath(filename))
    if os.path.basename(parent) == "scripts":
        return os.path.basename(os.path.dirname(parent)).lower()
    return "base"


def add_callback(callbacks: list, fun: Callable, *, name: str | None = None, category: str = "unknown",
                 filename: str | None = None) -> None:
    """Append a ScriptCallback named ``{ext}/{script basename}/{category}[/{name}]`` (made unique with -N)."""
    filename = filename or _caller_filename()
    base = f"{_extension_name(filename)}/{os.path.basename(filename)}/{category}" + (f"/{name}" if name else "")
    unique, index = base, 0
    while any(c.name == unique for c in callbacks):
        index += 1
        unique = f"{base}-{index}"
    callbacks.append(ScriptCallback(filename, fun, unique))


def ordered_callbacks(category: str, unordered_callbacks: list | None = None, *, enable_user_sort: bool = True) -> list:
    """Registration order (the stand-in has no metadata.ini or user ordering)."""
    return list(callback_map.get(f"callbacks_{category}", []) if unordered_callbacks is None else unordered_callbacks)


def sort_callbacks(category: str, unordered_callbacks: list, *, enable_user_sort: bool = True) -> list:
    return list(unordered_callbacks)


def enumerate_callbacks():
    for category, callbacks in callback_map.items():
        yield category.removeprefix("callbacks_"), callbacks


def clear_callbacks() -> None:
    for callbacks in callback_map.values():
        callbacks.clear()


def _fire(category: str, job: str, *args, reverse: bool = False, **kwargs) -> list:
    results = []
    cbs = ordered_callbacks(category)
    for c in (reversed(cbs) if reverse else cbs):
        try:
            results.append(c.callback(*args, **kwargs))
        except Exception:
            errors.report(f"Error executing callback {job} for {c.script}", exc_info=True)
    return results


def app_started_callback(demo, app) -> None:
    _fire("app_started", "app_started_callback", demo, app)


def app_reload_callback() -> None:
    _fire("on_reload", "callbacks_on_reload")


def model_loaded_callback(sd_model) -> None:
    _fire("model_loaded", "model_loaded_callback", sd_model)


def ui_tabs_callback() -> list:
    res = []
    for r in _fire("ui_tabs", "ui_tabs_callback"):
        res += r or []
    return res


def ui_train_tabs_callback(params: UiTrainTabParams) -> None:
    _fire("ui_train_tabs", "callbacks_ui_train_tabs", params)


def ui_settings_callback() -> None:
    _fire("ui_settings", "ui_settings_callback")


def before_image_saved_callback(params: ImageSaveParams) -> None:
    _fire("before_image_saved", "before_image_saved_callback", params)


def image_saved_callback(params: ImageSaveParams) -> None:
    _fire("image_saved", "image_saved_callback", params)


def extra_noise_callback(params: ExtraNoiseParams) -> None:
    _fire("extra_noise", "callbacks_extra_noise", params)


def cfg_denoiser_callback(params: CFGDenoiserParams) -> None:
    _fire("cfg_denoiser", "cfg_denoiser_callback", params)


def cfg_denoised_callback(params: CFGDenoisedParams) -> None:
    _fire("cfg_denoised", "cfg_denoised_callback", params)


def cfg_after_cfg_callback(params: AfterCFGCallbackParams) -> None:
    _fire("cfg_after_cfg", "cfg_after_cfg_callback", params)


def before_component_callback(component, **kwargs) -> None:
    _fire("before_component", "before_component_callback", component, **kwargs)


def after_component_callback(component, **kwargs) -> None:
    _fire("after_component", "after_component_callback", component, **kwargs)


def image_grid_callback(params: ImageGridLoopParams) -> None:
    _fire("image_grid", "image_grid", params)


def infotext_pasted_callback(infotext: str, params: dict[str, Any]) -> None:
    _fire("infotext_pasted", "infotext_pasted", infotext, params)


def script_unloaded_callback() -> None:
    _fire("script_unloaded", "script_unloaded", reverse=True)


def before_ui_callback() -> None:
    _fire("before_ui", "before_ui", reverse=True)


def list_optimizers_callback() -> list:
    res: list = []
    _fire("list_optimizers", "list_optimizers", res)
    return res


def list_unets_callback() -> list:
    res: list = []
    _fire("list_unets", "list_unets", res)
    return res


def before_token_counter_callback(params: BeforeTokenCounterParams) -> None:
    _fire("before_token_counter", "before_token_counter", params)


def remove_current_script_callbacks() -> None:
    """Remove every callback registered from the calling file."""
    filename = _caller_filename()
    if filename == "unknown file":
        return
    for callbacks in callback_map.values():
        callbacks[:] = [c for c in callbacks if c.script != filename]


def remove_callbacks_for_function(callback_func: Callable) -> None:
    for callbacks in callback_map.values():
        callbacks[:] = [c for c in callbacks if c.callback != callback_func]


def _register(category: str, callback: Callable, name: str | None) -> None:
    add_callback(callback_map[f"callbacks_{category}"], callback, name=name, category=category,
                 filename=_caller_filename())


def on_app_started(callback, *, name=None):
    """cb(demo: gr.Blocks | None, app: FastAPI)"""
    _register("app_started", callback, name)


def on_before_reload(callback, *, name=None):
    """cb() before Reload UI"""
    _register("on_reload", callback, name)


def on_model_loaded(callback, *, name=None):
    """cb(sd_model) after every (re)load / VAE reload, after the hijack"""
    _register("model_loaded", callback, name)


def on_ui_tabs(callback, *, name=None):
    """cb() -> list[(blocks, title, elem_id)] | None"""
    _register("ui_tabs", callback, name)


def on_ui_train_tabs(callback, *, name=None):
    _register("ui_train_tabs", callback, name)


def on_ui_settings(callback, *, name=None):
    """cb(); add options with shared.opts.add_option"""
    _register("ui_settings", callback, name)


def on_before_image_saved(callback, *, name=None):
    _register("before_image_saved", callback, name)


def on_image_saved(callback, *, name=None):
    _register("image_saved", callback, name)


def on_extra_noise(callback, *, name=None):
    _register("extra_noise", callback, name)


def on_cfg_denoiser(callback, *, name=None):
    """cb(params: CFGDenoiserParams) every sampling step"""
    _register("cfg_denoiser", callback, name)


def on_cfg_denoised(callback, *, name=None):
    _register("cfg_denoised", callback, name)


def on_cfg_after_cfg(callback, *, name=None):
    _register("cfg_after_cfg", callback, name)


def on_before_component(callback, *, name=None):
    _register("before_component", callback, name)


def on_after_component(callback, *, name=None):
    _register("after_component", callback, name)


def on_image_grid(callback, *, name=None):
    _register("image_grid", callback, name)


def on_infotext_pasted(callback, *, name=None):
    """cb(infotext: str, params: dict) after parse_generation_parameters"""
    _register("infotext_pasted", callback, name)


def on_script_unloaded(callback, *, name=None):
    """cb() before Reload UI re-imports scripts (reverse order)"""
    _register("script_unloaded", callback, name)


def on_before_ui(callback, *, name=None):
    """cb() before every create_ui (reverse order)"""
    _register("before_ui", callback, name)


def on_list_optimizers(callback, *, name=None):
    """cb(res: list) appending SdOptimization objects"""
    _register("list_optimizers", callback, name)


def on_list_unets(callback, *, name=None):
    _register("list_unets", callback, name)


def on_before_token_counter(callback, *, name=None):
    _register("before_token_counter", callback, name)
