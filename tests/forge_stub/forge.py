"""Test harness: the A1111 stand-in (``tests/webui_stub``) turned into Forge 2 or reForge.

The ``modules`` package is the A1111 stand-in's (settings, scripts, callbacks, extra networks and the
processing object are the same API in both forks); what differs is put on ``sys.path`` for the host:

- ``forge2/`` — ``backend`` (UNet with ``ForgeOperations.Linear``, patchers, ``KModel``, ToMe, the sampling
  call, ``ForgeDiffusionEngine``) and ``modules_forge``;
- ``reforge/`` — ``ldm_patched`` (UNet with ``manual_cast.Linear`` = ``nn.Linear`` subclass, patcher) and
  ``modules_forge``;

and this module replaces model loading and ``process_images`` with the fork's (``modules/processing.py``
of Forge 2 @ dfdcbab6, lines cited in ``/work/shared/spec/forge.md`` §3):

per batch: ``forge_objects = forge_objects_original.shallow_copy()`` → tags parsed → ``extra_networks.activate``
→ ``forge_objects = forge_objects_after_applying_lora.shallow_copy()`` → (sample:) the same reset again →
ToMe (an ``attn1_patch``) → ``process_before_every_sampling`` → the patches moved (``model_patches_to(device)``,
then ``(model_dtype())`` — None on Forge 2) → sampling, reading ``sd_model.forge_objects.unet`` at every step;
hires fix: ``activate`` (hires tags) → ``process_before_every_sampling`` → reset → ToMe →
``process_before_every_sampling`` **again** → sampling.  End: ``extra_networks.deactivate``, ``postprocess``.

The model loads lazily (``forge_model_reload`` at the first generation) and fires ``on_model_loaded``.
Forge 2 does not register the built-in Hypernetworks card page; reForge does.

    forge.reset(tmp_path, host="forge")
    forge.start()
    res = forge.txt2img("a cat <hypernet:x:0.8>", steps=2)      # res.images, res.unet_outputs, res.comments
    forge.unload()
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
HOST_DIRS = {"forge": HERE / "forge2", "reforge": HERE / "reforge"}
HOST_PACKAGES = ("backend", "modules_forge", "ldm_patched")
for _p in (str(HERE), str(REPO_ROOT / "tests" / "webui_stub")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import webui  # noqa: E402  (the A1111 stand-in's harness)
from forge_common import tomesd  # noqa: E402
from forge_common.attention import seeded_state_dict  # noqa: E402
from forge_common.k_model import KModel  # noqa: E402
from forge_common.patcher import UnetPatcher  # noqa: E402
from forge_common.sampling import calc_cond_uncond_batch, prepare  # noqa: E402
from modules import (  # noqa: E402
    devices,
    extra_networks,
    processing,
    script_callbacks,
    scripts,
    sd_models,
    shared,
    ui_extra_networks,
)
from modules.processing import ImageRNG, Processed, create_infotext, get_fixed_seed, opt_C, opt_f  # noqa: E402
from modules.shared import state  # noqa: E402

CONTEXTS = {"sd1-tiny": 768, "sd2-tiny": 1024, "sdxl-tiny": 2048}
FAMILIES = {"sd1-tiny": "is_sd1", "sd2-tiny": "is_sd2", "sdxl-tiny": "is_sdxl"}

STATE: dict[str, Any] = {"host": None, "model": None, "dtype": torch.float32, "tome": 0.0, "loads": 0}
"""The harness's settings: host, model config (``flux-tiny``: not a UNet), computation dtype, ToMe ratio."""


# ---------------------------------------------------------------------------- host packages on sys.path
def _purge() -> None:
    for name in list(sys.modules):
        if name.split(".")[0] in HOST_PACKAGES:
            del sys.modules[name]


def use_host(host: str | None) -> None:
    """Put ``host``'s packages on ``sys.path`` (None: none, i.e. plain A1111)."""
    for directory in HOST_DIRS.values():
        while str(directory) in sys.path:
            sys.path.remove(str(directory))
    _purge()
    if host is not None:
        sys.path.insert(0, str(HOST_DIRS[host]))
    importlib.invalidate_caches()
    STATE["host"] = host


def reset(tmp_path: os.PathLike[str] | str, host: str = "forge", *, model: str = "sd1-tiny",
          dtype: torch.dtype = torch.float32, tome: float = 0.0) -> None:
    use_host(host)
    webui.reset(tmp_path)
    STATE.update(model=model, dtype=dtype, tome=tome, loads=0, lora=None)
    UnetPatcher.clones_made = 0


