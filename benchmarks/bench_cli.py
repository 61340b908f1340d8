"""Benchmark: how fast the command line answers — ``--help`` (no torch) beside ``info FILE`` (torch, a file read).

Each command runs as a whole new process (``python -m lib_hypernet …``, as a user types it), the commands in
turn, round after round, after one warm-up round; printed: the median, min and max wall time of each, and the
median of the per-round ratios to ``python -c pass`` (the interpreter's own start, the floor) and to ``info``.

    .venv/bin/python benchmarks/bench_cli.py                       # 9 rounds
    .venv/bin/python benchmarks/bench_cli.py --rounds 3 --other ../old-checkout   # also time another checkout
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def wall_time(argv: list[str], root: Path, cwd: str) -> float:
    """Seconds one process takes, from start to exit (its output discarded)."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="counted rounds (default 9)")
    parser.add_argument("--other", type=Path, default=None, metavar="DIR",
                        help="another checkout (e.g. an older commit) to time beside this one")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    import lib_hypernet

    python = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "sd1.pt")
        lib_hypernet.create("sd1", seed=1).save(path)  # SD1 widths, [1, 2, 1]: a typical 84 MiB file
        commands: dict[str, tuple[list[str], Path]] = {"python -c pass": ([python, "-c", "pass"], ROOT)}
        checkouts = [("", ROOT)] + ([(f" ({args.other.name})", args.other.resolve())] if args.other else [])
        for suffix, root in checkouts:
            commands[f"--help{suffix}"] = ([python, "-m", "lib_hypernet", "--help"], root)
            commands[f"info FILE{suffix}"] = ([python, "-m", "lib_hypernet", "info", path], root)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for round_ in range(args.rounds + 1):
            for name, (command, root) in commands.items():
                seconds = wall_time(command, root, tmp)
                if round_:  # the first round warms the page cache and is not counted
                    times[name].append(seconds)

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(times[a], times[b]))

    print(f"python {sys.version.split()[0]}, {args.rounds} rounds, each command a new process, in turn\n")
    print("| command | median s | min s | max s | × python -c pass | × info FILE |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, values in times.items():
        versus_info = f"{ratio(name, 'info FILE' + name[len('--help'):]):.2f}" if name.startswith("--help") else ""
        print(f"| {name} | {statistics.median(values):.3f} | {min(values):.3f} | {max(values):.3f} | "
              f"{ratio(name, 'python -c pass'):.1f} | {versus_info} |")
    if args.other:
        print(f"\n--help here / --help ({args.other.name}): {ratio('--help', f'--help ({args.other.name})'):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
