"""Apply engine: half-precision models, autocast, compute_dtype; the hypernetworks themselves are never converted."""

from __future__ import annotations

import copy

import pytest
import torch
from engine_util import (
    ATOL,
    CONTEXT_DIM,
    HOST_FORWARDS,
    LDM_FORWARD,
    RTOL,
    all_hooks_empty,
    ldm_attention,
    make_hn,
    reference_output,
    run_unet,
    swapped_forward,
    unet_to,
)

import lib_hypernet
from lib_hypernet.model.module import HypernetworkModule

UNET_SEED, INPUTS_SEED = 21, 22  # the folder's unet/inputs fixtures (conftest.py)


@pytest.fixture(scope="module")
def stack() -> list:
    return [
        (make_hn("dt_fused", seed=300, activation_func="gelu", layer_structure=[1, 2, 2, 1], is_layer_norm=True), 0.8),
        (make_hn("dt_ref", (32, CONTEXT_DIM), seed=301, activation_func="prelu"), -0.6),
        (make_hn("dt_softmax", (64,), seed=302, activation_func="softmax", activate_output=True), 0.5),
    ]


@pytest.fixture
def low_precision_attention(monkeypatch: pytest.MonkeyPatch) -> None:
    # ldm's CrossAttention upcasts q·k to float32 by default and then fails on a half-precision v (an ldm limit,
    # unrelated to hypernetworks); A1111 replaces this forward anyway.
    monkeypatch.setattr(ldm_attention, "_ATTN_PRECISION", "fp16")


def _params_untouched(stack: list) -> None:
    for hn, _ in stack:
        for p in hn.parameters():
            assert p.dtype == torch.float32 and p.device.type == "cpu", "the hypernetwork was converted or moved"


def _cast(inputs: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in inputs.items()}


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_half_precision_model(dtype: torch.dtype, unet, inputs, stack, low_precision_attention) -> None:
    half = unet_to(unet, dtype)
    half_inputs = _cast(inputs, dtype)
    try:
        base = run_unet(half, half_inputs)
    except (RuntimeError, NotImplementedError) as e:  # pragma: no cover - depends on the torch build
        pytest.skip(f"this torch cannot run a {dtype} model on CPU: {e}")
    ref32 = reference_output(unet, inputs, stack)
    base32 = run_unet(unet, inputs)
    ref_half = reference_output(half, half_inputs, stack)  # A1111's formula on the same half model
    with lib_hypernet.install(half) as handle:
        handle.activate(stack)
        out = run_unet(half, half_inputs)
        assert out.dtype == dtype
        # the hypernetworks run in float32 (like A1111's fp32 modules), so the engine agrees with A1111 on this model
        # and with the float32 model, as closely as the half model itself does
        model_error = _max_diff(base, base32)
        assert _max_diff(out, ref_half) <= 2 * model_error + 0.02, (_max_diff(out, ref_half), model_error)
        assert _max_diff(out, ref32) <= 3 * model_error + 0.02, (_max_diff(out, ref32), model_error)
        assert _max_diff(out, base) > 10 * max(model_error, 1e-3)
        # a half-precision compute dtype works too
        handle.compute_dtype = dtype
        handle.activate(stack)
        out_half_math = run_unet(half, half_inputs)
        assert out_half_math.dtype == dtype
        assert _max_diff(out_half_math, ref32) <= 3 * model_error + 0.05
    assert all_hooks_empty(half)
    _params_untouched(stack)
    assert not any(isinstance(m, HypernetworkModule) for m in half.modules())


