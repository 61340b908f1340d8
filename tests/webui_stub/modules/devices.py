"""Stand-in of ``modules/devices.py`` for a CPU-only run (no autocast, float32 everywhere by default)."""
from __future__ import annotations

import contextlib

import torch

cpu = torch.device("cpu")
device = device_interrogate = device_gfpgan = device_esrgan = device_codeformer = cpu
dtype = torch.float32
dtype_vae = torch.float32
dtype_unet = torch.float32
dtype_inference = torch.float32
unet_needs_upcast = False
force_fp16 = False
fp8 = False


def reset() -> None:
    """Back to the CPU/float32 defaults."""
    global device, dtype, dtype_vae, dtype_unet, dtype_inference, unet_needs_upcast, force_fp16, fp8
    device = cpu
    dtype = dtype_vae = dtype_unet = dtype_inference = torch.float32
    unet_needs_upcast = force_fp16 = fp8 = False


def has_mps() -> bool:
    return False


def has_xpu() -> bool:
    return False


def get_optimal_device_name() -> str:
    return "cpu"


def get_optimal_device() -> torch.device:
    return cpu


def get_device_for(task: str) -> torch.device:
    return cpu


def torch_gc() -> None:
    """A1111 only empties the CUDA/MPS/XPU caches here (no gc.collect); nothing to do on CPU."""


def torch_npu_set_device() -> None:
    pass


def cond_cast_unet(input: torch.Tensor) -> torch.Tensor:
    """Cast a hypernetwork output back to the UNet dtype (A1111 devices.py:132-136)."""
    if force_fp16:
        return input.to(torch.float16)
    return input.to(dtype_unet) if unet_needs_upcast else input


def cond_cast_float(input: torch.Tensor) -> torch.Tensor:
    """Upcast a hypernetwork input to float32 when the UNet runs upcast (A1111 devices.py:138-139)."""
    return input.float() if unet_needs_upcast else input


def autocast(disable: bool = False):
    """A1111 returns a nullcontext for float32/CPU runs; so does the stand-in, always."""
    return contextlib.nullcontext()


def without_autocast(disable: bool = False):
    return contextlib.nullcontext()


def test_for_nans(x: torch.Tensor, where: str) -> None:
    if x.numel() and bool(torch.isnan(x).all()):
        raise NansException(f"A tensor with NaNs was produced in {where}.")


class NansException(Exception):
    pass


def first_time_calculation() -> None:
    pass
