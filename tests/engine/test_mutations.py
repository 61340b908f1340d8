"""Tests written to kill deliberate bugs (mutations) the rest of the suite let through.

Each test names the mutation it catches; the table of mutations tried and the test that
catches each is in the closing note of issue 8.  The engine tests use a minimal attention
module (q, k, v projections) so each checks one behaviour of lib_hypernet.engine exactly.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch
from factories import strong_hypernetwork

import lib_hypernet
from lib_hypernet import cli
from lib_hypernet.engine import handle as engine_handle
from lib_hypernet.engine import runner as engine_runner
from lib_hypernet.formats import hashing

WIDTH = 16


class Attention(torch.nn.Module):
    """The shape of ldm's CrossAttention as the engine sees it: to_q, to_k, to_v; self-attention without context."""

    def __init__(self, dim: int = WIDTH, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.to_q, self.to_k, self.to_v = (torch.nn.Linear(dim, dim, bias=False) for _ in range(3))
        with torch.no_grad():
            for layer in (self.to_q, self.to_k, self.to_v):
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) / dim**0.5)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        context = x if context is None else context
        self.to_q(x)
        return self.to_k(context), self.to_v(context)


def _hn(seed: int = 1, activation: str = "relu", **options: Any) -> lib_hypernet.Hypernetwork:
    """A hypernetwork whose effect is large (weights overwritten with seeded N(0, 0.3))."""
    return strong_hypernetwork(f"m{seed}", [WIDTH], seed=seed, std=0.3, seed_offset=100, activation_func=activation, **options)


def _expected(model: Attention, context: torch.Tensor, stack: list[Any], kind: str = "cross") -> tuple[torch.Tensor, ...]:
    """The projections of A1111's formula, computed with F.linear so the engine's hooks cannot take part."""
    k, v = lib_hypernet.apply_hypernetworks(context, stack, kind=kind)
    with torch.no_grad():
        return torch.nn.functional.linear(k, model.to_k.weight), torch.nn.functional.linear(v, model.to_v.weight)


