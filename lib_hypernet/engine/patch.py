"""Hypernetworks as ComfyUI/Forge-style attention patches (``attn1_patch`` / ``attn2_patch``).

Forge 2, reForge and ComfyUI run every transformer block's attention through patch lists in
``model_options["transformer_options"]["patches"]``: before ``attn1`` (self-attention) and ``attn2``
(cross-attention) each patch is called as ``patch(n, context_attn, value_attn, extra_options)`` and
returns the new ``(n, context_attn, value_attn)`` — the Q input, the K input and the V input.  A
hypernetwork changes exactly the K and V inputs, so :class:`HypernetPatch` returns
``(n, context + m·MLP_k(context), value + m·MLP_v(value))`` with ``n`` untouched, computed by the same
runner and kernels as the A1111 path (:class:`~lib_hypernet.engine.handle.HypernetHandle`): fused k/v,
the cross-attention result reused across layers and steps, CFG's identical halves computed once.

    >>> patch = lib_hypernet.HypernetPatch()
    >>> patch.activate([(hn, 0.8)])
    >>> unet = unet_patcher.clone()
    >>> unet.set_model_attn1_patch(patch.attn1)     # self-attention: "self" strengths
    >>> unet.set_model_attn2_patch(patch.attn2)     # cross-attention: "cross" strengths

Hosts deep-copy ``model_options`` on every ``clone()`` and call ``.to(device_or_dtype_or_None)`` on
every patch before sampling: both are no-ops here (``__deepcopy__`` returns the same object, so the
weights are never copied; compiled weights follow the activations' device lazily).  There is no autocast
in those hosts: the math runs in :attr:`compute_dtype` (default: the hypernetwork's float32) on the
activation's device and the results are cast back to the activation's dtype (fp16/bf16).
"""

from __future__ import annotations

import bisect
from collections.abc import Hashable, Sequence
from typing import Any

import torch

from ..model.hypernetwork import Hypernetwork
from .runner import StackRunner, make_entries
from .strength import StrengthLike

KINDS = {"attn1": "self", "attn2": "cross"}


