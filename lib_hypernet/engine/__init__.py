"""The apply engine: hypernetworks inside a live model, exact, reversible and cheap."""

from __future__ import annotations

from .handle import HypernetHandle, install
from .kernels import CompiledPair, fusable
from .patch import AttentionPatch, HypernetPatch
from .report import EntryReport
from .sites import find_attention_sites

__all__ = [
    "AttentionPatch",
    "CompiledPair",
    "EntryReport",
    "HypernetHandle",
    "HypernetPatch",
    "find_attention_sites",
    "fusable",
    "install",
]
