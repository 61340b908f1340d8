"""Stand-in of ``modules/sd_hijack_optimizations.py``: the A1111 optimizer list (names, labels, cmd_opts,
priorities) and one attention forward per optimizer, written from scratch for CPU.

Every forward does what A1111's do around the math: ``context = default(context, x)``, ``to_q(x)``,
``hypernetwork.apply_hypernetworks(shared.loaded_hypernetworks, context)`` (looked up at call time, so patching
that module attribute works), ``to_k(context_k)``, ``to_v(context_v)``, attention, ``to_out``. The variants
split the work differently (query slices, head pairs, kv chunks with online softmax, SDPA, b-n-h-d layout) but
agree numerically to a few 1e-6. ``xformers`` is emulated with plain math and is always available.
"""
from __future__ import annotations

import math

import ldm.modules.attention
import torch
import torch.nn.functional as F
from einops import rearrange
from ldm.util import default

from modules import devices, shared
from modules.hypernetworks import hypernetwork

try:  # sgm (SDXL) is not a dependency of the stand-in; patch it too when present, like A1111
    import sgm.modules.attention as _sgm_attention
except ImportError:
    _sgm_attention = None


def _set_forward(fn) -> None:
    ldm.modules.attention.CrossAttention.forward = fn
    if _sgm_attention is not None:
        _sgm_attention.CrossAttention.forward = fn


class SdOptimization:
    name: str = None
    label: str | None = None
    cmd_opt: str | None = None
    priority: int = 0

    def title(self) -> str:
        return self.name if self.label is None else f"{self.name} - {self.label}"

    def is_available(self) -> bool:
        return True

    def apply(self) -> None:
        pass

    def undo(self) -> None:
        _set_forward(hypernetwork.attention_CrossAttention_forward)


class SdOptimizationXformers(SdOptimization):
    name = "xformers"
    cmd_opt = "xformers"
    priority = 100

    def apply(self):
        _set_forward(xformers_attention_forward)


class SdOptimizationSdpNoMem(SdOptimization):
    name = "sdp-no-mem"
    label = "scaled dot product without memory efficient attention"
    cmd_opt = "opt_sdp_no_mem_attention"
    priority = 80

    def is_available(self):
        return callable(getattr(F, "scaled_dot_product_attention", None))

    def apply(self):
        _set_forward(scaled_dot_product_no_mem_attention_forward)


class SdOptimizationSdp(SdOptimizationSdpNoMem):
    name = "sdp"
    label = "scaled dot product"
    cmd_opt = "opt_sdp_attention"
    priority = 70

    def apply(self):
        _set_forward(scaled_dot_product_attention_forward)


class SdOptimizationSubQuad(SdOptimization):
    name = "sub-quadratic"
    cmd_opt = "opt_sub_quad_attention"

    @property
    def priority(self):
        return 1000 if devices.device.type == "mps" else 10

    def apply(self):
        _set_forward(sub_quad_attention_forward)


class SdOptimizationV1(SdOptimization):
    name = "V1"
    label = "original v1"
    cmd_opt = "opt_split_attention_v1"
    priority = 10

    def apply(self):
        _set_forward(split_cross_attention_forward_v1)


class SdOptimizationInvokeAI(SdOptimization):
    name = "InvokeAI"
    cmd_opt = "opt_split_attention_invokeai"

    @property
    def priority(self):
        # A1111: 1000 on CPU-only machines (no CUDA, no MPS), else 10
        return 1000 if devices.device.type != "mps" and not torch.cuda.is_available() else 10

    def apply(self):
        _set_forward(split_cross_attention_forward_invokeAI)


class SdOptimizationDoggettx(SdOptimization):
    name = "Doggettx"
    cmd_opt = "opt_split_attention"
    priority = 90

    def apply(self):
        _set_forward(split_cross_attention_forward)


def list_optimizers(res: list) -> None:
    """The ``on_list_optimizers`` callback registered by initialize_rest."""
    res.extend([SdOptimizationXformers(), SdOptimizationSdpNoMem(), SdOptimizationSdp(), SdOptimizationSubQuad(),
                SdOptimizationV1(), SdOptimizationInvokeAI(), SdOptimizationDoggettx()])


# ---------------------------------------------------------------- shared pieces

def _project(self, x: torch.Tensor, context: torch.Tensor | None):
    """q, k, v projections with hypernetworks applied to the k/v inputs (A1111 order)."""
    context = default(context, x)
    q = self.to_q(x)
    context_k, context_v = hypernetwork.apply_hypernetworks(shared.loaded_hypernetworks, context)
    k = self.to_k(context_k)
    v = self.to_v(context_v)
    if shared.opts.upcast_attn:
        q, k, v = q.float(), k.float(), v.float()
    return q, k, v


def _heads_first(self, *ts: torch.Tensor):
    return tuple(rearrange(t, "b n (h d) -> (b h) n d", h=self.heads) for t in ts)


def _finish(self, out: torch.Tensor, dtype: torch.dtype, layout: str = "(b h) n d -> b n (h d)") -> torch.Tensor:
    return self.to_out(rearrange(out.to(dtype), layout, h=self.heads))


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None) -> torch.Tensor:
    scores = torch.bmm(q, k.transpose(1, 2))
    if scale is not None:
        scores = scores * scale
    return torch.bmm(scores.softmax(dim=-1), v)


