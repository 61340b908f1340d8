"""Apply engine on a real ldm UNet: idle costs nothing, remove() restores exactly, strengths, step ranges, report()."""

from __future__ import annotations

import pytest
import torch
from engine_util import (
    CONTEXT_DIM,
    RTOL,
    all_hooks_empty,
    assert_exact,
    attention_layers,
    make_hn,
    make_unet,
    reference_output,
    run_unet,
    unet_inputs,
)

import lib_hypernet
from lib_hypernet import Strength


@pytest.fixture(scope="module")
def hn() -> lib_hypernet.Hypernetwork:
    return make_hn("unet", seed=100, activation_func="relu", is_layer_norm=True)


def _module_state(model: torch.nn.Module) -> dict[str, object]:
    return {
        "modules": [name for name, _ in model.named_modules()],
        "state_dict": list(model.state_dict().keys()),
        "vars": {name: sorted(vars(m).keys()) for name, m in model.named_modules()},
        "children": {name: [n for n, _ in m.named_children()] for name, m in model.named_modules()},
        "classes": {name: type(m) for name, m in model.named_modules()},
        "forward": {name: m.__dict__.get("forward") for name, m in model.named_modules()},
    }


# ---------------------------------------------------------------------------- idle / zero / remove
def test_install_hooks_nothing_and_is_reused(unet, inputs, base) -> None:
    before = _module_state(unet)
    handle = lib_hypernet.install(unet)
    try:
        assert lib_hypernet.install(unet) is handle
        assert not handle.active
        assert all_hooks_empty(unet)
        assert _module_state(unet) == before
        assert torch.equal(run_unet(unet, inputs), base)
    finally:
        handle.remove()


@pytest.mark.parametrize(
    "strength", [0, 0.0, -0.0, Strength(0.0, 0.0), Strength(0.0, 0.0, start=0.2, stop=0.9)], ids=repr
)
def test_zero_strength_is_bit_exact_and_unhooked(strength, unet, inputs, base, hn, handle) -> None:
    handle.activate([(hn, strength)])
    assert not handle.active
    assert all_hooks_empty(unet)
    assert torch.equal(run_unet(unet, inputs), base)
    handle.activate([(hn, strength), (make_hn("z2", seed=101), 0.0)])
    assert not handle.active and all_hooks_empty(unet)
    assert torch.equal(run_unet(unet, inputs), base)


def test_nothing_active_and_deactivate_are_bit_exact(unet, inputs, base, hn, handle) -> None:
    handle.activate([])
    assert not handle.active and all_hooks_empty(unet)
    assert torch.equal(run_unet(unet, inputs), base)
    handle.activate([(hn, 1.0)])
    assert handle.active
    assert not torch.equal(run_unet(unet, inputs), base)
    handle.deactivate()
    assert not handle.active and all_hooks_empty(unet)
    assert handle.stack == []
    assert torch.equal(run_unet(unet, inputs), base)
    # activated() context manager deactivates on exit, even on error
    with pytest.raises(KeyError), handle.activated([(hn, 0.5)]):
        assert handle.active
        raise KeyError("boom")
    assert not handle.active and all_hooks_empty(unet)
    assert torch.equal(run_unet(unet, inputs), base)


def test_only_widths_the_model_lacks_is_bit_exact(unet, inputs, base, handle) -> None:
    handle.activate([(make_hn("w100", (100, 7), seed=102), 1.0)])
    assert torch.equal(run_unet(unet, inputs), base)
    assert handle.report()[0].matched_nothing


def test_remove_restores_the_model_exactly(hn) -> None:
    unet = make_unet(seed=3)
    inputs = unet_inputs(seed=4)
    base = run_unet(unet, inputs)
    before = _module_state(unet)
    handle = lib_hypernet.install(unet)
    handle.activate([(hn, 0.8), (make_hn("softmax", seed=103, activation_func="softmax"), -0.5)])
    assert handle.active
    hooked = run_unet(unet, inputs)
    assert (hooked - base).abs().max() > 1e-3
    handle.set_step(3, 10)
    handle.remove()
    assert handle.removed and not handle.active
    assert all_hooks_empty(unet)
    assert _module_state(unet) == before
    assert torch.equal(run_unet(unet, inputs), base)
    with pytest.raises(RuntimeError):
        handle.activate([(hn, 1.0)])
    handle.remove()  # idempotent

    # a new install after remove is a new, working handle
    again = lib_hypernet.install(unet)
    assert again is not handle and not again.removed
    assert lib_hypernet.install(unet) is again
    again.activate([(hn, 0.8), (make_hn("softmax", seed=103, activation_func="softmax"), -0.5)])
    assert torch.equal(run_unet(unet, inputs), hooked)
    again.remove()
    assert _module_state(unet) == before and all_hooks_empty(unet)
    assert torch.equal(run_unet(unet, inputs), base)


