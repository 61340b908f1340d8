"""Apply engine: the cross-attention cache (exactly validated) and memory (nothing kept alive)."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
from engine_util import (
    CONTEXT_DIM,
    CrossAttention,
    assert_exact,
    attention_layers,
    make_hn,
    make_unet,
    reference_output,
    reinit_,
    run_unet,
    unet_inputs,
)

import lib_hypernet
from lib_hypernet.engine import handle as handle_module

UNET_SEED, INPUTS_SEED = 7, 8  # the folder's unet/inputs fixtures (conftest.py)


@pytest.fixture(scope="module")
def n_cross(unet) -> int:
    return attention_layers(unet)[("cross", CONTEXT_DIM)]


def _cfg_context(cond: torch.Tensor, uncond: torch.Tensor) -> torch.Tensor:
    """A new tensor every call, with the same values (A1111's ``torch.cat([cond, uncond])``)."""
    return torch.cat([cond, uncond])


def _stack() -> list:
    return [
        (make_hn("cache", seed=200, activation_func="gelu", is_layer_norm=True), 0.8),
        (make_hn("cache2", (CONTEXT_DIM,), seed=201, activation_func="softmax"), -0.5),
    ]


# ---------------------------------------------------------------------------- cross-attention cache
def test_cache_hits_for_equal_context_in_new_tensors(unet, inputs, n_cross, handle) -> None:
    stack = _stack()
    cond, uncond = inputs["context"][:1].clone(), inputs["context"][1:].clone()
    ref = reference_output(unet, inputs, stack, context=_cfg_context(cond, uncond))
    handle.activate(stack)
    assert handle.cache_cross_attention
    assert handle.cache_stats == [0, 0]
    out = run_unet(unet, inputs, context=_cfg_context(cond, uncond))
    assert_exact(out, ref)
    # first call: one miss, every later cross-attention layer of the call reuses it
    assert handle.cache_stats == [n_cross - 1, 1]
    for _ in range(2, 5):
        out = run_unet(unet, inputs, context=_cfg_context(cond, uncond))
        assert torch.equal(out, run_unet(unet, inputs, context=_cfg_context(cond, uncond)))
        assert_exact(out, ref)
    assert handle.cache_stats[1] == 1, "an equal context in a new tensor must hit"
    assert handle.cache_stats[0] == 7 * n_cross - 1


def test_cache_miss_on_different_values(unet, inputs, n_cross, handle) -> None:
    stack = _stack()
    ctx_a = inputs["context"]
    ctx_b = ctx_a.clone()
    ctx_b[1, 3, 5] += 1e-3  # one element differs
    ref_a = reference_output(unet, inputs, stack, context=ctx_a)
    ref_b = reference_output(unet, inputs, stack, context=ctx_b)
    assert not torch.equal(ref_a, ref_b)
    handle.activate(stack)
    out_a = run_unet(unet, inputs, context=ctx_a.clone())
    out_b = run_unet(unet, inputs, context=ctx_b)
    assert handle.cache_stats[1] == 2
    assert_exact(out_a, ref_a)
    assert_exact(out_b, ref_b)
    assert not torch.equal(out_a, out_b)
    # alternating (cond pass / uncond pass with different contexts) still hits both entries
    before = list(handle.cache_stats)
    assert_exact(run_unet(unet, inputs, context=ctx_a.clone()), ref_a)
    assert_exact(run_unet(unet, inputs, context=ctx_b.clone()), ref_b)
    assert handle.cache_stats == [before[0] + 2 * n_cross, before[1]]
    # a context of another shape is another context
    ctx_short = ctx_a[:, :5].clone()
    handle.deactivate()
    ref_short = reference_output(unet, inputs, stack, context=ctx_short)
    handle.activate(stack)
    run_unet(unet, inputs, context=ctx_a)
    assert_exact(run_unet(unet, inputs, context=ctx_short), ref_short)


def test_cache_sees_in_place_modification(unet, inputs, handle) -> None:
    stack = _stack()
    ctx = inputs["context"].clone()
    ref_before = reference_output(unet, inputs, stack, context=ctx)
    ref_after = reference_output(unet, inputs, stack, context=ctx + 1)
    ctx_view = ctx.clone()
    ctx_view[0] += 0.5
    ref_view = reference_output(unet, inputs, stack, context=ctx_view)
    handle.activate(stack)
    assert_exact(run_unet(unet, inputs, context=ctx), ref_before)
    misses = handle.cache_stats[1]
    ctx.add_(1)  # same tensor object, new values
    assert_exact(run_unet(unet, inputs, context=ctx), ref_after)
    assert handle.cache_stats[1] == misses + 1
    # modified in place through a detached alias (shares the version counter)
    ctx.detach().sub_(1)
    assert_exact(run_unet(unet, inputs, context=ctx), ref_before)
    # through a view
    ctx[:, 2:4].add_(1)
    ctx[:, 2:4].sub_(1)
    assert_exact(run_unet(unet, inputs, context=ctx), ref_before)
    ctx[0].add_(0.5)
    assert_exact(run_unet(unet, inputs, context=ctx), ref_view)


def test_cache_under_inference_mode(unet, inputs, handle) -> None:
    stack = _stack()
    ref = reference_output(unet, inputs, stack)
    handle.activate(stack)
    with torch.inference_mode():
        ctx = inputs["context"].clone()
        out1 = unet(inputs["x"], inputs["timesteps"], context=ctx)
        out2 = unet(inputs["x"], inputs["timesteps"], context=inputs["context"].clone())
        ctx.add_(1)
        out3 = unet(inputs["x"], inputs["timesteps"], context=ctx)
    assert_exact(out1, ref)
    assert_exact(out2, ref)
    assert handle.cache_stats[1] == 2
    handle.deactivate()
    ref3 = reference_output(unet, inputs, stack, context=inputs["context"] + 1)
    assert_exact(out3, ref3)


def test_cache_filled_in_inference_mode_then_used_with_grad(unet, inputs, handle) -> None:
    """Inference tensors from the cache must not reach autograd (they cannot be saved for backward)."""
    stack = _stack()
    ref = reference_output(unet, inputs, stack)
    handle.activate(stack)
    with torch.inference_mode():
        unet(inputs["x"], inputs["timesteps"], context=inputs["context"].clone())
    with torch.enable_grad():
        out = unet(inputs["x"], inputs["timesteps"], context=inputs["context"].clone())
        out.sum().backward()
    unet.zero_grad(set_to_none=True)
    assert_exact(out.detach(), ref)


def test_cache_disabled(unet, inputs, handle) -> None:
    stack = _stack()
    ref = reference_output(unet, inputs, stack)
    handle.activate(stack)
    handle.cache_cross_attention = False
    outs = [run_unet(unet, inputs, context=inputs["context"].clone()) for _ in range(3)]
    assert handle.cache_stats == [0, 0]
    for out in outs:
        assert_exact(out, ref)
    assert torch.equal(outs[0], outs[1])
    handle.cache_cross_attention = True
    cached = run_unet(unet, inputs, context=inputs["context"].clone())
    assert handle.cache_stats[1] == 1
    assert torch.equal(cached, outs[0])


def test_cache_follows_weight_edits_without_reactivation(unet, inputs, handle) -> None:
    """Editing a hypernetwork's weights in place while active (e.g. a training preview) is seen at once."""
    hn = make_hn("edit2", seed=203, activation_func="tanh")
    refs = []
    for scale in (1.0, 1.5, 0.25):
        with torch.no_grad():
            for p in hn.parameters():
                p.mul_(scale)
        refs.append(reference_output(unet, inputs, [(hn, 1.0)]))
    # back to the original weights, then replay the same edits while active
    with torch.no_grad():
        for p in hn.parameters():
            p.div_(1.5 * 0.25)
    handle.activate([(hn, 1.0)])
    for scale, ref in zip((1.0, 1.5, 0.25), refs):
        with torch.no_grad():
            for p in hn.parameters():
                p.mul_(scale)
        assert_exact(run_unet(unet, inputs, context=inputs["context"].clone()), ref)
        assert_exact(run_unet(unet, inputs, context=inputs["context"].clone()), ref)


# ---------------------------------------------------------------------------- memory
def _plans_of(hn: lib_hypernet.Hypernetwork) -> dict:
    return handle_module._PLANS.get(hn, {})


@pytest.mark.parametrize("how", ["deactivate", "activate_other", "remove", "activate_empty"])
def test_hypernetwork_freed_after_deactivate(how: str, unet, inputs) -> None:
    handle = lib_hypernet.install(unet)
    try:
        hn = make_hn("gone", seed=210, activation_func="gelu")
        other = make_hn("other", (CONTEXT_DIM,), seed=211)
        handle.activate([(hn, 1.0), (hn, lib_hypernet.Strength(0.5, -0.5)), (other, 0.5)])
        run_unet(unet, inputs, context=inputs["context"].clone())
        run_unet(unet, inputs, context=inputs["context"].clone())
        handle.report()
        assert hn in handle_module._PLANS
        ref = weakref.ref(hn)
        if how == "deactivate":
            handle.deactivate()
        elif how == "activate_other":
            handle.activate([(other, 1.0)])
            run_unet(unet, inputs)
        elif how == "remove":
            handle.remove()
        else:
            handle.activate([])
        del hn
        gc.collect()
        assert ref() is None, "the handle (or its caches / compiled plans) keeps the hypernetwork alive"
    finally:
        handle.remove()


def test_model_freed_after_remove() -> None:
    unet = make_unet(seed=9)
    inputs = unet_inputs(seed=10)
    hn = make_hn("keep", seed=212)
    handle = lib_hypernet.install(unet)
    handle.activate([(hn, 1.0)])
    run_unet(unet, inputs)
    handle.remove()
    ref = weakref.ref(unet)
    del unet
    gc.collect()
    assert ref() is None, "a removed handle keeps the model alive"
    assert handle.model is None


def test_model_freed_while_still_active() -> None:
    unet = make_unet(seed=11)
    inputs = unet_inputs(seed=12)
    hn = make_hn("keep", seed=213)
    handle = lib_hypernet.install(unet)
    handle.activate([(hn, 1.0)])
    run_unet(unet, inputs)
    ref = weakref.ref(unet)
    del unet
    gc.collect()
    assert ref() is None, "an active handle keeps the model alive"
    assert handle.model is None
    handle.deactivate()
    handle.activate([(hn, 1.0)])  # nothing to hook any more; must not fail
    handle.remove()


def test_same_hypernetwork_twice_compiles_once(unet, inputs, handle) -> None:
    hn = make_hn("once", seed=214, activation_func="elu")
    handle.activate([(hn, 0.5), (hn, 1.0), (hn, lib_hypernet.Strength(0.2, -0.3))])
    for _ in range(3):
        run_unet(unet, inputs, context=inputs["context"].clone())
    plans = _plans_of(hn)
    widths = sorted(key[0] for key in plans)
    assert widths == sorted(hn.widths), plans.keys()
    assert len({(key[0], key[1], key[2]) for key in plans}) == len(plans)
    # re-activating the same hypernetwork reuses the compiled plans
    compiled = {key: value[1] for key, value in plans.items()}
    handle.activate([(hn, 0.7)])
    run_unet(unet, inputs)
    assert {key: value[1] for key, value in _plans_of(hn).items()} == compiled


def test_second_model_shares_plans(inputs) -> None:
    hn = make_hn("shared", seed=215)
    unet_a, unet_b = make_unet(seed=13), make_unet(seed=14)
    with lib_hypernet.install(unet_a) as ha, lib_hypernet.install(unet_b) as hb:
        assert ha is not hb
        ha.activate([(hn, 1.0)])
        hb.activate([(hn, 0.5)])
        run_unet(unet_a, inputs)
        compiled = {key: value[1] for key, value in _plans_of(hn).items()}
        run_unet(unet_b, inputs)
        assert {key: value[1] for key, value in _plans_of(hn).items()} == compiled
        hb.deactivate()
        ref_b = reference_output(unet_b, inputs, [(hn, 0.5)])
        hb.activate([(hn, 0.5)])
        assert_exact(run_unet(unet_b, inputs), ref_b)


@pytest.mark.parametrize("ids", ["natural", "all_equal"])
def test_cache_never_serves_results_of_replaced_weights(ids: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many in-place weight edits while active: compiled plans are replaced, and a cached result of an
    older plan must never be served (not even when a new plan happens to get a freed plan's id())."""
    if ids == "all_equal":  # the worst case of id() reuse, made deterministic
        monkeypatch.setattr(handle_module, "id", lambda obj: 0, raising=False)
    torch.manual_seed(220)
    attn = reinit_(CrossAttention(query_dim=32, context_dim=CONTEXT_DIM, heads=2, dim_head=8), 220).eval()
    gen = torch.Generator().manual_seed(221)
    x, ctx = torch.randn(2, 5, 32, generator=gen), torch.randn(2, 7, CONTEXT_DIM, generator=gen)
    hn = make_hn("edits", (CONTEXT_DIM,), seed=222, activation_func="gelu")
    original = [p.clone() for p in hn.parameters()]
    seen: dict[str, torch.Tensor] = {}
    capture = attn.to_k.register_forward_hook(lambda m, args, out: seen.__setitem__("k", args[0]))
    try:
        with lib_hypernet.install(attn) as handle, torch.no_grad():
            handle.activate([(hn, 1.0)])
            for i in range(40 if ids == "natural" else 8):
                scale = (1.0, 1.5, 0.5, 2.0)[i % 4]
                for p, p0 in zip(hn.parameters(), original):
                    p.copy_(p0 * scale)
                attn(x, context=ctx.clone())
                want_k, _ = lib_hypernet.apply_hypernetworks(ctx, [(hn, 1.0)])
                torch.testing.assert_close(seen["k"], want_k, atol=1e-5, rtol=1e-5, msg=f"edit {i}: stale result")
            # and with unchanged weights the cache does hit
            hits = handle.cache_stats[0]
            attn(x, context=ctx.clone())
            assert handle.cache_stats[0] == hits + 1
    finally:
        capture.remove()
