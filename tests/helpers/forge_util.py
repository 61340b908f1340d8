"""What the Forge 2 and reForge tests share: the reference (our A1111 path on the same UNet) and the cases."""

from __future__ import annotations

import sys
from typing import Any

import webui_util as wu  # puts the A1111 stand-in (tests/webui_stub) on sys.path
from hn_testutil import FORGE_STUB_DIR

if str(FORGE_STUB_DIR) not in sys.path:
    sys.path.insert(0, str(FORGE_STUB_DIR))

import forge  # the Forge stand-in's harness

import lib_hypernet
from lib_hypernet import Strength


def hn(name: str) -> lib_hypernet.Hypernetwork:
    return wu.extension().library.get(name)


def reference(prompt: str, stack: list[Any], **kwargs: Any) -> Any:
    """Our A1111 path on the same UNet: forward pre-hooks on to_k/to_v, the step from the CFG denoiser."""
    from modules import script_callbacks

    handle = lib_hypernet.install(forge.diffusion_model())

    def on_step(params: Any) -> None:
        handle.set_step(params.sampling_step, params.total_sampling_steps)

    script_callbacks.on_cfg_denoiser(on_step)
    try:
        with handle.activated(stack):
            return forge.txt2img(prompt, **kwargs)
    finally:
        script_callbacks.remove_callbacks_for_function(on_step)
        handle.remove()


def max_out_diff(a: Any, b: Any) -> float:
    assert len(a.unet_outputs) == len(b.unet_outputs) > 0
    return max(float((x - y).abs().max()) for x, y in zip(a.unet_outputs, b.unet_outputs))


# (prompt, the stack it means) for "equals the A1111 path": single, stacked, self/cross split, step ranges.
STACK_CASES = [
    ("<hypernet:x:0.8>a cat", lambda: [(hn("x"), 0.8)]),
    ("<hypernet:x:0.8><hypernet:y:0.5>a cat", lambda: [(hn("x"), 0.8), (hn("y"), 0.5)]),
    ("<hypernet:x:0.8:self=0.3><hypernet:y:cross=1:self=0>a cat",
     lambda: [(hn("x"), Strength(0.3, 0.8)), (hn("y"), Strength(0.0, 1.0))]),
    ("<hypernet:x:0.8:start=0.25><hypernet:y:0.6:stop=0.5>a cat",
     lambda: [(hn("x"), Strength(0.8, 0.8, 0.25, 1.0)), (hn("y"), Strength(0.6, 0.6, 0.0, 0.5))]),
]
STACK_CASE_IDS = ["single", "stacked", "self/cross", "step range"]


def check_convert_after_a_generation(tmp_path: Any, host: str) -> None:
    """Forge 2 and reForge generate under inference_mode: the cached file a generation just used must still convert
    through the route (and save), and the converted file gives the same image."""
    import os

    from fastapi.testclient import TestClient

    tagged_prompt = "<hypernet:x:0.8>a cat"
    forge.reset(tmp_path, host)
    try:
        wu.write_hn("x", seed=1)
        client = TestClient(forge.start(args=["--api"]))
        tagged = forge.txt2img(tagged_prompt)
        assert not wu.same(tagged, forge.txt2img("a cat"))
        assert not any(p.is_inference() for p in hn("x").parameters())
        response = client.post("/hypernet/v1/convert", json={"name": "x"})
        assert response.status_code == 200, response.text
        assert os.path.exists(os.path.join(wu.hn_dir(), "x.safetensors"))
        hn("x").save(os.path.join(str(tmp_path), "again.pt"))
        assert wu.same(forge.txt2img(tagged_prompt), tagged)
    finally:
        forge.unload()
