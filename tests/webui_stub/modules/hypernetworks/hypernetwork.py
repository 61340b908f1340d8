"""Stand-in of ``modules/hypernetworks/hypernetwork.py``: discovery, the load cache of spec §4.5, the
``apply_hypernetworks`` fold of spec §6.1 and the unoptimized ``attention_CrossAttention_forward``.

The built-in hypernetwork math is NOT reproduced: ``loader`` (default :class:`StubHypernetwork`) builds
seeded placeholder modules ``x + m * linear(x)`` for every int key of the ``.pt``; tests may replace
``loader`` with any ``callable(path) -> object with .name/.layers/.set_multiplier``.
"""
from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Callable
from typing import Any

import torch
from einops import rearrange
from ldm.util import default

from modules import devices, errors, shared

load_calls: list[tuple[list, list]] = []
"""(names, multipliers) of every ``load_hypernetworks`` call (i.e. every built-in activate that got that far)."""

disk_loads: list[str] = []
"""Paths read by ``load_hypernetwork`` (one entry per disk read)."""


def _seed(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little")


class StubHypernetworkModule(torch.nn.Module):
    """Placeholder module with A1111's forward shape: ``x + linear(x) * multiplier`` (multiplier ignored in training)."""

    def __init__(self, dim: int, seed: int):
        super().__init__()
        self.linear = torch.nn.Linear(dim, dim)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            self.linear.weight.copy_(torch.randn(dim, dim, generator=g) * (0.5 / dim ** 0.5))
            self.linear.bias.copy_(torch.randn(dim, generator=g) * 0.01)
        self.multiplier = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.linear(x) * (self.multiplier if not self.training else 1)


class StubHypernetwork:
    """Minimal object with the attributes A1111 code reads: name, filename, layers, set_multiplier, eval."""

    def __init__(self, name: str | None = None):
        self.name = name
        self.filename: str | None = None
        self.layers: dict[int, tuple[torch.nn.Module, torch.nn.Module]] = {}
        self.step = 0
        self.sd_checkpoint = None
        self.sd_checkpoint_name = None

    def load(self, filename: str) -> StubHypernetwork:
        self.filename = filename
        if self.name is None:
            self.name = os.path.splitext(os.path.basename(filename))[0]
        state_dict = torch.load(filename, map_location="cpu", weights_only=True)
        for size in state_dict:
            if type(size) is int:
                self.layers[size] = (StubHypernetworkModule(size, _seed(self.name, size, "k")),
                                     StubHypernetworkModule(size, _seed(self.name, size, "v")))
        self.name = state_dict.get("name", self.name)
        self.step = state_dict.get("step", 0)
        self.sd_checkpoint = state_dict.get("sd_checkpoint")
        self.sd_checkpoint_name = state_dict.get("sd_checkpoint_name")
        self.eval()
        return self

    def weights(self) -> list[torch.nn.Parameter]:
        return [p for pair in self.layers.values() for m in pair for p in m.parameters()]

    def eval(self) -> None:
        for pair in self.layers.values():
            for m in pair:
                m.eval()
                for p in m.parameters():
                    p.requires_grad = False

    def set_multiplier(self, multiplier: float) -> StubHypernetwork:
        for pair in self.layers.values():
            for m in pair:
                m.multiplier = multiplier
        return self


def _default_loader(path: str) -> StubHypernetwork:
    return StubHypernetwork().load(path)


loader: Callable[[str], Any] = _default_loader


def list_hypernetworks(path: str) -> dict[str, str]:
    """``{stem: path}`` for ``path/**/*.pt`` sorted case-insensitively; later duplicates win; 'None' skipped."""
    res = {}
    for filename in sorted(glob.iglob(os.path.join(path, "**/*.pt"), recursive=True), key=str.lower):
        name = os.path.splitext(os.path.basename(filename))[0]
        if name != "None":
            res[name] = filename
    return res


def load_hypernetwork(name: str):
    """Look ``name`` up in ``shared.hypernetworks`` and load it with ``loader``; None if missing or failing."""
    path = shared.hypernetworks.get(name)
    if path is None:
        return None
    try:
        disk_loads.append(path)
        return loader(path)
    except Exception:
        errors.report(f"Error loading hypernetwork {path}", exc_info=True)
        return None


def load_hypernetworks(names: list[str], multipliers: list[float] | None = None) -> None:
    """Refill ``shared.loaded_hypernetworks``, reusing already-loaded objects by their ``.name`` (spec §4.5)."""
    load_calls.append((list(names), list(multipliers or [])))
    already_loaded = {h.name: h for h in shared.loaded_hypernetworks if h.name in names}
    shared.loaded_hypernetworks.clear()
    for i, name in enumerate(names):
        hypernetwork = already_loaded.get(name) or load_hypernetwork(name)
        if hypernetwork is None:
            continue
        hypernetwork.set_multiplier(multipliers[i] if multipliers else 1.0)
        shared.loaded_hypernetworks.append(hypernetwork)


def apply_single_hypernetwork(hypernetwork, context_k: torch.Tensor, context_v: torch.Tensor, layer=None):
    """Apply the (k, v) module pair whose width matches ``context_k.shape[2]``; ``layer`` gets hyper_k/hyper_v."""
    pair = (hypernetwork.layers if hypernetwork is not None else {}).get(context_k.shape[2])
    if pair is None:
        return context_k, context_v
    if layer is not None:
        layer.hyper_k, layer.hyper_v = pair
    context_k = devices.cond_cast_unet(pair[0](devices.cond_cast_float(context_k)))
    context_v = devices.cond_cast_unet(pair[1](devices.cond_cast_float(context_v)))
    return context_k, context_v


def apply_hypernetworks(hypernetworks: list, context: torch.Tensor, layer=None):
    """Fold ``apply_single_hypernetwork`` over ``hypernetworks`` in order; returns (context_k, context_v)."""
    context_k = context_v = context
    for hypernetwork in hypernetworks:
        context_k, context_v = apply_single_hypernetwork(hypernetwork, context_k, context_v, layer)
    return context_k, context_v


def attention_CrossAttention_forward(self, x, context=None, mask=None, **kwargs):
    """Unoptimized attention ("None" / training): plain softmax(QK^T)V, hypernets applied with ``layer=self``."""
    heads = self.heads
    context = default(context, x)
    q = self.to_q(x)
    context_k, context_v = apply_hypernetworks(shared.loaded_hypernetworks, context, self)
    k = self.to_k(context_k)
    v = self.to_v(context_v)
    q, k, v = (rearrange(t, "b n (h d) -> (b h) n d", h=heads) for t in (q, k, v))
    scores = torch.bmm(q, k.transpose(1, 2)) * self.scale
    if mask is not None:
        mask = rearrange(mask, "b ... -> b (...)").repeat_interleave(heads, dim=0)[:, None, :]
        scores = scores.masked_fill(~mask, -torch.finfo(scores.dtype).max)
    out = torch.bmm(scores.softmax(dim=-1), v)
    return self.to_out(rearrange(out, "(b h) n d -> b n (h d)", h=heads))
