"""Tests of the ``hypernet`` command line (``lib_hypernet.cli.commands``), run in-process except one subprocess test."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hn_testutil import TouchViaSystem, a1111_safe_check, assert_hypernetworks_equal

import lib_hypernet
from lib_hypernet.cli import commands as cli
from lib_hypernet.cli.progress import AUTO_MIN_BYTES, MIB, ProgressBar, should_show
from lib_hypernet.formats.safe_unpickle import a1111_zip_entries_rejected
from lib_hypernet.library.description import REPAIR_WARNING
from lib_hypernet.model.decode import all_finite

REPO_ROOT = Path(__file__).resolve().parents[1]
INFO_FILES = ("act_relu.pt", "legacy_novelai.pt", "dims_24_32_48_meta.pt", "optim_fresh_a.pt", "optim_stale.pt")


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    """``cli.main`` on ``argv`` (paths stringified): ``(exit status, stdout, stderr)``."""
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def info_blocks(out: str) -> dict[str, dict[str, str]]:
    """Parse the human ``info`` output: per file, ``key -> value`` of its first line."""
    blocks: dict[str, dict[str, str]] = {}
    for block in out.strip().split("\n\n"):
        rows: dict[str, str] = {}
        for line in block.splitlines():
            if not line.startswith(" "):
                key, _, value = line.partition(":")
                rows[key] = value.strip()
        blocks[os.path.basename(rows["file"])] = rows
    return blocks


def outputs(hn: lib_hypernet.Hypernetwork, seed: int = 7) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    result = []
    for width in hn.widths:
        context = torch.randn(2, 3, width, generator=generator)
        result += list(lib_hypernet.apply_hypernetworks(context, [(hn, 0.7)]))
    return result


def assert_one_error_line(err: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err


# --------------------------------------------------------------------- info
def test_info_human(capsys: pytest.CaptureFixture[str], fixtures_dir: Path) -> None:
    code, out, err = run(capsys, "info", *(fixtures_dir / name for name in INFO_FILES))
    assert code == 0, err
    assert err == ""
    blocks = info_blocks(out)
    assert set(blocks) == set(INFO_FILES)

    relu = blocks["act_relu.pt"]
    assert relu["format"] == "pt (zip)"
    assert relu["safe"].startswith("yes")
    assert relu["A1111 loads"].startswith("NO") and ".format_version" in relu["A1111 loads"]
    assert relu["widths"] == "8, 16"
    assert relu["layer structure"] == "1, 2, 1"
    assert relu["modules"] == "8: Linear(8, 16) → ReLU → Linear(16, 8)"
    assert "16: Linear(16, 32) → ReLU → Linear(32, 16)" in out
    assert relu["parameters"].startswith("2,704")
    assert relu["activation"] == "relu"
    assert relu["legacy hash"].startswith("e3b0c442 (meaningless under 1 MiB")
    assert relu[".optim"].startswith("missing")
    assert "fix: python -m lib_hypernet convert" in out

    novelai = blocks["legacy_novelai.pt"]
    assert novelai["modules"] == "8: Linear(8, 16) → Linear(16, 8)"
    assert novelai["activate output"] == "yes"  # A1111's load default for a missing key
    assert novelai["activation"].startswith("None")

    meta = blocks["dims_24_32_48_meta.pt"]
    assert meta["base model"] == "random-sd15 [a1b2c3d4e5]"
    assert meta["info"] == "fixture: dims 24/32/48 with training metadata"
    assert meta["step"] == "1500"
    assert meta["layer norm"] == "yes"
    assert meta["weight init"] == "XavierNormal"
    assert meta["shorthash"] == "e35e8dc32d"

    assert blocks["optim_fresh_a.pt"][".optim"] == "ok: AdamW, hash matches"
    assert blocks["optim_stale.pt"][".optim"].startswith("stale: ")
    assert "fe43c865f4" in blocks["optim_stale.pt"][".optim"]


def test_info_json(capsys: pytest.CaptureFixture[str], fixtures_dir: Path, cases_by_name: dict) -> None:
    names = (*INFO_FILES, "extra_keys.pt", "dropout_1_2_2_1_elu_ln.pt")
    code, out, _ = run(capsys, "info", "--json", *(fixtures_dir / name for name in names))
    assert code == 0
    entries = json.loads(out)
    assert [os.path.basename(e["path"]) for e in entries] == list(names)
    for entry in entries:
        case = cases_by_name[os.path.basename(entry["path"])[:-3]]
        assert entry["ok"] and entry["error"] is None
        assert entry["sha256"] == case["sha256"]
        assert entry["shorthash"] == case["shorthash"]
        assert entry["legacy_hash"] == case["legacy_model_hash"]
        assert entry["legacy_hash_meaningful"] is False
        assert entry["widths"] == case["loaded"]["dims"]
        assert entry["param_count"] == case["param_count"]
        assert entry["layer_structure"] == case["loaded"]["layer_structure"]
        assert entry["activate_output"] == case["loaded"]["activate_output"]
        assert entry["format"] == "pt" and entry["container"] == "zip" and entry["safe"] is True
        assert entry["a1111_loadable"] is False
        assert any(name.endswith("/.format_version") for name in entry["a1111_rejected_entries"])
        assert entry["size"] == case["file_size"]
        assert entry["warnings"] == [REPAIR_WARNING]
    by_name = {os.path.basename(e["path"]): e for e in entries}
    assert by_name["optim_fresh_a.pt"]["optim"]["status"] == "ok"
    assert by_name["optim_stale.pt"]["optim"]["status"] == "stale"
    assert by_name["act_relu.pt"]["optim"]["status"] == "missing"
    assert by_name["dims_24_32_48_meta.pt"]["sd_checkpoint"] == "a1b2c3d4e5"
    assert by_name["dims_24_32_48_meta.pt"]["sd_checkpoint_name"] == "random-sd15"
    assert by_name["dims_24_32_48_meta.pt"]["step"] == 1500
    assert "skip_connection" in by_name["extra_keys.pt"]["ignored_keys"]
    assert by_name["dropout_1_2_2_1_elu_ln.pt"]["dropout_structure"] == [0, 0.1, 0.2, 0]
    assert by_name["dropout_1_2_2_1_elu_ln.pt"]["modules"]["8"][3] == "Dropout(p=0.1)"


def test_info_failed_file_still_listed(capsys: pytest.CaptureFixture[str], fixtures_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00this is not a torch file" * 20)
    code, out, err = run(capsys, "info", "--json", fixtures_dir / "act_relu.pt", bad, tmp_path / "missing.pt")
    assert code == 1
    good, broken, missing = json.loads(out)
    assert good["ok"] is True
    assert broken["ok"] is False and "not a readable PyTorch file" in broken["error"]
    assert broken["sha256"] and broken["safe"] is None
    assert missing["ok"] is False and "file not found" in missing["error"]
    assert len(err.strip().splitlines()) == 2 and "Traceback" not in err

    code, out, _ = run(capsys, "info", bad)
    assert code == 1
    assert info_blocks(out)["bad.pt"]["error"].startswith(str(bad))


def test_info_unsafe_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({768: TouchViaSystem(marker)}, evil)
    code, out, err = run(capsys, "info", "--json", evil)
    assert code == 1
    (entry,) = json.loads(out)
    assert entry["safe"] is False and "system" in entry["safe_detail"]
    assert entry["ok"] is False and entry["error"]
    assert_one_error_line(err)
    assert not marker.exists()


# --------------------------------------------------------------------- hash
def test_hash_matches_manifest(
    capsys: pytest.CaptureFixture[str], fixtures_dir: Path, manifest: dict, cases_by_name: dict
) -> None:
    cases = manifest["cases"]
    code, out, err = run(capsys, "hash", "--legacy", *(fixtures_dir / case["file"] for case in cases))
    assert code == 0
    assert err == ""  # more than 8 files, but stderr is not a terminal: no bar
    lines = out.splitlines()
    assert len(lines) == len(cases)
    for line, case in zip(lines, cases):
        assert line == f"{case['sha256']}  {case['shorthash']}  {case['legacy_model_hash']}  {fixtures_dir / case['file']}"

    code, out, _ = run(capsys, "hash", fixtures_dir / "act_relu.pt")
    relu = cases_by_name["act_relu"]
    assert out == f"{relu['sha256']}  {relu['shorthash']}  {fixtures_dir / 'act_relu.pt'}\n"


def test_hash_missing_file(capsys: pytest.CaptureFixture[str], fixtures_dir: Path, tmp_path: Path) -> None:
    code, out, err = run(capsys, "hash", tmp_path / "nope.pt", fixtures_dir / "act_relu.pt")
    assert code == 1
    assert out.endswith("act_relu.pt\n")
    assert_one_error_line(err)
    assert "nope.pt: file not found" in err


# --------------------------------------------------------------------- convert
def test_convert_round_trip(capsys: pytest.CaptureFixture[str], fixtures_dir: Path, tmp_path: Path) -> None:
    src = fixtures_dir / "dropout_1_2_2_1_elu_ln.pt"
    st, back = tmp_path / "x.safetensors", tmp_path / "back.pt"
    code, out, err = run(capsys, "convert", src, st)
    assert code == 0, err
    assert out.startswith(f"wrote {st} (safetensors") and "bit-identical" in out
    code, out, err = run(capsys, "convert", st, back)
    assert code == 0, err

    original, converted, restored = (lib_hypernet.load(p) for p in (src, st, back))
    assert converted.source_sha256 == lib_hypernet.sha256(src)
    for other in (converted, restored):
        assert_hypernetworks_equal(original, other)
        for a, b in zip(outputs(original), outputs(other)):
            assert torch.equal(a, b)
    # The re-saved .pt is in the legacy format A1111 1.10.1 loads, unlike the fixture.
    assert a1111_zip_entries_rejected(back) == []
    assert a1111_safe_check(back) == "ok"
    assert a1111_zip_entries_rejected(src) != []


def test_convert_refuses_overwrite(capsys: pytest.CaptureFixture[str], fixtures_dir: Path, tmp_path: Path) -> None:
    dst = tmp_path / "taken.safetensors"
    dst.write_bytes(b"keep me")
    code, out, err = run(capsys, "convert", fixtures_dir / "act_relu.pt", dst)
    assert code == 1 and out == ""
    assert_one_error_line(err)
    assert "already exists" in err and "--force" in err
    assert dst.read_bytes() == b"keep me"
    assert os.listdir(tmp_path) == ["taken.safetensors"]

    code, _, err = run(capsys, "convert", "--force", fixtures_dir / "act_relu.pt", dst)
    assert code == 0, err
    assert lib_hypernet.load(dst).activation_func == "relu"


def test_convert_repairs_pt_in_place(capsys: pytest.CaptureFixture[str], fixtures_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "repair.pt"
    path.write_bytes((fixtures_dir / "act_gelu.pt").read_bytes())
    assert a1111_safe_check(path).startswith("rejected")
    code, _, err = run(capsys, "convert", path, path, "--force")
    assert code == 0, err
    assert a1111_safe_check(path) == "ok"
    assert_hypernetworks_equal(lib_hypernet.load(fixtures_dir / "act_gelu.pt"), lib_hypernet.load(path),
                               check_name=False)
    assert sorted(os.listdir(tmp_path)) == ["repair.pt"]  # no temporary file left behind


def test_convert_carries_valid_optim(capsys: pytest.CaptureFixture[str], fixtures_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "train.pt"
    for suffix in ("", ".optim"):
        Path(f"{path}{suffix}").write_bytes((fixtures_dir / f"optim_fresh_b.pt{suffix}").read_bytes())
    before = lib_hypernet.load_optimizer_state(path)
    assert before.ok
    code, out, err = run(capsys, "convert", path, path, "--force")
    assert code == 0, err
    assert "wrote train.pt.optim" in out
    after = lib_hypernet.load_optimizer_state(path)
    assert after.ok and after.stored_hash == lib_hypernet.sha256(path)[:10] != before.stored_hash
    assert after.state_dict is not None and before.state_dict is not None
    assert torch.equal(after.state_dict["state"][0]["exp_avg"], before.state_dict["state"][0]["exp_avg"])
    assert a1111_safe_check(f"{path}.optim") == "ok"

    stale = tmp_path / "stale.pt"
    for suffix in ("", ".optim"):
        Path(f"{stale}{suffix}").write_bytes((fixtures_dir / f"optim_stale.pt{suffix}").read_bytes())
    code, out, _ = run(capsys, "convert", stale, tmp_path / "new.pt")
    assert code == 0 and "stale.pt.optim is stale, not carried over" in out
    assert not (tmp_path / "new.pt.optim").exists()

    (tmp_path / "kept.pt.optim").write_bytes(b"keep me")
    code, out, _ = run(capsys, "convert", path, tmp_path / "kept.pt")
    assert code == 0 and out.rstrip().endswith(
        f"{tmp_path / 'kept.pt.optim'} exists, so the optimizer state was not carried over (pass --force to overwrite it)")
    assert (tmp_path / "kept.pt.optim").read_bytes() == b"keep me"


def test_convert_errors(capsys: pytest.CaptureFixture[str], fixtures_dir: Path, tmp_path: Path) -> None:
    code, _, err = run(capsys, "convert", fixtures_dir / "act_relu.pt", tmp_path / "x.ckpt")
    assert code == 1
    assert_one_error_line(err)
    assert "unknown hypernetwork file type '.ckpt'" in err
    code, _, err = run(capsys, "convert", tmp_path / "missing.pt", tmp_path / "x.safetensors")
    assert code == 1
    assert_one_error_line(err)


# --------------------------------------------------------------------- verify
def test_verify_fixtures_ok(capsys: pytest.CaptureFixture[str], fixtures_dir: Path) -> None:
    names = ("act_relu.pt", "act_softmax.pt", "act_prelu.pt", "optim_fresh_b.pt", "optim_stale.pt", "legacy_novelai.pt")
    code, out, err = run(capsys, "verify", *(fixtures_dir / n for n in names))
    assert code == 0
    assert out.splitlines() == [f"OK  {fixtures_dir / n}" for n in names]
    assert "optim_stale.pt: .optim is stale" in err
    assert "optim_fresh_b.pt: .optim" not in err
    assert "A1111 1.10.1 refuses" in err
    assert err.strip().splitlines()[-1] == "6 files: 6 OK, 0 failed, 6 with warnings"
    assert "Traceback" not in err and "UserWarning" not in err


def test_verify_corrupt_file_fails(capsys: pytest.CaptureFixture[str], fixtures_dir: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(os.urandom(4096))
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((fixtures_dir / "act_relu.pt").read_bytes()[:5000])
    code, out, err = run(capsys, "verify", garbage, fixtures_dir / "act_relu.pt", truncated)
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith(f"FAIL {garbage}: ")
    assert lines[1] == f"OK  {fixtures_dir / 'act_relu.pt'}"
    assert lines[2].startswith(f"FAIL {truncated}: ")
    assert "Traceback" not in err


def test_verify_nan_weights_fail(capsys: pytest.CaptureFixture[str], fixtures_dir: Path, tmp_path: Path) -> None:
    raw = lib_hypernet.load(fixtures_dir / "act_relu.pt").state_dict()
    raw[8][0]["linear.0.weight"][0, 0] = float("nan")
    broken = tmp_path / "nan.pt"
    lib_hypernet.formats.write_raw(broken, raw)
    code, out, _ = run(capsys, "verify", broken)
    assert code == 1
    assert out.startswith(f"FAIL {broken}: ") and "NaN" in out


def test_all_finite() -> None:
    x = torch.randn(100)
    assert all_finite(x)
    for bad in (float("nan"), float("inf"), float("-inf")):
        y = x.clone()
        y[3] = bad
        assert not all_finite(y)
    assert all_finite(torch.full((10,), 3e38))  # float32 max-ish: the float64 sum does not overflow
    assert all_finite(torch.full((10,), 1e308, dtype=torch.float64))  # sum overflows: exact fallback
    assert not all_finite(torch.tensor([float("inf"), float("-inf")]))


# --------------------------------------------------------------------- create
def test_create_with_options(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(
        capsys, "create", "My net: v2!", "--sizes", "8,16", "--layer-structure", "1, 2, 1", "--activation", "elu",
        "--init", "XavierNormal", "--layer-norm", "--dropout", "--dropout-structure", "0, 0.1, 0",
        "--activate-output", "--info", "hello", "--seed", "3", "--out", tmp_path / "sub",
    )
    assert code == 0, err
    path = tmp_path / "sub" / "My net v2.pt"
    assert out.startswith(f"created {path} (pt,")
    hn = lib_hypernet.load(path)
    assert hn.name == "My net v2"
    assert hn.widths == [8, 16]
    assert hn.layer_structure == [1.0, 2.0, 1.0]
    assert all(type(x) is float for x in hn.layer_structure)
    assert hn.activation_func == "elu"
    assert hn.weight_initialization == "XavierNormal"
    assert hn.is_layer_norm and hn.activate_output and hn.use_dropout
    assert hn.dropout_structure == [0.0, 0.1, 0.0]
    assert hn.optional_info == "hello"
    assert hn.step == 0 and hn.sd_checkpoint is None
    assert a1111_safe_check(path) == "ok"

    # Same seed, same weights; refuses to overwrite without --force.
    code, _, err = run(capsys, "create", "My net v2", "--sizes", "8,16", "--out", tmp_path / "sub")
    assert code == 1
    assert_one_error_line(err)
    code, _, err = run(
        capsys, "create", "again", "--sizes", "8,16", "--activation", "elu", "--init", "XavierNormal",
        "--layer-norm", "--dropout", "--dropout-structure", "0, 0.1, 0", "--activate-output", "--seed", "3",
        "--out", tmp_path, "--format", "safetensors",
    )
    assert code == 0, err
    again = lib_hypernet.load(tmp_path / "again.safetensors")
    for a, b in zip(hn.parameters(), again.parameters()):
        assert torch.equal(a, b)


def test_create_defaults_and_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "create", "plain", "--sizes", "8", "--out", tmp_path)
    assert code == 0, err
    hn = lib_hypernet.load(tmp_path / "plain.pt")
    assert hn.activation_func == "linear" and hn.dropout_structure == [0, 0, 0] and not hn.use_dropout
    assert hn.activate_output is False and hn.weight_initialization == "Normal"

    code, _, err = run(capsys, "create", "?!*", "--out", tmp_path)
    assert code == 2
    assert_one_error_line(err)
    for bad in (["--layer-structure", "2, 1"], ["--sizes", "768,abc"], ["--activation", "threshold"]):
        code, _, err = run(capsys, "create", "x", "--out", tmp_path, *bad)
        assert code == 2
        assert "Traceback" not in err
    code, _, err = run(capsys, "create", "x", "--sizes", "8", "--dropout", "--dropout-structure", "0, 0.1",
                       "--out", tmp_path)
    assert code == 1
    assert_one_error_line(err)
    assert not (tmp_path / "x.pt").exists()


# --------------------------------------------------------------------- examples
def test_examples_idempotent(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """``examples`` writes the standalone panel's small example folder, then keeps what exists."""
    from lib_hypernet.library.examples import EXAMPLES

    out_dir = tmp_path / "examples"
    paths = [str(out_dir.joinpath(*e.relpath.split("/"))) for e in EXAMPLES]
    code, out, err = run(capsys, "examples", "--out", out_dir)
    assert code == 0, err
    assert [line.split()[:2] for line in out.splitlines()] == [["wrote", p] for p in paths]
    assert sum(os.path.getsize(p) for p in paths) < 10 * 2**20  # a few MB, not hundreds
    st = lib_hypernet.load(out_dir / "anime-style.safetensors")
    assert st.source_sha256 == lib_hypernet.sha256(out_dir / "anime-style.pt")
    mtimes = {p: os.stat(p).st_mtime_ns for p in paths}

    code, out, _ = run(capsys, "examples", "--out", out_dir)
    assert code == 0
    assert out.splitlines() == [f"skipped {p} (already exists)" for p in paths]
    assert {p: os.stat(p).st_mtime_ns for p in paths} == mtimes

    (out_dir / "anime-style.safetensors").unlink()  # regenerated from the existing .pt
    code, out, _ = run(capsys, "examples", "--out", out_dir)
    assert code == 0
    assert out.splitlines()[1].startswith(f"wrote {out_dir / 'anime-style.safetensors'}")


