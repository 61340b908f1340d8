"""A bounded, seeded fuzzing run of the file readers (the long run is ``tools/fuzz.sh 15m``)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fuzzing import Fuzzer
from hn_testutil import HELPERS_DIR

import lib_hypernet

FUZZER = HELPERS_DIR / "fuzzing.py"
EXAMPLES = 300


def test_seeded_fuzz_run(tmp_path: Path) -> None:
    """300 mutated .pt (zip, legacy), .pt.optim and .safetensors files: only HypernetError, nothing executed,
    peak RSS within 200 MB of the start, in a child limited to 4 GiB of address space."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", str(FUZZER), "--examples", str(EXAMPLES), "--seed", "20261201",
         "--failures", str(tmp_path / "failures")],
        capture_output=True, text=True, timeout=1200, preexec_fn=limit, env=env,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = json.loads(lines[-1])
    print(f"fuzz: {summary['examples']} examples, {summary['examples_per_s']}/s, max {summary['max_example_s']} s "
          f"per example, RSS growth {summary['rss_growth_mb']} MB, outcomes {summary['outcomes']}")
    assert summary["failures"] == [], summary["failures"]
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert summary["examples"] >= EXAMPLES
    assert summary["outcomes"]["refused"] > 0 and summary["outcomes"]["loaded"] > 0
    assert summary["rss_growth_mb"] < 200


def test_fuzzer_reports_a_foreign_exception(fuzzer: Fuzzer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Positive control: an exception other than HypernetError is a failure, with a reproducer saved."""

    def broken(path: object) -> None:
        raise ValueError("escaped")

    monkeypatch.setattr(lib_hypernet, "load", broken)
    with pytest.raises(AssertionError, match="ValueError: escaped"):
        fuzzer.run_one("zip.pt", fuzzer.seeds["zip.pt"])
    assert Path(fuzzer.problems[-1]["file"]).read_bytes() == fuzzer.seeds["zip.pt"]


def test_fuzzer_reports_an_executed_payload(fuzzer: Fuzzer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Positive control: a payload that ran (the marker file exists) is a failure even if loading 'worked'."""

    def runs_payload(path: object) -> None:
        fuzzer.marker.write_text("ran")

    monkeypatch.setattr(lib_hypernet, "load", runs_payload)
    with pytest.raises(AssertionError, match="payload executed"):
        fuzzer.run_one("evil_zip.pt", fuzzer.seeds["evil_zip.pt"])
    assert not fuzzer.marker.exists()


def test_fuzzer_seeds_are_sound(fuzzer: Fuzzer) -> None:
    """Every seed loads (or, for the payload seeds, is refused as unsafe) before mutation."""
    for name, data in fuzzer.seeds.items():
        path = fuzzer.case / ("seed" + (".pt.optim" if name.endswith(".optim") else Path(name).suffix))
        path.write_bytes(data)
        if name.endswith(".optim"):
            assert lib_hypernet.check_torch_file(path) in ("zip", "legacy")
        elif name.startswith("evil"):
            with pytest.raises(lib_hypernet.UnsafeFileError):
                lib_hypernet.load(path)
        else:
            assert lib_hypernet.load(path).widths
    assert not fuzzer.marker.exists()


@pytest.mark.parametrize("seed_name", ["zip.pt", "legacy.pt", "seed.safetensors"])
def test_fuzzer_reports_weights_that_differ_from_the_file(fuzzer: Fuzzer, seed_name: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Positive control of the differential oracle: a load that returns other weights than the file holds fails."""
    real_load = lib_hypernet.load

    def load_then_nudge(path: object) -> lib_hypernet.Hypernetwork:
        hn = real_load(path)  # type: ignore[arg-type]
        with torch.no_grad():
            next(iter(hn.parameters())).view(-1)[0] += 1e-6
        return hn

    fuzzer.run_one(seed_name, fuzzer.seeds[seed_name])  # unchanged, the oracle agrees
    monkeypatch.setattr(lib_hypernet, "load", load_then_nudge)
    with pytest.raises(AssertionError, match=r"differential: weight .* differs"):
        fuzzer.run_one(seed_name, fuzzer.seeds[seed_name])


def test_fuzzer_reports_torch_reading_other_bytes(fuzzer: Fuzzer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Positive control: re-open a fixed hole (a storage entry marked as a directory, which torch's miniz reads
    as an uninitialised buffer) and the oracle sees torch return other bytes than the checker validated."""
    from hostile_util import build_zip, zip_entries

    from lib_hypernet.formats import zip_layout

    entries = zip_entries(fuzzer.seeds["zip.pt"])
    storage = next(e for e in entries if b"/data/" in e.name)
    storage.data = bytes(range(1, 256)) * (len(storage.data) // 255) + bytes(range(1, 1 + len(storage.data) % 255))
    storage.external_attr = 0x10
    data = build_zip(entries)
    monkeypatch.setattr(zip_layout, "_check_attributes", lambda *args: None)
    with pytest.raises(AssertionError, match=r"differential: .*differs from the storage bytes the checker validated"):
        fuzzer.run_one("zip.pt", data)


def test_fuzzer_oracle_matches_globals_used_as_keys(fuzzer: Fuzzer) -> None:
    """The checker keeps a global as its name, torch as the function itself: the oracle pairs them (a 15-minute run
    once reported this file as a mismatch)."""
    from hostile_util import good_raw, torch_bytes

    raw = good_raw()
    raw[torch._utils._rebuild_tensor_v2] = 1
    fuzzer.run_one("zip.pt", torch_bytes(raw, zip_format=True))
