"""Benchmark: baking into an SD1.5-sized checkpoint — time and peak memory against the file's size.

Writes a random-weight SD1.5 checkpoint (``--dtype float16``: about 2 GB with the UNet's full state dict,
as a webui's checkpoint is) and an affine hypernetwork, then times, each in a fresh process (so the peak
RSS is the bake's own):

* ``lora``  — a LoRA "full" file (reads only the attention tensors);
* ``merge`` — a merged checkpoint (copies the file, rewrites the baked tensors);

and prints a table: seconds, peak RSS growth, the checkpoint's size, and the largest per-layer error.

    .venv/bin/python benchmarks/bench_bake.py                 # SD1.5 UNet, float16 (~1.7 GB)
    .venv/bin/python benchmarks/bench_bake.py --small         # a tiny UNet (seconds; a smoke test)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = r"""
import json, sys, time
sys.path.insert(0, {root!r})


def peak_mb():
    # VmHWM, after clear_refs reset it: ru_maxrss would carry the parent's peak across fork and exec.
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
from lib_hypernet import bake
import lib_hypernet.library.actions  # noqa: F401  (torch and the library, before the baseline)
import lib_hypernet.baking  # noqa: F401
base = peak_mb()
start = time.perf_counter()
report = bake([({hn!r}, 0.8)], {ckpt!r}, {out!r}, mode={mode!r}, overwrite=True)
seconds = time.perf_counter() - start
peak = peak_mb()
print(json.dumps({{"seconds": seconds, "growth_mb": peak - base, "peak_mb": peak,
                  "error": report.max_error,
                  "layers": len(report.layers)}}))
"""


def make_checkpoint(folder: Path, small: bool, dtype_name: str) -> Path:
    import torch
    from ldm.modules.diffusionmodules.openaimodel import UNetModel
    from safetensors.torch import save_file

    dtype = getattr(torch, dtype_name)
    config = dict(image_size=32, in_channels=4, out_channels=4, model_channels=320, attention_resolutions=[4, 2, 1],
                  num_res_blocks=2, channel_mult=[1, 2, 4, 4], num_heads=8, use_spatial_transformer=True,
                  transformer_depth=1, context_dim=768, use_checkpoint=False, legacy=False)
    if small:
        config.update(model_channels=32, channel_mult=[1, 2], attention_resolutions=[1, 2], num_res_blocks=1)
    with torch.device("meta"):
        unet = UNetModel(**config)
    unet = unet.to_empty(device="cpu")
    gen = torch.Generator().manual_seed(0)
    state = {}
    for name, p in unet.state_dict().items():
        state["model.diffusion_model." + name] = (torch.randn(p.shape, generator=gen) * 0.02).to(dtype)
    path = folder / "sd15-random.safetensors"
    save_file(state, path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a tiny UNet instead of SD1.5 (a smoke test)")
    parser.add_argument("--dtype", default="float16", choices=("float16", "float32"))
    args = parser.parse_args(argv)
    import lib_hypernet

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"writing a random {'tiny' if args.small else 'SD1.5'} checkpoint ({args.dtype})…", file=sys.stderr)
        ckpt = make_checkpoint(folder, args.small, args.dtype)
        sizes = [32, 64, 48] if args.small else [768, 320, 640, 1280]
        hn = lib_hypernet.create("bench", sizes=sizes, activation_func="linear", seed=1)
        hn_path = folder / "bench.safetensors"
        hn.save(hn_path)
        size_mb = os.path.getsize(ckpt) / 2**20
        print("| output | seconds | peak RSS (MB) | growth over imports (MB) | checkpoint (MB) | growth / checkpoint "
              "| layers | max error |")
        print("|---|---|---|---|---|---|---|---|")
        for mode in ("lora", "merge"):
            out = folder / f"{mode}.safetensors"
            code = CHILD.format(root=str(ROOT), hn=str(hn_path), ckpt=str(ckpt), out=str(out), mode=mode)
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            row = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"| {mode} | {row['seconds']:.1f} | {row['peak_mb']:.0f} | {row['growth_mb']:.0f} | {size_mb:.0f} | "
                  f"{row['growth_mb'] / size_mb:.2f}× | {row['layers']} | {row['error']:.1e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
