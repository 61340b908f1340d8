"""The part of the apply engine every host shares: a stack of hypernetworks and how it runs on one K/V input.

:class:`StackRunner` holds the active stack, the step, the compiled weights, the reusable buffers and the
cross-attention cache; :meth:`StackRunner._apply` turns the input of one attention layer's ``to_k``/``to_v``
into the two hypernetwork outputs with the fast kernels (fused k/v, cached cross-attention, CFG halves).
Two front ends use it: :class:`~lib_hypernet.engine.handle.HypernetHandle` (forward pre-hooks on the
projections, A1111) and :class:`~lib_hypernet.engine.patch.HypernetPatch` (ComfyUI/Forge-style
``attn1_patch``/``attn2_patch``), so both compute exactly the same numbers.
"""

from __future__ import annotations

import weakref
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .._compat import autocast_dtype
from ..apply import run_module
from ..hypernetwork import Hypernetwork
from ..strength import Strength, StrengthLike, as_strength
from ..tensor_modes import version_counter
from .kernels import CompiledPair, weights_version
from .report import EntryReport

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


def make_entries(stack: Sequence[tuple[Hypernetwork, StrengthLike]]) -> list[_Entry]:
    """Validate a stack of ``(hypernetwork, strength)``."""
    entries = []
    for index, item in enumerate(stack):
        hn, strength = item
        if not isinstance(hn, Hypernetwork):
            raise TypeError(f"stack entry {index}: expected a Hypernetwork, got {type(hn).__name__}")
        entries.append(_Entry(index, hn, as_strength(strength)))
    return entries


class StackRunner:
    """A stack of hypernetworks, the sampling step, and the kernels and caches that apply it."""

    def __init__(self) -> None:
        self._entries: list[_Entry] = []
        self._scratch: dict[Any, torch.Tensor] = {}  # reusable hidden-activation buffers, freed on deactivate
        self._step: int | None = None
        self._total_steps: int | None = None
        self._effective: dict[tuple[str, int], list[tuple[_Entry, float]]] = {}
        # Most recently used last; several entries may share a key (cond and uncond in separate calls).
        self._cross_cache: list[_CrossResult] = []
        self._last: dict[tuple[int, str, int], set[Hashable]] = {}
        self._since_activate: dict[tuple[int, str, int], set[Hashable]] = {}
        #: Dtype for the hypernetwork math when no autocast is active (None: the modules' dtype, float32).
        self.compute_dtype: torch.dtype | None = None
        #: Reuse cross-attention results while the text context is unchanged (exactly validated).
        self.cache_cross_attention = True
        #: Statistics: (hits, misses) of the cross-attention cache since activate().
        self.cache_stats = [0, 0]
        #: Self-attention calls whose batch was two identical halves (computed once) since activate().
        self.half_batch_hits = 0
        #: Calls of the model since activate() (while something is active).
        self.calls = 0

    @property
    def stack(self) -> list[tuple[Hypernetwork, Strength]]:
        return [(e.hn, e.strength) for e in self._entries]

    def set_step(self, step: int | None, total_steps: int | None = None) -> None:
        """The current sampling step (0-based) of ``total_steps``; ``None`` means unknown (counts as step 0)."""
        if (step, total_steps) != (self._step, self._total_steps):
            self._step, self._total_steps = step, total_steps
            self._effective = {}

    def report(self, since_activate: bool = False) -> list[EntryReport]:
        """Per stack entry, the attention layers it changed by ``(kind, width)``.

        By default for the last call of the model (or everything since activation if no model call was
        seen); ``since_activate=True`` covers every call since the stack was set.
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

    # ------------------------------------------------------------------ state
    def _set_entries(self, entries: list[_Entry]) -> None:
        self._entries = entries
        self._reset_call_state()
        self._since_activate = {}
        self._last = {}
        self._step = self._total_steps = None
        self.cache_stats = [0, 0]
        self.calls = 0
        self.half_batch_hits = 0

    def _reset_call_state(self) -> None:
        self._effective = {}
        self._scratch.clear()
        self._cross_cache.clear()

    def _tally(self, entries: list[tuple[_Entry, float]], kind: str, width: int, site: Hashable) -> None:
        for entry, _ in entries:
            for tallies in (self._last, self._since_activate):
                tallies.setdefault((entry.index, kind, width), set()).add(site)

    def _apply(self, kind: str, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The K and V inputs for one attention layer whose K/V input is ``context`` (None: nothing applies)."""
        width = context.shape[-1]
        entries = self._effective_entries(kind, width)
        if not entries:
            return None
        return self._compute(kind, width, context, entries)

    # ------------------------------------------------------------------ the work
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
        version = version_counter(context)
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
            _CrossResult(key, weakref.ref(context), version_counter(context), context.detach().clone(), context_k, context_v)
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
