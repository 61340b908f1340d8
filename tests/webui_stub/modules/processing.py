"""Stand-in of ``modules/processing.py``: ``StableDiffusionProcessing(Txt2Img)``, ``process_images`` with A1111's
per-batch call order (spec §4.3), a tiny deterministic CFG sampler that really calls the loaded ldm UNet, and
``create_infotext``.

Not emulated: VAE decode (``Processed.images`` are the final latents, as tensors), image saving, face restore,
prompt styles, cond caching, img2img, refiner, token merging.
"""
from __future__ import annotations

import json
import random
from typing import Any, ClassVar

import torch

from modules import devices, errors, extra_networks, infotext_utils, script_callbacks, sd_models, sd_vae, shared
from modules.sd_hijack import model_hijack
from modules.shared import opts, state

opt_C = 4
opt_f = 8
VERSION = "v1.10.1"


class ImageRNG:
    """One torch.Generator per seed; ``next()`` returns a fresh noise batch (first call = the seed's noise)."""

    def __init__(self, shape: tuple[int, ...], seeds: list[int], subseeds=None, subseed_strength: float = 0.0,
                 seed_resize_from_h: int = 0, seed_resize_from_w: int = 0):
        self.shape = tuple(shape)
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]

    def next(self) -> torch.Tensor:
        return torch.stack([torch.randn(self.shape, generator=g) for g in self.generators]).to(devices.dtype_unet)


_P_FIELDS: dict[str, Any] = dict(
    sd_model=None, outpath_samples=None, outpath_grids=None, prompt="", prompt_for_display=None, negative_prompt="",
    styles=None, seed=-1, subseed=-1, subseed_strength=0, seed_resize_from_h=-1, seed_resize_from_w=-1,
    seed_enable_extras=True, sampler_name=None, scheduler=None, batch_size=1, n_iter=1, steps=50, cfg_scale=7.0,
    width=64, height=64, restore_faces=None, tiling=None, do_not_save_samples=False, do_not_save_grid=False,
    extra_generation_params=None, overlay_images=None, eta=None, do_not_reload_embeddings=False,
    denoising_strength=None, ddim_discretize=None, s_min_uncond=None, s_churn=None, s_tmax=None, s_tmin=None,
    s_noise=None, override_settings=None, override_settings_restore_afterwards=True, sampler_index=None,
    refiner_checkpoint=None, refiner_switch_at=None, disable_extra_networks=False, firstpass_image=None, comments=None,
)


