"""Finding the attention layers of a model: any module with ``to_k`` and ``to_v`` submodules."""

from __future__ import annotations

import weakref
from typing import Any, cast

import torch


class AttentionSite:
    """One attention layer and the per-call scratch state the hooks share."""

    __slots__ = ("index", "last_q", "name", "pending_input", "pending_output", "pending_version", "to_k", "to_q", "to_v")

    def __init__(self, index: int, name: str, module: torch.nn.Module) -> None:
        self.index = index
        self.name = name
        self.to_q: torch.nn.Module | None = getattr(module, "to_q", None)
        self.to_k: torch.nn.Module = cast(torch.nn.Module, module.to_k)
        self.to_v: torch.nn.Module = cast(torch.nn.Module, module.to_v)
        self.last_q: weakref.ref[torch.Tensor] | None = None
        self.pending_input: torch.Tensor | None = None
        self.pending_version: Any = None
        self.pending_output: torch.Tensor | None = None

    def clear(self) -> None:
        self.last_q = None
        self.pending_input = None
        self.pending_output = None
        self.pending_version = None


def find_attention_sites(model: torch.nn.Module) -> list[AttentionSite]:
    """Every submodule (or the model itself) whose ``to_k`` and ``to_v`` are modules, in module order."""
    sites: list[AttentionSite] = []
    for name, module in model.named_modules():
        if isinstance(getattr(module, "to_k", None), torch.nn.Module) and isinstance(
            getattr(module, "to_v", None), torch.nn.Module
        ):
            sites.append(AttentionSite(len(sites), name, module))
    return sites
