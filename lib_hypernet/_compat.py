"""Small shims over torch API differences between the webui's torch (2.1+) and current releases."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The active autocast dtype for ``device_type``, or ``None`` when autocast is off there."""
    try:
        if not torch.is_autocast_enabled(device_type):
            return None
        return torch.get_autocast_dtype(device_type)
    except TypeError:  # torch < 2.4: per-device functions
        if device_type == "cpu":
            return torch.get_autocast_cpu_dtype() if torch.is_autocast_cpu_enabled() else None
        if device_type == "cuda":
            return torch.get_autocast_gpu_dtype() if torch.is_autocast_enabled() else None
        return None


@contextlib.contextmanager
def safe_globals(extra: list[Any]) -> Iterator[None]:
    """``torch.serialization.safe_globals`` where it exists (torch >= 2.5), else nothing."""
    manager = getattr(torch.serialization, "safe_globals", None)
    if manager is None or not extra:
        yield
        return
    with manager(extra):
        yield
