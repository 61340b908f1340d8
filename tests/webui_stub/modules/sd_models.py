"""Stand-in of ``modules/sd_models.py``: checkpoints are tiny files in the temp data dir; "loading" one builds a
REAL ``ldm`` ``UNetModel`` of the chosen config with weights seeded from the checkpoint name, wrapped like
A1111's ``LatentDiffusion`` (``sd_model.model.diffusion_model``), plus a deterministic stand-in text encoder.

Load order as in A1111 ``load_model``: unload old -> build -> ``model_hijack.hijack`` -> set ``shared.sd_model``
-> ``model_loaded_callback`` -> ``get_empty_cond`` (``extra_networks.activate`` with a fresh dummy
``StableDiffusionProcessingTxt2Img()``: ``all_prompts`` None, ``scripts`` None).
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import sys
import types

import torch

from modules import devices, extra_networks, hashes, paths, script_callbacks, shared


def _ensure_omegaconf() -> None:
    """ldm's UNetModel imports ``omegaconf.listconfig.ListConfig``; provide a tiny shim when omegaconf is absent."""
    if "omegaconf" in sys.modules or importlib.util.find_spec("omegaconf") is not None:
        return
    omegaconf = types.ModuleType("omegaconf")
    listconfig = types.ModuleType("omegaconf.listconfig")
    listconfig.ListConfig = type("ListConfig", (list,), {})
    omegaconf.listconfig = listconfig
    sys.modules["omegaconf"] = omegaconf
    sys.modules["omegaconf.listconfig"] = listconfig


_tiny = dict(in_channels=4, out_channels=4, model_channels=32, num_res_blocks=1, channel_mult=(1, 2),
             attention_resolutions=(1, 2), num_head_channels=8, use_spatial_transformer=True, transformer_depth=1,
             use_checkpoint=False, legacy=False, image_size=8)
_full = dict(in_channels=4, out_channels=4, model_channels=320, num_res_blocks=2, channel_mult=(1, 2, 4, 4),
             attention_resolutions=(4, 2, 1), use_spatial_transformer=True, transformer_depth=1,
             use_checkpoint=False, legacy=False, image_size=32)

CONFIGS: dict[str, dict] = {
    "sd1-tiny": {"kind": "sd1", "unet": {**_tiny, "context_dim": 768}},
    "sd2-tiny": {"kind": "sd2", "unet": {**_tiny, "context_dim": 1024, "use_linear_in_transformer": True,
                                          "num_head_channels": 16}},
    "sdxl-tiny": {"kind": "sdxl", "unet": {**_tiny, "context_dim": 2048, "use_linear_in_transformer": True,
                                            "channel_mult": (1, 2, 2), "attention_resolutions": (2, 4), "num_head_channels": 16}},
    "sd1": {"kind": "sd1", "unet": {**_full, "context_dim": 768, "num_heads": 8}},
    "sd2": {"kind": "sd2", "unet": {**_full, "context_dim": 1024, "num_head_channels": 64, "use_linear_in_transformer": True}},
}
"""'*-tiny' build in well under a second; 'sd1'/'sd2' are the real (~860M parameter) UNet shapes and are slow."""

checkpoints_list: dict[str, CheckpointInfo] = {}
checkpoint_aliases: dict[str, CheckpointInfo] = {}


def model_hash(filename: str) -> str:
    """Legacy 8-hex hash: sha256 of the 64 KiB at offset 1 MiB; 'NOFILE' if missing."""
    try:
        with open(filename, "rb") as f:
            f.seek(0x100000)
            return hashlib.sha256(f.read(0x10000)).hexdigest()[0:8]
    except FileNotFoundError:
        return "NOFILE"


class CheckpointInfo:
    def __init__(self, filename: str, config: str = "sd1-tiny"):
        self.filename = filename
        self.config = config
        self.is_safetensors = os.path.splitext(filename)[1].lower() == ".safetensors"
        ckpt_root = os.path.join(paths.models_path, "Stable-diffusion")
        abspath = os.path.abspath(filename)
        name = abspath[len(ckpt_root):].lstrip("/\\") if abspath.startswith(ckpt_root) else os.path.basename(filename)
        self.name = name
        self.name_for_extra = os.path.splitext(os.path.basename(filename))[0]
        self.model_name = os.path.splitext(name.replace("/", "_").replace("\\", "_"))[0]
        self.hash = model_hash(filename)
        self.metadata: dict = {}
        self.sha256 = hashes.sha256_from_cache(filename, f"checkpoint/{name}")
        self._set_titles()

    def _set_titles(self) -> None:
        self.shorthash = self.sha256[0:10] if self.sha256 else None
        self.title = self.name if self.shorthash is None else f"{self.name} [{self.shorthash}]"
        self.short_title = self.name_for_extra if self.shorthash is None else f"{self.name_for_extra} [{self.shorthash}]"
        self.ids = [self.hash, self.model_name, self.title, self.name, self.name_for_extra, f"{self.name} [{self.hash}]"]
        if self.shorthash:
            self.ids += [self.shorthash, self.sha256, f"{self.name} [{self.shorthash}]",
                         f"{self.name_for_extra} [{self.shorthash}]"]

    def register(self) -> None:
        checkpoints_list[self.title] = self
        for id_ in self.ids:
            checkpoint_aliases[id_] = self

    def calculate_shorthash(self) -> str | None:
        self.sha256 = hashes.sha256(self.filename, f"checkpoint/{self.name}")
        if self.sha256 is None:
            return None
        old_title = self.title
        self._set_titles()
        if old_title != self.title:
            checkpoints_list.pop(old_title, None)
            self.register()
        return self.shorthash


