"""Attach hypernetworks to a live model through hooks on each attention layer's K/V projections.

The hooks live on the ``to_k``/``to_v`` (and ``to_q``) module *instances*, as
forward pre-hooks: whatever ``forward`` the host installs on the attention
class (A1111 swaps it whenever the cross-attention optimization changes), it
calls ``self.to_k(context)`` and ``self.to_v(context)``, so the hypernetworks
keep applying.  Hooks exist only while something is active; idle costs nothing
and :meth:`HypernetHandle.remove` leaves the model exactly as it was.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch.utils.hooks import RemovableHandle

from ..hypernetwork import Hypernetwork
from ..strength import StrengthLike
from ..tensor_modes import version_counter
from .runner import _PLANS, CROSS_CACHE_SIZE, StackRunner, make_entries
from .sites import AttentionSite, find_attention_sites

log = logging.getLogger(__name__)

__all__ = ["CROSS_CACHE_SIZE", "_PLANS", "HypernetHandle", "install"]


class HypernetHandle(StackRunner):
    """Hypernetworks attached to one model.  Obtain it with :func:`lib_hypernet.install`.

    ``activate(stack)`` sets what applies (a list of ``(hypernetwork, strength)``;
    a strength is a number or a :class:`~lib_hypernet.Strength`), ``deactivate()``
    stops it, ``remove()`` detaches for good.  ``set_step(i, n)`` tells the handle
    the sampling step, for strengths with a step range.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self._model_ref = weakref.ref(model)
        self._hooks: list[RemovableHandle] = []
        self._sites: list[AttentionSite] = []
        self.removed = False

    # ------------------------------------------------------------------ public API
    @property
    def model(self) -> torch.nn.Module | None:
        return self._model_ref()

    @property
    def active(self) -> bool:
        return bool(self._hooks)

    def activate(self, stack: Sequence[tuple[Hypernetwork, StrengthLike]]) -> None:
        """Apply ``stack`` (in order) from the next model call on; replaces any previous stack."""
        if self.removed:
            raise RuntimeError("this handle was removed; call lib_hypernet.install(model) again")
        entries = make_entries(stack)
        self._unhook()
        self._set_entries(entries)
        if any(not e.strength.is_zero for e in entries):
            self._hook()

    def deactivate(self) -> None:
        """Stop applying anything (the model computes exactly as without hypernetworks)."""
        self._unhook()
        self._entries = []
        self._reset_call_state()

    def remove(self) -> None:
        """Detach from the model for good; it is left bit-identical to never having been hooked."""
        self.deactivate()
        self.removed = True
        model = self.model
        if model is not None and _HANDLES.get(model) is self:
            del _HANDLES[model]

    @contextmanager
    def activated(self, stack: Sequence[tuple[Hypernetwork, StrengthLike]]) -> Iterator[HypernetHandle]:
        """``with handle.activated(stack): model(...)`` — deactivates on exit, even on error."""
        self.activate(stack)
        try:
            yield self
        finally:
            self.deactivate()

    def __enter__(self) -> HypernetHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    # ------------------------------------------------------------------ hooking
    def _hook(self) -> None:
        model = self.model
        if model is None:
            return
        self._sites = find_attention_sites(model)
        hooks = self._hooks
        hooks.append(model.register_forward_pre_hook(self._on_model_call))
        for site in self._sites:
            if site.to_q is not None:
                hooks.append(site.to_q.register_forward_pre_hook(_make_q_hook(site)))
            hooks.append(site.to_k.register_forward_pre_hook(self._make_projection_hook(site, 0)))
            hooks.append(site.to_v.register_forward_pre_hook(self._make_projection_hook(site, 1)))
        log.debug("hooked %d attention layers", len(self._sites))

    def _unhook(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        for site in self._sites:
            site.clear()
        self._sites = []

    def _on_model_call(self, module: torch.nn.Module, args: Any) -> None:
        self._last = {}
        self.calls += 1

    def _make_projection_hook(self, site: AttentionSite, branch: int) -> Any:
        def hook(module: torch.nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
            return self._on_projection(site, branch, args)

        return hook

    # ------------------------------------------------------------------ the work
    def _on_projection(self, site: AttentionSite, branch: int, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        if not args or not isinstance(args[0], torch.Tensor):
            return None
        context = args[0]
        pending = site.pending_input
        if pending is not None:
            site.pending_input = None
            if pending is context and site.pending_version == version_counter(context):
                output, site.pending_output = site.pending_output, None
                return (output, *args[1:])
            site.pending_output = None
        last_q = site.last_q() if site.last_q is not None else None
        kind = "self" if last_q is context else "cross"
        applied = self._apply(kind, context)
        if applied is None:
            return None
        context_k, context_v = applied
        self._tally(self._effective_entries(kind, context.shape[-1]), kind, context.shape[-1], site.index)
        site.pending_input = context
        site.pending_version = version_counter(context)
        site.pending_output = context_v if branch == 0 else context_k
        return (context_k if branch == 0 else context_v, *args[1:])


def _make_q_hook(site: AttentionSite) -> Any:
    def hook(module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        if args and isinstance(args[0], torch.Tensor):
            site.last_q = weakref.ref(args[0])

    return hook


_HANDLES: weakref.WeakKeyDictionary[torch.nn.Module, HypernetHandle] = weakref.WeakKeyDictionary()


def install(model: torch.nn.Module) -> HypernetHandle:
    """The handle for ``model`` (created on first call; the same handle on later calls).

    Works on any model whose attention modules have ``to_k``/``to_v`` projections
    (ldm/sgm ``CrossAttention``, ``MemoryEfficientCrossAttention``, diffusers ``Attention``, …).
    Nothing is attached until :meth:`HypernetHandle.activate` is given a non-zero stack.
    """
    handle = _HANDLES.get(model)
    if handle is None or handle.removed:
        handle = HypernetHandle(model)
        _HANDLES[model] = handle
    return handle
