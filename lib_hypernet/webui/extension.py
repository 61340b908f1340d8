"""The extension's state for one script load: the library of files, and the hook on the current UNet.

Everything it decides is delegated to :mod:`lib_hypernet` (tags → stack, messages, infotext, the engine);
this class only reads the webui's state and writes the results where the webui shows them.
"""

from __future__ import annotations

import logging
import os
import weakref
from typing import Any, Union

import torch
from modules import shared

import lib_hypernet
from lib_hypernet.engine import HypernetHandle
from lib_hypernet.library.caches import CacheFiles
from lib_hypernet.library.description import ModelFacts
from lib_hypernet.library.facts import FileFacts
from lib_hypernet.library.folder import HypernetLibrary
from lib_hypernet.library.report import GenerationReport
from lib_hypernet.library.service import HypernetService, Prepared
from lib_hypernet.model import family
from lib_hypernet.prompt import infotext
from lib_hypernet.prompt.grammar import TagError
from lib_hypernet.prompt.writer import format_tag

from . import settings

log = logging.getLogger(__name__)

SWITCH_ATTR = "hypernet_switch_off"
"""Set on ``p`` by the always-on script when the panel's header checkbox is unticked."""
SWITCH_OFF_MESSAGE = ("Hypernetworks off: the Hypernetworks panel's checkbox is unticked, "
                      "so the prompt's <hypernet:…> tags were not applied")

Handle = Union[HypernetHandle, lib_hypernet.HypernetPatch]
"""What applies the stack: hooks on the UNet (A1111, reForge) or the attention patches (Forge 2)."""


def unet_of(sd_model: Any) -> torch.nn.Module | None:
    """The UNet an A1111-style model keeps at ``model.diffusion_model`` (None when it has none)."""
    unet = getattr(getattr(sd_model, "model", None), "diffusion_model", None)
    return unet if isinstance(unet, torch.nn.Module) else None


def model_family(sd_model: Any) -> family.SdVersion | None:
    """The loaded model's family (its flags, else its UNet's ``context_dim``); None without a model."""
    return None if sd_model is None else family.of_model(sd_model, unet_of(sd_model))


def model_facts() -> ModelFacts | None:
    """The loaded model's checkpoint hash and name, and its attention widths (``to_k`` input widths)."""
    sd_model = getattr(shared, "sd_model", None)
    if sd_model is None:
        return None
    info = getattr(sd_model, "sd_checkpoint_info", None)
    unet = unet_of(sd_model)
    widths: set[int] = set()
    for module in unet.modules() if unet is not None else ():
        width = getattr(getattr(module, "to_k", None), "in_features", None)  # the context or the hidden width
        if isinstance(width, int):
            widths.add(width)
    return ModelFacts(getattr(info, "shorthash", None), getattr(info, "model_name", None), tuple(sorted(widths)))


EXTENSION: HypernetExtension | None = None
"""The state of the current script load (a new one each time the webui runs the entry script; set by
:func:`lib_hypernet.webui.a1111.register`)."""


def current() -> HypernetExtension:
    """The extension of the current script load (the host adapters, the X/Y/Z axes and the tests ask here)."""
    if EXTENSION is None:
        raise RuntimeError("sd-webui-hypernet is not registered with the webui")
    return EXTENSION


