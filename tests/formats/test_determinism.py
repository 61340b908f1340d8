"""Saved files are byte-reproducible: same weights and metadata give the same bytes, in both formats,
in separate processes (so memory addresses, hash seeds and object identity cannot leak into a file)."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hn_testutil import REPO_ROOT, a1111_safe_check, raw_torch_load

import lib_hypernet
from lib_hypernet import cli
from lib_hypernet.formats import pt_legacy_writer

# Creates, saves, re-loads and re-saves, converts; prints {file name: sha256} as JSON.
_SAVE_SCRIPT = r"""
import hashlib, json, os, sys
import lib_hypernet
from lib_hypernet import cli
out = sys.argv[1]
hn = lib_hypernet.create("repro", sizes=[8, 16, 24], layer_structure="1, 1.5, 1", activation_func="swish",
                         is_layer_norm=True, use_dropout=True, dropout_structure="0, 0.1, 0", seed=5,
                         optional_info="Grüße ✓")
hn.save(os.path.join(out, "created.pt"))
hn.save(os.path.join(out, "created.safetensors"))
lib_hypernet.load(os.path.join(out, "created.pt")).save(os.path.join(out, "reloaded.pt"))
lib_hypernet.load(os.path.join(out, "created.safetensors")).save(os.path.join(out, "reloaded.safetensors"))
assert cli.main(["create", "cli", "--sizes", "8,16", "--seed", "3", "--activation", "relu", "--out", out,
                 "--format", "safetensors"]) == 0
assert cli.main(["create", "cli", "--sizes", "8,16", "--seed", "3", "--activation", "relu", "--out", out]) == 0
assert cli.main(["convert", os.path.join(out, "cli.pt"), os.path.join(out, "converted.safetensors")]) == 0
assert cli.main(["convert", sys.argv[2], os.path.join(out, "a1111.pt")]) == 0
digests = {}
for name in sorted(os.listdir(out)):
    with open(os.path.join(out, name), "rb") as f:
        digests[name] = hashlib.sha256(f.read()).hexdigest()
print(json.dumps(digests))
"""


def _run_in_fresh_process(out: Path, a1111_file: Path, hash_seed: str) -> dict[str, str]:
    out.mkdir()
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _SAVE_SCRIPT, str(out), str(a1111_file)],
        capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_bytes_in_two_processes(tmp_path: Path, fixtures_dir: Path) -> None:
    a1111_file = fixtures_dir / "ls_1_2_2_1_relu_ln.pt"
    first = _run_in_fresh_process(tmp_path / "one", a1111_file, "1")
    second = _run_in_fresh_process(tmp_path / "two", a1111_file, "2")
    expected_files = {"created.pt", "created.safetensors", "reloaded.pt", "reloaded.safetensors", "cli.pt",
                      "cli.safetensors", "converted.safetensors", "a1111.pt"}
    assert set(first) == expected_files
    print("\nsha256 per file, process 1 == process 2:")
    for name in sorted(first):
        print(f"  {name:22} {first[name][:16]}  {second[name][:16]}")
    assert first == second
    # Loading and saving again gives the file it came from.
    assert first["reloaded.pt"] == first["created.pt"]
    assert first["reloaded.safetensors"] == first["created.safetensors"]
    assert first["cli.pt"] != first["created.pt"]
    for name in expected_files:
        assert a1111_safe_check(tmp_path / "one" / name) == "ok" or name.endswith(".safetensors")


def test_repair_of_a_canonical_pt_is_byte_identical(tmp_path: Path, fixtures_dir: Path) -> None:
    """`convert x.pt x.pt --force` on a file we wrote leaves it exactly as it was (hash and all)."""
    pt = tmp_path / "x.pt"
    shutil.copy(fixtures_dir / "dropout_1_2_2_1_elu_ln.pt", pt)
    assert cli.main(["convert", str(pt), str(pt), "--force"]) == 0  # A1111's file → canonical
    canonical = pt.read_bytes()
    for _ in range(2):
        assert cli.main(["convert", str(pt), str(pt), "--force"]) == 0
        assert pt.read_bytes() == canonical
    assert sorted(os.listdir(tmp_path)) == ["x.pt"]


def test_same_bytes_for_copies_at_other_addresses(tmp_path: Path) -> None:
    hn = lib_hypernet.create("addr", sizes=[8, 16], activation_func="relu", seed=2)
    twin = copy.deepcopy(hn)
    for i, model in enumerate((hn, twin, hn)):
        model.save(tmp_path / f"{i}.pt")
        model.save(tmp_path / f"{i}.safetensors")
    assert len({_sha(tmp_path / f"{i}.pt") for i in range(3)}) == 1
    assert len({_sha(tmp_path / f"{i}.safetensors") for i in range(3)}) == 1


def test_legacy_writer_reads_back_like_torch_save(tmp_path: Path) -> None:
    """torch.load (weights-only and plain) gives what torch's own legacy writer gives; A1111 accepts both."""
    hn = lib_hypernet.create("cmp", sizes=[8, 320], activation_func="tanh", is_layer_norm=True, seed=4)
    raw = hn.state_dict()
    ours, theirs = tmp_path / "ours.pt", tmp_path / "theirs.pt"
    hn.save(ours)
    torch.save(raw, theirs, _use_new_zipfile_serialization=False)
    assert a1111_safe_check(ours) == a1111_safe_check(theirs) == "ok"
    a, b = raw_torch_load(ours), raw_torch_load(theirs)
    assert list(a) == list(b) == list(raw)
    for key, value in raw.items():
        if isinstance(key, int):
            for sa, sb in zip(a[key], value):
                assert type(sa) is type(sb) and list(sa) == list(sb)
                for name in sb:
                    assert sa[name].dtype == sb[name].dtype and sa[name].stride() == sb[name].stride()
                    assert torch.equal(sa[name], sb[name])
        else:
            assert a[key] == value and type(a[key]) is type(value)
    # The first three pickles (magic number, protocol, system info) are torch's, byte for byte.
    header = len(b"".join(_first_pickles(theirs.read_bytes(), 3)))
    assert ours.read_bytes()[:header] == theirs.read_bytes()[:header]