def register_checkpoint(name: str, config: str = "sd1-tiny") -> CheckpointInfo:
    """Create ``models/Stable-diffusion/<name>.ckpt`` (deterministic bytes; > 1 MiB so model_hash is meaningful)."""
    if config not in CONFIGS:
        raise ValueError(f"unknown stand-in model config {config!r}; known: {sorted(CONFIGS)}")
    path = os.path.join(paths.models_path, "Stable-diffusion", f"{name}.ckpt")
    if not os.path.exists(path):
        g = torch.Generator().manual_seed(_seed(name, config))
        data = torch.randint(0, 256, (0x110000,), generator=g, dtype=torch.uint8).numpy().tobytes()
        with open(path, "wb") as f:
            f.write(data)
    info = CheckpointInfo(path, config)
    info.register()
    return info


def list_models() -> None:
    pass


def select_checkpoint() -> CheckpointInfo:
    """The checkpoint named by ``opts.sd_model_checkpoint``, else the first registered one."""
    info = checkpoint_aliases.get(shared.opts.sd_model_checkpoint)
    if info is not None:
        return info
    if not checkpoints_list:
        raise FileNotFoundError("No checkpoints found (stand-in: use sd_models.register_checkpoint)")
    return next(iter(checkpoints_list.values()))


def get_closet_checkpoint_match(search_string: str) -> CheckpointInfo | None:
    return checkpoint_aliases.get(search_string)


def _seed(*parts) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little")


class StubTextEncoder(torch.nn.Module):
    """Deterministic stand-in for CLIP: prompt string -> [77, context_dim] tensor seeded by the string's sha256."""

    def __init__(self, context_dim: int):
        super().__init__()
        self.context_dim = context_dim
        self.calls: list[str] = []

    def encode(self, text: str) -> torch.Tensor:
        self.calls.append(text)
        g = torch.Generator().manual_seed(_seed("prompt", text))
        return torch.randn(77, self.context_dim, generator=g)

    def forward(self, texts: list[str]) -> torch.Tensor:
        return torch.stack([self.encode(t) for t in texts]).to(devices.dtype_unet)


class DiffusionWrapper(torch.nn.Module):
    def __init__(self, diffusion_model: torch.nn.Module):
        super().__init__()
        self.diffusion_model = diffusion_model
        self.conditioning_key = "crossattn"


