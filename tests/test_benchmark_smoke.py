"""The benchmark script still runs (tiny UNet, one round): it is not part of CI's timing, only of its health."""

from __future__ import annotations

import importlib.util
import re
import sys

import ldm.modules.diffusionmodules.openaimodel  # noqa: F401  (installed by tools/setup-venv.sh; missing is an error)
import pytest
from hn_testutil import REPO_ROOT

BENCH = REPO_ROOT / "benchmarks" / "bench_apply.py"


def test_bench_apply_tiny_runs(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("bench_apply", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_apply", bench)  # dataclasses look their module up there
    spec.loader.exec_module(bench)
    assert bench.main(["--tiny", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    for stack in ("one [1,2,1]", "stack of two", "[1,2,2,1]"):
        row = next(line for line in out.splitlines() if line.startswith(f"| {stack} |"))
        ratio, floor = re.findall(r"([0-9.]+)×", row)[:2]
        assert float(ratio) > 0 and 0 < float(floor) <= 1
        diff = float(row.rstrip(" |").rsplit("|", 1)[1])
        assert diff < 1e-4  # ours equals A1111's formula
    forge_rows = [line for line in out.splitlines() if line.startswith("| one [1,2,1] |")][1:]
    assert forge_rows, "the Forge 2 / ComfyUI patch-route table is missing"
    assert all(float(d) < 1e-4 for d in forge_rows[0].rstrip(" |").rsplit("|", 1)[1].split(","))
    assert "lib_hypernet.load(.safetensors)" in out and "sha256" in out


def test_bench_cli_runs(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bench_cli", BENCH.with_name("bench_cli.py"))
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--rounds", "1"]) == 0
    rows = {line.split(" | ")[0].lstrip("| "): line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")}
    assert {"python -c pass", "--help", "info FILE"} <= set(rows)
    help_vs_info = float(rows["--help"].rstrip(" |").rsplit("|", 1)[1])
    assert 0 < help_vs_info < 1  # --help loads no torch: always faster than info