# ---------------------------------------------------------------- forwards

def split_cross_attention_forward_v1(self, x, context=None, mask=None, **kwargs):
    """"V1": loop over (batch*heads) two at a time."""
    q, k, v = _project(self, x, context)
    dtype = x.dtype
    q, k, v = _heads_first(self, q, k, v)
    out = torch.empty(q.shape[0], q.shape[1], v.shape[2], dtype=q.dtype, device=q.device)
    for i in range(0, q.shape[0], 2):
        out[i:i + 2] = _attend(q[i:i + 2], k[i:i + 2], v[i:i + 2], self.scale)
    return _finish(self, out, dtype)


def split_cross_attention_forward(self, x, context=None, mask=None, **kwargs):
    """"Doggettx": pre-scaled keys, queries processed in slices (4 slices when there are >= 8 queries)."""
    q, k, v = _project(self, x, context)
    dtype = x.dtype
    q, k, v = _heads_first(self, q, k * self.scale, v)
    n = q.shape[1]
    step = max(1, n // 4) if n >= 8 else n
    out = torch.empty(q.shape[0], n, v.shape[2], dtype=q.dtype, device=q.device)
    for i in range(0, n, step):
        out[:, i:i + step] = _attend(q[:, i:i + step], k, v, None)
    return _finish(self, out, dtype)


def split_cross_attention_forward_invokeAI(self, x, context=None, mask=None, **kwargs):
    """"InvokeAI": slices of 32 query tokens for each (batch*head) slice of 4."""
    q, k, v = _project(self, x, context)
    dtype = x.dtype
    q, k, v = _heads_first(self, q, k, v)
    out = torch.empty(q.shape[0], q.shape[1], v.shape[2], dtype=q.dtype, device=q.device)
    for b in range(0, q.shape[0], 4):
        for i in range(0, q.shape[1], 32):
            out[b:b + 4, i:i + 32] = _attend(q[b:b + 4, i:i + 32], k[b:b + 4], v[b:b + 4], self.scale)
    return _finish(self, out, dtype)


def sub_quad_attention_forward(self, x, context=None, mask=None, **kwargs):
    """"sub-quadratic": keys/values in chunks of 32 with a running (max, sum) softmax; asserts mask is None."""
    assert mask is None, "attention-mask not currently implemented for SubQuadraticCrossAttnProcessor."
    q, k, v = _project(self, x, context)
    dtype = x.dtype
    q, k, v = _heads_first(self, q, k, v)
    q = q * self.scale
    acc = torch.zeros(q.shape[0], q.shape[1], v.shape[2], dtype=q.dtype, device=q.device)
    total = torch.zeros(q.shape[0], q.shape[1], 1, dtype=q.dtype, device=q.device)
    running_max = torch.full((q.shape[0], q.shape[1], 1), -math.inf, dtype=q.dtype, device=q.device)
    for j in range(0, k.shape[1], 32):
        s = torch.bmm(q, k[:, j:j + 32].transpose(1, 2))
        new_max = torch.maximum(running_max, s.amax(dim=-1, keepdim=True))
        correction = torch.exp(running_max - new_max)
        weights = torch.exp(s - new_max)
        acc = acc * correction + torch.bmm(weights, v[:, j:j + 32])
        total = total * correction + weights.sum(dim=-1, keepdim=True)
        running_max = new_max
    return _finish(self, acc / total, dtype)


def xformers_attention_forward(self, x, context=None, mask=None, **kwargs):
    """"xformers" emulated: (b, n, h, d) layout as xformers.ops.memory_efficient_attention uses, plain math."""
    q, k, v = _project(self, x, context)
    dtype = x.dtype
    q, k, v = (rearrange(t, "b n (h d) -> b n h d", h=self.heads) for t in (q, k, v))
    weights = torch.einsum("bnhd,bmhd->bhnm", q, k).mul(q.shape[-1] ** -0.5).softmax(dim=-1)
    out = torch.einsum("bhnm,bmhd->bnhd", weights, v)
    return _finish(self, out, dtype, "b n h d -> b n (h d)")


def scaled_dot_product_attention_forward(self, x, context=None, mask=None, **kwargs):
    """"sdp": torch.nn.functional.scaled_dot_product_attention in (b, h, n, d) layout."""
    q, k, v = _project(self, x, context)
    dtype = x.dtype
    q, k, v = (rearrange(t, "b n (h d) -> b h n d", h=self.heads) for t in (q, k, v))
    if mask is not None:
        mask = rearrange(mask, "b ... -> b (...)")[:, None, None, :]
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0, is_causal=False)
    return _finish(self, out, dtype, "b h n d -> b n (h d)")


def scaled_dot_product_no_mem_attention_forward(self, x, context=None, mask=None, **kwargs):
    """"sdp-no-mem": the sdp forward restricted to the math backend."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:
        return scaled_dot_product_attention_forward(self, x, context, mask)
    with sdpa_kernel([SDPBackend.MATH]):
        return scaled_dot_product_attention_forward(self, x, context, mask)
