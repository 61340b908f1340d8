"""The two kinds of ``Linear`` the hosts build their UNet from.

- :class:`ForgeLinear` — Forge 2's ``ForgeOperations.Linear`` (``backend/operations.py:126-155``): an
  ``nn.Module`` that is **not** an ``nn.Linear``; ``weight``/``bias`` are ``None`` until the state dict loads
  (a ``dummy`` parameter carries device/dtype until then); the forward casts the weight to the input's dtype
  (manual cast) and goes through ``__call__``, so forward pre-hooks fire.
- :class:`ManualCastLinear` — reForge's ``ops.manual_cast.Linear`` (``ldm_patched/modules/ops.py:127-139``):
  an ``nn.Linear`` subclass whose forward casts weight and bias to the input's dtype.
"""
from __future__ import annotations

import torch


class ForgeLinear(torch.nn.Module):
    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.has_bias = bias
        self.dummy = torch.nn.Parameter(torch.empty(1, device=device, dtype=dtype))
        self.weight = None
        self.bias = None

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        if hasattr(self, "dummy"):
            if prefix + "weight" in state_dict:
                self.weight = torch.nn.Parameter(state_dict[prefix + "weight"].to(self.dummy))
            if prefix + "bias" in state_dict:
                self.bias = torch.nn.Parameter(state_dict[prefix + "bias"].to(self.dummy))
            del self.dummy
        else:
            super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight is None:
            raise RuntimeError("ForgeOperations.Linear used before its state dict was loaded")
        weight = self.weight.to(device=x.device, dtype=x.dtype)
        bias = None if self.bias is None else self.bias.to(device=x.device, dtype=x.dtype)
        return torch.nn.functional.linear(x, weight, bias)


class ManualCastLinear(torch.nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(device=x.device, dtype=x.dtype)
        return torch.nn.functional.linear(x, self.weight.to(device=x.device, dtype=x.dtype), bias)


def state_dict_shapes(linear: torch.nn.Module) -> tuple[int, int]:
    return linear.out_features, linear.in_features
