"""Helpers for the apply-engine tests: a tiny real ldm UNet, hypernetworks with visible effects,
an A1111-style reference attention forward and other host forwards to swap in at class level.

Imported through ``tests/conftest.py``'s sys.path (``from engine_util import ...``).
"""

from __future__ import annotations

import contextlib
import copy
import math
import types
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import ldm.modules.attention as ldm_attention
import torch
import torch.nn.functional as F
from factories import strong_hypernetwork
from ldm.modules.diffusionmodules.openaimodel import UNetModel
from ldm.modules.diffusionmodules.util import GroupNorm32

import lib_hypernet

CrossAttention = ldm_attention.CrossAttention
MemoryEfficientCrossAttention = ldm_attention.MemoryEfficientCrossAttention
LDM_FORWARD = CrossAttention.forward

CONTEXT_DIM = 48  # differs from the self-attention widths (32, 64), so width alone tells self from cross
SELF_WIDTHS = (32, 64)
ATOL = 1e-5
RTOL = 1e-5

Stack = Sequence[tuple[lib_hypernet.Hypernetwork, Any]]


# ---------------------------------------------------------------------------- models
def reinit_(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Re-initialise every parameter randomly (ldm zero-initialises ``proj_out``: attention would not matter)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            norm = isinstance(module, (torch.nn.GroupNorm, torch.nn.LayerNorm))
            for name, p in module.named_parameters(recurse=False):
                noise = torch.randn(p.shape, generator=gen)
                if norm:  # normalisation: weight around 1, bias around 0
                    p.copy_(1 + 0.1 * noise if name == "weight" else 0.1 * noise)
                elif p.dim() >= 2:
                    p.copy_(noise / math.sqrt(math.prod(p.shape[1:])))
                else:
                    p.copy_(0.1 * noise)
    return model


def make_unet(context_dim: int = CONTEXT_DIM, seed: int = 0) -> UNetModel:
    """A small real ldm UNet (3 self-attention layers of width 32, 4 of width 64, 7 cross-attention layers)."""
    torch.manual_seed(seed)
    unet = UNetModel(
        image_size=8,
        in_channels=4,
        out_channels=4,
        model_channels=32,
        attention_resolutions=[1, 2],
        num_res_blocks=1,
        channel_mult=[1, 2],
        num_head_channels=8,
        use_spatial_transformer=True,
        transformer_depth=1,
        context_dim=context_dim,
        use_checkpoint=False,
        legacy=False,
    )
    return reinit_(unet, seed).eval()


def unet_to(unet: UNetModel, dtype: torch.dtype) -> UNetModel:
    """A copy of ``unet`` running in ``dtype`` (GroupNorm32 upcasts its input, so it keeps float32 weights)."""
    model = copy.deepcopy(unet).to(dtype)
    model.dtype = dtype
    for m in model.modules():
        if isinstance(m, GroupNorm32):
            m.float()
    # timestep_embedding() is always float32 (a module rather than a hook: hook-free models are asserted on)
    model.time_embed = torch.nn.Sequential(_Cast(dtype), *model.time_embed)
    return model


class _Cast(torch.nn.Module):
    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.dtype)


def unet_inputs(seed: int = 1, context_dim: int = CONTEXT_DIM, batch: int = 2, tokens: int = 7) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "x": torch.randn(batch, 4, 8, 8, generator=gen),
        "timesteps": torch.tensor([10, 500] * (batch // 2) + [10] * (batch % 2)),
        "context": torch.randn(batch, tokens, context_dim, generator=gen),
    }


def run_unet(unet: torch.nn.Module, inputs: dict[str, torch.Tensor], context: torch.Tensor | None = None) -> torch.Tensor:
    with torch.no_grad():
        return unet(inputs["x"], inputs["timesteps"], context=inputs["context"] if context is None else context)


def assert_exact(out: torch.Tensor, ref: torch.Tensor) -> None:
    """Within 1e-5 (absolute, plus 1e-5 relative: a float32 UNet alone amplifies rounding to ~1e-5 at |y| ~ 2)."""
    diff = (out - ref).abs().max().item()
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=RTOL, msg=f"engine differs from A1111's formula by {diff:.3g}")