def test_remove_as_context_manager(unet, inputs, base, hn) -> None:
    with lib_hypernet.install(unet) as handle:
        handle.activate([(hn, 1.0)])
        assert not torch.equal(run_unet(unet, inputs), base)
    assert handle.removed and all_hooks_empty(unet)
    assert torch.equal(run_unet(unet, inputs), base)


def test_activate_rejects_bad_entries(handle, hn) -> None:
    with pytest.raises(TypeError):
        handle.activate([("not a hypernetwork", 1.0)])
    with pytest.raises(TypeError):
        handle.activate([(hn, "1.0")])
    assert not handle.active


# ---------------------------------------------------------------------------- strengths and step ranges
def test_self_only_and_cross_only_strengths(unet, inputs, base, hn, handle) -> None:
    self_only = Strength(self_attn=0.5, cross_attn=0.0)
    cross_only = Strength(self_attn=0.0, cross_attn=1.0)
    ref_self = reference_output(unet, inputs, [(hn, self_only)])
    ref_cross = reference_output(unet, inputs, [(hn, cross_only)])
    ref_both = reference_output(unet, inputs, [(hn, Strength(0.5, 1.0))])
    for a, b in [(ref_self, base), (ref_cross, base), (ref_self, ref_cross), (ref_both, ref_self), (ref_both, ref_cross)]:
        assert (a - b).abs().max() > 1e-3

    handle.activate([(hn, self_only)])
    assert_exact(run_unet(unet, inputs), ref_self)
    assert {kind for kind, _ in handle.report()[0].layers} == {"self"}
    handle.activate([(hn, cross_only)])
    assert_exact(run_unet(unet, inputs), ref_cross)
    assert {kind for kind, _ in handle.report()[0].layers} == {"cross"}
    handle.activate([(hn, Strength(0.5, 1.0))])
    assert_exact(run_unet(unet, inputs), ref_both)


def test_self_cross_strengths_when_widths_coincide(hn) -> None:
    """context_dim 64 = a self-attention width: only the call tells self from cross."""
    unet = make_unet(context_dim=64, seed=5)
    inputs = unet_inputs(seed=6, context_dim=64)
    hn64 = make_hn("w64", (32, 64), seed=104, activation_func="gelu")
    with lib_hypernet.install(unet) as handle:
        for strength in (Strength(0.5, 0.0), Strength(0.0, 1.0), Strength(-0.5, 0.8)):
            handle.deactivate()
            ref = reference_output(unet, inputs, [(hn64, strength)])
            handle.activate([(hn64, strength)])
            assert_exact(run_unet(unet, inputs), ref)
            layers = handle.report()[0].layers
            assert layers == {
                k: n for k, n in attention_layers(unet).items() if strength.for_kind(k[0]) != 0
            }


@pytest.mark.parametrize(
    ("strength", "active_steps"),
    [
        (Strength(1.0, 1.0, start=0.5, stop=1.0), range(5, 10)),
        (Strength(1.0, 1.0, start=0.0, stop=0.6), range(0, 6)),
        (Strength(0.7, -0.4, start=0.3, stop=0.6), range(3, 6)),
    ],
    ids=["second-half", "first-60%", "middle"],
)
def test_step_range(strength, active_steps, unet, inputs, base, hn, handle) -> None:
    ref = reference_output(unet, inputs, [(hn, strength)])
    assert (ref - base).abs().max() > 1e-3
    handle.activate([(hn, strength)])
    for step in range(10):
        handle.set_step(step, 10)
        out = run_unet(unet, inputs)
        if step in active_steps:
            assert_exact(out, ref)
            assert not handle.report()[0].matched_nothing
        else:
            assert torch.equal(out, base), f"step {step} should be untouched"
            assert handle.report()[0].matched_nothing
    # unknown step counts as step 0
    handle.set_step(None)
    out = run_unet(unet, inputs)
    if 0 in active_steps:
        assert_exact(out, ref)
    else:
        assert torch.equal(out, base)


def test_step_range_per_entry(unet, inputs, base, handle) -> None:
    early = make_hn("early", seed=105, activation_func="tanh")
    late = make_hn("late", seed=106, activation_func="elu")
    stack = [(early, Strength(1.0, 1.0, stop=0.5)), (late, Strength(0.8, 0.8, start=0.5))]
    ref_early = reference_output(unet, inputs, [(early, 1.0)])
    ref_late = reference_output(unet, inputs, [(late, 0.8)])
    handle.activate(stack)
    handle.set_step(1, 4)
    assert_exact(run_unet(unet, inputs), ref_early)
    handle.set_step(2, 4)
    assert_exact(run_unet(unet, inputs), ref_late)
    assert handle.report()[0].matched_nothing and not handle.report()[1].matched_nothing
    since = handle.report(since_activate=True)
    assert not since[0].matched_nothing and not since[1].matched_nothing


