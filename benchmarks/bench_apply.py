"""Benchmark: hypernetworks inside a Stable Diffusion 1.5 UNet — ours vs A1111's per-layer application.

Builds the SD1.5-config ``UNetModel`` from the real ``ldm`` package (random weights), then
measures, interleaved in one run, for each latent size:

* ``unhooked``  — the plain UNet;
* ``idle``      — ``lib_hypernet.install(unet)`` with nothing active;
* ``a1111``     — a faithful re-implementation of A1111 1.10.1's application: the attention
  forward calls ``apply_hypernetworks`` on every layer, every step (``x + linear(x) * m`` per module);
* ``ours``      — ``handle.activate(stack)``; a step's context is a new tensor with the same values
  (as A1111's CFG builds it), so the first call computes the cross-attention result and later
  calls reuse it.

and, on the same UNet with its transformer blocks running Forge 2's / ComfyUI's patch lists
(``attn1_patch``/``attn2_patch`` set the K and V inputs):

* ``forge``     — ``lib_hypernet.HypernetPatch``'s ``attn1``/``attn2`` patches (what the Forge 2 and reForge
  adapters install; the same kernels and caches as ``ours``);
* ``comfy``     — a re-implementation of ComfyUI's ``hypernetwork_patch`` (also ersatzForge's):
  ``k + mlp_k(k)·m``, ``v + mlp_v(v)·m`` in every layer of every step, nothing cached;

for three stacks: one ``[1,2,1]`` relu hypernetwork (768/320/640/1280), a stack of two, and a
``[1,2,2,1]`` one.  All variants use the same attention kernel (SDP), so only the hypernetwork
cost differs.  A 20-step run is ``first + 19 × steady`` for ours and ``20 × call`` for the
stateless variants.  It also measures file I/O: load time ``.pt`` (A1111's way and ours) vs
``.safetensors``, and sha256 throughput vs a plain read.

    .venv/bin/python benchmarks/bench_apply.py                 # full run (~15 min on 2 cores)
    .venv/bin/python benchmarks/bench_apply.py --quick         # latent 32, two stacks, 3 rounds (~10 min)
    .venv/bin/python benchmarks/bench_apply.py --tiny          # seconds; smoke test
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lib_hypernet
from lib_hypernet.model.module import HypernetworkModule

Stack = list[tuple[lib_hypernet.Hypernetwork, float]]


# ----------------------------------------------------------------------------- the model
def build_unet(tiny: bool) -> torch.nn.Module:
    from ldm.modules.diffusionmodules.openaimodel import UNetModel

    if tiny:
        config = dict(model_channels=32, attention_resolutions=[2, 1], channel_mult=[1, 2], num_res_blocks=1,
                      num_head_channels=8, context_dim=64)
    else:  # v1-inference.yaml
        config = dict(model_channels=320, attention_resolutions=[4, 2, 1], channel_mult=[1, 2, 4, 4],
                      num_res_blocks=2, num_heads=8, context_dim=768)
    torch.manual_seed(0)
    unet = UNetModel(image_size=32, in_channels=4, out_channels=4, use_spatial_transformer=True,
                     transformer_depth=1, use_checkpoint=False, legacy=False, **config).eval()
    with torch.no_grad():  # random weights everywhere (ldm zero-initialises some output layers)
        for name, p in unet.named_parameters():
            if p.dim() > 1:
                p.normal_(0.0, (1.0 / p[0].numel()) ** 0.5)
            elif name.endswith("weight"):
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.02)
    unet.requires_grad_(False)
    return unet


def _attention(self: torch.nn.Module, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    h = self.heads
    b = q.shape[0]
    q, k, v = (t.reshape(b, -1, h, t.shape[-1] // h).transpose(1, 2) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v)
    return self.to_out(out.transpose(1, 2).reshape(b, -1, out.shape[1] * out.shape[-1]))


def sdp_forward(self: torch.nn.Module, x: torch.Tensor, context: torch.Tensor | None = None, mask=None, **kwargs):
    """The host's attention (like A1111's sdp optimization) without any hypernetwork code."""
    context = x if context is None else context
    return _attention(self, self.to_q(x), self.to_k(context), self.to_v(context))


A1111_LOADED: Stack = []
HN_SECONDS = [0.0]  # time spent on hypernetworks during the current UNet call
MACS = {"self": 0, "cross": 0}  # hypernetwork multiply-accumulates of A1111's way during the current call


@dataclass
class Result:
    wall: float  # the whole UNet call
    hypernet: float  # the part of it spent applying hypernetworks
    out: torch.Tensor
    self_macs: int = 0  # A1111's hypernetwork work on self-attention inputs (counted in its forward)
    cross_macs: int = 0  # … and on the text context


def a1111_apply_single(hn, context_k, context_v):
    """A1111 1.10.1 ``apply_single_hypernetwork`` (cond casts are identities on CPU/fp32)."""
    layers = hn.layers.get(context_k.shape[2], None)
    if layers is None:
        return context_k, context_v
    return layers[0](context_k), layers[1](context_v)


def _macs(hn: lib_hypernet.Hypernetwork, width: int, tokens: int) -> int:
    """Multiply-accumulates of one hypernetwork (k and v) on ``tokens`` tokens of ``width``."""
    pair = hn.layers.get(width)
    if pair is None:
        return 0
    return tokens * sum(m.in_features * m.out_features for module in pair for m in module.linear
                        if isinstance(m, torch.nn.Linear))


def a1111_forward(self: torch.nn.Module, x: torch.Tensor, context: torch.Tensor | None = None, mask=None, **kwargs):
    """A1111's optimized forwards: apply every loaded hypernetwork at every layer, then attention."""
    kind = "self" if context is None else "cross"
    context = x if context is None else context
    MACS[kind] += sum(_macs(hn, context.shape[-1], context.shape[0] * context.shape[1]) for hn, _ in A1111_LOADED)
    start = time.perf_counter()
    context_k = context_v = context
    for hn, _ in A1111_LOADED:
        context_k, context_v = a1111_apply_single(hn, context_k, context_v)
    HN_SECONDS[0] += time.perf_counter() - start
    return _attention(self, self.to_q(x), self.to_k(context_k), self.to_v(context_v))


