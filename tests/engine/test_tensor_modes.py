"""The engine and the library work whatever grad or inference mode tensors were made or are used in.

Forge 2 and reForge generate under ``torch.inference_mode()`` (A1111 under ``no_grad``); a library user may
be in any mode.  Every (made in, used in) pair: load/create → apply on a real ldm UNet (equal to A1111's
formula) → save and convert afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest
import torch
from engine_util import make_hn, make_unet, reference_output, run_unet, unet_inputs

import lib_hypernet
from lib_hypernet.engine.kernels import weights_version
from lib_hypernet.model.hypernetwork import from_state_dict

MODES: dict[str, Callable[[], contextlib.AbstractContextManager[None]]] = {
    "grad": contextlib.nullcontext,
    "no_grad": torch.no_grad,
    "inference": torch.inference_mode,
}


@contextlib.contextmanager
def mode(name: str) -> Iterator[None]:
    with MODES[name]():
        yield


@pytest.fixture(scope="module")
def unet():
    return make_unet(seed=5).eval().requires_grad_(False)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("modes") / "m.pt"
    make_hn("m", seed=3).save(path)
    return path


@pytest.mark.parametrize("used_in", list(MODES))
@pytest.mark.parametrize("made_in", list(MODES))
def test_load_apply_save_in_any_mode(unet, saved, tmp_path, made_in, used_in):
    inputs = unet_inputs()
    with mode(made_in):
        hn = lib_hypernet.load(saved)
    assert not any(p.is_inference() for p in hn.parameters())
    with torch.no_grad():
        expected = reference_output(unet, inputs, [(hn, 0.8)])
    handle = lib_hypernet.install(unet)
    try:
        for _ in range(2):  # the second call reuses the compiled plan (its staleness check reads the weights)
            with mode(used_in):
                handle.activate([(hn, 0.8)])
                got = unet(inputs["x"], inputs["timesteps"], context=inputs["context"]).detach()
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    finally:
        handle.remove()
    # Saving and converting a file that was just used (Forge: Convert after a generation).
    hn.save(tmp_path / "again.pt")
    hn.save(tmp_path / "again.safetensors")
    lib_hypernet.load(tmp_path / "again.safetensors")


def test_created_and_moved_in_inference_mode_are_ordinary(tmp_path):
    with torch.inference_mode():
        hn = lib_hypernet.create("c", sizes=[64], seed=1)
        hn.to(dtype=torch.float64)
    assert not any(p.is_inference() for p in hn.parameters())
    hn.save(tmp_path / "c.safetensors")


def test_inference_tensors_handed_in_become_ordinary(saved):
    with torch.inference_mode():
        raw = {k: v for k, v in lib_hypernet.load(saved).state_dict().items()}
        raw = {k: tuple({n: t.clone() for n, t in sd.items()} for sd in v) if isinstance(k, int) else v
               for k, v in raw.items()}
        assert all(t.is_inference() for k, v in raw.items() if isinstance(k, int) for sd in v for t in sd.values())
    hn = from_state_dict(raw, name="handed-in")
    assert not any(p.is_inference() for p in hn.parameters())
    weights_version(hn.layers[hn.widths[0]])  # a version counter exists


def test_a_plan_compiled_under_inference_mode_runs_with_grad(unet, saved):
    """A handle first used in a Forge generation and later by a training-style caller with grad enabled."""
    hn = lib_hypernet.load(saved)
    inputs = unet_inputs()
    with torch.no_grad():
        expected = reference_output(unet, inputs, [(hn, 0.5)])
    handle = lib_hypernet.install(unet)
    try:
        handle.activate([(hn, 0.5)])
        with torch.inference_mode():
            run_unet(unet, inputs)
        unet.requires_grad_(True)
        got = unet(inputs["x"], inputs["timesteps"], context=inputs["context"])
        assert got.requires_grad
        got.sum().backward()  # no inference tensor was saved for backward
        torch.testing.assert_close(got.detach(), expected, rtol=1e-5, atol=1e-5)
    finally:
        unet.requires_grad_(False).zero_grad(set_to_none=True)
        handle.remove()
