"""Apply engine: exactness against A1111's formula on a real ldm UNet and on single attention modules.

The reference is A1111's unoptimized attention forward (``context = default(context, x)``, then
``apply_hypernetworks(context, stack)``, then ``to_k``/``to_v``), written out here and swapped in at
class level; the engine runs with ldm's own forward (or other host forwards) and must agree.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from engine_util import (
    CONTEXT_DIM,
    HOST_FORWARDS,
    LDM_FORWARD,
    CrossAttention,
    MemoryEfficientCrossAttention,
    assert_exact,
    ldm_attention,
    make_hn,
    make_reference_forward,
    make_unet,
    reference_output,
    reinit_,
    run_unet,
    swapped_forward,
    xformers_stub,
)
from hn_testutil import stack_params

import lib_hypernet
from lib_hypernet.engine import fusable
from lib_hypernet.model.activations import creatable_activations


def assert_visible(out: torch.Tensor, base: torch.Tensor) -> None:
    diff = (out - base).abs().max().item()
    assert diff > 1e-3, f"the hypernetwork barely changes the output ({diff:.3g}): the test would pass vacuously"


# ---------------------------------------------------------------------------- stacks
def _stack(case: str) -> list:
    """The stack of a named case."""
    if case == "single":
        return [(make_hn("single", seed=1), 1.0)]
    if case == "stack3_widths":
        return [
            (make_hn("a", (32, 48, 64), seed=2, activation_func="relu"), 0.8),
            (make_hn("b", (48,), seed=3, activation_func="gelu"), -0.5),
            (make_hn("c", (32,), seed=4, activation_func="tanh"), 1.3),
        ]
    if case == "negative":
        return [(make_hn("neg", seed=5), -0.7)]
    if case == "ln_1221":
        return [(make_hn("ln", seed=6, layer_structure=[1, 2, 2, 1], is_layer_norm=True), 0.9)]
    if case == "activate_output":
        return [(make_hn("ao", seed=7, activation_func="tanh", activate_output=True, is_layer_norm=True), 1.0)]
    if case == "activate_output_swish":
        return [(make_hn("ao2", seed=8, activation_func="swish", activate_output=True, layer_structure=[1, 1.5, 1]), 1.0)]
    if case == "dropout":
        hn = make_hn(
            "drop", seed=9, activation_func="elu", layer_structure=[1, 2, 2, 1], is_layer_norm=True,
            use_dropout=True, dropout_structure=[0, 0.3, 0.3, 0],
        )
        assert any(isinstance(layer, torch.nn.Dropout) for m in hn.modules() for layer in m.linear)
        return [(hn, 1.0)]
    if case == "linear_none":
        return [
            (make_hn("lin", seed=10, activation_func="linear"), 0.6),
            (make_hn("none", seed=11, activation_func=None), 0.4),
        ]
    if case.startswith("act_"):
        act = case[4:]
        return [(make_hn(case, seed=12, activation_func=act), 0.8)]
    if case == "mixed_paths":
        return [
            (make_hn("fused", seed=13, activation_func="relu"), 1.0),
            (make_hn("softmax", seed=14, activation_func="softmax"), 0.7),
            (make_hn("fused2", seed=15, activation_func="gelu"), -0.4),
        ]
    raise AssertionError(case)


FUSED_ACTS = ["relu", "gelu", "swish", "tanh", "elu", "leakyrelu", "sigmoid", "mish", "hardswish", "silu"]
REFERENCE_ACTS = ["softmax", "prelu", "softmin", "logsoftmax"]
CASES = [
    "single", "stack3_widths", "negative", "ln_1221", "activate_output", "activate_output_swish", "dropout",
    "linear_none", "mixed_paths",
    *(f"act_{a}" for a in FUSED_ACTS + REFERENCE_ACTS),
]


SDP_CASES = ["single", "stack3_widths", "ln_1221", "mixed_paths", "act_softmax", "act_prelu"]


@pytest.mark.parametrize(
    ("case", "host"), [(case, "ldm") for case in CASES] + [(case, "sdp") for case in SDP_CASES]
)
def test_unet_matches_a1111_formula(case: str, host: str, unet, inputs, base, handle) -> None:
    stack = _stack(case)
    if case.startswith("act_"):
        act = case[4:]
        assert fusable(act) == (act in FUSED_ACTS), "the case no longer exercises the path it is named for"
    ref = reference_output(unet, inputs, stack)
    assert_visible(ref, base)
    handle.activate(stack)
    assert handle.active
    with swapped_forward(LDM_FORWARD if host == "ldm" else HOST_FORWARDS["sdp"]):
        out = run_unet(unet, inputs)
        again = run_unet(unet, inputs)
    assert_exact(out, ref)
    assert torch.equal(out, again), "not deterministic (dropout active?)"
    handle.deactivate()
    assert torch.equal(run_unet(unet, inputs), base)


def test_same_hypernetwork_twice_has_independent_strengths(unet, inputs, base, handle) -> None:
    hn = make_hn("twice", seed=20, std=0.12, activation_func="elu")
    hn_a = make_hn("twice", seed=20, std=0.12, activation_func="elu")
    hn_b = make_hn("twice", seed=20, std=0.12, activation_func="elu")
    ref_two_objects = reference_output(unet, inputs, [(hn_a, 0.5), (hn_b, 1.0)])
    ref_last_multiplier = reference_output(unet, inputs, [(hn_a, 1.0), (hn_b, 1.0)])
    assert (ref_two_objects - ref_last_multiplier).abs().max() > 1e-3
    handle.activate([(hn, 0.5), (hn, 1.0)])
    out = run_unet(unet, inputs)
    assert_exact(out, ref_two_objects)
    # the reused-object reference (what A1111 would give with one object) is NOT what we compute
    assert (out - ref_last_multiplier).abs().max() > 1e-3


def test_stack_order_matters(unet, inputs, handle) -> None:
    a, b = make_hn("a", seed=21, activation_func="tanh"), make_hn("b", seed=22, activation_func="relu")
    ref_ab = reference_output(unet, inputs, [(a, 1.0), (b, 1.0)])
    ref_ba = reference_output(unet, inputs, [(b, 1.0), (a, 1.0)])
    assert (ref_ab - ref_ba).abs().max() > 1e-4
    handle.activate([(b, 1.0), (a, 1.0)])
    assert_exact(run_unet(unet, inputs), ref_ba)
    handle.activate([(a, 1.0), (b, 1.0)])
    assert_exact(run_unet(unet, inputs), ref_ab)


# ---------------------------------------------------------------------------- class-level forward swaps
@pytest.mark.parametrize("host", sorted(HOST_FORWARDS))
def test_survives_class_level_forward_swap(host: str, unet, inputs, base, handle) -> None:
    stack = [(make_hn("swap", seed=30, activation_func="gelu"), 0.9), (make_hn("swap2", (48,), seed=31), -0.6)]
    ref = reference_output(unet, inputs, stack)
    handle.activate(stack)
    with swapped_forward(HOST_FORWARDS[host]):
        assert CrossAttention.forward is HOST_FORWARDS[host]
        out = run_unet(unet, inputs)
        handle.deactivate()
        plain = run_unet(unet, inputs)
        handle.activate(stack)
        again = run_unet(unet, inputs)
    assert CrossAttention.forward is LDM_FORWARD
    assert_exact(out, ref)
    assert_exact(again, ref)
    assert_visible(out, plain)
    assert_exact(plain, base)


def test_forward_swapped_back_and_forth_while_active(unet, inputs, handle) -> None:
    stack = [(make_hn("flip", seed=32), 1.0)]
    ref = reference_output(unet, inputs, stack)
    handle.activate(stack)
    for host in ["sdp", "sliced", "manual", "v_first", "sdp"]:
        with swapped_forward(HOST_FORWARDS[host]):
            assert_exact(run_unet(unet, inputs), ref)
        assert_exact(run_unet(unet, inputs), ref)


# ---------------------------------------------------------------------------- single attention modules
def _attention(cls: type, seed: int, context_dim: int | None) -> torch.nn.Module:
    torch.manual_seed(seed)
    attn = cls(query_dim=32, context_dim=context_dim, heads=4, dim_head=8)
    return reinit_(attn, seed).eval()


@pytest.mark.parametrize("activation", ["relu", "softmax", "prelu"])
@pytest.mark.parametrize("cls_name", ["CrossAttention", "MemoryEfficientCrossAttention"])
def test_single_attention_module(cls_name: str, activation: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cls = {"CrossAttention": CrossAttention, "MemoryEfficientCrossAttention": MemoryEfficientCrossAttention}[cls_name]
    if cls is MemoryEfficientCrossAttention:
        monkeypatch.setattr(ldm_attention, "xformers", xformers_stub(), raising=False)
    attn1, attn2 = _attention(cls, 40, None), _attention(cls, 41, CONTEXT_DIM)  # like a transformer block's
    gen = torch.Generator().manual_seed(41)
    x = torch.randn(2, 9, 32, generator=gen)
    ctx = torch.randn(2, 7, CONTEXT_DIM, generator=gen)
    stack = [
        (make_hn("m1", (32, CONTEXT_DIM), seed=42, activation_func=activation), 0.8),
        (make_hn("m2", (CONTEXT_DIM,), seed=43, activation_func="tanh", is_layer_norm=True), -0.5),
    ]
    with torch.no_grad():
        base_self, base_cross = attn1(x), attn2(x, context=ctx)
        with swapped_forward(make_reference_forward(stack), cls):
            ref_self, ref_cross = attn1(x), attn2(x, context=ctx)
        handles = [lib_hypernet.install(attn1), lib_hypernet.install(attn2)]
        try:
            for h in handles:
                h.activate(stack)
            out_self, out_cross = attn1(x), attn2(x, context=ctx)
            reports = [h.report() for h in handles]
        finally:
            for h in handles:
                h.remove()
        after_self, after_cross = attn1(x), attn2(x, context=ctx)
    assert_visible(ref_self, base_self)
    assert_visible(ref_cross, base_cross)
    assert_exact(out_self, ref_self)
    assert_exact(out_cross, ref_cross)
    assert torch.equal(after_self, base_self) and torch.equal(after_cross, base_cross)
    assert [r.layers for r in reports[0]] == [{("self", 32): 1}, {}]
    assert [r.layers for r in reports[1]] == [{("cross", CONTEXT_DIM): 1}, {("cross", CONTEXT_DIM): 1}]


def test_self_attention_with_square_width_module() -> None:
    """query_dim == context_dim: only the call decides self vs cross, never the width."""
    torch.manual_seed(44)
    attn = reinit_(CrossAttention(query_dim=CONTEXT_DIM, context_dim=CONTEXT_DIM, heads=2, dim_head=8), 44).eval()
    gen = torch.Generator().manual_seed(45)
    x, ctx = torch.randn(2, 9, CONTEXT_DIM, generator=gen), torch.randn(2, 7, CONTEXT_DIM, generator=gen)
    stack = [(make_hn("sq", (CONTEXT_DIM,), seed=46), lib_hypernet.Strength(self_attn=0.5, cross_attn=-1.0))]
    with torch.no_grad():
        with swapped_forward(make_reference_forward(stack)):
            ref_self, ref_cross = attn(x), attn(x, context=ctx)
        with lib_hypernet.install(attn) as handle:
            handle.activate(stack)
            out_self, out_cross = attn(x), attn(x, context=ctx)
            # a cross call whose context is a *different* tensor with the same values as x is still cross
            out_cross_same_values = attn(x, context=x.clone())
        with swapped_forward(make_reference_forward(stack)):
            ref_cross_same_values = attn(x, context=x.clone())
    assert_exact(out_self, ref_self)
    assert_exact(out_cross, ref_cross)
    assert_exact(out_cross_same_values, ref_cross_same_values)


# ---------------------------------------------------------------------------- the A1111 fixtures
def _fixture_stack(stack: dict, fixtures_dir: Path) -> list:
    objects: dict[str, lib_hypernet.Hypernetwork] = {}
    result = []
    for member in stack["members"]:
        hn = objects.get(member["object"])
        if hn is None:
            hn = objects[member["object"]] = lib_hypernet.load(fixtures_dir / member["file"])
        result.append((hn, member["effective_multiplier"]))
    return result


@pytest.mark.parametrize("stack_name", stack_params())
def test_fixture_stacks_through_the_engine(stack_name: str, manifest: dict, fixtures_dir: Path, expected: dict) -> None:
    stack_spec = next(s for s in manifest["stacks"] if s["stack"] == stack_name)
    stack = _fixture_stack(stack_spec, fixtures_dir)
    if stack_name == "stack6":
        assert stack[0][0] is stack[1][0] and [m for _, m in stack] == [1.0, 1.0]
    for dim in stack_spec["dims"]:
        ctx = expected[f"{stack_name}/ctx/{dim}"]
        want_k, want_v = expected[f"{stack_name}/k/{dim}"], expected[f"{stack_name}/v/{dim}"]
        torch.manual_seed(dim)
        attn = CrossAttention(query_dim=dim, context_dim=dim, heads=1, dim_head=dim).eval()
        seen: dict[str, torch.Tensor] = {}
        captures = [
            attn.to_k.register_forward_hook(lambda m, args, out, seen=seen: seen.__setitem__("k", args[0].clone())),
            attn.to_v.register_forward_hook(lambda m, args, out, seen=seen: seen.__setitem__("v", args[0].clone())),
        ]
        xq = torch.randn(ctx.shape[0], 3, dim)
        outs = {}
        try:
            with lib_hypernet.install(attn) as handle, torch.no_grad():
                handle.activate(stack)
                for call in ("cross", "self"):
                    seen.clear()
                    outs[call] = attn(xq, context=ctx) if call == "cross" else attn(ctx)
                    torch.testing.assert_close(seen["k"], want_k, atol=1e-5, rtol=0, msg=f"{stack_name} {call} k {dim}")
                    torch.testing.assert_close(seen["v"], want_v, atol=1e-5, rtol=0, msg=f"{stack_name} {call} v {dim}")
        finally:
            for c in captures:
                c.remove()
        # and the attention output is the module's own output fed with A1111's ctx_k / ctx_v
        with torch.no_grad():
            torch.testing.assert_close(outs["cross"], _attend(attn, xq, want_k, want_v), atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(outs["self"], _attend(attn, ctx, want_k, want_v), atol=1e-5, rtol=1e-5)


def _attend(self: torch.nn.Module, x: torch.Tensor, context_k: torch.Tensor, context_v: torch.Tensor) -> torch.Tensor:
    """ldm's attention with the K/V inputs given explicitly (heads=1)."""
    q, k, v = self.to_q(x), self.to_k(context_k), self.to_v(context_v)
    sim = torch.einsum("b i d, b j d -> b i j", q, k) * self.scale
    return self.to_out(torch.einsum("b i j, b j d -> b i d", sim.softmax(dim=-1), v))


