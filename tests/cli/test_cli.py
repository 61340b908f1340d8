"""Tests of the ``hypernet`` command line (``lib_hypernet.cli``), run in-process except the subprocess tests."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hn_testutil import REPO_ROOT, TouchViaSystem, a1111_safe_check, assert_hypernetworks_equal

import lib_hypernet
from lib_hypernet.cli import commands, render
from lib_hypernet.cli.parser import main
from lib_hypernet.cli.progress import AUTO_MIN_BYTES, MIB, ProgressBar, should_show
from lib_hypernet.formats.safe_unpickle import a1111_zip_entries_rejected
from lib_hypernet.library.description import REPAIR_WARNING, describe_file
from lib_hypernet.model.decode import all_finite

INFO_FILES = ("act_relu.pt", "legacy_novelai.pt", "dims_24_32_48_meta.pt", "optim_fresh_a.pt", "optim_stale.pt")


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    """The command line on ``argv`` (paths stringified): ``(exit status, stdout, stderr)``."""
    code = main([str(a) for a in argv])
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


def descriptions(out: str) -> list[dict]:
    """The file descriptions of a ``--json`` document."""
    return [result["description"] for result in json.loads(out)["results"]]


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
    assert f" -m lib_hypernet repair {fixtures_dir / 'act_relu.pt'} --force  (rewrites it" in out

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
    entries = descriptions(out)
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
    good, broken, missing = descriptions(out)
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
    (entry,) = descriptions(out)
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
    for command in ("info", "hash", "convert", "repair", "verify", "create", "examples"):
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

    monkeypatch.setattr(commands, "hash_files", interrupted)
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


def _hint(text: str) -> str:
    """The command of the first ``fix:`` line in ``text``."""
    return next(line for line in text.splitlines() if "fix:" in line).split("fix:", 1)[1].split("  (")[0].strip()


@pytest.mark.parametrize("installed", [False, True])
def test_fix_hint_runs_from_any_folder(installed: bool, fixtures_dir: Path, tmp_path: Path) -> None:
    """The `fix:` line of info and verify is a command that works as written from another folder: the absolute
    paths of python and the file, and the extension folder on PYTHONPATH unless lib_hypernet is installed."""
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    path = here / "zip.pt"
    path.write_bytes((fixtures_dir / "act_relu.pt").read_bytes())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if installed:  # as pip installs it: the checkout on sys.path through a .pth file in a site directory
        site_dir = tmp_path / "site"
        site_dir.mkdir()
        (site_dir / "hypernet-checkout.pth").write_text(f"{REPO_ROOT}\n", encoding="utf-8")
        (site_dir / "sitecustomize.py").write_text(f"import site\nsite.addsitedir({str(site_dir)!r})\n", encoding="utf-8")
        env["PYTHONPATH"] = str(site_dir)
    cli_env = env if installed else {**env, "PYTHONPATH": str(REPO_ROOT)}

    def hypernet(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "lib_hypernet", *argv], capture_output=True, text=True,
                              cwd=here, env=cli_env, timeout=300, check=False)

    hint = _hint(hypernet("info", "zip.pt").stdout)
    assert _hint(hypernet("verify", "zip.pt").stderr) == hint
    assert hint.endswith(f" -m lib_hypernet repair {path} --force")  # the file's absolute path
    assert hint.startswith(f"{sys.executable} -m" if installed else f"PYTHONPATH={REPO_ROOT} {sys.executable} -m")
    result = subprocess.run(hint, shell=True, capture_output=True, text=True, cwd=elsewhere, env=env, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert a1111_safe_check(path) == "ok"


def test_info_shows_modules_in_numeric_width_order(tmp_path: Path) -> None:
    path = tmp_path / "sd1.pt"
    lib_hypernet.create("sd1", sizes=(768, 320, 640, 1280), layer_structure=[1, 0.01, 1], seed=1).save(path)
    entry = json.loads(json.dumps(describe_file(path).to_json(), sort_keys=True))  # as a cache or the API may hand it over
    text = render.render_info(entry)
    widths = [line.split(":")[-2].split()[-1] for line in text.splitlines() if "Linear(" in line]
    assert widths == ["320", "640", "768", "1280"], text


# --------------------------------------------------------------------- issue 16: a CLI that answers at once
_NO_TORCH_RUN = r"""
import runpy, sys
sys.argv = ["hypernet", *sys.argv[1:]]
try:
    runpy.run_module("lib_hypernet", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
sys.stdout.flush()
sys.stderr.write(f"\ntorch loaded: {'torch' in sys.modules}\n")
sys.exit(code)
"""


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["--help"], 0),
        (["info", "--help"], 0),
        (["create", "--help"], 0),
        (["convert", "--help"], 0),
        (["--version"], 0),
        ([], 2),
        (["convert"], 2),
        (["frobnicate"], 2),
        (["create", "x", "--sizes", "abc"], 2),
        (["create", "x", "--init", "Zeros"], 2),
    ],
    ids=lambda value: " ".join(value) or "no-args" if isinstance(value, list) else str(value),
)
def test_help_and_usage_errors_load_no_torch(argv: list[str], code: int, tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", _NO_TORCH_RUN, *argv], capture_output=True, text=True,
                            env=_subprocess_env(), cwd=tmp_path, timeout=300, check=False)
    assert result.returncode == code, result.stderr
    assert result.stderr.rstrip().endswith("torch loaded: False"), result.stderr
    assert "Traceback" not in result.stderr
    assert ("usage:" in result.stdout + result.stderr) or argv == ["--version"]


def test_unknown_activation_is_a_usage_error_listing_the_names(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "create", "x", "--sizes", "8", "--activation", "threshold", "--out", tmp_path)
    assert code == 2 and "Traceback" not in err
    assert "invalid choice: 'threshold'" in err and "gelu" in err and "swish" in err
    assert list(tmp_path.iterdir()) == []


ENVELOPE_KEYS = {"command", "schema", "ok", "summary", "results", "errors"}
RESULT_KEYS = {"file", "status", "ok", "error", "written", "warnings", "description"}


def assert_document(out: str, command: str, statuses: list[str]) -> dict:
    """``out`` is one ``--json`` document of ``command``, one result per status, each with a file description."""
    doc = json.loads(out)
    assert set(doc) == ENVELOPE_KEYS and doc["command"] == command and doc["schema"] == 1
    assert [result["status"] for result in doc["results"]] == statuses
    for result in doc["results"]:
        assert set(result) == RESULT_KEYS
        assert result["ok"] == (result["error"] is None)
        description = result["description"]
        assert description["path"] == (result["written"] or result["file"])
        assert {"sha256", "format", "widths", "a1111_loadable", "ok", "error", "warnings"} <= set(description)
    assert doc["ok"] == all(result["ok"] for result in doc["results"]) == (doc["errors"] == [])
    return doc


def test_json_on_every_command(capsys: pytest.CaptureFixture[str], fixtures_dir: Path, tmp_path: Path) -> None:
    relu = tmp_path / "relu.pt"
    relu.write_bytes((fixtures_dir / "act_relu.pt").read_bytes())
    missing = tmp_path / "missing.pt"

    code, out, _ = run(capsys, "info", "--json", relu, missing)
    doc = assert_document(out, "info", ["ok", "failed"])
    assert code == 1 and doc["errors"] == [{"file": str(missing), "error": f"{missing}: file not found"}]
    assert doc["results"][0]["warnings"] == [REPAIR_WARNING]

    code, out, _ = run(capsys, "hash", "--json", relu)
    doc = assert_document(out, "hash", ["ok"])
    assert code == 0 and doc["results"][0]["description"]["sha256"] == lib_hypernet.sha256(relu)

    code, out, _ = run(capsys, "verify", "--json", relu)
    doc = assert_document(out, "verify", ["ok"])
    assert code == 0 and any(" repair " in w for w in doc["results"][0]["warnings"])

    code, out, _ = run(capsys, "convert", "--json", relu)
    doc = assert_document(out, "convert", ["written"])
    assert code == 0 and doc["results"][0]["written"] == str(tmp_path / "relu.safetensors")
    assert doc["results"][0]["description"]["format"] == "safetensors"

    code, out, err = run(capsys, "convert", "--json", relu)  # exists: not written, an error
    doc = assert_document(out, "convert", ["exists"])
    assert code == 1 and "--force" in doc["errors"][0]["error"] and err.startswith("error: ")

    code, out, _ = run(capsys, "repair", "--json", relu)
    doc = assert_document(out, "repair", ["exists"])
    assert code == 1 and doc["summary"] is None
    code, out, _ = run(capsys, "repair", "--json", "--force", relu)
    doc = assert_document(out, "repair", ["written"])
    assert code == 0 and doc["results"][0]["description"]["a1111_loadable"] is True

    code, out, _ = run(capsys, "convert", "--json", "--force", tmp_path)  # a folder
    doc = assert_document(out, "convert", ["written"])
    assert code == 0 and doc["summary"] == "converted 1 of 1 file; 0 failed"

    code, out, _ = run(capsys, "create", "--json", "new", "--sizes", "8", "--seed", "1", "--out", tmp_path)
    doc = assert_document(out, "create", ["written"])
    assert code == 0 and doc["results"][0]["description"]["widths"] == [8]
    code, out, _ = run(capsys, "create", "--json", "new", "--sizes", "8", "--out", tmp_path)  # exists
    doc = json.loads(out)
    assert code == 1 and doc["results"] == [] and doc["errors"][0]["file"] == str(tmp_path / "new.pt")
    assert set(doc) == ENVELOPE_KEYS and "--force" in doc["errors"][0]["error"]

    from lib_hypernet.library.examples import EXAMPLES

    code, out, _ = run(capsys, "examples", "--json", "--out", tmp_path / "ex")
    assert_document(out, "examples", ["written"] * len(EXAMPLES))
    code, out, _ = run(capsys, "examples", "--json", "--out", tmp_path / "ex")
    assert code == 0 and assert_document(out, "examples", ["fine"] * len(EXAMPLES))["ok"]


def test_convert_without_destination_or_into_a_folder(
    capsys: pytest.CaptureFixture[str], fixtures_dir: Path, tmp_path: Path
) -> None:
    src = tmp_path / "x.pt"
    src.write_bytes((fixtures_dir / "act_relu.pt").read_bytes())
    code, out, err = run(capsys, "convert", src)
    assert code == 0, err
    assert out.startswith(f"wrote {tmp_path / 'x.safetensors'} (safetensors")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, out, err = run(capsys, "convert", src, out_dir)
    assert code == 0, err
    assert out.startswith(f"wrote {out_dir / 'x.safetensors'} (safetensors") and "unknown hypernetwork" not in err
    code, out, err = run(capsys, "convert", tmp_path / "x.safetensors", out_dir)  # the other way: x.pt
    assert code == 0, err
    assert a1111_safe_check(out_dir / "x.pt") == "ok"
    code, _, err = run(capsys, "convert", src, out_dir, "--to", "pt")  # out/x.pt exists
    assert code == 1 and "already exists; pass --force" in err
    code, _, err = run(capsys, "convert", src, tmp_path / "y.pt", "--to", "safetensors")
    assert code == 2 and "does not end in .safetensors" in err
    for path in (tmp_path / "x.safetensors", out_dir / "x.safetensors", out_dir / "x.pt"):
        assert_hypernetworks_equal(lib_hypernet.load(src), lib_hypernet.load(path))


def _a1111_folder(fixtures_dir: Path, folder: Path) -> dict[str, Path]:
    """A folder as A1111 users have them: .pt files a newer torch wrote (A1111 refuses them), one with its .optim
    in a sub-folder, one A1111 loads, one broken."""
    (folder / "sub").mkdir(parents=True)
    files = {name: folder / name for name in ("act_relu.pt", "act_gelu.pt", "fine.pt", "broken.pt")}
    files["train.pt"] = folder / "sub" / "train.pt"
    for name in ("act_relu.pt", "act_gelu.pt"):
        files[name].write_bytes((fixtures_dir / name).read_bytes())
    for suffix in ("", ".optim"):
        Path(f"{files['train.pt']}{suffix}").write_bytes((fixtures_dir / f"optim_fresh_b.pt{suffix}").read_bytes())
    lib_hypernet.create("fine", sizes=[8], seed=1).save(files["fine.pt"])
    files["broken.pt"].write_bytes(b"\x00not a torch file" * 10)
    return files


def test_repair_a_folder(capsys: pytest.CaptureFixture[str], fixtures_dir: Path, tmp_path: Path) -> None:
    files = _a1111_folder(fixtures_dir, tmp_path / "hn")
    before = {path: path.read_bytes() for path in (tmp_path / "hn").rglob("*") if path.is_file()}

    code, out, err = run(capsys, "repair", tmp_path / "hn")  # without --force: nothing is written
    assert code == 1
    assert {path: path.read_bytes() for path in before} == before
    assert out.count("not written: ") == 3 and f"fine {files['fine.pt']}" in out
    assert err.strip().splitlines()[-1] == (
        "repaired 0 of 5 files; 1 was fine; 3 not written (pass --force to rewrite them in place); 1 failed")
    assert err.count("error: ") == 1 and "broken.pt" in err

    code, out, err = run(capsys, "repair", "--force", "--progress", tmp_path / "hn")
    assert code == 1  # the broken file
    assert err.strip().splitlines()[-1] == "repaired 3 of 5 files; 1 was fine; 1 failed"
    assert "\rrepairing [" in err and "5/5 files" in err
    for name in ("act_relu.pt", "act_gelu.pt", "train.pt", "fine.pt"):
        assert a1111_safe_check(files[name]) == "ok", name
    assert files["fine.pt"].read_bytes() == before[files["fine.pt"]]
    optim = lib_hypernet.load_optimizer_state(files["train.pt"])  # kept in step with the rewritten file
    assert optim.ok and optim.stored_hash == lib_hypernet.sha256(files["train.pt"])[:10]
    assert_hypernetworks_equal(lib_hypernet.load(fixtures_dir / "act_relu.pt"), lib_hypernet.load(files["act_relu.pt"]))

    files["broken.pt"].unlink()
    code, _, err = run(capsys, "repair", tmp_path / "hn")
    assert code == 0 and err.strip() == "repaired 0 of 4 files; 4 were fine; 0 failed"


def test_convert_a_folder(capsys: pytest.CaptureFixture[str], fixtures_dir: Path, tmp_path: Path) -> None:
    files = _a1111_folder(fixtures_dir, tmp_path / "hn")
    files["broken.pt"].unlink()
    code, out, err = run(capsys, "convert", tmp_path / "hn", "--to", "safetensors")
    assert code == 0, err
    assert err.strip() == "converted 4 of 4 files; 0 failed"
    for path in files.values():
        if path.exists():
            assert_hypernetworks_equal(lib_hypernet.load(path), lib_hypernet.load(path.with_suffix(".safetensors")))
    assert "the optimizer state stays in train.pt.optim" in out
    stamps = {path: path.stat().st_mtime_ns for path in (tmp_path / "hn").rglob("*.safetensors")}
    code, out, err = run(capsys, "convert", tmp_path / "hn")  # again: nothing overwritten without --force
    assert code == 1
    assert out.count("not written: ") == 4 and "already exists" in out
    assert err.strip() == "converted 0 of 4 files; 4 not written (the .safetensors file exists; pass --force to " \
                          "overwrite it); 0 failed"
    assert {path: path.stat().st_mtime_ns for path in stamps} == stamps
    code, _, err = run(capsys, "convert", tmp_path / "hn", "--force")
    assert code == 0 and err.strip() == "converted 4 of 4 files; 0 failed"
    code, _, err = run(capsys, "convert", tmp_path / "hn", tmp_path / "elsewhere")
    assert code == 2 and "give no DST" in err


def test_create_asks_before_writing_over_1_gib(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run(capsys, "create", "big", "--sizes", "768", "--layer-structure", "1, 200, 1", "--out", tmp_path)
    assert code == 1 and out == ""
    assert_one_error_line(err)
    assert "would be a 1.8 GiB file (472,167,936 parameters)" in err and "pass --yes" in err
    assert list(tmp_path.iterdir()) == []

    monkeypatch.setattr(commands, "CONFIRM_BYTES", 1024)  # a small file stands in for a big one
    code, _, err = run(capsys, "create", "small", "--sizes", "32", "--out", tmp_path)
    assert code == 1 and "pass --yes" in err and not (tmp_path / "small.pt").exists()
    code, _, err = run(capsys, "create", "small", "--sizes", "32", "--out", tmp_path, "--yes")
    assert code == 0 and err.startswith("warning: ") and "writing it as asked" in err
    assert (tmp_path / "small.pt").exists()

    monkeypatch.setattr(commands, "_isatty", lambda stream: True)  # a terminal: the question
    for answer, written in (("n\n", False), ("y\n", True)):
        monkeypatch.setattr(sys, "stdin", io.StringIO(answer))
        code, _, err = run(capsys, "create", f"asked{answer[0]}", "--sizes", "32", "--out", tmp_path)
        assert "Write it? [y/N]" in err
        assert (code == 0) == written == (tmp_path / f"asked{answer[0]}.pt").exists(), err