def test_activate_resets_step(unet, inputs, base, hn, handle) -> None:
    handle.activate([(hn, Strength(1.0, 1.0, start=0.5))])
    handle.set_step(9, 10)
    assert not torch.equal(run_unet(unet, inputs), base)
    handle.activate([(hn, Strength(1.0, 1.0, start=0.5))])  # a new generation: step unknown again (= 0)
    assert torch.equal(run_unet(unet, inputs), base)


# ---------------------------------------------------------------------------- report()
def test_report_counts_match_the_model_structure(unet, inputs, hn, handle) -> None:
    structure = attention_layers(unet)
    assert structure == {("self", 32): 3, ("self", 64): 4, ("cross", CONTEXT_DIM): 7}
    self_only_hn = make_hn("selfonly", (32, 64), seed=107)
    nothing_hn = make_hn("nothing", (1024,), seed=108)
    cross_hn = make_hn("crossonly", (CONTEXT_DIM,), seed=109)
    handle.activate([(hn, 1.0), (self_only_hn, 0.5), (nothing_hn, 1.0), (cross_hn, Strength(1.0, 0.0)), (cross_hn, 0.3)])
    assert handle.report() == handle.report(since_activate=True)  # nothing ran yet: both empty
    assert all(r.matched_nothing for r in handle.report())
    run_unet(unet, inputs)
    reports = handle.report()
    assert [r.index for r in reports] == [0, 1, 2, 3, 4]
    assert [r.name for r in reports] == ["unet", "selfonly", "nothing", "crossonly", "crossonly"]
    assert reports[0].strength == Strength(1.0, 1.0) and reports[3].strength == Strength(1.0, 0.0)
    assert reports[0].layers == structure
    assert reports[0].self_layers == 7 and reports[0].cross_layers == 7
    assert not reports[0].matched_nothing and not reports[0].self_attention_only
    assert reports[0].describe() == f"cross {CONTEXT_DIM}×7, self 32×3 64×4"
    assert reports[1].layers == {("self", 32): 3, ("self", 64): 4}
    assert reports[1].self_attention_only and not reports[1].matched_nothing
    assert reports[1].describe() == "self 32×3 64×4"
    assert reports[2].matched_nothing and not reports[2].self_attention_only
    assert reports[2].describe() == "no attention layer"
    assert reports[3].matched_nothing  # cross-only hypernetwork with cross strength 0
    assert reports[4].layers == {("cross", CONTEXT_DIM): 7} and not reports[4].self_attention_only
    assert reports[4].describe() == f"cross {CONTEXT_DIM}×7"
    # a second call does not double-count
    run_unet(unet, inputs)
    assert handle.report() == reports
    assert handle.report(since_activate=True) == reports


def test_report_last_call_vs_since_activate(unet, inputs, hn, handle) -> None:
    handle.activate([(hn, Strength(1.0, 1.0, stop=0.5))])
    handle.set_step(0, 10)
    run_unet(unet, inputs)
    first = handle.report()[0].layers
    assert first == attention_layers(unet)
    handle.set_step(7, 10)  # outside the range
    run_unet(unet, inputs)
    assert handle.report()[0].matched_nothing  # the last call changed nothing
    assert handle.report(since_activate=True)[0].layers == first
    # activate() starts both tallies afresh
    handle.activate([(hn, 1.0)])
    assert handle.report(since_activate=True)[0].matched_nothing
    # deactivate(): no entries, so no reports
    handle.deactivate()
    assert handle.report() == [] and handle.report(since_activate=True) == []


def _cfg_inputs(seed: int = 31) -> dict[str, torch.Tensor]:
    """Like A1111's CFG batch: the same latent and timestep twice, a different context per half."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 4, 8, 8, generator=gen)
    return {
        "x": torch.cat([x, x]),
        "timesteps": torch.tensor([500, 500]),
        "context": torch.randn(2, 7, CONTEXT_DIM, generator=gen),
    }


@pytest.mark.parametrize("activation", ["relu", "softmax"])
def test_cfg_batch_with_identical_halves(unet: torch.nn.Module, activation: str) -> None:
    """Identical batch halves are computed once for fused activations (exactly the same result), and never
    for activations that mix the batch (softmax acts over the batch axis of a 3-D context)."""
    inputs = _cfg_inputs()
    stack = [(make_hn(f"cfg_{activation}", seed=41, activation_func=activation), 0.8)]
    expected = reference_output(unet, inputs, stack)
    handle = lib_hypernet.install(unet)
    handle.activate(stack)
    try:
        got = run_unet(unet, inputs)
        hits = handle.half_batch_hits
    finally:
        handle.deactivate()
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=RTOL)
    assert (got - run_unet(unet, inputs)).abs().max() > 1e-3
    if activation == "relu":
        assert hits >= 1  # at least the first self-attention, before any cross-attention
    else:
        assert hits == 0