# ---------------------------------------------------------------------------- autograd
def test_autograd_falls_back_to_reference_and_gradients_flow(unet, inputs, handle) -> None:
    stack = [(make_hn("grad", seed=50, activation_func="gelu"), 0.8), (make_hn("grad2", (48,), seed=51), -0.3)]
    weight = torch.randn(inputs["x"].shape, generator=torch.Generator().manual_seed(52))

    def run(with_engine: bool) -> tuple[torch.Tensor, torch.Tensor]:
        ctx = inputs["context"].clone().requires_grad_(True)
        with torch.enable_grad():
            if with_engine:
                out = unet(inputs["x"], inputs["timesteps"], context=ctx)
            else:
                with swapped_forward(make_reference_forward(stack)):
                    out = unet(inputs["x"], inputs["timesteps"], context=ctx)
            (out * weight).sum().backward()
        unet.zero_grad(set_to_none=True)
        return out.detach(), ctx.grad

    ref_out, ref_grad = run(False)
    handle.activate(stack)
    out, grad = run(True)
    assert grad is not None and grad.abs().max() > 0
    assert_exact(out, ref_out)
    torch.testing.assert_close(grad, ref_grad, atol=1e-5, rtol=1e-4)
    handle.deactivate()
    _, plain_grad = run(True)
    assert (plain_grad - grad).abs().max() > 1e-4, "gradients do not see the hypernetwork"