def start(**kwargs: Any) -> Any:
    """Boot the webui stand-in with this checkout's extension; the model loads at the first generation."""
    app = webui.start([str(REPO_ROOT)], model=None, **kwargs)
    if STATE["host"] == "forge":  # Forge 2 comments out the built-in Hypernetworks page (ui_extra_networks.py:711)
        ui_extra_networks.extra_pages[:] = [p for p in ui_extra_networks.extra_pages if p.name != "hypernetworks"]
    extra_networks.register_extra_network(ExtraNetworkLora())
    return app


def unload() -> None:
    webui.unload()
    use_host(None)


# ---------------------------------------------------------------------------- the model
class DiffusionWrapper(torch.nn.Module):
    def __init__(self, diffusion_model: torch.nn.Module):
        super().__init__()
        self.diffusion_model = diffusion_model


def _build_unet(config: str) -> torch.nn.Module:
    host = STATE["host"]
    if config == "flux-tiny":  # a transformer without UNet attention blocks (no attn1/attn2 patches are called)
        return NotAUnet().to(STATE["dtype"])
    if host == "forge":
        from backend.nn.unet import IntegratedUNet2DConditionModel as Unet
    else:
        from ldm_patched.ldm.modules.attention import UNetModel as Unet
    unet = Unet(CONTEXTS[config])
    state_dict = seeded_state_dict(unet, sd_models._seed("weights", config))
    missing, unexpected = unet.load_state_dict(state_dict, strict=False)
    assert not unexpected and all(k.endswith("dummy") for k in missing), (missing, unexpected)
    return unet.to(STATE["dtype"]).eval()  # Forge stores the UNet in its computation dtype


