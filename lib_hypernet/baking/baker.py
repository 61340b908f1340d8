"""Baking: hypernetworks at fixed strengths written into a LoRA "full" file or a merged checkpoint.

For each attention layer of the checkpoint with the composite maps ``x ↦ M·x + c`` of the stack
(:mod:`.affine`): ``to_k.weight`` becomes ``W_k·M_k`` (the constant ``W_k·c_k`` moves every key by one
vector, which softmax ignores), ``to_v.weight`` becomes ``W_v·M_v`` and ``W_o·W_v·c_v`` (passed through
attention unchanged: each query's weights sum to 1) is added to the ``to_out.0`` bias.  Computed in
float64; a LoRA stores the differences in float32, a merged checkpoint stores its own dtype.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from ..engine.strength import Strength, StrengthLike, as_strength
from ..errors import HypernetFileError, HypernetFormatError
from ..formats.fileio import atomic_open
from ..formats.hashing import legacy_model_hash, same_checkpoint, sha256
from ..formats.safetensors_file import SafetensorsFile, tensor_bytes, write_streamed
from ..model.hypernetwork import Hypernetwork, load
from .affine import Affine, BakeError, check_bakeable, stack_maps
from .checkpoint import AttentionLayer, Checkpoint
from .verify import LayerCheck, check_layer, float64_stack

Progress = Callable[[int, int, str], None]
"""Called with (steps done, steps in all, what is being done)."""

METADATA_KEY = "sd_webui_hypernet_bake"
PROJECTIONS = ("to_k.weight", "to_v.weight", "to_out.0.weight", "to_out.0.bias")


@dataclass
class BakeReport:
    """What a bake wrote and how exact it is (``max_error``: relative, over every layer)."""

    output: str
    mode: str  # "lora" or "merge"
    checkpoint_sha256: str
    layers: list[LayerCheck] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)  # "name: widths 8, 16" for modules no layer used
    warnings: list[str] = field(default_factory=list)

    @property
    def max_error(self) -> float:
        return max((layer.error for layer in self.layers), default=0.0)


@dataclass(frozen=True)
class _LayerBake:
    layer: AttentionLayer
    k: Affine
    v: Affine


def bake(
    sources: Sequence[tuple[Hypernetwork | str | os.PathLike[str], StrengthLike]],
    checkpoint: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    mode: str = "lora",
    progress: Progress | None = None,
) -> BakeReport:
    """Bake ``sources`` (applied in order, as a prompt's tags stack) for ``checkpoint`` into ``output``.

    ``mode`` is ``"lora"`` (a LoRA "full" file whose strength 1 reproduces the stack) or ``"merge"``
    (a copy of the checkpoint with the baked weights; everything else byte-identical for a
    ``.safetensors`` checkpoint).  The output is written atomically, then read back and compared
    with the hypernetworks applied the A1111 way (the report's per-layer errors).  Raises
    :class:`BakeError` for what cannot be baked (an activation or layer norm, a step range, no
    matching layer).  Whether ``output`` may be written (exists, folder) is the caller's policy:
    :func:`lib_hypernet.library.actions.bake` applies the project's one write policy first.
    """
    if mode not in ("lora", "merge"):
        raise ValueError(f"mode must be 'lora' or 'merge', got {mode!r}")
    output = os.fspath(output)
    checkpoint = os.fspath(checkpoint)
    if not output.lower().endswith(".safetensors"):
        raise HypernetFileError("the output must be a .safetensors file", output)
    if os.path.abspath(output) == os.path.abspath(checkpoint):
        raise HypernetFileError("the output would replace the checkpoint it is made from; choose another name", output)
    say = progress or (lambda done, total, what: None)

    stack = [(hn if isinstance(hn, Hypernetwork) else load(hn), as_strength(s)) for hn, s in sources]
    if not stack:
        raise BakeError("nothing to bake: give at least one hypernetwork")
    for hn, strength in stack:
        check_bakeable(hn, strength)
    say(0, 4, "reading the checkpoint")
    ckpt = Checkpoint(checkpoint)
    plan = _plan(ckpt, stack)
    report = BakeReport(output, mode, _hash(checkpoint, say))
    report.unmatched = _unmatched(stack, plan)
    report.warnings = _warnings(stack, checkpoint, report.checkpoint_sha256)
    say(2, 4, f"writing {len(plan)} layers")
    metadata = _metadata(stack, checkpoint, report)
    if mode == "lora":
        _write_lora(ckpt, plan, output, metadata)
    elif ckpt.is_safetensors:
        _merge_in_place_copy(ckpt, plan, output)
    else:
        _merge_streamed(ckpt, plan, output)
    say(3, 4, "checking the result against the hypernetworks")
    report.layers = _verify(ckpt, plan, stack, output, mode)
    say(4, 4, "done")
    return report


# ---------------------------------------------------------------------------- planning
def _plan(ckpt: Checkpoint, stack: list[tuple[Hypernetwork, Strength]]) -> list[_LayerBake]:
    plan = []
    cache: dict[tuple[int, str], tuple[Affine, Affine] | None] = {}
    for layer in ckpt.attention_layers():
        key = (layer.width, layer.kind)
        if key not in cache:
            cache[key] = stack_maps(stack, layer.width, layer.kind)
        maps = cache[key]
        if maps is not None:
            plan.append(_LayerBake(layer, *maps))
    if not plan:
        widths = sorted({w for hn, _ in stack for w in hn.widths})
        raise BakeError(
            f"no attention layer of this checkpoint takes the hypernetworks' widths {', '.join(map(str, widths))} "
            "(or every strength is 0): nothing would change",
            ckpt.path,
        )
    return plan


def _unmatched(stack: list[tuple[Hypernetwork, Strength]], plan: list[_LayerBake]) -> list[str]:
    used = {item.layer.width for item in plan}
    notes = []
    for hn, _ in stack:
        unused = [w for w in hn.widths if w not in used]
        if unused:
            notes.append(f"{hn.name}: widths {', '.join(map(str, unused))} matched no layer of this checkpoint")
    return notes


def _hash(path: str, say: Progress) -> str:
    say(1, 4, "hashing the checkpoint")
    return sha256(path)


def _warnings(stack: list[tuple[Hypernetwork, Strength]], checkpoint: str, digest: str) -> list[str]:
    legacy = legacy_model_hash(checkpoint)
    notes = []
    for hn, _ in stack:
        recorded = hn.sd_checkpoint
        if recorded and not (same_checkpoint(recorded, digest) or same_checkpoint(recorded, legacy)):
            notes.append(
                f"{hn.name} was trained on checkpoint [{recorded.strip()}] ({hn.sd_checkpoint_name or 'unnamed'}), "
                f"not this one [{digest[:10]}]; the bake is exact for this checkpoint, as the hypernetwork is on it"
            )
    notes.append(
        "A bake is made for one checkpoint: the weight changes are computed from its own projections. On another "
        "checkpoint (a merge or fine-tune of it) the file only approximates the hypernetwork."
    )
    return notes


def _metadata(stack: list[tuple[Hypernetwork, Strength]], checkpoint: str, report: BakeReport) -> dict[str, str]:
    sources = []
    for hn, strength in stack:
        digest = None
        if hn.path and os.path.isfile(hn.path):
            try:
                digest = sha256(hn.path)
            except HypernetFileError:
                digest = None
        sources.append({
            "name": hn.name, "file": os.path.basename(hn.path) if hn.path else None, "sha256": digest,
            "self": strength.self_attn, "cross": strength.cross_attn,
        })
    record = {
        "sources": sources,
        "checkpoint": {"file": os.path.basename(checkpoint), "sha256": report.checkpoint_sha256},
        "made_with": "sd-webui-hypernet bake",
        "note": "exact for this checkpoint only; LoRA strength 1 reproduces the stack at these strengths",
    }
    return {METADATA_KEY: json.dumps(record, sort_keys=True)}


# ---------------------------------------------------------------------------- the new weights
def _baked(item: _LayerBake, w: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The layer's new projections in float64."""
    wk, wv, wo, bo = (w[p].to(torch.float64) for p in PROJECTIONS)
    return {
        "to_k.weight": wk @ item.k.matrix,
        "to_v.weight": wv @ item.v.matrix,
        "to_out.0.weight": wo,
        "to_out.0.bias": bo + wo @ (wv @ item.v.offset),
    }


def _diffs(item: _LayerBake, w: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The changes, computed without subtracting nearly equal numbers (``W·(M − I)``)."""
    wk, wv, wo, _ = (w[p].to(torch.float64) for p in PROJECTIONS)
    eye = torch.eye(item.layer.width, dtype=torch.float64)
    return {
        "to_k.diff": wk @ (item.k.matrix - eye),
        "to_v.diff": wv @ (item.v.matrix - eye),
        "to_out_0.diff": torch.zeros_like(wo),  # A1111 accepts a diff_b only beside a diff
        "to_out_0.diff_b": wo @ (wv @ item.v.offset),
    }


def _read_layer(read: Callable[[str], torch.Tensor], layer: AttentionLayer) -> dict[str, torch.Tensor]:
    return {p: read(layer.key(p)) for p in PROJECTIONS}


def _write_lora(ckpt: Checkpoint, plan: list[_LayerBake], output: str, metadata: dict[str, str]) -> None:
    with ckpt.reader() as read:
        entries = []
        for item in plan:
            shapes = {"to_k.diff": ckpt.shape(item.layer.key("to_k.weight")),
                      "to_v.diff": ckpt.shape(item.layer.key("to_v.weight")),
                      "to_out_0.diff": ckpt.shape(item.layer.key("to_out.0.weight")),
                      "to_out_0.diff_b": ckpt.shape(item.layer.key("to_out.0.bias"))}
            cache: dict[str, torch.Tensor] = {}

            def produce(part: str, item: _LayerBake = item, cache: dict[str, torch.Tensor] = cache) -> torch.Tensor:
                if not cache:
                    cache.update(_diffs(item, _read_layer(read, item.layer)))
                tensor = cache.pop(part).to(torch.float32)
                return tensor

            for part, shape in shapes.items():
                entries.append((f"{item.layer.lora_name}_{part}", torch.float32, shape,
                                lambda part=part, produce=produce: produce(part)))
        write_streamed(output, entries, metadata)


def _changed_tensors(plan: list[_LayerBake]) -> dict[str, tuple[_LayerBake, str]]:
    changed = {}
    for item in plan:
        for part in ("to_k.weight", "to_v.weight", "to_out.0.bias"):
            changed[item.layer.key(part)] = (item, part)
    return changed


def _merge_in_place_copy(ckpt: Checkpoint, plan: list[_LayerBake], output: str) -> None:
    """Copy the file byte for byte, then overwrite the changed tensors' bytes (same dtype and size)."""
    source = SafetensorsFile(ckpt.path)
    try:
        with atomic_open(output) as out, open(ckpt.path, "rb") as src:
            shutil.copyfileobj(src, out, 16 << 20)
            with ckpt.reader() as read:
                for item in plan:
                    baked = _baked(item, _read_layer(read, item.layer))
                    for part in ("to_k.weight", "to_v.weight", "to_out.0.bias"):
                        info = source.tensors[item.layer.key(part)]
                        data = baked[part].to(info.dtype).contiguous()
                        out.seek(info.start)
                        out.write(tensor_bytes(data))
            out.seek(0, os.SEEK_END)
    except OSError as exc:
        raise HypernetFileError(f"could not save: {exc.strerror or exc}", output) from exc


def _merge_streamed(ckpt: Checkpoint, plan: list[_LayerBake], output: str) -> None:
    """A ``.ckpt`` becomes a ``.safetensors`` state dict with the baked weights (tensor by tensor)."""
    changed = _changed_tensors(plan)
    with ckpt.reader() as read:
        baked_cache: dict[str, dict[str, torch.Tensor]] = {}

        def produce(key: str) -> torch.Tensor:
            if key not in changed:
                return read(key)
            item, part = changed[key]
            layer_baked = baked_cache.setdefault(item.layer.prefix, _baked(item, _read_layer(read, item.layer)))
            return layer_baked[part].to(ckpt.dtype(key))

        entries = [(key, ckpt.dtype(key), ckpt.shape(key), lambda key=key: produce(key)) for key in ckpt.names()]
        write_streamed(output, entries)


# ---------------------------------------------------------------------------- checking
def _verify(ckpt: Checkpoint, plan: list[_LayerBake], stack: list[tuple[Hypernetwork, Strength]],
            output: str, mode: str) -> list[LayerCheck]:
    stack64 = float64_stack(stack)
    written = SafetensorsFile(output)
    checks = []
    with ckpt.reader() as read, open(output, "rb") as f:
        for index, item in enumerate(plan):
            original = _read_layer(read, item.layer)
            if mode == "lora":
                name = item.layer.lora_name
                diff = {p: written.read(f"{name}_{p}", f).to(torch.float64) for p in
                        ("to_k.diff", "to_v.diff", "to_out_0.diff", "to_out_0.diff_b")}
                baked = {
                    "to_k.weight": original["to_k.weight"].to(torch.float64) + diff["to_k.diff"],
                    "to_v.weight": original["to_v.weight"].to(torch.float64) + diff["to_v.diff"],
                    "to_out.0.weight": original["to_out.0.weight"].to(torch.float64) + diff["to_out_0.diff"],
                    "to_out.0.bias": original["to_out.0.bias"].to(torch.float64) + diff["to_out_0.diff_b"],
                }
            else:
                baked = {p: written.read(item.layer.key(p), f) for p in PROJECTIONS}
            checks.append(check_layer(item.layer, stack64, original, baked, seed=index))
    if not checks:
        raise HypernetFormatError("the written file holds no baked layer", output)
    return checks
