"""A1111 1.10.x: ``<hypernet:…>`` as an extra network, an always-on script, and the webui callbacks.

The model hook is :func:`lib_hypernet.install`'s handle on ``sd_model.model.diffusion_model``
(forward pre-hooks on the attention layers' ``to_k``/``to_v`` while something is active); it is
removed in ``on_script_unloaded``.  The webui itself drops the callbacks on reload.
"""

from __future__ import annotations

import logging
from typing import Any

from modules import extra_networks, script_callbacks, scripts

from . import accordion, cards, console, settings, tab, xyz
from .extension import SWITCH_ATTR, HypernetExtension

log = logging.getLogger(__name__)

EXTENSION: HypernetExtension | None = None
"""The state of the current script load (a new one each time the webui runs the entry script)."""


def current() -> HypernetExtension:
    if EXTENSION is None:
        raise RuntimeError("sd-webui-hypernet is not registered with the webui")
    return EXTENSION


class ExtraNetworkHypernet(extra_networks.ExtraNetwork):
    """``<hypernet:name:strength:…>``: replaces the webui's built-in handler of the same name."""

    def __init__(self, extension: HypernetExtension) -> None:
        super().__init__("hypernet")
        self.extension = extension

    def activate(self, p: Any, params_list: list[Any]) -> None:
        try:
            self.extension.activate(p, params_list)
        except Exception as exc:  # never let the webui fall back to stale hypernetworks
            # Each tag already succeeds or fails on its own (service.prepare); this is a bug elsewhere.
            log.exception("hypernetworks: activation failed; generating without hypernetworks")
            if self.extension.handle is not None:
                self.extension.handle.deactivate()
            self.extension.say(p, [f"Hypernetworks not applied: {type(exc).__name__}: {exc} (see the console)"])

    def deactivate(self, p: Any) -> None:
        try:
            self.extension.deactivate(p)
        except Exception:
            log.exception("hypernetworks: deactivation failed")


class HypernetScript(scripts.Script):
    """Always-on: the panel beside the prompt (its rows only edit tags; its header checkbox switches them all off for a
    generation), and nothing stays applied after a generation."""

    section = "accordions"  # beside Hires fix and Refiner
    create_group = False

    def __init__(self) -> None:
        # on_after_component callbacks must exist before initialize_scripts collects them (right after show())
        self.panel = accordion.PromptPanel(self, current)

    def title(self) -> str:
        return "Hypernetworks"

    def ui(self, is_img2img: bool) -> list[Any]:
        return self.panel.ui(is_img2img)

    def show(self, is_img2img: bool) -> Any:
        return scripts.AlwaysVisible

    def process(self, p: Any, *args: Any) -> None:
        # Before the batches' extra_networks.activate: the panel's header checkbox (its one script argument;
        # an API call without it is on).  Only an explicit false turns the prompt's tags off.
        off = bool(args) and isinstance(args[0], (bool, int, float)) and not args[0]
        try:
            setattr(p, SWITCH_ATTR, off)
        except AttributeError:  # an object that takes no attributes: nothing to switch off
            pass

    def postprocess_batch(self, p: Any, *args: Any, **kwargs: Any) -> None:
        # The batch is sampled (hires pass included).  Report and unhook now: the webui calls deactivate
        # only when the first-pass prompt has tags, and comments added in postprocess miss Processed.
        current().deactivate(p)

    def postprocess(self, p: Any, processed: Any, *args: Any) -> None:
        current().deactivate(p)


def _add_routes(app: Any, extension: HypernetExtension) -> None:
    from . import routes  # fastapi and the routes only when the app starts

    routes.add_routes(app, extension)


def register(
    extension: HypernetExtension | None = None,
    way: str = "A1111 detected; hypernetworks apply as hooks on each attention layer's K/V projections",
) -> HypernetExtension:
    """Register settings and callbacks for this script load; returns the new state.

    The other hosts' adapters call this too, with their own ``extension`` (Forge 2) or none (reForge) and
    their own ``way`` (the start-up line), so everything registered here exists on every host."""
    global EXTENSION
    script_callbacks.on_script_unloaded(console.show_log_lines())
    log.info("hypernetworks: %s", way)
    settings.register_settings()
    accordion.register_settings()
    cards.register_settings()
    extension = EXTENSION = extension if extension is not None else HypernetExtension()

    def on_before_ui() -> None:
        extra_networks.register_extra_network(ExtraNetworkHypernet(extension))
        extension.refresh()

    script_callbacks.on_before_ui(on_before_ui)
    script_callbacks.on_before_ui(lambda: cards.replace_builtin_page(extension))  # the "Hypernetworks" cards
    script_callbacks.on_before_ui(xyz.register_axes)  # before xyz_grid's ui() snapshots its axis list
    script_callbacks.on_model_loaded(extension.attach)
    script_callbacks.on_cfg_denoiser(extension.on_step)
    script_callbacks.on_infotext_pasted(lambda text, params: extension.restore_pasted(params))
    script_callbacks.on_script_unloaded(extension.unload)
    script_callbacks.on_app_started(lambda demo, app: _add_routes(app, extension))
    script_callbacks.on_ui_tabs(lambda: tab.on_ui_tabs(extension))
    return extension