class NotAUnet(torch.nn.Module):
    """Stands in for Flux/SD3/Chroma: a diffusion model without SD-style attention blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Conv2d(4, 4, 1)

    def forward(self, x, timesteps=None, context=None, transformer_options={}, **kwargs):  # noqa: B006
        return self.proj(x)


def load_model() -> Any:
    """``forge_model_reload()``: build the engine, then fire ``on_model_loaded`` (``sd_models.py:518``)."""
    config = STATE["model"]
    info = sd_models.register_checkpoint(f"forge-{config}", "sd1-tiny")
    unet = _build_unet(config)
    dtype = STATE["dtype"]
    patcher = UnetPatcher(KModel(unet, dtype), torch.device("cpu"), torch.device("cpu"),
                          model_dtype=None if STATE["host"] == "forge" else dtype)
    encoder = sd_models.StubTextEncoder(CONTEXTS.get(config, 768))
    if STATE["host"] == "forge":
        from backend.diffusion_engine.base import ForgeDiffusionEngine, ForgeObjects

        engine = ForgeDiffusionEngine()
    else:
        from modules_forge.forge_loader import ForgeObjects, ReforgeModel

        engine = ReforgeModel(DiffusionWrapper(unet))
    if config in FAMILIES:
        setattr(engine, FAMILIES[config], True)
    engine.forge_objects = ForgeObjects(patcher, encoder, None, None)
    engine.forge_objects_original = engine.forge_objects.shallow_copy()
    engine.forge_objects_after_applying_lora = engine.forge_objects.shallow_copy()
    engine.get_learned_conditioning = lambda prompts: encoder(list(prompts))
    engine.sd_checkpoint_info = info
    engine.sd_model_checkpoint = info.filename
    engine.sd_model_hash = info.calculate_shorthash()
    engine.used_config = config
    sd_models.model_data.set_sd_model(engine)
    STATE["loads"] += 1
    script_callbacks.model_loaded_callback(engine)
    return engine


def forge_model_reload() -> Any:
    if shared.sd_model is None or shared.sd_model.used_config != STATE["model"]:
        return load_model()
    return shared.sd_model


def unet_patcher() -> UnetPatcher:
    return shared.sd_model.forge_objects_original.unet


def diffusion_model() -> torch.nn.Module:
    return unet_patcher().model.diffusion_model


# ---------------------------------------------------------------------------- LoRA (the built-in, reduced)
class ExtraNetworkLora(extra_networks.ExtraNetwork):
    """``<lora:delta:m>``: a seeded low-rank delta on every ``to_k``/``to_v`` weight, applied like Forge's built-in
    Lora (``sd_forge_lora/networks.py:113-126``): clone of ``forge_objects_original.unet`` with weight patches,
    stored as ``forge_objects_after_applying_lora``."""

    def __init__(self) -> None:
        super().__init__("lora")

    def activate(self, p: Any, params_list: list[Any]) -> None:
        current = shared.sd_model
        strength = sum(float(params.items[1]) if len(params.items) > 1 else 1.0 for params in params_list)
        key = f"[{strength}]" if params_list else "[]"
        if current.current_lora_hash == key if hasattr(current, "current_lora_hash") else False:
            return
        current.current_lora_hash = key
        current.forge_objects.unet = current.forge_objects_original.unet
        if params_list:
            unet = current.forge_objects.unet.clone()
            gen = torch.Generator().manual_seed(7)
            patches = {}
            for name, param in unet.model.named_parameters():
                if name.endswith(("to_k.weight", "to_v.weight")):
                    a = torch.randn(param.shape[0], 2, generator=gen)
                    b = torch.randn(2, param.shape[1], generator=gen)
                    patches[name] = 0.05 * (a @ b) / param.shape[1] ** 0.5
            unet.add_patches(filename="delta", patches=patches, strength_patch=strength)
            current.forge_objects.unet = unet
        current.forge_objects_after_applying_lora = current.forge_objects.shallow_copy()

    def deactivate(self, p: Any) -> None:
        pass


# ---------------------------------------------------------------------------- processing (Forge's order)
def apply_token_merging(sd_model: Any, ratio: float) -> None:
    """``modules/sd_models.py`` ``apply_token_merging``: ToMe as an attn1 patch on a clone."""
    if ratio > 0:
        sd_model.forge_objects.unet = tomesd.TomePatcher().patch(sd_model.forge_objects.unet, ratio)


def run_sampler(p: Any, x: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor, steps: int, pass_name: str) -> torch.Tensor:
    """A CFG Euler loop like the A1111 stand-in's, but each step calls ``sd_model.forge_objects.unet`` (read anew
    every step) through ``calc_cond_uncond_batch``."""
    sd_model = p.sd_model
    first = sd_model.forge_objects.unet
    prepare(first)
    first.forge_patch_model()
    try:
        sigmas = torch.linspace(1.0, 0.0, steps + 1)
        p.sigma_schedule = sigmas
        x = x * sigmas[0]
        state.sampling_steps = steps
        for i in range(steps):
            state.sampling_step = i
            sigma = sigmas[i]
            batch = x.shape[0]
            x_in = torch.cat([x, x])
            params = script_callbacks.CFGDenoiserParams(x_in, x_in.new_zeros(2 * batch, 5, 1, 1), sigma.repeat(2 * batch),
                                                        i, steps, cond, uncond, p)
            script_callbacks.cfg_denoiser_callback(params)
            unet = sd_model.forge_objects.unet  # sampling_function.py:325-326
            out_cond, out_uncond = calc_cond_uncond_batch(unet, params.text_cond, params.text_uncond, x, sigma)
            out = torch.cat([out_cond, out_uncond])
            p.unet_calls.append({"pass": pass_name, "iteration": p.iteration, "step": i, "out": out.detach().clone()})
            eps = out_uncond + p.cfg_scale * (out_cond - out_uncond)
            x = x + eps * (sigmas[i + 1] - sigma)
    finally:
        first.forge_unpatch_model()
    return x


def _pbes(p: Any, x: torch.Tensor, noise: torch.Tensor, c: Any, uc: Any) -> None:
    if p.scripts is not None:
        p.scripts.process_before_every_sampling(p, x=x, noise=noise, c=c, uc=uc)


def sample(p: Any) -> torch.Tensor:
    """``StableDiffusionProcessingTxt2Img.sample`` / ``sample_hr_pass`` of Forge 2 (``processing.py:1365-1530``)."""
    sd_model = p.sd_model
    x = p.rng.next()
    sd_model.forge_objects = sd_model.forge_objects_after_applying_lora.shallow_copy()
    apply_token_merging(sd_model, STATE["tome"])
    _pbes(p, x, x, p.c, p.uc)
    samples = run_sampler(p, x, p.c, p.uc, p.steps, "first")
    if not p.enable_hr:
        return samples

    p.is_hr_pass = True
    size = (p.hr_upscale_to_y // opt_f, p.hr_upscale_to_x // opt_f)
    samples = torch.nn.functional.interpolate(samples, size=size, mode="nearest")
    p.rng = ImageRNG(samples.shape[1:], p.seeds)
    noise = p.rng.next()
    if not p.disable_extra_networks:
        extra_networks.activate(p, p.hr_extra_network_data)
    p.calculate_hr_conds()
    if p.scripts is not None:
        p.scripts.before_hr(p)
    _pbes(p, samples, noise, p.hr_c, p.hr_uc)
    sd_model.forge_objects = sd_model.forge_objects_after_applying_lora.shallow_copy()
    apply_token_merging(sd_model, STATE["tome"])
    _pbes(p, samples, noise, p.hr_c, p.hr_uc)
    start = samples * (1 - p.denoising_strength) + noise * p.denoising_strength
    samples = run_sampler(p, start, p.hr_c, p.hr_uc, p.hr_second_pass_steps or p.steps, "hr")
    p.is_hr_pass = False
    return samples


def process_images(p: Any) -> Processed:
    """``process_images_inner`` of Forge 2 (per batch: reset → activate → reset → sample)."""
    if p.scripts is not None:
        p.scripts.before_process(p)
    sd_model = forge_model_reload()
    seed, subseed = get_fixed_seed(p.seed), get_fixed_seed(p.subseed)
    p.sd_model_name = sd_model.sd_checkpoint_info.name_for_extra
    p.sd_model_hash = sd_model.sd_model_hash
    p.setup_prompts()
    p.all_seeds = [int(seed) + x for x in range(len(p.all_prompts))]
    p.all_subseeds = [int(subseed) + x for x in range(len(p.all_prompts))]
    if p.scripts is not None:
        p.scripts.process(p)
    infotexts: list[str] = []
    output_images: list = []
    # Forge 2 (processing.py:911) and reForge (:997) run the batch loop under inference_mode, not no_grad:
    # hypernetworks loaded during extra_networks.activate are made of inference tensors.
    with torch.inference_mode():
        p.init(p.all_prompts, p.all_seeds, p.all_subseeds)
        for n in range(p.n_iter):
            p.iteration = n
            sd_model = forge_model_reload()
            sd_model.forge_objects = sd_model.forge_objects_original.shallow_copy()  # :937
            sl = slice(n * p.batch_size, (n + 1) * p.batch_size)
            p.prompts, p.negative_prompts = p.all_prompts[sl], p.all_negative_prompts[sl]
            p.seeds, p.subseeds = p.all_seeds[sl], p.all_subseeds[sl]
            p.rng = ImageRNG((opt_C, p.height // opt_f, p.width // opt_f), p.seeds)
            if p.scripts is not None:
                p.scripts.before_process_batch(p, batch_number=n, prompts=p.prompts, seeds=p.seeds, subseeds=p.subseeds)
            p.parse_extra_network_prompts()
            if not p.disable_extra_networks:
                extra_networks.activate(p, p.extra_network_data)  # :955
            sd_model.forge_objects = sd_model.forge_objects_after_applying_lora.shallow_copy()  # :957
            if p.scripts is not None:
                p.scripts.process_batch(p, batch_number=n, prompts=p.prompts, seeds=p.seeds, subseeds=p.subseeds)
            p.setup_conds()
            samples = sample(p)
            if p.scripts is not None:
                p.scripts.postprocess_batch(p, samples, batch_number=n)
                p.prompts, p.negative_prompts = p.all_prompts[sl], p.all_negative_prompts[sl]
            for i, image in enumerate(samples):
                infotexts.append(create_infotext(p, p.prompts, p.seeds, p.subseeds, index=i,
                                                 all_negative_prompts=p.negative_prompts))
                output_images.append(image)
    if not p.disable_extra_networks and p.extra_network_data:
        extra_networks.deactivate(p, p.extra_network_data)  # :1140
    devices.torch_gc()
    res = Processed(p, images_list=output_images, seed=p.all_seeds[0], info=infotexts[0], subseed=p.all_subseeds[0],
                    infotexts=infotexts)
    if p.scripts is not None:
        p.scripts.postprocess(p, res)
    return res


def txt2img(prompt: str = "", **kwargs: Any) -> Processed:
    runner = scripts.scripts_txt2img
    if not runner.scripts:
        runner.initialize_scripts(is_img2img=False)
    kwargs.setdefault("steps", 2)
    kwargs.setdefault("seed", 1)
    p = processing.StableDiffusionProcessingTxt2Img(prompt=prompt, **kwargs)
    p.scripts = runner
    p.script_args = runner.layout_args({})
    state.begin(job="scripts_txt2img")
    try:
        return process_images(p)
    finally:
        state.end()
        p.close()