# --------------------------------------------------------------------- progress bar
def test_progress_bar_forced_and_not_drawn(capsys: pytest.CaptureFixture[str], fixtures_dir: Path) -> None:
    relu = fixtures_dir / "act_relu.pt"
    code, out, err = run(capsys, "hash", "--progress", relu)
    assert code == 0
    assert err.startswith("\rhashing [") and err.endswith("\n")
    assert "100%" in err and "MiB/s" in err and err.count("\n") == 1
    assert out.count("\n") == 1
    for command in ("info", "verify"):
        code, _, err = run(capsys, command, "--progress", relu)
        assert code == 0 and "\rhashing [" in err

    many = sorted(fixtures_dir.glob("*.pt"))[:9]
    for argv in (["hash", *many], ["hash", "--no-progress", *many], ["info", relu]):
        code, _, err = run(capsys, *argv)
        assert code == 0 and err == ""


def test_should_show() -> None:
    assert should_show(AUTO_MIN_BYTES + 1, 1, None, True)
    assert should_show(10, 9, None, True)
    assert not should_show(AUTO_MIN_BYTES, 8, None, True)
    assert not should_show(10**12, 100, None, False)  # not a terminal
    assert should_show(0, 1, True, False)  # --progress
    assert not should_show(10**12, 100, False, True)  # --no-progress


