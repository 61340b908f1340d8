"""The per-step model call (Forge 2 ``backend/sampling/sampling_function.py:238-330``).

Every step reads ``sd_model.forge_objects.unet`` anew, copies ``model_options["transformer_options"]``,
adds ``cond_or_uncond`` and ``sigmas`` (the batch's sigmas) and calls ``KModel.apply_model`` on the cond and
uncond batch concatenated.  Before sampling the host moves the patches: ``model_patches_to(device)`` then
``model_patches_to(model_dtype())``.
"""
from __future__ import annotations

import torch


def prepare(unet_patcher) -> None:
    """``memory_management.load_models_gpu`` → ``LoadedModel.model_load`` (``memory_management.py:463-464``)."""
    unet_patcher.model_patches_to(unet_patcher.load_device)
    unet_patcher.model_patches_to(unet_patcher.model_dtype())


def calc_cond_uncond_batch(unet_patcher, cond: torch.Tensor, uncond: torch.Tensor, x: torch.Tensor,
                           sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    model_options = unet_patcher.model_options
    transformer_options = dict(model_options.get("transformer_options", {}))
    batch = x.shape[0]
    input_x = torch.cat([x, x])
    timestep = sigma.repeat(2 * batch)
    transformer_options["cond_or_uncond"] = [0, 1]
    transformer_options["sigmas"] = timestep
    t = (timestep * 999).round()
    scaled = input_x / torch.sqrt(1 + timestep[:, None, None, None] ** 2)
    out = unet_patcher.model.apply_model(scaled, t, c_crossattn=torch.cat([cond, uncond]),
                                         transformer_options=transformer_options)
    return out[:batch], out[batch:]
