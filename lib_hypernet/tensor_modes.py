"""Hypernetwork weights are ordinary tensors, whatever grad or inference mode the caller is in.

Forge 2 and reForge run ``process_images_inner`` under ``torch.inference_mode()`` (A1111 uses
``no_grad``), so a file loaded while a generation runs would otherwise be made of *inference
tensors*: they keep no version counter (the engine's staleness check reads it) and cannot be
turned back into parameters outside inference mode (``save()`` and convert rebuild modules).
Everything that creates or moves weights runs inside :func:`ordinary_tensors`, and weights
handed in by a caller pass through :func:`ordinary`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def ordinary_tensors() -> Iterator[None]:
    """Tensors made inside are normal tensors (never inference tensors) and track no gradient."""
    with torch.inference_mode(False), torch.no_grad():
        yield


def ordinary(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` itself, or a normal copy of it if it is an inference tensor."""
    if not tensor.is_inference():
        return tensor
    with ordinary_tensors():
        return tensor.clone()


def version_counter(tensor: torch.Tensor) -> int | None:
    """The in-place modification counter, or ``None`` where torch keeps none (inference tensors)."""
    try:
        return tensor._version
    except RuntimeError:
        return None