def test_gradients_reach_hypernetwork_parameters(unet, inputs, handle) -> None:
    hn = make_hn("train", (48,), seed=53, activation_func="tanh")
    hn_ref = make_hn("train", (48,), seed=53, activation_func="tanh")
    for h in (hn, hn_ref):
        for m in h.modules():
            m.requires_grad_(True)
    with torch.enable_grad():
        with swapped_forward(make_reference_forward([(hn_ref, 1.0)])):
            run_ref = unet(inputs["x"], inputs["timesteps"], context=inputs["context"])
        run_ref.square().mean().backward()
        handle.activate([(hn, 1.0)])
        out = unet(inputs["x"], inputs["timesteps"], context=inputs["context"])
        out.square().mean().backward()
    unet.zero_grad(set_to_none=True)
    assert_exact(out.detach(), run_ref.detach())
    for p, p_ref in zip(hn.parameters(), hn_ref.parameters()):
        assert p.grad is not None
        torch.testing.assert_close(p.grad, p_ref.grad, atol=1e-6, rtol=1e-4)


# ldm's checkpoint uses deprecated torch autocast APIs
@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")
def test_gradient_checkpointing(inputs) -> None:
    """ldm's own checkpointing recomputes each block in backward: the hooks apply there too."""
    unet = make_unet(seed=54)
    for module in unet.modules():
        if hasattr(module, "checkpoint"):
            module.checkpoint = True
    stack = [(make_hn("ckpt", seed=55, activation_func="gelu"), 0.8)]

    def grads(with_engine: bool) -> tuple[torch.Tensor, torch.Tensor]:
        ctx = inputs["context"].clone().requires_grad_(True)
        with torch.enable_grad():
            if with_engine:
                out = unet(inputs["x"], inputs["timesteps"], context=ctx)
                out.square().sum().backward()
            else:  # the backward pass recomputes: keep the reference forward in place for it
                with swapped_forward(make_reference_forward(stack)):
                    out = unet(inputs["x"], inputs["timesteps"], context=ctx)
                    out.square().sum().backward()
        unet.zero_grad(set_to_none=True)
        return out.detach(), ctx.grad

    ref_out, ref_grad = grads(False)
    with lib_hypernet.install(unet) as handle:
        handle.activate(stack)
        out, grad = grads(True)
    assert_exact(out, ref_out)
    torch.testing.assert_close(grad, ref_grad, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("layer_norm", [False, True], ids=["plain", "ln"])
@pytest.mark.parametrize("activation", sorted(creatable_activations()))
def test_every_creatable_activation(activation: str, layer_norm: bool) -> None:
    """Every activation a hypernetwork can be created with, fused or not, gives A1111's K/V inputs."""
    torch.manual_seed(60)
    attn = reinit_(CrossAttention(query_dim=16, context_dim=CONTEXT_DIM, heads=2, dim_head=8), 60).eval()
    gen = torch.Generator().manual_seed(61)
    x, ctx = torch.randn(2, 5, 16, generator=gen), torch.randn(3, 7, CONTEXT_DIM, generator=gen)
    stack = [
        (make_hn(activation, (CONTEXT_DIM,), seed=62, activation_func=activation, activate_output=True,
                 layer_structure=[1, 2, 1.5, 1], is_layer_norm=layer_norm), 0.7),
        (make_hn("second", (CONTEXT_DIM,), seed=63, activation_func=activation), -0.4),
    ]
    seen: dict[str, torch.Tensor] = {}
    captures = [
        attn.to_k.register_forward_hook(lambda m, args, out: seen.__setitem__("k", args[0])),
        attn.to_v.register_forward_hook(lambda m, args, out: seen.__setitem__("v", args[0])),
    ]
    want_k, want_v = lib_hypernet.apply_hypernetworks(ctx, stack)
    try:
        with lib_hypernet.install(attn) as handle, torch.no_grad():
            handle.activate(stack)
            attn(x[:1].expand(3, -1, -1), context=ctx)
    finally:
        for c in captures:
            c.remove()
    assert (want_k - ctx).abs().max() > 1e-3
    torch.testing.assert_close(seen["k"], want_k, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(seen["v"], want_v, atol=1e-5, rtol=1e-5)