class StubLatentDiffusion(torch.nn.Module):
    """What extensions see as ``shared.sd_model``: ``.model.diffusion_model`` is a real ldm UNetModel."""

    def __init__(self, checkpoint_info: CheckpointInfo, dtype: torch.dtype):
        super().__init__()
        _ensure_omegaconf()
        from ldm.modules.diffusionmodules.openaimodel import UNetModel
        config = CONFIGS[checkpoint_info.config]
        unet = UNetModel(**config["unet"])
        _seed_weights(unet, _seed("weights", checkpoint_info.name))
        self.model = DiffusionWrapper(unet.to(dtype))
        self.cond_stage_model = StubTextEncoder(config["unet"]["context_dim"])
        self.cond_stage_key = "txt"
        self.parameterization = "eps"
        self.latent_channels = 4
        self.lowvram = False
        self.used_config = checkpoint_info.config
        kind = config["kind"]
        self.is_sd1, self.is_sd2, self.is_sdxl = kind == "sd1", kind == "sd2", kind == "sdxl"
        self.is_ssd = self.is_sd3 = False
        self.sd_checkpoint_info = checkpoint_info
        self.sd_model_checkpoint = checkpoint_info.filename
        self.sd_model_hash = checkpoint_info.calculate_shorthash()
        self.cond_stage_model_empty_prompt = None

    def get_learned_conditioning(self, prompts: list[str]) -> torch.Tensor:
        return self.cond_stage_model(list(prompts))

    def apply_model(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.model.diffusion_model(x, timesteps=t, context=cond)

    def ema_scope(self, context=None):
        return contextlib.nullcontext()


def _seed_weights(module: torch.nn.Module, seed: int) -> None:
    """Replace ldm's init (zeroed output convs) with seeded non-trivial weights."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * (p[0].numel() ** -0.5))
            elif name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.02 * torch.randn(p.shape, generator=g))


class SdModelData:
    def __init__(self):
        self.sd_model = None
        self.loaded_sd_models: list = []
        self.was_loaded_at_least_once = False

    def get_sd_model(self):
        return self.sd_model

    def set_sd_model(self, v, already_loaded: bool = False) -> None:
        self.sd_model = v
        shared.sd_model = v
        self.loaded_sd_models = [v] if v is not None else []


model_data = SdModelData()
load_count = 0
"""Number of full ``load_model`` calls since the last reset."""


def get_empty_cond(sd_model) -> torch.Tensor:
    """A1111 runs this on every full load: activates extra networks with a fresh, default txt2img ``p``."""
    from modules import processing
    p = processing.StableDiffusionProcessingTxt2Img()
    extra_networks.activate(p, {})
    return sd_model.get_learned_conditioning([""])


def load_model(checkpoint_info: CheckpointInfo | None = None, already_loaded_state_dict=None, *,
               config: str | None = None, dtype: torch.dtype | None = None):
    """Full load: returns the new model object (also ``shared.sd_model``)."""
    global load_count
    from modules import sd_hijack
    if checkpoint_info is None:
        checkpoint_info = register_checkpoint(f"stub-{config}", config) if config else select_checkpoint()
    if model_data.sd_model is not None:
        model_data.set_sd_model(None)
        devices.torch_gc()

    sd_model = StubLatentDiffusion(checkpoint_info, dtype or devices.dtype_unet)
    shared.opts.data["sd_model_checkpoint"] = checkpoint_info.title
    shared.opts.data["sd_checkpoint_hash"] = checkpoint_info.sha256
    sd_hijack.model_hijack.hijack(sd_model)
    sd_model.eval()
    model_data.set_sd_model(sd_model)
    model_data.was_loaded_at_least_once = True
    load_count += 1
    script_callbacks.model_loaded_callback(sd_model)
    with devices.autocast(), torch.no_grad():
        sd_model.cond_stage_model_empty_prompt = get_empty_cond(sd_model)
    print(f"Model loaded: {checkpoint_info.title} ({checkpoint_info.config}).")
    return sd_model


def reload_model_weights(sd_model=None, info: CheckpointInfo | None = None, forced_reload: bool = False):
    """Switch to ``info`` (default: ``select_checkpoint()``).

    Same checkpoint and not forced: no-op. Same config: the SAME object gets the new checkpoint's weights, then
    hijack + ``model_loaded`` (no ``get_empty_cond``), like A1111. Different config: full ``load_model`` (NEW object).
    """
    from modules import sd_hijack
    checkpoint_info = info or select_checkpoint()
    sd_model = sd_model or model_data.sd_model
    if sd_model is not None and sd_model.sd_model_checkpoint == checkpoint_info.filename and not forced_reload:
        return sd_model
    if sd_model is not None:
        sd_hijack.model_hijack.undo_hijack(sd_model)
    if sd_model is None or checkpoint_info.config != sd_model.used_config:
        sd_model = None
        model_data.set_sd_model(None)
        return load_model(checkpoint_info)

    try:
        _seed_weights(sd_model.model.diffusion_model, _seed("weights", checkpoint_info.name))
        sd_model.sd_checkpoint_info = checkpoint_info
        sd_model.sd_model_checkpoint = checkpoint_info.filename
        sd_model.sd_model_hash = checkpoint_info.calculate_shorthash()
        shared.opts.data["sd_model_checkpoint"] = checkpoint_info.title
        shared.opts.data["sd_checkpoint_hash"] = checkpoint_info.sha256
    finally:
        sd_hijack.model_hijack.hijack(sd_model)
        script_callbacks.model_loaded_callback(sd_model)
    model_data.set_sd_model(sd_model)
    return sd_model


def unload_model_weights(sd_model=None, info=None):
    return sd_model


def apply_token_merging(sd_model, token_merging_ratio: float) -> None:
    pass


def reset() -> None:
    """Stand-in only: forget checkpoints and the loaded model."""
    global load_count
    checkpoints_list.clear()
    checkpoint_aliases.clear()
    model_data.__init__()
    shared.sd_model = None
    load_count = 0
