"""Helpers for the webui-extension tests: boot the ``tests/webui_stub`` stand-in with the REAL extension
(``scripts/sd_webui_hypernet.py`` of this checkout), write tiny hypernetwork files, compare generations.

Imported through ``tests/conftest.py``'s sys.path (``from webui_util import ...``).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from factories import strong_hypernetwork
from hn_testutil import REPO_ROOT
from hn_testutil import WEBUI_STUB_DIR as STUB_DIR

if str(STUB_DIR) not in sys.path:
    sys.path.insert(0, str(STUB_DIR))

import webui  # the stand-in's harness
from modules import paths, script_loading, shared

import lib_hypernet
from lib_hypernet.webui import extension as webui_extension  # the state the host adapter registers
from lib_hypernet.webui import settings as webui_settings  # noqa: F401  (for the tests)

EXTENSION_SCRIPT = str(REPO_ROOT / "scripts" / "sd_webui_hypernet.py")
SD1_TINY_WIDTHS = (32, 64, 768)  # to_k.in_features of the stand-in's "sd1-tiny" UNet (checked by a test)
PROMPT = "a cat"
ONE_FILE = (("x", {"seed": 1}),)  # the files :func:`running` writes unless told otherwise


# ---------------------------------------------------------------------------- harness
def reset(tmp_path: os.PathLike[str] | str) -> None:
    """Only the reset (write files, then :func:`start`)."""
    webui.reset(tmp_path)


def start(**start_kwargs: Any) -> Any:
    return webui.start([str(REPO_ROOT)], **start_kwargs)


@contextlib.contextmanager
def running(
    tmp_path: os.PathLike[str] | str, files: Iterable[tuple[str, dict[str, Any]]] = ONE_FILE, **start_kwargs: Any
) -> Iterator[Any]:
    """Reset into ``tmp_path``, write hypernetwork ``files`` (``(name, write_hn kwargs)``), start; yields the app.

    Always unloads afterwards (``script_unloaded``), so a failing test leaves nothing patched.
    """
    webui.reset(tmp_path)
    try:
        for name, kwargs in files:
            write_hn(name, **kwargs)
        yield start(**start_kwargs)
    finally:
        webui.unload()


def ext() -> Any:
    """The extension's script module as the stand-in executed it (re-executed by Reload UI)."""
    return script_loading.loaded_scripts[EXTENSION_SCRIPT]


def extension() -> Any:
    """The extension's state of the current script load (``lib_hypernet.webui.extension.HypernetExtension``)."""
    return webui_extension.current()


def unet() -> torch.nn.Module:
    return shared.sd_model.model.diffusion_model


def attention_widths(model: torch.nn.Module | None = None) -> list[int]:
    """``to_k.in_features`` of every attention module (self-attention widths and the text-context width)."""
    model = unet() if model is None else model
    return sorted({m.to_k.in_features for m in model.modules() if isinstance(getattr(m, "to_k", None), torch.nn.Linear)})


def hooks_left(model: torch.nn.Module | None = None) -> list[str]:
    """Names of modules that still carry forward (pre-)hooks."""
    model = unet() if model is None else model
    return [name for name, m in model.named_modules() if m._forward_pre_hooks or m._forward_hooks]


# ---------------------------------------------------------------------------- files
def hn_dir() -> str:
    return os.path.join(paths.models_path, "hypernetworks")


def make_hn(
    name: str,
    *,
    sizes: Iterable[int] = SD1_TINY_WIDTHS,
    seed: int = 0,
    std: float = 0.02,
    layer_structure: tuple[float, ...] = (1, 0.25, 1),
    **create_kwargs: Any,
) -> lib_hypernet.Hypernetwork:
    """A small relu hypernetwork whose weights are N(0, std) (:func:`factories.strong_hypernetwork`; small: the
    stand-in's sampler stays tame).  The narrow hidden layer (``1, 0.25, 1``) keeps files small (~0.6 MB) and
    the tests fast."""
    return strong_hypernetwork(name, sizes, seed=seed, std=std, layer_structure=layer_structure, **create_kwargs)


def write_hn(
    name: str,
    *,
    subdir: str = "",
    suffix: str = ".pt",
    filename: str | None = None,
    hn: lib_hypernet.Hypernetwork | None = None,
    **make_kwargs: Any,
) -> str:
    """Write ``models/hypernetworks/[subdir/]<name><suffix>`` in the harness's data dir; returns its path."""
    folder = os.path.join(hn_dir(), subdir)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, filename or f"{name}{suffix}")
    (hn or make_hn(name, **make_kwargs)).save(path)
    return path


def write_malicious(path: str, marker: str) -> None:
    """A torch zip file whose pickle would create ``marker`` when unpickled without restrictions."""

    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (open, (marker, "w"))

    torch.save({"name": "evil", 32: Evil(), "layer_structure": [1, 2, 1]}, path)
    assert not os.path.exists(marker)


# ---------------------------------------------------------------------------- generations
def gen(prompt: str = PROMPT, **kwargs: Any) -> Any:
    return webui.txt2img(prompt, **kwargs)


def same(a: Any, b: Any) -> bool:
    """Bit-identical final latents and UNet outputs."""
    return (
        len(a.images) == len(b.images) > 0
        and all(torch.equal(x, y) for x, y in zip(a.images, b.images))
        and len(a.unet_outputs) == len(b.unet_outputs)
        and all(torch.equal(x, y) for x, y in zip(a.unet_outputs, b.unet_outputs))
    )


def max_diff(a: Any, b: Any) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a.images, b.images))


def comments(res: Any) -> list[str]:
    return [line for line in res.comments.splitlines() if line]


def unet_probe(model: torch.nn.Module | None = None, seed: int = 3) -> torch.Tensor:
    """One direct UNet call on fixed inputs (no processing, no callbacks)."""
    model = unet() if model is None else model
    context_dim = max(attention_widths(model))
    gen_ = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 4, 8, 8, generator=gen_)
    context = torch.randn(2, 77, context_dim, generator=gen_)
    with torch.no_grad():
        return model(x, timesteps=torch.tensor([500, 500]), context=context)