def a1111_load_stack(stack: Stack) -> None:
    """A1111's ``load_hypernetworks`` + ``set_multiplier``: the multiplier lives on the modules."""
    A1111_LOADED[:] = stack
    for hn, m in stack:
        for module in hn.modules():
            module.multiplier = m


# ----------------------------------------------------------------------------- Forge 2 / ComfyUI patch route
PATCHES: dict[str, list[Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]]] = {
    "attn1_patch": [], "attn2_patch": []}


def sdp_value_forward(self: torch.nn.Module, x: torch.Tensor, context: torch.Tensor | None = None,
                      value: torch.Tensor | None = None, mask=None, **kwargs):
    """Forge 2's ``CrossAttention.forward`` (``backend/nn/unet.py:145``): K from ``context``, V from ``value``."""
    context = x if context is None else context
    return _attention(self, self.to_q(x), self.to_k(context), self.to_v(context if value is None else value))


def patched_block_forward(self: torch.nn.Module, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
    """Forge 2's / ComfyUI's ``BasicTransformerBlock._forward`` with its attn1/attn2 patch lists."""
    extra = {"block": ("block", id(self)), "block_index": 0, "n_heads": self.attn1.heads}
    n = self.norm1(x)
    context_attn1 = value_attn1 = n
    for p in PATCHES["attn1_patch"]:
        n, context_attn1, value_attn1 = p(n, context_attn1, value_attn1, extra)
    x = self.attn1(n, context=context_attn1, value=value_attn1) + x
    n = self.norm2(x)
    context_attn2 = value_attn2 = context
    for p in PATCHES["attn2_patch"]:
        n, context_attn2, value_attn2 = p(n, context_attn2, value_attn2, extra)
    x = self.attn2(n, context=context_attn2, value=value_attn2) + x
    return self.ff(self.norm3(x)) + x


class ComfyHypernetworkPatch:
    """ComfyUI ``comfy_extras/nodes_hypernetwork.py`` ``hypernetwork_patch`` (eval-mode modules): per call, by
    ``k.shape[-1]``, ``k + mlp_k(k)·m`` and ``v + mlp_v(v)·m``; one patch per hypernetwork, nothing cached."""

    def __init__(self, hn: lib_hypernet.Hypernetwork, strength: float) -> None:
        self.layers = {width: (pair[0].linear, pair[1].linear) for width, pair in hn.layers.items()}
        self.strength = strength

    def __call__(self, q, k, v, extra_options):
        start = time.perf_counter()
        layers = self.layers.get(k.shape[-1])
        if layers is not None:
            k = k + layers[0](k) * self.strength
            v = v + layers[1](v) * self.strength
        HN_SECONDS[0] += time.perf_counter() - start
        return q, k, v


def _timed(patch: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]):
    def call(n, context, value, extra_options):
        start = time.perf_counter()
        try:
            return patch(n, context, value, extra_options)
        finally:
            HN_SECONDS[0] += time.perf_counter() - start

    return call