class HypernetExtension:
    """The library of files, and the handle on the current model's UNet."""

    def __init__(self) -> None:
        self.caches = CacheFiles(settings.cache_dir())  # saved after work that filled them; never raises
        self.library = HypernetLibrary(None, hash_cache=self.caches.hashes, description_cache=self.caches.descriptions)
        self.service = HypernetService(self.library)
        self.handle: Handle | None = None
        self._model_ref: weakref.ref[Any] | None = None
        self.prepared: Prepared | None = None  # what the current activation applies
        self.facts = FileFacts(self.library, on_computed=self.caches.save)  # hashes/SD versions for the UI
        self.report = GenerationReport()  # what the last generation did (the panel beside the prompt shows it)
        self._report_for: Any = None

    # -------------------------------------------------------------- files
    def refresh(self) -> None:
        self.library.root = os.path.abspath(settings.hypernetwork_dir())
        self.library.set_memory_limit(int(settings.opt("hypernet_memory_limit")))
        self.library.refresh()
        names = {name: f.path for name, f in self.library.files.items()}
        shared.hypernetworks.clear()  # the "Add hypernetwork to prompt" dropdown lists these
        shared.hypernetworks.update(names)

    def ensure_refreshed(self) -> None:
        if not self.library.refreshed:
            self.refresh()

    # -------------------------------------------------------------- model
    def attach(self, sd_model: Any) -> None:
        """on_model_loaded: hook the new UNet; let go of a replaced one (keeping what was active)."""
        unet = unet_of(sd_model)
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

    def current_handle(self) -> Handle | None:
        sd_model = shared.sd_model
        if sd_model is not None and (self._model_ref is None or self._model_ref() is not sd_model or self.handle is None):
            self.attach(sd_model)
        return self.handle

    # -------------------------------------------------------------- generation
    def _drop_left_over_builtin_hypernetworks(self) -> None:
        """Empty the webui's own ``shared.loaded_hypernetworks``: A1111's *Train hypernetwork* leaves the trained
        network there, and its attention code applies that list to every generation.  Its built-in tag handler
        emptied it at the next generation; this extension replaces that handler, so it does the same."""
        loaded = getattr(shared, "loaded_hypernetworks", None)
        if isinstance(loaded, list) and loaded:
            log.warning("hypernetworks: %d hypernetwork(s) left applied by the webui (e.g. after training) were "
                        "switched off; prompt tags decide what applies", len(loaded))
            loaded.clear()

    def activate(self, p: Any, params_list: list[Any]) -> None:
        self.flush_report(p)
        self._start_report(p)
        self._drop_left_over_builtin_hypernetworks()
        self.ensure_refreshed()
        self.library.set_memory_limit(int(settings.opt("hypernet_memory_limit")))
        default = settings.default_strength()
        tags = [list(params.items) for params in params_list]
        if getattr(p, SWITCH_ATTR, False) is True:
            self._switched_off(p, tags)
            tags = []  # the prompt keeps its tags: only this generation leaves them out
        else:
            self._add_setting_hypernetwork(p, tags, default)
        # Hashes are written once the batch shows what changed something (flush_report), not for every tag.
        prepared = self.service.prepare(tags, default_multiplier=default, with_hashes=False)
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
            self.use(p, handle, prepared)
        self.note(p, self.service.zero_strength_messages(prepared))
        self.say(p, prepared.messages)
        self.caches.save()

    def use(self, p: Any, handle: Handle, prepared: Prepared) -> None:
        """Make ``prepared`` what applies (A1111: at once; Forge 2 overrides this to record it on ``p``)."""
        handle.compute_dtype = settings.compute_dtype()
        handle.activate(prepared.stack)
        self.prepared = prepared

    def _switched_off(self, p: Any, tags: list[list[Any]]) -> None:
        """Say that the tags were left out, under the image and in the infotext (pasting it back unticks the switch)."""
        name = settings.opt("sd_hypernetwork", "None")
        if not tags and (not name or name == "None"):
            return  # nothing was left out
        params = getattr(p, "extra_generation_params", None)
        if isinstance(params, dict):
            params[infotext.SWITCH_KEY] = infotext.SWITCH_OFF
        self.say(p, [SWITCH_OFF_MESSAGE])

    def _add_setting_hypernetwork(self, p: Any, tags: list[list[Any]], default: float) -> None:
        """The built-in "Add hypernetwork to prompt" setting (``sd_hypernetwork``)."""
        name = settings.opt("sd_hypernetwork", "None")
        if getattr(p, "all_prompts", None) is None:  # the webui's model-load dummy p: not a generation
            return
        if not name or name == "None" or any(items and items[0] == name for items in tags):
            return
        try:
            tag = format_tag(name, default)
        except TagError as exc:  # the infotext could not bring it back: not applied either
            log.warning("hypernetworks: the setting 'Add hypernetwork to prompt' is ignored: %s", exc)
            return
        tags.append([name, default])
        # once, though activate runs per batch and for the hires pass
        p.all_prompts = [prompt if prompt.endswith(tag) else prompt + tag for prompt in p.all_prompts]

    def flush_report(self, p: Any) -> None:
        """Turn what the last activation changed into messages (before it is replaced or deactivated)."""
        handle, prepared = self.handle, self.prepared
        if handle is None or prepared is None or not prepared.stack:
            return
        if handle.calls == 0:
            return  # the model was not called since the activation: nothing to say yet
        reports = handle.report(since_activate=True)
        self._record_applied(p, prepared, self.service.applied_indices(prepared, reports))
        self.say(p, self.service.report_messages(prepared, reports, model_family(shared.sd_model)))

    def _record_applied(self, p: Any, prepared: Prepared, indices: list[int]) -> None:
        """The report's "applied" list and ``Hypernet hashes``: exactly the entries that changed a layer.

        Runs before the webui writes the batch's infotext (``postprocess_batch``), so pasting it back
        reproduces the image: an entry that changed nothing has no hash to find again.
        """
        if self._report_for is not None and self._report_for() is p:
            self.report.add_applied([prepared.names[i] for i in indices])
        if not indices or not settings.opt("hypernet_infotext_hashes"):
            return
        params = getattr(p, "extra_generation_params", None)
        if not isinstance(params, dict):
            return
        seen: dict[str, str] = getattr(p, "hypernet_hashes", None) or {}
        problems = []
        for i in indices:
            name = prepared.names[i]
            if name in seen:
                continue
            try:
                seen[name] = self.library.shorthash(prepared.files[i])
            except lib_hypernet.HypernetError as exc:
                problems.append(f"Hypernet {name}: cannot hash for the infotext: {exc}")
        if seen:
            p.hypernet_hashes = seen
            params[infotext.KEY] = infotext.format_hashes(seen.items())
        self.say(p, problems)

    def deactivate(self, p: Any) -> None:
        self.flush_report(p)
        if self.handle is not None:
            self.handle.deactivate()
        self.prepared = None

    def _start_report(self, p: Any) -> None:
        """A new generation (not the model-load dummy p, not the next batch of the same one) starts a new report."""
        if getattr(p, "all_prompts", None) is None:
            return
        current = self._report_for() if self._report_for is not None else None
        if current is not p:
            self.report = GenerationReport()
            try:
                self._report_for = weakref.ref(p)
            except TypeError:
                self._report_for = None

    def say(self, p: Any, messages: list[str]) -> None:
        if self._report_for is not None and self._report_for() is p:
            self.report.add_messages(messages)
        for message in messages:
            log.warning("hypernetworks: %s", message)
            if settings.opt("hypernet_warnings") and hasattr(p, "comment"):
                p.comment(message)

    def note(self, p: Any, messages: list[str]) -> None:
        """Like :meth:`say` for what was asked for and is no problem (e.g. a strength of 0): the panel's report only."""
        if self._report_for is not None and self._report_for() is p:
            self.report.add_messages(messages)
        for message in messages:
            log.info("hypernetworks: %s", message)

    def on_step(self, params: Any) -> None:
        if self.handle is not None and self.handle.active:
            self.handle.set_step(params.sampling_step, params.total_sampling_steps)

    def restore_pasted(self, params: dict[str, Any]) -> None:
        self.ensure_refreshed()
        self.service.restore_pasted(params)
        self.caches.save()

    def unload(self) -> None:
        self.facts.stop()
        if self.handle is not None:
            self.handle.remove()
        self.handle = None
        self.prepared = None
        self.caches.save()
