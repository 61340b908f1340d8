"""lib_hypernet.HypernetPatch — the attention-patch route (Forge 2 / reForge / ComfyUI) — on the Forge stand-in's
transformer blocks (tests/forge_stub/forge_common): the same numbers as the hook route (our A1111 path) for
single, stacked, self/cross-split and step-ranged stacks, the hosts' patcher traps (deepcopy on clone,
``.to(device | dtype | None)``), half-precision activations, other patches in the same lists, the kernels'
caches."""

from __future__ import annotations

import copy
import sys

import pytest
import torch
from factories import strong_hypernetwork
from hn_testutil import FORGE_STUB_DIR

sys.path.insert(0, str(FORGE_STUB_DIR))

from forge_common import attention as blocks
from forge_common.k_model import KModel
from forge_common.ops import ForgeLinear, ManualCastLinear
from forge_common.patcher import UnetPatcher
from forge_common.sampling import calc_cond_uncond_batch, prepare
from forge_common.tomesd import TomePatcher

import lib_hypernet
from lib_hypernet import Strength

CONTEXT = 48
WIDTHS = (32, 64, CONTEXT)


class ForgeAttention(blocks.CrossAttention):
    linear_class = ForgeLinear


class ReforgeAttention(blocks.CrossAttention):
    linear_class = ManualCastLinear


def make_unet(kind: str = "forge", seed: int = 0) -> torch.nn.Module:
    unet = blocks.TinyUNet(CONTEXT, ForgeAttention if kind == "forge" else ReforgeAttention)
    unet.load_state_dict(blocks.seeded_state_dict(unet, seed), strict=False)
    return unet.eval()


def make_hn(name: str, seed: int, sizes=WIDTHS, **kwargs) -> lib_hypernet.Hypernetwork:
    kwargs.setdefault("layer_structure", (1, 2, 1))
    return strong_hypernetwork(name, sizes, seed=seed, std=0.05, seed_offset=100, **kwargs)


def inputs(seed: int = 1, batch: int = 1):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 4, 8, 8, generator=gen)
    cond = torch.randn(batch, 7, CONTEXT, generator=gen)
    uncond = torch.randn(batch, 7, CONTEXT, generator=gen)
    return x, cond, uncond


def sample(unet_patcher, steps: int = 3, seed: int = 1, on_step=None) -> list[torch.Tensor]:
    """The hosts' CFG call per step (a new context tensor every step, cond and uncond in one batch)."""
    x, cond, uncond = inputs(seed)
    prepare(unet_patcher)
    outs = []
    sigmas = torch.linspace(1.0, 0.0, steps + 1)
    with torch.no_grad():
        for i in range(steps):
            if on_step is not None:
                on_step(i, steps)
            c, u = calc_cond_uncond_batch(unet_patcher, cond.clone(), uncond.clone(), x, sigmas[i])
            outs.append(torch.cat([c, u]))
            x = x + (u + 2.0 * (c - u)) * (sigmas[i + 1] - sigmas[i])
    return outs


def patched(unet: torch.nn.Module, patch: lib_hypernet.HypernetPatch, dtype=torch.float32) -> UnetPatcher:
    base = UnetPatcher(KModel(unet, dtype), torch.device("cpu"), torch.device("cpu"))
    clone = base.clone()
    clone.set_model_attn1_patch(patch.attn1)
    clone.set_model_attn2_patch(patch.attn2)
    return clone


def via_patch(unet, stack, steps=3, dtype=torch.float32, extra=None):
    patch = lib_hypernet.HypernetPatch()
    patch.activate(stack)
    clone = patched(unet, patch, dtype)
    if extra is not None:
        clone = extra(clone)
    return sample(clone, steps, on_step=patch.set_step), patch


def via_hooks(unet, stack, steps=3, dtype=torch.float32, extra=None):
    """Our A1111 path: forward pre-hooks on the same UNet's to_k/to_v, no attention patches."""
    handle = lib_hypernet.install(unet)
    base = UnetPatcher(KModel(unet, dtype), torch.device("cpu"), torch.device("cpu"))
    if extra is not None:
        base = extra(base)
    with handle.activated(stack):
        return sample(base, steps, on_step=handle.set_step)


def plain(unet, steps=3, dtype=torch.float32):
    return sample(UnetPatcher(KModel(unet, dtype), torch.device("cpu"), torch.device("cpu")), steps)


def max_diff(a, b) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b))


STACKS = {
    "single": lambda a, b: [(a, 0.8)],
    "stacked": lambda a, b: [(a, 0.8), (b, 0.5)],
    "self/cross split": lambda a, b: [(a, Strength(0.3, 1.2)), (b, Strength(1.0, 0.0))],
    "step range": lambda a, b: [(a, Strength(0.8, 0.8, 0.34, 1.0)), (b, Strength(0.5, 0.5, 0.0, 0.5))],
}


