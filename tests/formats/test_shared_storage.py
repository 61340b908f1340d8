"""Tensors that share a storage: an amplification attack (many views of one float16 storage, each decoded
into its own float32 copy) is refused with bounded memory; a valid file with tied weights loads and converts."""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import torch
from hostile_util import assert_refused, run_limited

import lib_hypernet
from lib_hypernet.library.description import describe_file

BASE_NUMEL = 1_350_000  # 2.7 MB of float16
WIDTH = 1160  # a [1, 1, 1] module of width 1160: two 1160x1160 weights, each a view of the one storage


def _amplifying_raw(widths: int = 64) -> dict:
    base = torch.zeros(BASE_NUMEL, dtype=torch.float16)
    w = base[: WIDTH * WIDTH].view(WIDTH, WIDTH)
    b = base[:WIDTH]
    state = OrderedDict([("linear.0.weight", w), ("linear.0.bias", b), ("linear.1.weight", w), ("linear.1.bias", b)])
    raw: dict = {WIDTH + i: (state, state) for i in range(widths)}
    raw.update(layer_structure=[1, 1, 1], activation_func="linear", name="amp")
    return raw


def test_many_views_of_one_storage_are_refused_under_a_memory_limit(tmp_path: Path) -> None:
    path = tmp_path / "amp.pt"
    torch.save(_amplifying_raw(), path)
    assert path.stat().st_size < 3 << 20
    assert_refused(path, "decoded", calls=(lib_hypernet.check_torch_file, lib_hypernet.load))
    # Listing the folder (describe) and loading, in a fresh process under a 3 GiB address-space limit:
    # before the bound the decode asked for about 2.8 GB more than the file and died or raised RuntimeError.
    result = run_limited(
        f"""
        from lib_hypernet.library.description import describe_file
        path = {str(path)!r}
        outcome = []
        try:
            lib_hypernet.load(path)
            outcome.append("loaded")
        except lib_hypernet.HypernetError as exc:
            outcome.append("refused")
        desc = describe_file(path)
        outcome.append("listed" if desc.error else "listed-ok")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({{"outcome": outcome, "growth_mb": peak - BASE_MB}}))
        """,
        address_space_mb=3072,
    )
    assert result["outcome"] == ["refused", "listed"]
    assert result["growth_mb"] < 200


def test_tied_weights_load_convert_and_describe(tmp_path: Path) -> None:
    """A valid .pt whose k and v modules share their tensors (one storage each): converting must not raise
    safetensors' "Some tensors share memory"."""
    hn = lib_hypernet.create("tied", sizes=[16], seed=1)
    raw = hn.state_dict()
    raw[16] = (raw[16][0], raw[16][0])  # v ties k
    src = tmp_path / "tied.pt"
    torch.save(raw, src)
    dst = tmp_path / "tied.safetensors"
    lib_hypernet.convert_file(str(src), str(dst))
    back = lib_hypernet.load(dst)
    torch.testing.assert_close(back.layers[16][1].linear[0].weight, back.layers[16][0].linear[0].weight)
    assert describe_file(str(src)).ok
    assert json.dumps(describe_file(str(dst)).to_json())


def test_views_of_one_larger_storage_convert(tmp_path: Path) -> None:
    """Each tensor a view into one float32 buffer (as a training script that packs parameters saves it)."""
    hn = lib_hypernet.create("packed", sizes=[16], seed=2)
    raw = hn.state_dict()
    flat = torch.cat([t.reshape(-1) for sd in raw[16] for t in sd.values()])
    at = 0
    for sd in raw[16]:
        for key, t in sd.items():
            sd[key] = flat[at:at + t.numel()].view_as(t)
            at += t.numel()
    src = tmp_path / "packed.pt"
    torch.save(raw, src)
    lib_hypernet.convert_file(str(src), str(tmp_path / "packed.safetensors"))
    assert lib_hypernet.load(tmp_path / "packed.safetensors").widths == [16]
