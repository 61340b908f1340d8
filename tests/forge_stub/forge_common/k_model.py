"""``KModel`` (Forge 2 ``backend/modules/k_model.py:25-45``): the UNet wrapper the patcher holds.

``apply_model`` casts the input and the text context to the computation dtype (fp16/bf16 on a GPU; no
autocast anywhere), calls ``diffusion_model(x, t, context=…, transformer_options=…)`` and returns float32.
"""
from __future__ import annotations

import torch


class KModel(torch.nn.Module):
    def __init__(self, diffusion_model: torch.nn.Module, computation_dtype: torch.dtype = torch.float32):
        super().__init__()
        self.diffusion_model = diffusion_model
        self.computation_dtype = computation_dtype

    def apply_model(self, x, t, c_crossattn=None, transformer_options={}, **kwargs):  # noqa: B006
        dtype = self.computation_dtype
        context = c_crossattn.to(dtype) if c_crossattn is not None else None
        return self.diffusion_model(x.to(dtype), t, context=context, transformer_options=transformer_options).float()
