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
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.hooks import RemovableHandle

from .._compat import autocast_dtype
from ..apply import run_module
from ..hypernetwork import Hypernetwork
from ..strength import Strength, StrengthLike, as_strength
from .kernels import CompiledPair, weights_version
from .report import EntryReport
from .sites import AttentionSite, find_attention_sites, tensor_version

log = logging.getLogger(__name__)

CROSS_CACHE_SIZE = 8

# Compiled weights per hypernetwork, shared by every handle; an entry dies with its hypernetwork.
_PLANS: weakref.WeakKeyDictionary[Hypernetwork, dict[tuple[Any, ...], tuple[Any, CompiledPair]]] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True)
class _Entry:
    index: int
    hn: Hypernetwork
    strength: Strength


@dataclass
class _CrossResult:
    key: tuple[Any, ...]
    source: weakref.ref[torch.Tensor]
    version: int | None
    copy: torch.Tensor
    context_k: torch.Tensor
    context_v: torch.Tensor


class HypernetHandle:
    """Hypernetworks attached to one model.  Obtain it with :func:`lib_hypernet.install`.

    ``activate(stack)`` sets what applies (a list of ``(hypernetwork, strength)``;
    a strength is a number or a :class:`~lib_hypernet.Strength`), ``deactivate()``
    stops it, ``remove()`` detaches for good.  ``set_step(i, n)`` tells the handle
    the sampling step, for strengths with a step range.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self._model_ref = weakref.ref(model)
        self._entries: list[_Entry] = []
        self._scratch: dict[Any, torch.Tensor] = {}  # reusable hidden-activation buffers, freed on deactivate
        self._hooks: list[RemovableHandle] = []
        self._sites: list[AttentionSite] = []
        self._step: int | None = None
        self._total_steps: int | None = None
        self._effective: dict[tuple[str, int], list[tuple[_Entry, float]]] = {}
        # Most recently used last; several entries may share a key (cond and uncond in separate calls).
        self._cross_cache: list[_CrossResult] = []
        self._last: dict[tuple[int, str, int], set[int]] = {}
        self._since_activate: dict[tuple[int, str, int], set[int]] = {}
        self.removed = False
        #: Dtype for the hypernetwork math when no autocast is active (None: the modules' dtype, float32).
        self.compute_dtype: torch.dtype | None = None
        #: Reuse cross-attention results while the text context is unchanged (exactly validated).
        self.cache_cross_attention = True
        #: Statistics: (hits, misses) of the cross-attention cache since activate().
        self.cache_stats = [0, 0]
        #: Self-attention calls whose batch was two identical halves (computed once) since activate().
        self.half_batch_hits = 0
        #: Calls of the model this handle is installed on since activate() (while something is active).
        self.calls = 0

    # ------------------------------------------------------------------ public API
    @property
    def model(self) -> torch.nn.Module | None:
        return self._model_ref()

    @property
    def active(self) -> bool:
        return bool(self._hooks)

    @property
    def stack(self) -> list[tuple[Hypernetwork, Strength]]:
        return [(e.hn, e.strength) for e in self._entries]

    def activate(self, stack: Sequence[tuple[Hypernetwork, StrengthLike]]) -> None:
        """Apply ``stack`` (in order) from the next model call on; replaces any previous stack."""
        if self.removed:
            raise RuntimeError("this handle was removed; call lib_hypernet.install(model) again")
        entries = []
        for index, item in enumerate(stack):
            hn, strength = item
            if not isinstance(hn, Hypernetwork):
                raise TypeError(f"stack entry {index}: expected a Hypernetwork, got {type(hn).__name__}")
            entries.append(_Entry(index, hn, as_strength(strength)))
        self._unhook()
        self._entries = entries
        self._reset_call_state()
        self._since_activate = {}
        self._last = {}
        self._step = self._total_steps = None
        self.cache_stats = [0, 0]
        self.calls = 0
        self.half_batch_hits = 0
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

    def set_step(self, step: int | None, total_steps: int | None = None) -> None:
        """The current sampling step (0-based) of ``total_steps``; ``None`` means unknown (counts as step 0)."""
        if (step, total_steps) != (self._step, self._total_steps):
            self._step, self._total_steps = step, total_steps
            self._effective = {}

    def report(self, since_activate: bool = False) -> list[EntryReport]:
        """Per stack entry, the attention layers it changed by ``(kind, width)``.

        By default for the last call of the model this handle is installed on (or
        everything since :meth:`activate` if that model itself is never called);
        ``since_activate=True`` covers every call since :meth:`activate`.
        """
        tallies = self._since_activate if since_activate else self._last
        reports = []
        for entry in self._entries:
            layers = {
                (kind, width): len(sites)
                for (index, kind, width), sites in sorted(tallies.items(), key=lambda kv: kv[0][1:])
                if index == entry.index
            }
            reports.append(EntryReport(entry.index, entry.hn.name, entry.strength, layers))
        return reports

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

    def _reset_call_state(self) -> None:
        self._effective = {}
        self._scratch.clear()
        self._cross_cache.clear()

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
            if pending is context and site.pending_version == tensor_version(context):
                output, site.pending_output = site.pending_output, None
                return (output, *args[1:])
            site.pending_output = None
        last_q = site.last_q() if site.last_q is not None else None
        kind = "self" if last_q is context else "cross"
        width = context.shape[-1]
        entries = self._effective_entries(kind, width)
        if not entries:
            return None
        context_k, context_v = self._compute(kind, width, context, entries)
        for entry, _ in entries:
            for tallies in (self._last, self._since_activate):
                tallies.setdefault((entry.index, kind, width), set()).add(site.index)
        site.pending_input = context
        site.pending_version = tensor_version(context)
        site.pending_output = context_v if branch == 0 else context_k
        return (context_k if branch == 0 else context_v, *args[1:])

    def _effective_entries(self, kind: str, width: int) -> list[tuple[_Entry, float]]:
        key = (kind, width)
        found = self._effective.get(key)
        if found is None:
            found = []
            for entry in self._entries:
                strength = entry.strength.for_kind(kind)
                if strength != 0 and width in entry.hn.layers and entry.strength.active_at(self._step, self._total_steps):
                    found.append((entry, strength))
            self._effective[key] = found
        return found

    def _compute(
        self, kind: str, width: int, context: torch.Tensor, entries: list[tuple[_Entry, float]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if torch.is_grad_enabled() and (
            context.requires_grad or any(p.requires_grad for e, _ in entries for p in e.hn.parameters())
        ):
            return self._compute_reference(context, width, entries)

        autocast = autocast_dtype(context.device.type)
        if autocast is not None:
            mm_dtype, ref_dtype, x = autocast, torch.float32, context
        else:
            mm_dtype = self.compute_dtype or entries[0][0].hn.dtype
            ref_dtype, x = mm_dtype, context.to(mm_dtype)
        plans = [self._plan(e.hn, width, context.device, mm_dtype, ref_dtype) for e, _ in entries]

        cache_key = None
        if kind == "cross" and self.cache_cross_attention:
            # The plans themselves (compared by identity, kept alive by the entry): an id() could be reused by
            # the plan that replaces one whose weights changed.
            cache_key = (width, autocast is not None, mm_dtype, tuple((e.index, m, p) for (e, m), p in zip(entries, plans)))
            cached = self._cross_lookup(cache_key, context)
            if cached is not None:
                self.cache_stats[0] += 1
                return cached
            self.cache_stats[1] += 1

        half = _duplicated_half(x) if kind == "self" and all(plan.fused for plan in plans) else None
        if half is not None:
            # Classifier-free guidance runs the UNet on [x, x]: until the first cross-attention the two
            # halves of the batch are identical, so compute one and repeat it (fused kernels are per token).
            self.half_batch_hits += 1
            context_k, context_v = self._run_plans(half, entries, plans, autocast is None, mm_dtype)
            context_k, context_v = context_k.repeat(2, *(1,) * (x.dim() - 1)), context_v.repeat(2, *(1,) * (x.dim() - 1))
        else:
            context_k, context_v = self._run_plans(x, entries, plans, autocast is None, mm_dtype)
        context_k, context_v = context_k.to(context.dtype), context_v.to(context.dtype)
        if cache_key is not None:
            self._cross_store(cache_key, context, context_k, context_v)
        return context_k, context_v

    def _run_plans(
        self,
        x: torch.Tensor,
        entries: list[tuple[_Entry, float]],
        plans: list[CompiledPair],
        own_dtype: bool,
        mm_dtype: torch.dtype,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply the stack to ``x``; ``own_dtype`` is False under autocast (which then picks the dtypes)."""
        context_k = context_v = x
        scratch = self._scratch if own_dtype else None  # in-place matmuls would bypass autocast
        for (_, strength), plan in zip(entries, plans):
            if context_k is context_v:
                context_k, context_v = plan.both(context_k, strength, scratch)
            else:
                context_k = plan.one(0, context_k, strength, scratch)
                context_v = plan.one(1, context_v, strength, scratch)
            if own_dtype:
                # A final LayerNorm (float32 parameters) promotes a half-precision result; the next plan needs mm_dtype.
                context_k, context_v = context_k.to(mm_dtype), context_v.to(mm_dtype)
        return context_k, context_v

    def _compute_reference(
        self, context: torch.Tensor, width: int, entries: list[tuple[_Entry, float]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        context_k = context_v = context
        for entry, strength in entries:
            module_k, module_v = entry.hn.layers[width]
            context_k, context_v = run_module(module_k, context_k, strength), run_module(module_v, context_v, strength)
        return context_k, context_v

    def _plan(
        self, hn: Hypernetwork, width: int, device: torch.device, dtype: torch.dtype, ref_dtype: torch.dtype
    ) -> CompiledPair:
        pair = hn.layers[width]
        plans = _PLANS.get(hn)
        if plans is None:
            plans = _PLANS[hn] = {}
        key = (width, device, dtype, ref_dtype)
        version = weights_version(pair)
        found = plans.get(key)
        if found is not None and found[0] == version:
            return found[1]
        plan = CompiledPair(pair, hn.activation_func, device, dtype, ref_dtype)
        plans[key] = (version, plan)
        return plan

    def _cross_lookup(self, key: tuple[Any, ...], context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        version = tensor_version(context)
        # Results computed under inference_mode cannot enter autograd (to_k would save them for backward).
        usable_inference = torch.is_inference_mode_enabled() or not torch.is_grad_enabled()
        for position in range(len(self._cross_cache) - 1, -1, -1):
            found = self._cross_cache[position]
            if found.key != key or (found.context_k.is_inference() and not usable_inference):
                continue
            same_object = found.source() is context and version is not None and version == found.version
            if not same_object:
                copy = found.copy
                if (
                    copy.shape != context.shape
                    or copy.dtype != context.dtype
                    or copy.device != context.device
                    or not torch.equal(copy, context)
                ):
                    continue
                found.source, found.version = weakref.ref(context), version
            self._cross_cache.append(self._cross_cache.pop(position))
            return found.context_k, found.context_v
        return None

    def _cross_store(
        self, key: tuple[Any, ...], context: torch.Tensor, context_k: torch.Tensor, context_v: torch.Tensor
    ) -> None:
        self._cross_cache.append(
            _CrossResult(key, weakref.ref(context), tensor_version(context), context.detach().clone(), context_k, context_v)
        )
        while len(self._cross_cache) > CROSS_CACHE_SIZE:
            self._cross_cache.pop(0)


def _duplicated_half(x: torch.Tensor) -> torch.Tensor | None:
    """The first half of the batch if the second half is an exact copy of it, else ``None``."""
    if x.dim() < 2 or x.shape[0] < 2 or x.shape[0] % 2:
        return None
    half = x.shape[0] // 2
    first, second = x[:half], x[half:]
    if not torch.equal(first[..., :1], second[..., :1]):  # cheap rejection of the usual case
        return None
    return first if torch.equal(first, second) else None


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