def test_progress_bar_throttles() -> None:
    now = [0.0]
    stream = io.StringIO()
    bar = ProgressBar(10 * MIB, stream=stream, clock=lambda: now[0])
    for _ in range(10):
        bar.update(MIB // 2)  # all at t=0: only the first update draws
    now[0] = 0.5
    bar.update(5 * MIB)
    bar.close()
    bar.close()
    text = stream.getvalue()
    assert text.count("\r") == 3 and text.endswith("\n") and text.count("\n") == 1
    assert text.split("\r")[1].startswith("hashing [#") and "  5%  0.5/10.0 MiB" in text.split("\r")[1]
    assert text.split("\r")[-1] == "hashing [########################] 100%  10.0/10.0 MiB  20.0 MiB/s\n"
    silent = io.StringIO()
    with ProgressBar(10, stream=silent, enabled=False) as off:
        off.update(10)
    assert silent.getvalue() == ""


# --------------------------------------------------------------------- errors, help, entry points
def test_errors_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    not_torch = tmp_path / "weights.safetensors"
    not_torch.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    for argv in (
        ["convert", not_torch, tmp_path / "out.pt"],
        ["convert", tmp_path / "nope.pt", tmp_path / "out.safetensors"],
        ["hash", tmp_path],
    ):
        code, _, err = run(capsys, *argv)
        assert code == 1
        assert_one_error_line(err)


def test_help_and_usage(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in ("info", "hash", "convert", "verify", "create", "examples"):
        assert command in out
    code, _, err = run(capsys)
    assert code == 2 and "usage:" in err
    code, _, err = run(capsys, "frobnicate")
    assert code == 2 and "invalid choice" in err
    code, out, _ = run(capsys, "--version")
    assert code == 0 and lib_hypernet.__version__ in out


def test_python_dash_m_info(fixtures_dir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(
        [sys.executable, "-m", "lib_hypernet", "info", str(fixtures_dir / "dims_24_32_48_meta.pt")],
        capture_output=True, text=True, encoding="utf-8", env=env, cwd=REPO_ROOT, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "base model:      random-sd15 [a1b2c3d4e5]" in lines
    assert "shorthash:       e35e8dc32d" in lines
    assert result.stderr == ""


# --------------------------------------------------------------------- bad input never shows a traceback
def _subprocess_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}


def test_create_refuses_huge_sizes_up_front(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "create", "big", "--sizes", "100000", "--out", tmp_path)
    assert code == 1
    assert_one_error_line(err)
    assert "80,000,600,000 parameters" in err and "298.0 GiB" in err and "limit is 4.0 GiB" in err
    assert os.listdir(tmp_path) == [] and out == ""


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("..", "starts with '.'"),
        (".hidden", "starts with '.'"),
        ("../../etc/evil", "path separator"),
        ("sub/x", "path separator"),
        ("sub\\x", "path separator"),
    ],
)
def test_create_refuses_folders_and_hidden_names(
    name: str, says: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out_dir = tmp_path / "a" / "b"
    code, _, err = run(capsys, "create", name, "--sizes", "8", "--out", out_dir)
    assert code == 2
    assert_one_error_line(err)
    assert says in err and repr(name) in err
    assert ("give a plain name and the folder with --out DIR" in err) == (says == "path separator")  # the CLI's words
    assert "unknown hypernetwork file type" not in err
    assert list(tmp_path.rglob("*")) == []


@pytest.mark.parametrize("encoding", ["cp1252", "ascii"])
@pytest.mark.parametrize("command", ["info", "hash", "verify", "convert"])
def test_non_utf8_output_with_non_ascii_names(command: str, encoding: str, tmp_path: Path) -> None:
    path = tmp_path / "日本-Grüße.pt"
    lib_hypernet.create("x", sizes=[8], seed=1).save(path)
    argv = [command, str(path)] + ([str(tmp_path / "ß→.safetensors")] if command == "convert" else [])
    result = subprocess.run(
        [sys.executable, "-m", "lib_hypernet", *argv], capture_output=True, env={**_subprocess_env(),
        "PYTHONIOENCODING": encoding}, cwd=tmp_path, timeout=300, check=False,
    )
    stdout, stderr = result.stdout.decode(encoding), result.stderr.decode(encoding)
    assert result.returncode == 0, stderr
    assert "Traceback" not in stderr and stderr == ""
    assert "\\u65e5\\u672c-Gr" in stdout  # 日本 as escapes, the rest as the encoding allows
    if command == "hash":
        assert stdout.split()[0] == lib_hypernet.sha256(path)


def test_missing_file_with_non_ascii_name_on_ascii_stderr(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lib_hypernet", "info", str(tmp_path / "ünknown.pt")], capture_output=True,
        env={**_subprocess_env(), "PYTHONIOENCODING": "ascii"}, cwd=tmp_path, timeout=300, check=False,
    )
    stderr = result.stderr.decode("ascii")
    assert result.returncode == 1
    assert "Traceback" not in stderr and "\\xfcnknown.pt: file not found" in stderr


_INTERRUPT_AT_START = r"""
import runpy, sys
class Interrupt:
    def find_spec(self, name, path=None, target=None):
        if name == "torch":
            raise KeyboardInterrupt
        return None
sys.meta_path.insert(0, Interrupt())
sys.argv = ["-m", "info", "x.pt"]
runpy.run_module("lib_hypernet", run_name="__main__", alter_sys=True)
"""


def test_ctrl_c_during_start_up(tmp_path: Path) -> None:
    """Ctrl-C while torch is being imported: one line, exit status 130 (the shell's code for SIGINT)."""
    result = subprocess.run(
        [sys.executable, "-c", _INTERRUPT_AT_START], capture_output=True, text=True, env=_subprocess_env(),
        cwd=tmp_path, timeout=300, check=False,
    )
    assert result.returncode == 130, result.stderr
    assert result.stderr.strip() == "interrupted"
    assert result.stdout == ""


def test_ctrl_c_while_running(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "hash_files", interrupted)
    code, _, err = run(capsys, "hash", tmp_path / "x.pt")
    assert code == 130
    assert err.strip() == "interrupted"


def _read_only_folder(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Make creating files in ``folder`` fail as a read-only folder does (the tests may run as root)."""
    import tempfile

    real = tempfile.mkstemp

    def mkstemp(*args: object, dir: str | None = None, **kwargs: object) -> tuple[int, str]:
        if dir is not None and Path(dir).resolve() == folder.resolve():
            raise PermissionError(13, "Permission denied", os.path.join(dir, ".tmpXYZ"))
        return real(*args, dir=dir, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_convert_into_read_only_folder_names_the_target(
    suffix: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src.pt"
    lib_hypernet.create("x", sizes=[8], seed=1).save(src)
    locked = tmp_path / "locked"
    locked.mkdir()
    _read_only_folder(monkeypatch, locked)
    code, _, err = run(capsys, "convert", src, locked / f"out{suffix}")
    assert code == 1
    assert_one_error_line(err)
    assert err.strip() == f"error: {locked / f'out{suffix}'}: cannot write in its folder: Permission denied"
    assert list(locked.iterdir()) == []


def test_create_into_read_only_folder_names_the_path_once(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _read_only_folder(monkeypatch, tmp_path)
    code, _, err = run(capsys, "create", "x", "--sizes", "8", "--out", tmp_path)
    assert code == 1
    assert err.strip() == f"error: {tmp_path / 'x.pt'}: cannot write in its folder: Permission denied"
    assert err.count(str(tmp_path)) == 1


def test_fix_hint_runs_as_written(capsys: pytest.CaptureFixture[str], fixtures_dir: Path, tmp_path: Path) -> None:
    """The `fix:` line of info and verify is a command that works from the extension folder, no install step."""
    import shlex

    path = tmp_path / "zip.pt"
    path.write_bytes((fixtures_dir / "act_relu.pt").read_bytes())
    run(capsys, "verify", path)
    _, out, _ = run(capsys, "info", path)
    hint = next(line for line in out.splitlines() if "fix:" in line).split("fix:", 1)[1].split("  (")[0].strip()
    assert hint == f"python -m lib_hypernet convert {path} {path} --force"
    assert f"fix: {hint}" in run(capsys, "verify", path)[2]
    argv = shlex.split(hint)
    assert argv[0] == "python"
    result = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True, cwd=REPO_ROOT,
                            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert a1111_safe_check(path) == "ok"


def test_info_shows_modules_in_numeric_width_order(tmp_path: Path) -> None:
    path = tmp_path / "sd1.pt"
    lib_hypernet.create("sd1", sizes=(768, 320, 640, 1280), layer_structure=[1, 0.01, 1], seed=1).save(path)
    entry = json.loads(json.dumps(cli.inspect_file(str(path)), sort_keys=True))  # as a cache or the API may hand it over
    text = cli.render_info(entry)
    widths = [line.split(":")[-2].split()[-1] for line in text.splitlines() if "Linear(" in line]
    assert widths == ["320", "640", "768", "1280"], text
