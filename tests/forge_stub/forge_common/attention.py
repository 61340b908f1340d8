"""The transformer blocks of Forge 2 (``backend/nn/unet.py:133-300``) and reForge
(``ldm_patched/ldm/modules/attention.py``), with their patch semantics, and a tiny UNet around them.

``BasicTransformerBlock._forward`` follows the hosts exactly where an extension can observe it:

- ``attn1_patch``: ``context_attn1 = n`` (when the block has no ``disable_self_attn``),
  ``value_attn1 = context_attn1``, then ``n, context_attn1, value_attn1 = p(n, context_attn1, value_attn1,
  extra_options)`` for each patch in order; ``attn1(n, context=context_attn1, value=value_attn1)``.
- ``attn2_patch``: the same with ``context_attn2 = value_attn2 = context`` (the text context).
- ``attn1``/``attn2`` replace patches keyed by ``(block[0], block[1], block_index)`` or ``block``: the block
  runs ``to_q``/``to_k``/``to_v`` on what the patches returned, then the replacement, then ``to_out``.
- ``attn1_output_patch``/``attn2_output_patch`` on the attention output.
- ``extra_options``: every transformer option except the patch dicts, plus ``n_heads`` and ``dim_head``.

The UNet sets ``block = ("input"|"middle"|"output", id)``, ``block_index``, ``original_shape`` and
``transformer_index`` in ``transformer_options`` like the hosts' UNet forward.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def attention_function(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, mask=None) -> torch.Tensor:
    """``backend/attention.py`` ``attention_pytorch``."""
    b, _, dim_head = q.shape
    dim_head //= heads
    q, k, v = (t.view(b, -1, heads, dim_head).transpose(1, 2) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0, is_causal=False)
    return out.transpose(1, 2).reshape(b, -1, heads * dim_head)


class CrossAttention(nn.Module):
    linear_class: type[nn.Module] = nn.Linear

    def __init__(self, query_dim: int, context_dim: int | None = None, heads: int = 8, dim_head: int = 64):
        super().__init__()
        inner_dim = dim_head * heads
        context_dim = context_dim if context_dim is not None else query_dim
        self.heads = heads
        self.dim_head = dim_head
        linear = self.linear_class
        self.to_q = linear(query_dim, inner_dim, bias=False)
        self.to_k = linear(context_dim, inner_dim, bias=False)
        self.to_v = linear(context_dim, inner_dim, bias=False)
        self.to_out = nn.Sequential(linear(inner_dim, query_dim), nn.Dropout(0.0))

    def forward(self, x, context=None, value=None, mask=None, transformer_options={}):  # noqa: B006 (as the hosts)
        q = self.to_q(x)
        context = x if context is None else context
        k = self.to_k(context)
        v = self.to_v(value) if value is not None else self.to_v(context)
        return self.to_out(attention_function(q, k, v, self.heads, mask))


class FeedForward(nn.Module):
    def __init__(self, dim: int, linear: type[nn.Module], mult: int = 2):
        super().__init__()
        self.net = nn.Sequential(linear(dim, dim * mult), nn.GELU(), linear(dim * mult, dim))

    def forward(self, x):
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    def __init__(self, dim: int, n_heads: int, d_head: int, context_dim: int, attention_class: type[CrossAttention],
                 disable_self_attn: bool = False):
        super().__init__()
        self.disable_self_attn = disable_self_attn
        self.attn1 = attention_class(dim, context_dim=context_dim if disable_self_attn else None, heads=n_heads, dim_head=d_head)
        self.attn2 = attention_class(dim, context_dim=context_dim, heads=n_heads, dim_head=d_head)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ff = FeedForward(dim, attention_class.linear_class)
        self.n_heads = n_heads
        self.d_head = d_head

    def forward(self, x, context=None, transformer_options={}):  # noqa: B006
        return self._forward(x, context, transformer_options)

    def _forward(self, x, context=None, transformer_options={}):  # noqa: B006
        extra_options: dict[str, Any] = {}
        block = transformer_options.get("block", None)
        block_index = transformer_options.get("block_index", 0)
        transformer_patches: dict[str, Any] = {}
        transformer_patches_replace: dict[str, Any] = {}
        for k in transformer_options:
            if k == "patches":
                transformer_patches = transformer_options[k]
            elif k == "patches_replace":
                transformer_patches_replace = transformer_options[k]
            else:
                extra_options[k] = transformer_options[k]
        extra_options["n_heads"] = self.n_heads
        extra_options["dim_head"] = self.d_head

        n = self.norm1(x)
        context_attn1 = context if self.disable_self_attn else None
        value_attn1 = None
        if "attn1_patch" in transformer_patches:
            if context_attn1 is None:
                context_attn1 = n
            value_attn1 = context_attn1
            for p in transformer_patches["attn1_patch"]:
                n, context_attn1, value_attn1 = p(n, context_attn1, value_attn1, extra_options)
        transformer_block = (block[0], block[1], block_index) if block is not None else None
        attn1_replace = transformer_patches_replace.get("attn1", {})
        key = transformer_block if transformer_block in attn1_replace else block
        if key in attn1_replace:
            if context_attn1 is None:
                context_attn1 = n
                value_attn1 = n
            n = self.attn1.to_q(n)
            context_attn1 = self.attn1.to_k(context_attn1)
            value_attn1 = self.attn1.to_v(value_attn1)
            n = attn1_replace[key](n, context_attn1, value_attn1, extra_options)
            n = self.attn1.to_out(n)
        else:
            n = self.attn1(n, context=context_attn1, value=value_attn1, transformer_options=extra_options)
        for p in transformer_patches.get("attn1_output_patch", []):
            n = p(n, extra_options)
        x = x + n

        n = self.norm2(x)
        context_attn2 = context
        value_attn2 = None
        if "attn2_patch" in transformer_patches:
            value_attn2 = context_attn2
            for p in transformer_patches["attn2_patch"]:
                n, context_attn2, value_attn2 = p(n, context_attn2, value_attn2, extra_options)
        attn2_replace = transformer_patches_replace.get("attn2", {})
        key = transformer_block if transformer_block in attn2_replace else block
        if key in attn2_replace:
            if value_attn2 is None:
                value_attn2 = context_attn2
            n = self.attn2.to_q(n)
            context_attn2 = self.attn2.to_k(context_attn2)
            value_attn2 = self.attn2.to_v(value_attn2)
            n = attn2_replace[key](n, context_attn2, value_attn2, extra_options)
            n = self.attn2.to_out(n)
        else:
            n = self.attn2(n, context=context_attn2, value=value_attn2, transformer_options=extra_options)
        for p in transformer_patches.get("attn2_output_patch", []):
            n = p(n, extra_options)
        x = x + n
        return x + self.ff(self.norm3(x))


class SpatialTransformer(nn.Module):
    def __init__(self, channels: int, n_heads: int, d_head: int, context_dim: int, attention_class: type[CrossAttention],
                 depth: int = 1):
        super().__init__()
        inner = n_heads * d_head
        self.norm = nn.GroupNorm(8, channels, eps=1e-6)
        self.proj_in = attention_class.linear_class(channels, inner)
        self.transformer_blocks = nn.ModuleList(
            [BasicTransformerBlock(inner, n_heads, d_head, context_dim, attention_class) for _ in range(depth)]
        )
        self.proj_out = attention_class.linear_class(inner, channels)

    def forward(self, x, context=None, transformer_options={}):  # noqa: B006
        b, c, h, w = x.shape
        x_in = x
        x = self.proj_in(self.norm(x).flatten(2).transpose(1, 2).contiguous())
        for i, block in enumerate(self.transformer_blocks):
            transformer_options["block_index"] = i
            x = block(x, context=context, transformer_options=transformer_options)
        x = self.proj_out(x).transpose(1, 2).reshape(b, c, h, w)
        return x + x_in


class ResBlock(nn.Module):
    def __init__(self, channels: int, out_channels: int, emb_dim: int, linear: type[nn.Module]):
        super().__init__()
        self.norm = nn.GroupNorm(8, channels)
        self.conv = nn.Conv2d(channels, out_channels, 3, padding=1)
        self.emb = linear(emb_dim, out_channels)
        self.skip = nn.Conv2d(channels, out_channels, 1) if channels != out_channels else nn.Identity()

    def forward(self, x, emb):
        h = self.conv(F.silu(self.norm(x))) + self.emb(F.silu(emb))[:, :, None, None]
        return self.skip(x) + h


class TimestepBlock(nn.Module):
    def __init__(self, res: ResBlock, transformer: SpatialTransformer | None):
        super().__init__()
        self.res = res
        self.transformer = transformer

    def forward(self, x, emb, context, transformer_options):
        x = self.res(x, emb)
        if self.transformer is not None:
            x = self.transformer(x, context=context, transformer_options=transformer_options)
        return x


def timestep_embedding(timesteps: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half)
    args = timesteps[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class TinyUNet(nn.Module):
    """input blocks (with attention at two widths) → middle → output blocks, like the hosts' UNet forward."""

    def __init__(self, context_dim: int, attention_class: type[CrossAttention], channels: tuple[int, ...] = (32, 64),
                 d_head: int = 8):
        super().__init__()
        linear = attention_class.linear_class
        self.context_dim = context_dim
        self.model_channels = channels[0]
        emb_dim = 4 * channels[0]
        self.time_embed = nn.Sequential(linear(channels[0], emb_dim), nn.SiLU(), linear(emb_dim, emb_dim))
        self.conv_in = nn.Conv2d(4, channels[0], 3, padding=1)

        def attn(c: int) -> SpatialTransformer:
            return SpatialTransformer(c, c // d_head, d_head, context_dim, attention_class)

        self.input_blocks = nn.ModuleList()
        prev = channels[0]
        for c in channels:
            self.input_blocks.append(TimestepBlock(ResBlock(prev, c, emb_dim, linear), attn(c)))
            prev = c
        self.middle_block = TimestepBlock(ResBlock(prev, prev, emb_dim, linear), attn(prev))
        self.output_blocks = nn.ModuleList()
        for c in reversed(channels):
            self.output_blocks.append(TimestepBlock(ResBlock(prev + c, c, emb_dim, linear), attn(c)))
            prev = c
        self.out = nn.Sequential(nn.GroupNorm(8, prev), nn.SiLU(), nn.Conv2d(prev, 4, 3, padding=1))

    def forward(self, x, timesteps=None, context=None, transformer_options={}, **kwargs):  # noqa: B006
        transformer_options["original_shape"] = list(x.shape)
        transformer_options["transformer_index"] = 0
        emb = self.time_embed(timestep_embedding(timesteps, self.model_channels).to(x.dtype))
        h = self.conv_in(x)
        hs = []
        for i, module in enumerate(self.input_blocks):
            transformer_options["block"] = ("input", i)
            h = module(h, emb, context, transformer_options)
            hs.append(h)
        transformer_options["block"] = ("middle", 0)
        h = self.middle_block(h, emb, context, transformer_options)
        for i, module in enumerate(self.output_blocks):
            transformer_options["block"] = ("output", i)
            h = module(torch.cat([h, hs.pop()], dim=1), emb, context, transformer_options)
        transformer_options["block"] = ("last", 0)
        return self.out(h)


def seeded_state_dict(model: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Random weights for every parameter the model will have once loaded (ForgeLinear: weight + bias)."""
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        if hasattr(module, "dummy") or isinstance(module, nn.Linear):
            shape = (module.out_features, module.in_features)
            state[prefix + "weight"] = torch.randn(shape, generator=gen) / math.sqrt(shape[1])
            if getattr(module, "has_bias", getattr(module, "bias", None) is not None):
                state[prefix + "bias"] = 0.02 * torch.randn(shape[0], generator=gen)
        elif isinstance(module, (nn.Conv2d, nn.GroupNorm, nn.LayerNorm)):
            for pname, p in module.named_parameters(recurse=False):
                if p.dim() > 1:
                    state[prefix + pname] = torch.randn(p.shape, generator=gen) / math.sqrt(p[0].numel())
                elif pname == "weight":
                    state[prefix + pname] = 1 + 0.1 * torch.randn(p.shape, generator=gen)
                else:
                    state[prefix + pname] = 0.02 * torch.randn(p.shape, generator=gen)
    return state