def test_autocast_bf16(unet, inputs, stack) -> None:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        base = run_unet(unet, inputs)
        ref = reference_output(unet, inputs, stack)
    ref32 = reference_output(unet, inputs, stack)
    autocast_error = _max_diff(base, run_unet(unet, inputs))
    with lib_hypernet.install(unet) as handle:
        handle.activate(stack)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = run_unet(unet, inputs)
            again = run_unet(unet, inputs, context=inputs["context"].clone())  # through the cross-attention cache
        assert handle.cache_stats[0] > 0
        # autocast off again: plain float32, exact
        torch.testing.assert_close(run_unet(unet, inputs), ref32, atol=ATOL, rtol=RTOL)
    assert out.dtype == ref.dtype
    assert torch.equal(out, again)
    assert _max_diff(out, ref) <= 2 * autocast_error + 0.02, (_max_diff(out, ref), autocast_error)
    assert _max_diff(out, base) > 10 * autocast_error
    _params_untouched(stack)


@pytest.mark.parametrize("host", ["ldm", "sdp"])
def test_compute_dtype_float64(host: str, unet, inputs, stack) -> None:
    ref = reference_output(unet, inputs, stack)
    with lib_hypernet.install(unet) as handle:
        handle.compute_dtype = torch.float64
        handle.activate(stack)
        with swapped_forward(LDM_FORWARD if host == "ldm" else HOST_FORWARDS[host]):
            out = run_unet(unet, inputs)
            out2 = run_unet(unet, inputs, context=inputs["context"].clone())
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=RTOL)
    assert torch.equal(out, out2)
    _params_untouched(stack)


def test_compute_dtype_float64_is_more_exact_than_float32(unet, inputs) -> None:
    """Against a float64 evaluation of A1111's formula on the K/V inputs, float64 compute is closer."""
    hn = make_hn("exact", (CONTEXT_DIM,), seed=303, activation_func="tanh", layer_structure=[1, 2, 2, 1], is_layer_norm=True)
    ctx = inputs["context"]
    hn64 = make_hn("exact", (CONTEXT_DIM,), seed=303, activation_func="tanh", layer_structure=[1, 2, 2, 1], is_layer_norm=True)
    hn64.to(dtype=torch.float64)
    want_k, _ = lib_hypernet.apply_hypernetworks(ctx.double(), [(hn64, 1.0)])
    seen: dict[str, torch.Tensor] = {}
    attn2 = unet.input_blocks[1][1].transformer_blocks[0].attn2
    capture = attn2.to_k.register_forward_hook(lambda m, args, out: seen.__setitem__("k", args[0]))
    errors = {}
    try:
        with lib_hypernet.install(unet) as handle:
            for dtype in (None, torch.float64):
                handle.compute_dtype = dtype
                handle.activate([(hn, 1.0)])
                run_unet(unet, inputs)
                errors[dtype] = (seen["k"].double() - want_k).abs().max().item()
    finally:
        capture.remove()
    assert errors[torch.float64] <= errors[None]
    assert errors[torch.float64] < 1e-6


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("mode", ["fp32", "fp16", "autocast_fp16"])
def test_cuda_model_with_cpu_hypernetworks(mode: str, unet, inputs, stack, low_precision_attention) -> None:
    """The hypernetworks stay float32 on the CPU; the engine compiles its own device copies."""
    device = torch.device("cuda")
    dtype = torch.float16 if mode == "fp16" else torch.float32
    model = (unet_to(unet, dtype) if dtype != torch.float32 else copy.deepcopy(unet)).to(device)
    dev_inputs = {k: v.to(device=device, dtype=dtype if v.is_floating_point() else v.dtype) for k, v in inputs.items()}
    # A1111's formula with the hypernetworks on the device, as A1111 keeps them
    dev_stack = [(copy.deepcopy(hn).to(device), m) for hn, m in stack]
    autocast = torch.autocast("cuda", dtype=torch.float16, enabled=mode == "autocast_fp16")
    with autocast:
        base = run_unet(model, dev_inputs)
        ref = reference_output(model, dev_inputs, dev_stack)
    with lib_hypernet.install(model) as handle:
        handle.activate(stack)
        with autocast:
            out = run_unet(model, dev_inputs)
    assert out.device.type == "cuda" and out.dtype == ref.dtype
    if mode == "fp32":
        torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    else:
        assert _max_diff(out, ref) <= 0.05
    assert _max_diff(out, base) > 0.1
    _params_untouched(stack)
