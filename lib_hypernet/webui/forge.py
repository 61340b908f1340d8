"""Forge 2: hypernetworks as attention patches on a clone of ``sd_model.forge_objects.unet``.

Forge 2 throws away whatever an extra network writes to ``forge_objects`` (``processing.py:957`` resets it
from ``forge_objects_after_applying_lora`` right after ``extra_networks.activate``), and its ``shared.sd_model``
has no ``.model``.  So, as its own built-in scripts do:

1. ``<hypernet:…>`` (our :class:`~lib_hypernet.webui.a1111.ExtraNetworkHypernet`, replacing the built-in one)
   only prepares the stack — files, messages, infotext — and records it on ``p`` (``p.hypernet_prepared``);
2. the always-on script's ``process_before_every_sampling`` clones ``p.sd_model.forge_objects.unet``, adds one
   ``attn1_patch`` and one ``attn2_patch`` (:class:`lib_hypernet.HypernetPatch`: the K and V inputs, ``n``
   untouched) and assigns the clone back.  Idempotent: Forge calls it twice with hires fix; a UNet that
   already carries our patches is left alone.  ``forge_objects_original`` and
   ``forge_objects_after_applying_lora`` are never written.

Everything else — settings, infotext and paste-back, messages, HTTP routes, step ranges (from the CFG
denoiser's ``sampling_step``, which Forge 2 still fires) — is the A1111 adapter's.
"""

from __future__ import annotations

import logging
from typing import Any

import lib_hypernet
from lib_hypernet.engine.patch import is_hypernet_patch
from lib_hypernet.service import Prepared

from . import a1111, settings
from .a1111 import ExtraNetworkHypernet, current
from .extension import Handle, HypernetExtension, model_family

log = logging.getLogger(__name__)

__all__ = ["ExtraNetworkHypernet", "ForgeHypernetExtension", "HypernetScript", "current", "register"]

NEEDS_UNET = "Hypernetworks not applied: hypernetworks need an SD1/SD2/SDXL UNet (this model is not one)"
PREPARED_ATTR = "hypernet_prepared"


class ForgeHypernetExtension(HypernetExtension):
    """The A1111 extension state, with one :class:`~lib_hypernet.HypernetPatch` instead of hooks on the UNet."""

    def __init__(self) -> None:
        super().__init__()
        self.patch = lib_hypernet.HypernetPatch()
        self._applied: Prepared | None = None  # what the patch was last activated with

    # -------------------------------------------------------------- model
    def attach(self, sd_model: Any) -> None:
        """on_model_loaded: nothing to hook (the patch goes on a clone of the UNet patcher per generation)."""
        self.handle = self.patch

    def current_handle(self) -> Handle | None:
        from modules import shared

        return self.patch if shared.sd_model is not None else None

    # -------------------------------------------------------------- generation
    def use(self, p: Any, handle: Handle, prepared: Prepared) -> None:
        """Record the stack on ``p``; :meth:`before_sampling` applies it (no effect of its own here)."""
        self.handle = self.patch
        self.prepared = prepared
        try:
            setattr(p, PREPARED_ATTR, prepared)
        except AttributeError:  # an object that takes no attributes: nothing will sample with it
            pass

    def before_sampling(self, p: Any) -> None:
        """``process_before_every_sampling``: put the patches on a clone of ``p.sd_model.forge_objects.unet``."""
        prepared: Prepared | None = getattr(p, PREPARED_ATTR, None)
        patch = self.patch
        if prepared is None or not any(not strength.is_zero for _, strength in prepared.stack):
            if patch.active:
                patch.deactivate()
            self._applied = None
            return
        sd_model = getattr(p, "sd_model", None)
        forge_objects: Any = getattr(sd_model, "forge_objects", None)
        unet = getattr(forge_objects, "unet", None)
        if unet is None or not hasattr(unet, "clone"):
            self._say_once(p, "Hypernetworks not applied: this Forge model has no UNet patcher (forge_objects.unet)")
            return
        if model_family(sd_model) is None:
            self._say_once(p, NEEDS_UNET)
            return
        if self._applied is not prepared:
            patch.compute_dtype = settings.compute_dtype()
            patch.activate(prepared.stack)
            self._applied = prepared
        if _has_our_patches(unet):
            return
        clone = unet.clone()
        clone.set_model_attn1_patch(patch.attn1)
        clone.set_model_attn2_patch(patch.attn2)
        forge_objects.unet = clone

    def _say_once(self, p: Any, message: str) -> None:
        said = getattr(p, "hypernet_said", None)
        if said is None:
            said = set()
            try:
                p.hypernet_said = said
            except AttributeError:
                pass
        if message not in said:
            said.add(message)
            self.say(p, [message])

    def deactivate(self, p: Any) -> None:
        super().deactivate(p)
        self._applied = None


def _has_our_patches(unet: Any) -> bool:
    options = getattr(unet, "model_options", None)
    patches = options.get("transformer_options", {}).get("patches", {}) if isinstance(options, dict) else {}
    return any(is_hypernet_patch(x) for name in ("attn1_patch", "attn2_patch") for x in patches.get(name, []))


class HypernetScript(a1111.HypernetScript):
    """Always-on: applies the recorded stack before every sampling pass; unapplies after the batch."""

    def process_before_every_sampling(self, p: Any, *args: Any, **kwargs: Any) -> None:
        extension = current()
        if not isinstance(extension, ForgeHypernetExtension):
            return
        try:
            extension.before_sampling(p)
        except Exception:  # one bad file or model never breaks a generation
            log.exception("hypernetworks: could not patch the UNet; generating without hypernetworks")
            extension.patch.deactivate()


def register() -> HypernetExtension:
    return a1111.register(ForgeHypernetExtension(), "Forge 2 detected; hypernetworks apply as attn1/attn2 patches")
