"""tests/engine: the apply engine (lib_hypernet.engine) on a small real ldm UNet, single attention modules and
the Forge stand-in's blocks.

Needs A1111's attention code, ``ldm`` (installed by tools/setup-venv.sh): imported here, so a missing ldm is an
error of the whole folder, never a skip.  The fixtures the engine test files share live here; a test module
picks other weights and inputs with ``UNET_SEED`` and ``INPUTS_SEED`` (module constants).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from engine_util import all_hooks_empty, make_unet, run_unet, unet_inputs

import lib_hypernet
from lib_hypernet.engine.handle import HypernetHandle


@pytest.fixture(scope="module")
def unet(request: pytest.FixtureRequest) -> torch.nn.Module:
    """The small real ldm UNet (:func:`engine_util.make_unet`), seeded with the module's ``UNET_SEED`` (0)."""
    return make_unet(seed=getattr(request.module, "UNET_SEED", 0))


@pytest.fixture(scope="module")
def inputs(request: pytest.FixtureRequest) -> dict[str, torch.Tensor]:
    """UNet inputs (:func:`engine_util.unet_inputs`), seeded with the module's ``INPUTS_SEED`` (1)."""
    return unet_inputs(seed=getattr(request.module, "INPUTS_SEED", 1))


@pytest.fixture(scope="module")
def base(unet: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """The UNet's output without any hypernetwork."""
    return run_unet(unet, inputs)


@pytest.fixture
def handle(unet: torch.nn.Module) -> Iterator[HypernetHandle]:
    """The engine installed on ``unet``; removed afterwards, and no hook may be left."""
    h = lib_hypernet.install(unet)
    try:
        yield h
    finally:
        h.remove()
    assert all_hooks_empty(unet)