def attention_layers(model: torch.nn.Module) -> dict[tuple[str, int], int]:
    """Counts per (kind, K/V input width) from the model's structure: attn1 is self-, attn2 cross-attention."""
    counts: dict[tuple[str, int], int] = {}
    for name, module in model.named_modules():
        if name.endswith(("attn1", "attn2")):
            kind = "self" if name.endswith("attn1") else "cross"
            key = (kind, module.to_k.in_features)
            counts[key] = counts.get(key, 0) + 1
    return counts


def all_hooks_empty(model: torch.nn.Module) -> bool:
    return all(
        not m._forward_pre_hooks and not m._forward_hooks and not m._forward_pre_hooks_with_kwargs
        and not m._forward_hooks_with_kwargs
        for m in model.modules()
    )


# ---------------------------------------------------------------------------- hypernetworks
def make_hn(
    name: str,
    sizes: Sequence[int] = (*SELF_WIDTHS, CONTEXT_DIM),
    *,
    seed: int = 0,
    std: float = 0.2,
    **options: Any,
) -> lib_hypernet.Hypernetwork:
    """The engine tests' hypernetwork: :func:`factories.strong_hypernetwork` per layer, N(0, 0.2) by default."""
    return strong_hypernetwork(name, sizes, seed=seed, std=std, per_layer=True, **options)


# ---------------------------------------------------------------------------- host forwards
def _default(value: Any, fallback: Any) -> Any:
    return fallback if value is None else value