class StableDiffusionProcessing:
    """Keyword-only constructor over A1111's init fields (unknown names raise TypeError, like the dataclass)."""

    _fields: ClassVar[dict[str, Any]] = _P_FIELDS
    token_merging_ratio = 0
    token_merging_ratio_hr = 0

    def __init__(self, **kwargs: Any):
        unknown = set(kwargs) - set(self._fields)
        if unknown:
            raise TypeError(f"{type(self).__name__}.__init__() got unexpected keyword argument(s) {sorted(unknown)}")
        self.scripts_value = None
        self.script_args_value = None
        self.scripts_setup_complete = False
        for name, default in self._fields.items():
            if name not in ("sd_model",):
                setattr(self, name, kwargs.get(name, default))
        # init=False fields
        self.sampler = None
        self.is_using_inpainting_conditioning = False
        self.paste_to = None
        self.is_hr_pass = False
        self.c = self.uc = None
        self.rng = None
        self.step_multiplier = 1
        self.color_corrections = None
        self.all_prompts = self.all_negative_prompts = self.all_seeds = self.all_subseeds = None
        self.iteration = 0
        self.main_prompt = self.main_negative_prompt = None
        self.prompts = self.negative_prompts = self.seeds = self.subseeds = None
        self.extra_network_data = None
        self.user = None
        self.sd_model_name = self.sd_model_hash = self.sd_vae_name = self.sd_vae_hash = None
        self.is_api = False
        self.unet_calls: list[dict] = []
        self.__post_init__()

    def __post_init__(self) -> None:
        self.comments = {}
        self.styles = self.styles or []
        self.sampler_noise_scheduler_override = None
        self.extra_generation_params = self.extra_generation_params or {}
        self.override_settings = self.override_settings or {}
        self.script_args = self.script_args or {}
        self.refiner_checkpoint_info = None
        if not self.seed_enable_extras:
            self.subseed, self.subseed_strength, self.seed_resize_from_h, self.seed_resize_from_w = -1, 0, 0, 0

    @property
    def sd_model(self):
        return shared.sd_model

    @sd_model.setter
    def sd_model(self, value) -> None:
        pass

    @property
    def scripts(self):
        return self.scripts_value

    @scripts.setter
    def scripts(self, value) -> None:
        self.scripts_value = value
        if self.scripts_value and self.script_args_value and not self.scripts_setup_complete:
            self.setup_scripts()

    @property
    def script_args(self):
        return self.script_args_value

    @script_args.setter
    def script_args(self, value) -> None:
        self.script_args_value = value
        if self.scripts_value and self.script_args_value and not self.scripts_setup_complete:
            self.setup_scripts()

    def setup_scripts(self) -> None:
        self.scripts_setup_complete = True
        self.scripts.setup_scrips(self, is_ui=not self.is_api)

    def comment(self, text: str) -> None:
        self.comments[text] = 1

    def fill_fields_from_opts(self) -> None:
        pass

    def get_token_merging_ratio(self, for_hr: bool = False) -> float:
        return 0

    def init(self, all_prompts, all_seeds, all_subseeds) -> None:
        pass

    def sample(self, conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts):
        raise NotImplementedError()

    def close(self) -> None:
        self.sampler = self.c = self.uc = None

    def setup_prompts(self) -> None:
        if isinstance(self.prompt, list):
            self.all_prompts = self.prompt
        elif isinstance(self.negative_prompt, list):
            self.all_prompts = [self.prompt] * len(self.negative_prompt)
        else:
            self.all_prompts = self.batch_size * self.n_iter * [self.prompt]
        if isinstance(self.negative_prompt, list):
            self.all_negative_prompts = self.negative_prompt
        else:
            self.all_negative_prompts = [self.negative_prompt] * len(self.all_prompts)
        if len(self.all_prompts) != len(self.all_negative_prompts):
            raise RuntimeError(f"Received a different number of prompts ({len(self.all_prompts)}) "
                               f"and negative prompts ({len(self.all_negative_prompts)})")
        styles = shared.prompt_styles
        self.all_prompts = [styles.apply_styles_to_prompt(x, self.styles) for x in self.all_prompts]
        self.all_negative_prompts = [styles.apply_negative_styles_to_prompt(x, self.styles) for x in self.all_negative_prompts]
        self.main_prompt = self.all_prompts[0]
        self.main_negative_prompt = self.all_negative_prompts[0]

    def setup_conds(self) -> None:
        """Text-encode the (tag-stripped) prompts with the stand-in encoder (no cond cache)."""
        self.firstpass_steps = self.steps
        self.uc = self.sd_model.get_learned_conditioning(self.negative_prompts)
        self.c = self.sd_model.get_learned_conditioning(self.prompts)

    def get_conds(self):
        return self.c, self.uc

    def parse_extra_network_prompts(self) -> None:
        self.prompts, self.extra_network_data = extra_networks.parse_prompts(self.prompts)

    def save_samples(self) -> bool:
        return False

    # -- the stand-in sampler -------------------------------------------------------------------
    def run_sampler(self, x: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor, steps: int, pass_name: str) -> torch.Tensor:
        """Euler-style CFG loop: per step fire ``cfg_denoiser_callback`` then one UNet call on cat([x, x]) with
        ``context = torch.cat([text_cond, text_uncond])`` (a new tensor every step)."""
        unet = self.sd_model.model.diffusion_model
        sigmas = torch.linspace(1.0, 0.0, steps + 1)
        x = x * sigmas[0]
        state.sampling_steps = steps
        for i in range(steps):
            state.sampling_step = i
            sigma = sigmas[i]
            batch = x.shape[0]
            x_in = torch.cat([x, x])
            sigma_in = sigma.repeat(2 * batch)
            image_cond_in = x_in.new_zeros(2 * batch, 5, 1, 1)
            params = script_callbacks.CFGDenoiserParams(x_in, image_cond_in, sigma_in, i, steps, cond, uncond, self)
            script_callbacks.cfg_denoiser_callback(params)
            context = torch.cat([params.text_cond, params.text_uncond])
            timesteps = (params.sigma * 999).round().long()
            out = unet(params.x / torch.sqrt(1 + params.sigma[:, None, None, None] ** 2), timesteps=timesteps, context=context)
            self.unet_calls.append({"pass": pass_name, "iteration": self.iteration, "step": i, "out": out.detach().clone()})
            script_callbacks.cfg_denoised_callback(script_callbacks.CFGDenoisedParams(out, i, steps, unet))
            eps_cond, eps_uncond = out[:batch], out[batch:]
            eps = eps_uncond + self.cfg_scale * (eps_cond - eps_uncond)
            after = script_callbacks.AfterCFGCallbackParams(eps, i, steps)
            script_callbacks.cfg_after_cfg_callback(after)
            x = x + after.x * (sigmas[i + 1] - sigma)
        return x


