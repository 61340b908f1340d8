"""Stand-in of ``modules/sd_vae.py``: no VAE weights, only the reload sequence
(undo_hijack -> "load" -> hijack -> ``model_loaded`` callbacks) and its early return when nothing changes."""
from __future__ import annotations

import os

from modules import paths, script_callbacks, shared

vae_dict: dict[str, str] = {}
loaded_vae_file: str | None = None
base_vae = None
checkpoint_info = None
unspecified = object()


def reset() -> None:
    global loaded_vae_file, base_vae, checkpoint_info
    vae_dict.clear()
    loaded_vae_file = base_vae = checkpoint_info = None


def refresh_vae_list() -> None:
    vae_dir = os.path.join(paths.models_path, "VAE")
    vae_dict.clear()
    for name in sorted(os.listdir(vae_dir)) if os.path.isdir(vae_dir) else []:
        vae_dict[name] = os.path.join(vae_dir, name)


def resolve_vae(checkpoint_file: str) -> tuple[str | None, str]:
    """``opts.sd_vae``'s file, or None for 'Automatic'/'None' (the stand-in has no per-checkpoint VAEs)."""
    choice = shared.opts.sd_vae
    if choice in ("Automatic", "None", None):
        return None, "from settings: none"
    return vae_dict.get(choice, os.path.join(paths.models_path, "VAE", choice)), "from settings"


def get_loaded_vae_name() -> str | None:
    return None if loaded_vae_file is None else os.path.basename(loaded_vae_file)


def get_loaded_vae_hash() -> str | None:
    return None


def clear_loaded_vae() -> None:
    global loaded_vae_file
    loaded_vae_file = None


def reload_vae_weights(sd_model=None, vae_file=unspecified):
    """Early-return when the resolved VAE is already loaded; else undo_hijack, load, hijack, model_loaded."""
    global loaded_vae_file
    from modules import sd_hijack
    sd_model = sd_model or shared.sd_model
    if vae_file is unspecified:
        vae_file, _source = resolve_vae(sd_model.sd_checkpoint_info.filename)
    if loaded_vae_file == vae_file:
        return None
    sd_hijack.model_hijack.undo_hijack(sd_model)
    loaded_vae_file = vae_file
    sd_hijack.model_hijack.hijack(sd_model)
    script_callbacks.model_loaded_callback(sd_model)
    print("VAE weights loaded.")
    return sd_model