def _heads_split(t: torch.Tensor, heads: int) -> torch.Tensor:
    b, n, inner = t.shape
    return t.reshape(b, n, heads, inner // heads).permute(0, 2, 1, 3).reshape(b * heads, n, inner // heads)


def _heads_merge(t: torch.Tensor, heads: int) -> torch.Tensor:
    bh, n, d = t.shape
    return t.reshape(bh // heads, heads, n, d).permute(0, 2, 1, 3).reshape(bh // heads, n, heads * d)


def _plain_attention(self: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    h = self.heads
    q, k, v = (_heads_split(t, h) for t in (q, k, v))
    scale = q.shape[-1] ** -0.5
    sim = torch.bmm(q, k.transpose(1, 2)) * scale
    out = torch.bmm(sim.softmax(dim=-1), v)
    return self.to_out(_heads_merge(out, h))


def make_reference_forward(stack: Stack) -> Callable[..., torch.Tensor]:
    """A1111's unoptimized ``attention_CrossAttention_forward``, with our reference ``apply_hypernetworks``."""

    def forward(self: Any, x: torch.Tensor, context: torch.Tensor | None = None, mask: Any = None, **kwargs: Any) -> torch.Tensor:
        kind = "self" if context is None else "cross"
        q = self.to_q(x)
        context = _default(context, x)
        context_k, context_v = lib_hypernet.apply_hypernetworks(context, stack, kind)
        k = self.to_k(context_k)
        v = self.to_v(context_v)
        return _plain_attention(self, q, k, v)

    return forward


def sdp_forward(
    self: Any, x: torch.Tensor, context: torch.Tensor | None = None, mask: Any = None, **kwargs: Any
) -> torch.Tensor:
    """Like A1111's ``scaled_dot_product_attention_forward`` (without its own hypernetwork call)."""
    h = self.heads
    q_in = self.to_q(x)
    context = _default(context, x)
    k_in = self.to_k(context)
    v_in = self.to_v(context)
    b = q_in.shape[0]
    head_dim = q_in.shape[-1] // h
    q, k, v = (t.view(b, -1, h, head_dim).transpose(1, 2) for t in (q_in, k_in, v_in))
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=0.0, is_causal=False)
    out = out.transpose(1, 2).reshape(b, -1, h * head_dim).to(q.dtype)
    return self.to_out(out)


def sliced_forward(
    self: Any, x: torch.Tensor, context: torch.Tensor | None = None, mask: Any = None, **kwargs: Any
) -> torch.Tensor:
    """Doggettx-style: attention computed in slices of the query tokens."""
    h = self.heads
    q_in = self.to_q(x)
    context = _default(context, x)
    k_in = self.to_k(context)
    v_in = self.to_v(context)
    q, k, v = (_heads_split(t, h) for t in (q_in, k_in, v_in))
    scale = q.shape[-1] ** -0.5
    out = torch.zeros(q.shape[0], q.shape[1], v.shape[2], dtype=q.dtype)
    step = 5
    for i in range(0, q.shape[1], step):
        s = torch.einsum("b i d, b j d -> b i j", q[:, i : i + step], k) * scale
        out[:, i : i + step] = torch.einsum("b i j, b j d -> b i d", s.softmax(dim=-1), v)
    return self.to_out(_heads_merge(out, h))


def manual_forward(
    self: Any, x: torch.Tensor, context: torch.Tensor | None = None, mask: Any = None, **kwargs: Any
) -> torch.Tensor:
    """The ``q = to_q(x); context = default(context, x); k = to_k(context); v = to_v(context)`` shape, manual softmax."""
    q = self.to_q(x)
    context = _default(context, x)
    k = self.to_k(context)
    v = self.to_v(context)
    h = self.heads
    q, k, v = (_heads_split(t, h) for t in (q, k, v))
    sim = torch.einsum("b i d, b j d -> b i j", q.float(), k.float()) * (q.shape[-1] ** -0.5)
    sim = sim - sim.amax(dim=-1, keepdim=True)
    weights = sim.exp()
    weights = weights / weights.sum(dim=-1, keepdim=True)
    out = torch.einsum("b i j, b j d -> b i d", weights.to(v.dtype), v)
    return self.to_out(_heads_merge(out, h))


def v_first_forward(
    self: Any, x: torch.Tensor, context: torch.Tensor | None = None, mask: Any = None, **kwargs: Any
) -> torch.Tensor:
    """Calls ``to_v`` before ``to_k``."""
    q = self.to_q(x)
    context = _default(context, x)
    v = self.to_v(context)
    k = self.to_k(context)
    return _plain_attention(self, q, k, v)


HOST_FORWARDS = {
    "sdp": sdp_forward,
    "sliced": sliced_forward,
    "manual": manual_forward,
    "v_first": v_first_forward,
}


@contextlib.contextmanager
def swapped_forward(forward: Callable[..., Any], cls: type = CrossAttention) -> Iterator[None]:
    """Replace ``cls.forward`` at class level (as A1111 does), restoring it on exit."""
    original = cls.__dict__["forward"]
    cls.forward = forward
    try:
        yield
    finally:
        cls.forward = original


def reference_output(
    unet: torch.nn.Module, inputs: dict[str, torch.Tensor], stack: Stack, context: torch.Tensor | None = None
) -> torch.Tensor:
    """The UNet output with A1111's formula (the engine must not be active on ``unet``)."""
    assert not any(m._forward_pre_hooks for m in unet.modules()), "engine hooks are active during a reference run"
    with swapped_forward(make_reference_forward(stack)):
        return run_unet(unet, inputs, context)


def xformers_stub() -> types.SimpleNamespace:
    """Stands in for ``xformers`` so that ``MemoryEfficientCrossAttention.forward`` runs on CPU."""

    def memory_efficient_attention(
        q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_bias: Any = None, op: Any = None
    ) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v)

    return types.SimpleNamespace(ops=types.SimpleNamespace(memory_efficient_attention=memory_efficient_attention))