def _first_pickles(data: bytes, count: int) -> list[bytes]:
    import pickletools

    chunks, pos = [], 0
    for _ in range(count):
        end = pos
        for _op, _arg, at in pickletools.genops(data[pos:]):
            end = pos + (at or 0)
        chunks.append(data[pos : end + 1])
        pos = end + 1
    return chunks


def test_legacy_writer_names_storages_in_order_and_keeps_sharing() -> None:
    base = torch.arange(12, dtype=torch.float32)
    obj = {"a": base[2:6], "b": base.view(3, 4), "c": torch.ones(2, dtype=torch.float16), "p": torch.nn.Parameter(base)}
    buf = io.BytesIO()
    pt_legacy_writer.save_legacy(obj, buf)
    buf.seek(0)
    back = torch.load(buf, weights_only=True)
    assert torch.equal(back["a"], base[2:6]) and torch.equal(back["b"], base.view(3, 4))
    assert back["a"].untyped_storage().data_ptr() == back["b"].untyped_storage().data_ptr()  # one storage, as saved
    assert isinstance(back["p"], torch.nn.Parameter) and back["p"].requires_grad
    assert back["c"].dtype == torch.float16
    data = buf.getvalue()
    keys = _first_pickles(data, 5)[4]
    import pickle

    assert pickle.loads(keys) == ["0", "1"]


@pytest.mark.parametrize("bad", [torch.zeros(2, 2).to_sparse(), torch.zeros(2, dtype=torch.complex64)],
                         ids=["sparse", "complex"])
def test_legacy_writer_refuses_what_it_cannot_write(bad: torch.Tensor) -> None:
    with pytest.raises(TypeError):
        pt_legacy_writer.save_legacy({"x": bad}, io.BytesIO())


def test_safetensors_header_is_sorted_canonical_json(tmp_path: Path) -> None:
    path = tmp_path / "h.safetensors"
    lib_hypernet.create("hdr", sizes=[16, 8], seed=1, optional_info="ünïcode").save(path)
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    assert length % 8 == 0
    text = data[8 : 8 + length].decode("utf-8").rstrip(" ")
    header = json.loads(text)
    assert text == json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert list(header) == sorted(header) and list(header["__metadata__"]) == sorted(header["__metadata__"])
    assert lib_hypernet.load(path).optional_info == "ünïcode"