class StableDiffusionProcessingTxt2Img(StableDiffusionProcessing):
    _fields: ClassVar[dict[str, Any]] = {**_P_FIELDS, **dict(
        enable_hr=False, denoising_strength=0.75, firstphase_width=0, firstphase_height=0, hr_scale=2.0,
        hr_upscaler=None, hr_second_pass_steps=0, hr_resize_x=0, hr_resize_y=0, hr_checkpoint_name=None,
        hr_sampler_name=None, hr_scheduler=None, hr_prompt="", hr_negative_prompt="", force_task_id=None,
    )}

    def __post_init__(self) -> None:
        super().__post_init__()
        self.hr_checkpoint_info = None
        self.hr_upscale_to_x = self.hr_upscale_to_y = 0
        self.truncate_x = self.truncate_y = 0
        self.applied_old_hires_behavior_to = None
        self.latent_scale_mode = None
        self.hr_c = self.hr_uc = None
        self.all_hr_prompts = self.all_hr_negative_prompts = None
        self.hr_prompts = self.hr_negative_prompts = None
        self.hr_extra_network_data = None
        if self.firstphase_width != 0 or self.firstphase_height != 0:
            self.hr_upscale_to_x, self.hr_upscale_to_y = self.width, self.height
            self.width, self.height = self.firstphase_width, self.firstphase_height

    def calculate_target_resolution(self) -> None:
        if self.hr_resize_x == 0 and self.hr_resize_y == 0:
            self.extra_generation_params["Hires upscale"] = self.hr_scale
            self.hr_upscale_to_x = int(self.width * self.hr_scale)
            self.hr_upscale_to_y = int(self.height * self.hr_scale)
        else:
            self.extra_generation_params["Hires resize"] = f"{self.hr_resize_x}x{self.hr_resize_y}"
            self.hr_upscale_to_x = self.hr_resize_x or self.hr_resize_y * self.width // self.height
            self.hr_upscale_to_y = self.hr_resize_y or self.hr_resize_x * self.height // self.width

    def init(self, all_prompts, all_seeds, all_subseeds) -> None:
        if not self.enable_hr:
            return
        self.extra_generation_params["Denoising strength"] = self.denoising_strength

        def get_hr_prompt(p, index, prompt_text, **kwargs):
            hr_prompt = p.all_hr_prompts[index]
            return hr_prompt if hr_prompt != prompt_text else None

        def get_hr_negative_prompt(p, index, negative_prompt, **kwargs):
            hr_negative_prompt = p.all_hr_negative_prompts[index]
            return hr_negative_prompt if hr_negative_prompt != negative_prompt else None

        self.extra_generation_params["Hires prompt"] = get_hr_prompt
        self.extra_generation_params["Hires negative prompt"] = get_hr_negative_prompt
        self.latent_scale_mode = shared.latent_upscale_modes.get(self.hr_upscaler or shared.latent_upscale_default_mode,
                                                                 shared.latent_upscale_modes["Latent"])
        self.calculate_target_resolution()
        if self.hr_second_pass_steps:
            self.extra_generation_params["Hires steps"] = self.hr_second_pass_steps
        if self.hr_upscaler is not None:
            self.extra_generation_params["Hires upscaler"] = self.hr_upscaler

    def setup_prompts(self) -> None:
        super().setup_prompts()
        if not self.enable_hr:
            return
        if self.hr_prompt == "":
            self.hr_prompt = self.prompt
        if self.hr_negative_prompt == "":
            self.hr_negative_prompt = self.negative_prompt
        n = self.batch_size * self.n_iter
        hr_prompt, hr_negative = self.hr_prompt, self.hr_negative_prompt
        self.all_hr_prompts = hr_prompt if isinstance(hr_prompt, list) else n * [hr_prompt]
        self.all_hr_negative_prompts = hr_negative if isinstance(hr_negative, list) else n * [hr_negative]

    def calculate_hr_conds(self) -> None:
        if self.hr_c is not None:
            return
        self.hr_uc = self.sd_model.get_learned_conditioning(self.hr_negative_prompts)
        self.hr_c = self.sd_model.get_learned_conditioning(self.hr_prompts)

    def setup_conds(self) -> None:
        if self.is_hr_pass:
            self.hr_c = None
            self.calculate_hr_conds()
            return
        super().setup_conds()
        self.hr_uc = self.hr_c = None

    def get_conds(self):
        return (self.hr_c, self.hr_uc) if self.is_hr_pass else super().get_conds()

    def parse_extra_network_prompts(self) -> None:
        super().parse_extra_network_prompts()
        if self.enable_hr:
            start, end = self.iteration * self.batch_size, (self.iteration + 1) * self.batch_size
            self.hr_prompts = self.all_hr_prompts[start:end]
            self.hr_negative_prompts = self.all_hr_negative_prompts[start:end]
            self.hr_prompts, self.hr_extra_network_data = extra_networks.parse_prompts(self.hr_prompts)

    def sample(self, conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts):
        x = self.rng.next()
        if self.scripts is not None:
            self.scripts.process_before_every_sampling(p=self, x=x, noise=x, c=conditioning, uc=unconditional_conditioning)
        samples = self.run_sampler(x, conditioning, unconditional_conditioning, self.steps, "first")
        if not self.enable_hr:
            return samples
        return self.sample_hr_pass(samples, None, seeds, subseeds, subseed_strength, prompts)

    def sample_hr_pass(self, samples, decoded_samples, seeds, subseeds, subseed_strength, prompts):
        if state.interrupted:
            return samples
        self.is_hr_pass = True
        size = (self.hr_upscale_to_y // opt_f, self.hr_upscale_to_x // opt_f)
        mode = self.latent_scale_mode or shared.latent_upscale_modes["Latent"]
        samples = torch.nn.functional.interpolate(samples, size=size, mode=mode["mode"], antialias=mode["antialias"])
        state.nextjob()
        self.rng = ImageRNG(samples.shape[1:], self.seeds)
        noise = self.rng.next()
        if not self.disable_extra_networks:
            with devices.autocast():
                extra_networks.activate(self, self.hr_extra_network_data)
        with devices.autocast():
            self.calculate_hr_conds()
        if self.scripts is not None:
            self.scripts.before_hr(self)
            self.scripts.process_before_every_sampling(p=self, x=samples, noise=noise, c=self.hr_c, uc=self.hr_uc)
        start = samples * (1 - self.denoising_strength) + noise * self.denoising_strength
        samples = self.run_sampler(start, self.hr_c, self.hr_uc, self.hr_second_pass_steps or self.steps, "hr")
        self.is_hr_pass = False
        return samples


class Processed:
    def __init__(self, p: StableDiffusionProcessing, images_list: list, seed: int = -1, info: str = "", subseed=None,
                 all_prompts=None, all_negative_prompts=None, all_seeds=None, all_subseeds=None,
                 index_of_first_image: int = 0, infotexts=None, comments: str = ""):
        self.images = images_list
        self.prompt = p.prompt if not isinstance(p.prompt, list) else p.prompt[0]
        self.negative_prompt = p.negative_prompt if not isinstance(p.negative_prompt, list) else p.negative_prompt[0]
        self.seed = seed
        self.subseed = subseed
        self.subseed_strength = p.subseed_strength
        self.info = info
        self.comments = "".join(f"{c}\n" for c in p.comments)
        self.width, self.height, self.steps, self.batch_size = p.width, p.height, p.steps, p.batch_size
        self.sampler_name, self.cfg_scale = p.sampler_name, p.cfg_scale
        self.sd_model_name, self.sd_model_hash = p.sd_model_name, p.sd_model_hash
        self.extra_generation_params = p.extra_generation_params
        self.index_of_first_image = index_of_first_image
        self.styles = p.styles
        self.all_prompts = all_prompts or p.all_prompts or [self.prompt]
        self.all_negative_prompts = all_negative_prompts or p.all_negative_prompts or [self.negative_prompt]
        self.all_seeds = all_seeds or p.all_seeds or [self.seed]
        self.all_subseeds = all_subseeds or p.all_subseeds or [self.subseed]
        self.infotexts = infotexts or [info] * len(images_list)
        self.unet_calls: list[dict] = list(p.unet_calls)
        self.unet_outputs: list[torch.Tensor] = [c["out"] for c in p.unet_calls]
        self.version = VERSION

    def js(self) -> str:
        return json.dumps({"prompt": self.all_prompts[0], "all_prompts": self.all_prompts, "seed": self.seed,
                           "all_seeds": self.all_seeds, "infotexts": self.infotexts,
                           "extra_generation_params": self.extra_generation_params}, default=lambda o: None)

    def infotext(self, p: StableDiffusionProcessing, index: int) -> str:
        return create_infotext(p, self.all_prompts, self.all_seeds, self.all_subseeds, comments=[],
                               position_in_batch=index % self.batch_size, iteration=index // self.batch_size)


def get_fixed_seed(seed):
    if seed == "" or seed is None:
        seed = -1
    elif isinstance(seed, str):
        try:
            seed = int(seed)
        except ValueError:
            seed = -1
    if seed == -1:
        return int(random.randrange(4294967294))
    return seed


def fix_seed(p: StableDiffusionProcessing) -> None:
    p.seed = get_fixed_seed(p.seed)
    p.subseed = get_fixed_seed(p.subseed)


def program_version() -> str:
    return VERSION


def create_infotext(p, all_prompts, all_seeds, all_subseeds, comments=None, iteration=0, position_in_batch=0,
                    use_main_prompt=False, index=None, all_negative_prompts=None) -> str:
    """``prompt\\nNegative prompt: ...\\nSteps: ..., Seed: ..., <extra_generation_params>`` (values via quote)."""
    if use_main_prompt:
        index = 0
    elif index is None:
        index = position_in_batch + iteration * p.batch_size
    if all_negative_prompts is None:
        all_negative_prompts = p.all_negative_prompts
    clip_skip = getattr(p, "clip_skip", opts.CLIP_stop_at_last_layers)
    prompt_text = p.main_prompt if use_main_prompt else all_prompts[index]
    negative_prompt = p.main_negative_prompt if use_main_prompt else all_negative_prompts[index]

    generation_params = {
        "Steps": p.steps,
        "Sampler": p.sampler_name or "Euler",
        "Schedule type": p.scheduler or "Automatic",
        "CFG scale": p.cfg_scale,
        "Seed": p.all_seeds[0] if use_main_prompt else all_seeds[index],
        "Size": f"{p.width}x{p.height}",
        "Model hash": p.sd_model_hash if opts.add_model_hash_to_info else None,
        "Model": p.sd_model_name if opts.add_model_name_to_info else None,
        "VAE": p.sd_vae_name,
        "Variation seed": None if p.subseed_strength == 0 else all_subseeds[index],
        "Variation seed strength": None if p.subseed_strength == 0 else p.subseed_strength,
        "Denoising strength": p.extra_generation_params.get("Denoising strength"),
        "Clip skip": None if clip_skip <= 1 else clip_skip,
        "ENSD": opts.eta_noise_seed_delta or None,
        **p.extra_generation_params,
        "Version": program_version() if opts.add_version_to_infotext else None,
        "User": p.user if opts.add_user_name_to_info else None,
    }
    context = dict(p=p, all_prompts=all_prompts, all_seeds=all_seeds, all_subseeds=all_subseeds, comments=comments,
                   iteration=iteration, position_in_batch=position_in_batch, use_main_prompt=use_main_prompt,
                   index=index, all_negative_prompts=all_negative_prompts, prompt_text=prompt_text,
                   negative_prompt=negative_prompt, generation_params=generation_params)
    for key, value in generation_params.items():
        try:
            if isinstance(value, list):
                generation_params[key] = value[index]
            elif callable(value):
                generation_params[key] = value(**context)
        except Exception:
            errors.report(f'Error creating infotext for key "{key}"', exc_info=True)
            generation_params[key] = None

    text = ", ".join(k if k == v else f"{k}: {infotext_utils.quote(v)}" for k, v in generation_params.items() if v is not None)
    negative_text = f"\nNegative prompt: {negative_prompt}" if negative_prompt else ""
    return f"{prompt_text}{negative_text}\n{text}".strip()


def process_images(p: StableDiffusionProcessing) -> Processed:
    """``before_process``, apply ``override_settings`` (restored afterwards), then :func:`process_images_inner`."""
    if p.scripts is not None:
        p.scripts.before_process(p)
    stored_opts = {k: opts.data[k] if k in opts.data else opts.get_default(k) for k in p.override_settings if k in opts.data}
    try:
        if sd_models.checkpoint_aliases.get(p.override_settings.get("sd_model_checkpoint")) is None:
            p.override_settings.pop("sd_model_checkpoint", None)
            sd_models.reload_model_weights()
        for k, v in p.override_settings.items():
            opts.set(k, v, is_api=True, run_callbacks=False)
            if k == "sd_model_checkpoint":
                sd_models.reload_model_weights()
            if k == "sd_vae":
                sd_vae.reload_vae_weights()
        res = process_images_inner(p)
    finally:
        if p.override_settings_restore_afterwards:
            for k, v in stored_opts.items():
                setattr(opts, k, v)
                if k == "sd_vae":
                    sd_vae.reload_vae_weights()
    return res


def process_images_inner(p: StableDiffusionProcessing) -> Processed:
    """A1111's main loop, per batch: prompts -> before_process_batch -> parse tags -> extra_networks.activate ->
    process_batch -> conds -> sample (process_before_every_sampling, cfg_denoiser per step, optional hires pass)
    -> post_sample/postprocess_batch(_list)/postprocess_image -> infotext; then deactivate and postprocess."""
    assert p.prompt is not None
    devices.torch_gc()
    seed, subseed = get_fixed_seed(p.seed), get_fixed_seed(p.subseed)
    p.sd_model_name = shared.sd_model.sd_checkpoint_info.name_for_extra
    p.sd_model_hash = shared.sd_model.sd_model_hash
    p.sd_vae_name = sd_vae.get_loaded_vae_name()
    p.sd_vae_hash = sd_vae.get_loaded_vae_hash()
    model_hijack.clear_comments()
    p.fill_fields_from_opts()
    p.setup_prompts()
    n_images = len(p.all_prompts)
    p.all_seeds = seed if isinstance(seed, list) else [int(seed) + (x if p.subseed_strength == 0 else 0) for x in range(n_images)]
    p.all_subseeds = subseed if isinstance(subseed, list) else [int(subseed) + x for x in range(len(p.all_prompts))]

    if p.scripts is not None:
        p.scripts.process(p)

    from modules import scripts
    infotexts: list[str] = []
    output_images: list = []
    with torch.no_grad(), p.sd_model.ema_scope():
        with devices.autocast():
            p.init(p.all_prompts, p.all_seeds, p.all_subseeds)
        if state.job_count == -1:
            state.job_count = p.n_iter

        for n in range(p.n_iter):
            p.iteration = n
            if state.skipped:
                state.skipped = False
            if state.interrupted or state.stopping_generation:
                break
            sl = slice(n * p.batch_size, (n + 1) * p.batch_size)
            p.prompts, p.negative_prompts = p.all_prompts[sl], p.all_negative_prompts[sl]
            p.seeds, p.subseeds = p.all_seeds[sl], p.all_subseeds[sl]
            p.rng = ImageRNG((opt_C, p.height // opt_f, p.width // opt_f), p.seeds)

            if p.scripts is not None:
                p.scripts.before_process_batch(p, batch_number=n, prompts=p.prompts, seeds=p.seeds, subseeds=p.subseeds)
            if len(p.prompts) == 0:
                break
            p.parse_extra_network_prompts()
            if not p.disable_extra_networks:
                with devices.autocast():
                    extra_networks.activate(p, p.extra_network_data)
            if p.scripts is not None:
                p.scripts.process_batch(p, batch_number=n, prompts=p.prompts, seeds=p.seeds, subseeds=p.subseeds)

            p.setup_conds()
            p.extra_generation_params.update(model_hijack.extra_generation_params)
            for comment in model_hijack.comments:
                p.comment(comment)
            if p.n_iter > 1:
                state.job = f"Batch {n + 1} out of {p.n_iter}"

            samples = p.sample(conditioning=p.c, unconditional_conditioning=p.uc, seeds=p.seeds, subseeds=p.subseeds,
                               subseed_strength=p.subseed_strength, prompts=p.prompts)
            if p.scripts is not None:
                ps = scripts.PostSampleArgs(samples)
                p.scripts.post_sample(p, ps)
                samples = ps.samples
            state.nextjob()

            if p.scripts is not None:
                p.scripts.postprocess_batch(p, samples, batch_number=n)
                p.prompts, p.negative_prompts = p.all_prompts[sl], p.all_negative_prompts[sl]
                batch_params = scripts.PostprocessBatchListArgs(list(samples))
                p.scripts.postprocess_batch_list(p, batch_params, batch_number=n)
                samples = batch_params.images

            for i, image in enumerate(samples):
                p.batch_index = i
                if p.scripts is not None:
                    pp = scripts.PostprocessImageArgs(image)
                    p.scripts.postprocess_image(p, pp)
                    image = pp.image
                infotexts.append(create_infotext(p, p.prompts, p.seeds, p.subseeds, index=i,
                                                 all_negative_prompts=p.negative_prompts))
                output_images.append(image)

        if not infotexts:
            infotexts.append(Processed(p, []).infotext(p, 0))

    if not p.disable_extra_networks and p.extra_network_data:
        extra_networks.deactivate(p, p.extra_network_data)
    devices.torch_gc()

    res = Processed(p, images_list=output_images, seed=p.all_seeds[0], info=infotexts[0], subseed=p.all_subseeds[0],
                    index_of_first_image=0, infotexts=infotexts)
    if p.scripts is not None:
        p.scripts.postprocess(p, res)
    return res