def _run(model: Attention, x: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
    with torch.no_grad():
        return model(x, context)


def _close(got: tuple[torch.Tensor, ...], want: tuple[torch.Tensor, ...]) -> None:
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.fixture
def model() -> Any:
    attention = Attention()
    yield attention
    lib_hypernet.install(attention).remove()


# --------------------------------------------------------------------- identical CFG halves
def test_halves_equal_in_channel_0_only_are_not_shared(model: Attention) -> None:
    """Mutation: the identical-halves shortcut compares only the first channel."""
    gen = torch.Generator().manual_seed(3)
    first = torch.randn(1, 5, WIDTH, generator=gen)
    second = torch.randn(1, 5, WIDTH, generator=gen)
    second[..., 0] = first[..., 0]
    x = torch.cat([first, second])
    assert engine_runner._duplicated_half(x) is None
    stack = [(_hn(), 0.9)]
    handle = lib_hypernet.install(model)
    handle.activate(stack)
    got = _run(model, x)
    assert handle.half_batch_hits == 0
    _close(got, _expected(model, x, stack, "self"))
    same = torch.cat([first, first])
    _close(_run(model, same), _expected(model, same, stack, "self"))
    assert handle.half_batch_hits == 1  # truly identical halves do take the shortcut


# --------------------------------------------------------------------- fused kernels
@pytest.mark.parametrize("activation", ["linear", "relu", "leakyrelu", "elu", "swish", "tanh", "sigmoid", "celu"])
@pytest.mark.parametrize("layer_norm", [False, True], ids=["no-ln", "ln"])
def test_fused_kernels_match_the_formula(model: Attention, activation: str, layer_norm: bool) -> None:
    """Mutations: wrong in-place activation, strength dropped from the folded bias or from the residual,
    k's LayerNorm used for v, k's and v's results swapped."""
    stack = [(_hn(2, activation, is_layer_norm=layer_norm, activate_output=True), 0.7)]
    context = torch.randn(2, 6, WIDTH, generator=torch.Generator().manual_seed(4))
    handle = lib_hypernet.install(model)
    handle.activate(stack)
    _close(_run(model, context[:1], context), _expected(model, context, stack))


@pytest.mark.parametrize("activate_output", [False, True])
def test_stacked_hypernetworks_keep_k_and_v_apart(model: Attention, activate_output: bool) -> None:
    """Mutation: the second hypernetwork of a stack reads k's result for both branches."""
    stack = [(_hn(5, activate_output=activate_output), 0.6), (_hn(6, "tanh", is_layer_norm=True), -0.8)]
    context = torch.randn(1, 4, WIDTH, generator=torch.Generator().manual_seed(5))
    handle = lib_hypernet.install(model)
    handle.activate(stack)
    _close(_run(model, context[:, :1], context), _expected(model, context, stack))


def test_negative_and_separate_self_cross_strengths(model: Attention) -> None:
    """Mutations: negative strengths dropped; self-attention treated as cross-attention."""
    hn = _hn(7)
    strength = lib_hypernet.Strength(self_attn=-0.5, cross_attn=1.25, start=0.0, stop=1.0)
    handle = lib_hypernet.install(model)
    handle.activate([(hn, strength)])
    x = torch.randn(1, 3, WIDTH, generator=torch.Generator().manual_seed(6))
    context = torch.randn(1, 5, WIDTH, generator=torch.Generator().manual_seed(7))
    _close(_run(model, x), _expected(model, x, [(hn, -0.5)], "self"))
    _close(_run(model, x, context), _expected(model, context, [(hn, 1.25)]))


# --------------------------------------------------------------------- caches
def test_compiled_weights_follow_in_place_edits(model: Attention) -> None:
    """Mutations: a compiled plan is reused after its weights changed in place, or after they were replaced."""
    hn = _hn(8)
    context = torch.randn(1, 5, WIDTH, generator=torch.Generator().manual_seed(8))
    handle = lib_hypernet.install(model)
    handle.cache_cross_attention = False
    handle.activate([(hn, 1.0)])
    _close(_run(model, context[:, :1], context), _expected(model, context, [(hn, 1.0)]))
    with torch.no_grad():
        hn.layers[WIDTH][0].linear[0].weight.mul_(-2.0)  # in place: same storage, new version
    _close(_run(model, context[:, :1], context), _expected(model, context, [(hn, 1.0)]))
    linear = hn.layers[WIDTH][1].linear[0]
    linear.weight = torch.nn.Parameter(linear.weight.detach() * 0.5, requires_grad=False)  # replaced
    _close(_run(model, context[:, :1], context), _expected(model, context, [(hn, 1.0)]))


def test_cross_cache_tells_equal_shaped_contexts_apart(model: Attention) -> None:
    """Mutations: the cross-attention cache matches on shape alone, or ignores an in-place edit of the context."""
    hn = _hn(9)
    handle = lib_hypernet.install(model)
    handle.activate([(hn, 1.0)])
    gen = torch.Generator().manual_seed(9)
    a, b = torch.randn(1, 5, WIDTH, generator=gen), torch.randn(1, 5, WIDTH, generator=gen)
    q = a[:, :1]
    _close(_run(model, q, a), _expected(model, a, [(hn, 1.0)]))
    _close(_run(model, q, a.clone()), _expected(model, a, [(hn, 1.0)]))  # equal copy: from the cache
    hits = handle.cache_stats[0]
    assert hits >= 1
    _close(_run(model, q, b), _expected(model, b, [(hn, 1.0)]))  # same shape, other values: recomputed
    a.mul_(3.0)  # the same tensor object, edited in place
    _close(_run(model, q, a), _expected(model, a, [(hn, 1.0)]))


def test_cross_cache_keys_on_strength(model: Attention) -> None:
    """Mutation: the cross-attention cache key leaves out the strength."""
    hn = _hn(10)
    context = torch.randn(1, 5, WIDTH, generator=torch.Generator().manual_seed(10))
    handle = lib_hypernet.install(model)
    handle.activate([(hn, 1.0)])
    _run(model, context[:, :1], context)
    handle.activate([(hn, 0.3)])
    _close(_run(model, context[:, :1], context), _expected(model, context, [(hn, 0.3)]))


def test_cross_cache_evicts_the_least_recently_used(model: Attention) -> None:
    """Mutation: eviction drops the newest entry instead of the oldest."""
    hn = _hn(11)
    handle = lib_hypernet.install(model)
    handle.activate([(hn, 1.0)])
    gen = torch.Generator().manual_seed(11)
    contexts = [torch.randn(1, 3, WIDTH, generator=gen) for _ in range(engine_handle.CROSS_CACHE_SIZE + 1)]
    for context in contexts:
        _run(model, context[:, :1], context)
    misses = handle.cache_stats[1]
    _run(model, contexts[-1][:, :1], contexts[-1].clone())  # the newest must still be cached
    assert handle.cache_stats[1] == misses
    _run(model, contexts[0][:, :1], contexts[0].clone())  # the oldest was evicted
    assert handle.cache_stats[1] == misses + 1


def test_scratch_buffers_are_per_shape_and_mode(model: Attention) -> None:
    """Mutations: scratch buffers shared across shapes, or between inference mode and no_grad."""
    hn = _hn(12, is_layer_norm=True)
    handle = lib_hypernet.install(model)
    handle.cache_cross_attention = False
    handle.activate([(hn, 1.0)])
    gen = torch.Generator().manual_seed(12)
    for tokens in (5, 9, 5):
        context = torch.randn(1, tokens, WIDTH, generator=gen)
        with torch.inference_mode():
            got = model(context[:, :1], context)
        _close(got, _expected(model, context, [(hn, 1.0)]))
        _close(_run(model, context[:, :1], context), _expected(model, context, [(hn, 1.0)]))


# --------------------------------------------------------------------- hashes and convert
def test_legacy_hash_boundary_is_1_mib_exclusive(tmp_path: Path) -> None:
    """Mutation: ``>`` vs ``>=`` at the 1 MiB boundary of the legacy hash."""
    exact, over = tmp_path / "exact.bin", tmp_path / "over.bin"
    exact.write_bytes(b"\x01" * hashing.LEGACY_OFFSET)
    over.write_bytes(b"\x01" * (hashing.LEGACY_OFFSET + 1))
    assert lib_hypernet.legacy_model_hash(exact) == hashing.LEGACY_HASH_OF_SMALL_FILES
    assert not hashing.legacy_hash_is_meaningful(exact)
    assert hashing.legacy_hash_is_meaningful(over)
    assert lib_hypernet.legacy_model_hash(over) != hashing.LEGACY_HASH_OF_SMALL_FILES


def test_convert_refuses_a_corrupted_write_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Mutation: convert keeps its output without the bit-identical check."""
    src = tmp_path / "src.pt"
    lib_hypernet.create("src", sizes=[8, 16], seed=1).save(src)
    before = src.read_bytes()
    real_write = lib_hypernet.formats.write_raw

    def corrupting_write(path: Any, raw: dict[Any, Any], **kwargs: Any) -> None:
        raw = dict(raw)
        sd_k = dict(raw[16][0])
        weight = sd_k["linear.0.weight"].clone()
        weight.view(-1)[7] = torch.nextafter(weight.view(-1)[7], torch.tensor(1.0))  # one bit
        sd_k["linear.0.weight"] = weight
        raw[16] = (sd_k, raw[16][1])
        real_write(path, raw, **kwargs)

    monkeypatch.setattr(lib_hypernet.formats, "write_raw", corrupting_write)
    for dst in (tmp_path / "out.safetensors", tmp_path / "out.pt", src):
        code = cli.main(["convert", str(src), str(dst), "--force"])
        _, err = capsys.readouterr()
        assert code == 1
        assert "verification failed: width 16 (k) weights differ" in err
        assert sorted(os.listdir(tmp_path)) == ["src.pt"]
        assert src.read_bytes() == before