class HypernetPatch(StackRunner):
    """A stack of hypernetworks for patch-based hosts; :attr:`attn1` and :attr:`attn2` are the patches.

    ``activate(stack)`` / ``deactivate()`` set what applies (a patch left in a model computes nothing
    while nothing is active).  Step ranges use :meth:`set_step` (the sampler's progress), or, once
    :meth:`set_sigma_schedule` was given the sampler's sigmas, the step found from
    ``extra_options["sigmas"]`` of each call.
    """

    def __init__(self) -> None:
        super().__init__()
        self.attn1 = AttentionPatch(self, "attn1")
        self.attn2 = AttentionPatch(self, "attn2")
        self._schedule: list[float] | None = None  # ascending copy of the sampler's sigmas
        self._schedule_steps = 0
        self._seen: set[Hashable] = set()  # sites seen during the current model call

    @property
    def active(self) -> bool:
        return any(not e.strength.is_zero for e in self._entries)

    @property
    def patches(self) -> tuple[AttentionPatch, AttentionPatch]:
        return self.attn1, self.attn2

    def activate(self, stack: Sequence[tuple[Hypernetwork, StrengthLike]]) -> None:
        """Apply ``stack`` (in order) from the next patched call on; replaces any previous stack."""
        entries = make_entries(stack)
        self._set_entries(entries)
        self._seen = set()

    def deactivate(self) -> None:
        """Apply nothing (a patched model computes exactly as an unpatched one)."""
        self._entries = []
        self._reset_call_state()
        self._schedule = None

    def remove(self) -> None:
        """Same as :meth:`deactivate` (a patch holds no hooks; the host drops its model clones)."""
        self.deactivate()

    def set_sigma_schedule(self, sigmas: torch.Tensor | Sequence[float] | None) -> None:
        """The sampler's sigma schedule (``steps + 1`` values, descending, usually ending in 0), or None.

        While one is set, each call's step is the schedule entry nearest to ``extra_options["sigmas"]``
        (instead of what :meth:`set_step` said).  Kept until replaced, or until :meth:`deactivate`.
        """
        if sigmas is None:
            self._schedule = None
            return
        values = [float(s) for s in (sigmas.flatten().tolist() if isinstance(sigmas, torch.Tensor) else sigmas)]
        if len(values) < 2:
            raise ValueError("a sigma schedule needs at least two values (steps + 1)")
        self._schedule_steps = len(values) - 1
        self._schedule = sorted(values[:-1])  # the sigmas a step can start at
        self._effective = {}

    # ------------------------------------------------------------------ the work
    def _step_from_sigmas(self, extra_options: dict[str, Any]) -> None:
        sigmas = extra_options.get("sigmas")
        schedule = self._schedule
        if schedule is None or not isinstance(sigmas, torch.Tensor) or sigmas.numel() == 0:
            return
        sigma = float(sigmas.flatten()[0])
        position = bisect.bisect_left(schedule, sigma)
        candidates = [i for i in (position - 1, position) if 0 <= i < len(schedule)]
        nearest = min(candidates, key=lambda i: abs(schedule[i] - sigma))
        # schedule is ascending: the largest sigma is step 0.
        self.set_step(len(schedule) - 1 - nearest, self._schedule_steps)

    def _count_call(self, site: Hashable) -> None:
        if site in self._seen or self.calls == 0:
            self._seen = set()
            self._last = {}
            self.calls += 1
        self._seen.add(site)

    def run(
        self, which: str, n: torch.Tensor, context: torch.Tensor, value: torch.Tensor, extra_options: dict[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """What :attr:`attn1` (``which="attn1"``) or :attr:`attn2` returns for one call."""
        if not self._entries or not isinstance(context, torch.Tensor) or not isinstance(value, torch.Tensor):
            return n, context, value
        kind = KINDS[which]
        self._step_from_sigmas(extra_options)
        block = extra_options.get("block")
        site = (which, tuple(block) if isinstance(block, (tuple, list)) else block, extra_options.get("block_index"))
        self._count_call(site)
        width = context.shape[-1]
        applied = self._apply(kind, context)
        if value is context:
            if applied is None:
                return n, context, value
            self._tally(self._effective_entries(kind, width), kind, width, site)
            return n, applied[0], applied[1]
        # Another patch gave V its own input: each branch on its own input.
        applied_v = self._apply(kind, value)
        context_k = context if applied is None else applied[0]
        value_v = value if applied_v is None else applied_v[1]
        if applied is not None:
            self._tally(self._effective_entries(kind, width), kind, width, site)
        if applied_v is not None:
            self._tally(self._effective_entries(kind, value.shape[-1]), kind, value.shape[-1], site)
        return n, context_k, value_v


class AttentionPatch:
    """``patch(n, context_attn, value_attn, extra_options) -> (n, k_input, v_input)`` for one attention kind."""

    def __init__(self, owner: HypernetPatch, which: str) -> None:
        if which not in KINDS:
            raise ValueError(f"which must be 'attn1' or 'attn2', got {which!r}")
        self.owner = owner
        self.which = which

    def __call__(
        self, n: torch.Tensor, context_attn: torch.Tensor, value_attn: torch.Tensor, extra_options: dict[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.owner.run(self.which, n, context_attn, value_attn, extra_options)

    def __deepcopy__(self, memo: dict[int, Any]) -> AttentionPatch:
        return self  # model_options are deep-copied on every clone(): share the weights, never copy them

    def __copy__(self) -> AttentionPatch:
        return self

    def to(self, *args: Any, **kwargs: Any) -> AttentionPatch:
        """Accepts ``.to(device)``, ``.to(dtype)``, ``.to(None)``: compiled weights follow the activations."""
        return self

    def __repr__(self) -> str:
        return f"<hypernetwork {self.which}_patch of {len(self.owner.stack)} hypernetwork(s)>"


def is_hypernet_patch(obj: Any) -> bool:
    """Whether ``obj`` is one of our attention patches (to keep patching idempotent)."""
    return isinstance(obj, AttentionPatch)
