"""Benchmark: a folder of 1,000 small hypernetworks in the library panel — first scan vs warm.

Writes N small files (half ``.pt``, half ``.safetensors``, some in sub-folders) into a temporary
folder, then measures:

* ``first scan``      — a library with empty caches: scan the folder and describe every file
  (each file is loaded once; what the first start after adding the files costs);
* ``restart (warm)``  — a new library whose description cache is read from the persisted JSON
  (what every later webui start costs: no file is loaded);
* ``in memory``       — describing every file again in the same process;
* ``panel build``     — building the gradio panel (``build_library_panel`` in a ``gr.Blocks``);
* ``panel fill``      — the page-load event: rescan + the table rows, the dropdown, the status line;
* ``hash all``        — "Compute missing hashes" for every file.

    .venv/bin/python benchmarks/bench_library.py               # 1,000 files
    .venv/bin/python benchmarks/bench_library.py --files 50    # seconds; smoke test
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def write_files(folder: Path, count: int) -> int:
    """``count`` small hypernetworks (widths 32/64, three activations); returns the total bytes."""
    import lib_hypernet

    total = 0
    activations = ("relu", "tanh", "linear")
    for i in range(count):
        sub = folder / f"set{i % 10}" if i % 3 == 0 else folder
        sub.mkdir(parents=True, exist_ok=True)
        hn = lib_hypernet.create(f"hn{i:04d}", sizes=[32, 64], layer_structure=[1, 1.5, 1],
                                 activation_func=activations[i % 3], seed=i)
        path = sub / f"hn{i:04d}.{'pt' if i % 2 else 'safetensors'}"
        hn.save(path)
        total += path.stat().st_size
    return total


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000, help="how many files (default 1000)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    import gradio as gr

    from lib_hypernet.library.caches import DescriptionCache
    from lib_hypernet.library.folder import HypernetLibrary
    from lib_hypernet.library.source import LibrarySource
    from lib_hypernet.ui.library_panel import LibraryPanel, build_library_panel

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "hypernetworks"
        store = Path(tmp) / "summaries.json"
        size = write_files(folder, args.files)
        print(f"{args.files} files, {size / 1024 / 1024:.1f} MiB in all, widths 32/64 (.pt and .safetensors)")

        first = HypernetLibrary(folder)
        t_first, descs = timed(lambda: (first.refresh(), first.describe_all())[1])
        assert len(descs) == args.files and all(d.ok for d in descs), [d.error for d in descs if not d.ok][:3]
        t_save, _ = timed(lambda: first.description_cache.save(store))
        t_memory, _ = timed(first.describe_all)

        def restart() -> list[Any]:
            library = HypernetLibrary(folder, description_cache=DescriptionCache.load(store))
            library.refresh()
            return library.describe_all()

        t_restart, again = timed(restart)
        assert [d.to_json() for d in again] == [d.to_json() for d in descs]

        warm = HypernetLibrary(folder, description_cache=DescriptionCache.load(store))
        source = LibrarySource(warm)

        def build() -> Any:
            with gr.Blocks() as blocks:
                build_library_panel(source)
            return blocks

        t_build, _ = timed(build)
        panel = LibraryPanel(source)
        t_fill, outputs = timed(lambda: panel.on_refresh("", "name", False, None))
        assert len(outputs[1]) == args.files
        t_search, _ = timed(lambda: panel.on_filter("tanh set3", "size", True, None))
        t_hash, (hashed, errors) = timed(source.hash_missing)
        assert hashed == args.files and not errors

    rows = [
        ("first scan (empty caches: every file loaded)", t_first),
        ("save the description cache (JSON)", t_save),
        ("restart (warm: persisted description cache)", t_restart),
        ("describe again (in memory)", t_memory),
        ("panel build (gr.Blocks + build_library_panel)", t_build),
        ("panel fill on page load (rescan + table + dropdown)", t_fill),
        ("search + sort", t_search),
        ("compute every hash", t_hash),
    ]
    print(f"| step ({args.files} files) | seconds |")
    print("|---|---:|")
    for label, seconds in rows:
        print(f"| {label} | {seconds:.3f} |")
    print(f"warm restart is {t_first / t_restart:.1f}× faster than the first scan")
    return 0


if __name__ == "__main__":
    sys.exit(main())