@pytest.mark.parametrize("kind", ["forge", "reforge"])
@pytest.mark.parametrize("name", list(STACKS))
def test_patch_equals_hooks(kind, name):
    unet = make_unet(kind)
    a, b = make_hn("a", 1), make_hn("b", 2)
    stack = STACKS[name](a, b)
    ours, patch = via_patch(unet, stack)
    reference = via_hooks(unet, stack)
    none = plain(unet)
    assert max_diff(ours, reference) < 1e-5
    assert max_diff(ours, none) > 1e-3
    reports = patch.report(since_activate=True)
    assert (reports[0].self_layers > 0 and reports[0].cross_layers > 0) or name != "single"


def test_step_range_changes_only_its_steps():
    unet = make_unet()
    a = make_hn("a", 1)
    none = plain(unet, 4)
    ours, _ = via_patch(unet, [(a, Strength(0.8, 0.8, 0.5, 1.0))], steps=4)
    assert all(torch.equal(x, y) for x, y in zip(ours[:2], none[:2]))  # steps 0, 1 of 4: inactive, bit-identical
    assert max_diff(ours[2:], none[2:]) > 1e-3


def test_zero_or_empty_stack_is_bit_identical_to_none():
    unet = make_unet()
    none = plain(unet)
    for stack in ([], [(make_hn("a", 1), 0.0)]):
        ours, patch = via_patch(unet, stack)
        assert all(torch.equal(x, y) for x, y in zip(ours, none))
        assert not patch.active


def test_deactivated_patch_left_in_a_clone_computes_nothing():
    unet = make_unet()
    patch = lib_hypernet.HypernetPatch()
    patch.activate([(make_hn("a", 1), 0.8)])
    clone = patched(unet, patch)
    patch.deactivate()
    assert all(torch.equal(x, y) for x, y in zip(sample(clone), plain(unet)))


def test_clone_and_to_keep_the_same_patch_and_copy_no_weights():
    hn = make_hn("a", 1)
    patch = lib_hypernet.HypernetPatch()
    patch.activate([(hn, 0.8)])
    unet = make_unet()
    clone = patched(unet, patch)
    before = {id(p) for p in hn.parameters()}
    for _ in range(3):
        clone = clone.clone()  # deep-copies model_options
    patches = clone.model_options["transformer_options"]["patches"]
    assert patches["attn1_patch"] == [patch.attn1] and patches["attn1_patch"][0] is patch.attn1
    assert patches["attn2_patch"][0] is patch.attn2
    assert copy.deepcopy(patch.attn1) is patch.attn1 and copy.copy(patch.attn2) is patch.attn2
    for target in (torch.device("cpu"), "cpu", torch.float16, torch.bfloat16, None):
        clone.model_patches_to(target)  # Forge 2 passes model_dtype() = None
        assert clone.model_options["transformer_options"]["patches"]["attn1_patch"][0] is patch.attn1
    assert patch.stack[0][0] is hn and {id(p) for p in hn.parameters()} == before
    assert max_diff(sample(clone), via_hooks(unet, [(hn, 0.8)])) < 1e-5


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("kind", ["forge", "reforge"])
def test_half_precision_activations(kind, dtype):
    """No autocast in these hosts: the patch gets fp16/bf16 inputs and must hand back the same dtype."""
    unet = make_unet(kind).to(dtype)
    hn = make_hn("a", 1)
    seen = []

    def spy(n, context, value, extra_options):
        seen.append((n.dtype, context.dtype, value.dtype))
        return n, context, value

    def with_spy(clone):
        clone.set_model_attn2_patch(spy)  # runs after ours: sees what we return
        return clone

    ours, _ = via_patch(unet, [(hn, 0.8)], dtype=dtype, extra=with_spy)
    reference = via_hooks(unet, [(hn, 0.8)], dtype=dtype)
    assert seen and all(d == (dtype, dtype, dtype) for d in seen)
    assert all(torch.isfinite(o).all() for o in ours)
    assert max_diff(ours, reference) < 1e-2
    assert max_diff(ours, plain(unet, dtype=dtype)) > 1e-3


def test_compute_dtype_is_explicit():
    unet = make_unet()
    hn = make_hn("a", 1)
    patch = lib_hypernet.HypernetPatch()
    patch.activate([(hn, 0.8)])
    patch.compute_dtype = torch.bfloat16
    bf16 = sample(patched(unet, patch))
    fp32, _ = via_patch(unet, [(hn, 0.8)])
    assert 0 < max_diff(bf16, fp32) < 5e-2