@contextlib.contextmanager
def patch_route(attn1: list, attn2: list) -> Iterator[None]:
    import ldm.modules.attention as attention

    previous = attention.BasicTransformerBlock._forward
    PATCHES["attn1_patch"][:], PATCHES["attn2_patch"][:] = attn1, attn2
    attention.BasicTransformerBlock._forward = patched_block_forward
    try:
        with attention_forward(sdp_value_forward):
            yield
    finally:
        attention.BasicTransformerBlock._forward = previous
        PATCHES["attn1_patch"][:], PATCHES["attn2_patch"][:] = [], []


# ----------------------------------------------------------------------------- timing
@contextlib.contextmanager
def attention_forward(forward) -> Iterator[None]:
    import ldm.modules.attention as attention

    previous = attention.CrossAttention.forward
    attention.CrossAttention.forward = forward
    try:
        yield
    finally:
        attention.CrossAttention.forward = previous


def bench_unet(unet: torch.nn.Module, stacks: dict[str, Stack], latent: int, context_dim: int, steps: int,
               rounds: int) -> list[str]:
    torch.manual_seed(1)
    x = torch.randn(2, 4, latent, latent)
    t = torch.tensor([500, 500])
    cond, uncond = torch.randn(1, 77, context_dim), torch.randn(1, 77, context_dim)

    def context() -> torch.Tensor:  # a new tensor each step, same values (A1111's CFG concatenation)
        return torch.cat([cond, uncond])

    handle = lib_hypernet.install(unet)
    hooked = handle._on_projection  # time spent in our hooks (they look this attribute up per call)

    def timed_projection(*args: object) -> object:
        start = time.perf_counter()
        try:
            return hooked(*args)
        finally:
            HN_SECONDS[0] += time.perf_counter() - start

    handle._on_projection = timed_projection  # type: ignore[method-assign]

    def call() -> Result:
        HN_SECONDS[0] = 0.0
        MACS.update(self=0, cross=0)
        start = time.perf_counter()
        with torch.no_grad():
            out = unet(x, t, context=context())
        return Result(time.perf_counter() - start, HN_SECONDS[0], out, MACS["self"], MACS["cross"])

    def run_unhooked() -> Result:
        handle.deactivate()
        with attention_forward(sdp_forward):
            return call()

    def run_a1111(stack: Stack) -> Result:
        handle.deactivate()
        a1111_load_stack(stack)
        with attention_forward(a1111_forward):
            return call()

    def run_ours_first(stack: Stack) -> Result:
        handle.activate(stack)  # a fresh activation: the cross-attention cache starts empty
        with attention_forward(sdp_forward):
            return call()

    def run_ours_steady(stack: Stack) -> Result:
        with attention_forward(sdp_forward):  # continues the activation of run_ours_first
            return call()

    forge_patch = lib_hypernet.HypernetPatch()
    forge_lists = ([_timed(forge_patch.attn1)], [_timed(forge_patch.attn2)])

    def run_forge_first(stack: Stack) -> Result:
        handle.deactivate()
        forge_patch.activate(stack)  # fresh: the cross-attention cache starts empty
        with patch_route(*forge_lists):
            return call()

    def run_forge_steady(stack: Stack) -> Result:
        with patch_route(*forge_lists):
            return call()

    def run_comfy(stack: Stack) -> Result:
        handle.deactivate()
        comfy = [ComfyHypernetworkPatch(hn, m) for hn, m in stack]
        with patch_route(list(comfy), list(comfy)):
            return call()

    variants: list[tuple[str, Callable[[], Result]]] = [("unhooked", run_unhooked)]
    for name, stack in stacks.items():
        variants.append((f"a1111/{name}", lambda s=stack: run_a1111(s)))
        variants.append((f"ours-first/{name}", lambda s=stack: run_ours_first(s)))
        variants.append((f"ours-steady/{name}", lambda s=stack: run_ours_steady(s)))
        variants.append((f"forge-first/{name}", lambda s=stack: run_forge_first(s)))
        variants.append((f"forge-steady/{name}", lambda s=stack: run_forge_steady(s)))
        variants.append((f"comfy/{name}", lambda s=stack: run_comfy(s)))

    # Warm-up (allocator, compiled weights), then interleaved rounds.
    results: dict[str, list[Result]] = {name: [] for name, _ in variants}
    outputs = {name: fn().out for name, fn in variants}
    for r in range(rounds):
        for name, fn in variants:  # *-first must precede *-steady of the same stack
            result = fn()
            results[name].append(result)
            outputs[name] = result.out
        print(f"  latent {latent}: round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    handle.deactivate()
    handle._on_projection = hooked  # type: ignore[method-assign]

    wall = {name: min(r.wall for r in rs) for name, rs in results.items()}
    hn = {name: statistics.median(r.hypernet for r in rs) for name, rs in results.items()}
    base = wall["unhooked"]
    lines = [
        f"### latent {latent}×{latent} ({latent * 8} px), batch 2 (cond+uncond), {rounds} interleaved rounds",
        "",
        f"Unhooked UNet call: {base * 1000:.0f} ms (best of {rounds}). Installed with nothing active there are no "
        "hooks at all, so an idle call is the unhooked call.",
        "",
        f"| stack | A1111 hypernet time / call | ours / call (first, later) | A1111 / {steps} steps | ours / {steps} steps "
        "| **ours ÷ A1111** | FLOP floor | UNet call: A1111, ours (best) | max abs diff |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in stacks:
        a = hn[f"a1111/{name}"]
        first, later = hn[f"ours-first/{name}"], hn[f"ours-steady/{name}"]
        a_run, ours_run = steps * a, first + (steps - 1) * later
        diff = (outputs[f"ours-steady/{name}"] - outputs[f"a1111/{name}"]).abs().max().item()
        counted = results[f"a1111/{name}"][-1]
        floor = counted.self_macs / max(counted.self_macs + counted.cross_macs, 1)
        lines.append(
            f"| {name} | {a * 1000:.0f} ms ({a / base * 100:.1f} %) | {first * 1000:.0f} ms, {later * 1000:.0f} ms "
            f"({later / base * 100:.1f} %) | {a_run:.2f} s | {ours_run:.2f} s | **{ours_run / a_run:.2f}×** | {floor:.2f}× "
            f"| {wall[f'a1111/{name}'] * 1000:.0f} ms, {wall[f'ours-steady/{name}'] * 1000:.0f} ms | {diff:.1e} |"
        )
    lines += [
        "",
        "*FLOP floor*: the share of A1111's hypernetwork multiply-accumulates that act on self-attention inputs, "
        "which change every layer and step and must be computed; a ratio below it means our kernels also run "
        "faster per FLOP than A1111's.",
        "",
        f"Forge 2 / reForge / ComfyUI patch route on the same UNet (blocks run `attn1_patch`/`attn2_patch`), {steps} steps:",
        "",
        "| stack | A1111 way / call | ComfyUI patch / call | ours as patch / call (first, later) | **ours patch ÷ A1111** "
        "| ComfyUI ÷ A1111 | ours patch ÷ ours hooks | max abs diff to A1111: ours patch, ComfyUI |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in stacks:
        a = hn[f"a1111/{name}"]
        comfy = hn[f"comfy/{name}"]
        first, later = hn[f"forge-first/{name}"], hn[f"forge-steady/{name}"]
        hooks_run = hn[f"ours-first/{name}"] + (steps - 1) * hn[f"ours-steady/{name}"]
        a_run, forge_run = steps * a, first + (steps - 1) * later
        reference = outputs[f"a1111/{name}"]
        d_forge = (outputs[f"forge-steady/{name}"] - reference).abs().max().item()
        d_comfy = (outputs[f"comfy/{name}"] - reference).abs().max().item()
        lines.append(
            f"| {name} | {a * 1000:.0f} ms | {comfy * 1000:.0f} ms | {first * 1000:.0f} ms, {later * 1000:.0f} ms "
            f"| **{forge_run / a_run:.2f}×** | {comfy / a:.2f}× | {forge_run / hooks_run:.2f}× | {d_forge:.1e}, {d_comfy:.1e} |"
        )
    return lines


# ----------------------------------------------------------------------------- I/O
def a1111_style_load(path: str) -> None:
    """What A1111 does: build every module with random init on the CPU, then copy the weights in."""
    raw = torch.load(path, map_location="cpu", weights_only=True)
    ls = raw.get("layer_structure", [1, 2, 1])
    for width, (sd_k, sd_v) in ((k, v) for k, v in raw.items() if type(k) is int):
        for sd in (sd_k, sd_v):
            module = HypernetworkModule(width, ls, raw.get("activation_func"), raw.get("is_layer_norm", False),
                                        raw.get("activate_output", True), raw.get("dropout_structure"))
            module.load_state_dict(sd)
            module.eval()


def bench_io(rounds: int, widths: Sequence[int]) -> list[str]:
    hn = lib_hypernet.create("io", sizes=widths, activation_func="relu", seed=0)
    with tempfile.TemporaryDirectory() as folder:
        pt, st = os.path.join(folder, "io.pt"), os.path.join(folder, "io.safetensors")
        hn.save(pt)
        hn.save(st)
        size = os.path.getsize(pt)

        def plain_read() -> None:
            with open(pt, "rb") as f:
                while f.read(1024 * 1024):
                    pass

        cases: list[tuple[str, Callable[[], object]]] = [
            ("A1111-style .pt load (init, then copy)", lambda: a1111_style_load(pt)),
            ("lib_hypernet.load(.pt)", lambda: lib_hypernet.load(pt)),
            ("lib_hypernet.load(.safetensors)", lambda: lib_hypernet.load(st)),
            ("plain read (1 MiB blocks)", plain_read),
            ("sha256", lambda: lib_hypernet.sha256(pt)),
        ]
        for _, fn in cases:  # warm the page cache
            fn()
        times: dict[str, list[float]] = {name: [] for name, _ in cases}
        for _ in range(rounds):
            for name, fn in cases:
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    med = {name: min(ts) for name, ts in times.items()}
    mib = size / 2**20
    title = f"### file I/O — one [1,2,1] relu hypernetwork, widths {list(widths)}, {mib:.1f} MiB, page cache warm"
    lines = [f"{title}, {rounds} rounds", "",
             "| operation | time | throughput |", "|---|---|---|"]
    for name, _ in cases:
        lines.append(f"| {name} | {med[name] * 1000:.1f} ms | {mib / med[name]:.0f} MiB/s |")
    return lines


# ----------------------------------------------------------------------------- main
def make_stacks(widths: Sequence[int]) -> dict[str, Stack]:
    one = lib_hypernet.create("one", sizes=widths, activation_func="relu", seed=1)
    two = lib_hypernet.create("two", sizes=widths, activation_func="swish", seed=2)
    deep = lib_hypernet.create("deep", sizes=widths, layer_structure=[1, 2, 2, 1], activation_func="relu", seed=3)
    for hn in (one, two, deep):  # trained-looking weights so the effect is visible
        with torch.no_grad():
            for p in hn.parameters():
                p.normal_(0.0, 0.02)
    return {"one [1,2,1]": [(one, 0.8)], "stack of two": [(one, 0.8), (two, 0.6)], "[1,2,2,1]": [(deep, 0.8)]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latents", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, nargs="+", default=[5, 3],
                        help="rounds per latent size (the last value repeats)")
    parser.add_argument("--tiny", action="store_true", help="small UNet and sizes: a smoke test in seconds")
    parser.add_argument("--quick", action="store_true",
                        help="the SD1.5 UNet, latent 32 only, two stacks, 3 rounds, no I/O (about 10 minutes on 2 cores)")
    parser.add_argument("--skip-io", action="store_true")
    args = parser.parse_args(argv)

    torch.set_flush_denormal(True)
    print(f"# lib_hypernet apply benchmark — torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs", flush=True)
    unet = build_unet(args.tiny)
    widths = [64, 32] if args.tiny else [768, 320, 640, 1280]
    context_dim = 64 if args.tiny else 768
    stacks = make_stacks(widths)
    latents = [8] if args.tiny else args.latents
    if args.quick:
        stacks = {name: stack for name, stack in stacks.items() if name != "[1,2,2,1]"}
        latents, args.rounds, args.skip_io = [32], [3], True
    for i, latent in enumerate(latents):
        rounds = args.rounds[min(i, len(args.rounds) - 1)]
        print("\n".join(["", *bench_unet(unet, stacks, latent, context_dim, args.steps, rounds)]), flush=True)
    if not args.skip_io:
        print("\n".join(["", *bench_io(1 if args.tiny else 7, widths)]), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