def test_with_tome_replace_patches_and_lora():
    """ToMe (attn1_patch changing Q), an IP-Adapter-style attn2 replace patch and a LoRA on to_k/to_v: the
    hypernetwork still applies exactly to the K/V inputs (as the hook route, which sees to_k/to_v's inputs)."""
    unet = make_unet()
    hn = make_hn("a", 1)

    def replace(q, k, v, extra_options):  # IP-Adapter-like: attention over (k, v) plus an extra image token set
        return blocks.attention_function(q, torch.cat([k, k[:, :2] * 0.5], 1), torch.cat([v, v[:, :2]], 1),
                                         extra_options["n_heads"])

    def extras(clone):
        clone = TomePatcher().patch(clone, 0.5)
        for block in (("input", 0), ("input", 1), ("middle", 0), ("output", 0), ("output", 1)):
            clone.set_model_attn2_replace(replace, block[0], block[1])
        delta = {n: 0.01 * torch.ones_like(p) for n, p in unet.named_parameters() if n.endswith("to_k.weight")}
        clone.add_patches(filename="lora", patches=delta, strength_patch=1.0)
        return clone

    def run(route):
        clone = None

        def wrap(c):
            nonlocal clone
            clone = extras(c)
            clone.forge_patch_model()
            return clone

        try:
            return route(unet, [(hn, 0.8)], extra=wrap)
        finally:
            clone.forge_unpatch_model()

    ours, _ = run(via_patch)
    reference = run(via_hooks)
    assert max_diff(ours, reference) < 1e-5
    assert max_diff(ours, plain(unet)) > 1e-3


def test_value_given_its_own_input_by_an_earlier_patch():
    """A patch before ours made V's input differ from K's: each branch runs on its own input."""
    hn = make_hn("a", 1)
    patch = lib_hypernet.HypernetPatch()
    patch.activate([(hn, 0.8)])
    n = torch.randn(2, 16, 32)
    value = n * 0.5
    with torch.no_grad():
        out = patch.attn1(n, n, value, {"block": ("input", 0), "block_index": 0})
        expected_k = lib_hypernet.apply_hypernetworks(n, [(hn, 0.8)])[0]
        expected_v = lib_hypernet.apply_hypernetworks(value, [(hn, 0.8)])[1]
    assert out[0] is n
    torch.testing.assert_close(out[1], expected_k, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out[2], expected_v, atol=1e-6, rtol=1e-5)

    unet = make_unet()

    def half_v(n, context, value, extra_options):
        return n, context, value * 0.5

    def first(clone):
        clone.model_options["transformer_options"]["patches"]["attn1_patch"].insert(0, half_v)
        return clone

    def with_half_v(c):
        c.set_model_attn1_patch(half_v)
        return c

    ours, _ = via_patch(unet, [(hn, 0.8)], extra=first)
    reference = via_hooks(unet, [(hn, 0.8)], extra=with_half_v)
    assert max_diff(ours, reference) < 1e-5


def test_sigma_schedule_gives_the_step():
    hn = make_hn("a", 1)
    patch = lib_hypernet.HypernetPatch()
    patch.activate([(hn, Strength(1.0, 1.0, 0.5, 1.0))])
    patch.set_sigma_schedule(torch.tensor([14.6, 7.0, 3.0, 1.0, 0.0]))
    n = torch.randn(2, 4, 32)
    for sigma, applies in ((14.6, False), (7.0001, False), (3.0, True), (0.99, True)):
        out = patch.attn1(n, n, n, {"sigmas": torch.full((2,), sigma), "block": ("input", 0), "block_index": 0})
        assert (out[1] is not n) == applies, sigma
    with pytest.raises(ValueError):
        patch.set_sigma_schedule([1.0])


def test_kernels_reuse_cross_attention_and_cfg_halves():
    unet = make_unet()
    hn = make_hn("a", 1)
    patch = lib_hypernet.HypernetPatch()
    patch.activate([(hn, 0.8)])
    clone = patched(unet, patch)
    x, cond, _ = inputs()
    prepare(clone)
    with torch.no_grad():
        for sigma in (1.0, 0.5, 0.25):  # uncond == cond: CFG's two halves identical until the first cross-attention
            calc_cond_uncond_batch(clone, cond.clone(), cond.clone(), x, torch.tensor(sigma))
    hits, misses = patch.cache_stats
    assert misses == 1 and hits == 3 * 5 - 1  # 5 cross-attention layers per call, one text context
    assert patch.half_batch_hits >= 3
    assert patch.calls == 3
    assert [r.cross_layers for r in patch.report()] == [5]
