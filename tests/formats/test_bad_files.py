"""Broken, foreign and malformed inputs give our own error type, naming the file and saying what is wrong."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from hostile_util import good_raw
from safetensors.torch import save_file

import lib_hypernet
from lib_hypernet.errors import ActivationError


def _good_pt(path: Path, zip_format: bool = False) -> Path:
    torch.save(good_raw(sizes=(8, 16)), path, _use_new_zipfile_serialization=zip_format)
    return path


def _load_error(path: Path, error_type: type[Exception] = lib_hypernet.HypernetError) -> lib_hypernet.HypernetError:
    with pytest.raises(lib_hypernet.HypernetError) as info:
        lib_hypernet.load(path)
    err = info.value
    assert isinstance(err, error_type), f"{type(err).__name__}: {err}"
    assert str(path) in str(err)
    assert err.path == str(path)
    return err


def _assert_keywords(err: Exception, *keywords: str) -> None:
    text = str(err).lower()
    assert any(k.lower() in text for k in keywords), f"none of {keywords} in {err}"


# --------------------------------------------------------------------------- not a hypernetwork file at all
def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    _assert_keywords(_load_error(path, lib_hypernet.HypernetFormatError), "empty")


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
@pytest.mark.parametrize("fraction", [0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99])
def test_truncated_pt(zip_format: bool, fraction: float, tmp_path: Path) -> None:
    data = _good_pt(tmp_path / "good.pt", zip_format).read_bytes()
    path = tmp_path / "cut.pt"
    path.write_bytes(data[: max(1, int(len(data) * fraction))])
    _assert_keywords(_load_error(path), "truncated", "corrupt")


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_truncated_pt_every_tail(zip_format: bool, tmp_path: Path) -> None:
    """Cutting off the last few bytes (a partial download) never escapes as a non-HypernetError."""
    data = _good_pt(tmp_path / "good.pt", zip_format).read_bytes()
    path = tmp_path / "cut.pt"
    for cut in (*range(1, 40, 3), 100, 500, 1000):
        path.write_bytes(data[:-cut])
        _load_error(path)


@pytest.mark.parametrize(
    "content",
    [b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, b"hello, this is a text file\n" * 20],
    ids=["png", "text"],
)
def test_other_file_renamed_to_pt(content: bytes, tmp_path: Path) -> None:
    path = tmp_path / "picture.pt"
    path.write_bytes(content)
    _assert_keywords(_load_error(path, lib_hypernet.HypernetFormatError), "not a readable PyTorch file")


def test_unknown_suffix(tmp_path: Path) -> None:
    path = _good_pt(tmp_path / "model.ckpt")
    err = _load_error(path, lib_hypernet.HypernetFormatError)
    _assert_keywords(err, ".ckpt")
    _assert_keywords(err, ".pt or .safetensors")


@pytest.mark.parametrize("name", ["missing.pt", "missing.safetensors"])
def test_missing_file(name: str, tmp_path: Path) -> None:
    err = _load_error(tmp_path / name, lib_hypernet.HypernetFileError)
    assert isinstance(err, OSError)
    _assert_keywords(err, "not found")


# --------------------------------------------------------------------------- broken safetensors
def _write_st_raw(path: Path, header: bytes, body: bytes = b"") -> Path:
    path.write_bytes(struct.pack("<Q", len(header)) + header + body)
    return path


def test_safetensors_huge_header_length(tmp_path: Path) -> None:
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", 1 << 40) + b'{"__metadata__": {}}' + b"\0" * 64)
    _assert_keywords(_load_error(path, lib_hypernet.HypernetFormatError), "header")


def test_safetensors_garbage_header(tmp_path: Path) -> None:
    path = _write_st_raw(tmp_path / "garbage.safetensors", b"this is { not json", b"\0" * 64)
    _assert_keywords(_load_error(path, lib_hypernet.HypernetFormatError), "safetensors")


def test_safetensors_shorter_than_header_length(tmp_path: Path) -> None:
    path = tmp_path / "tiny.safetensors"
    path.write_bytes(b"\x01\x02\x03")
    _assert_keywords(_load_error(path, lib_hypernet.HypernetFormatError), "safetensors")


@pytest.mark.parametrize("fraction", [0.001, 0.05, 0.3, 0.6, 0.95, 0.999])
def test_truncated_safetensors(fraction: float, tmp_path: Path) -> None:
    good = tmp_path / "good.safetensors"
    lib_hypernet.create("good", sizes=[8, 16], activation_func="relu", seed=0).save(good)
    data = good.read_bytes()
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[: max(1, int(len(data) * fraction))])
    _assert_keywords(_load_error(path, lib_hypernet.HypernetFormatError), "truncated", "safetensors")


def test_safetensors_lora(tmp_path: Path) -> None:
    path = tmp_path / "lora.safetensors"
    save_file(
        {
            "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 8),
            "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": torch.zeros(8, 4),
        },
        str(path),
        metadata={"ss_network_module": "networks.lora"},
    )
    err = _load_error(path, lib_hypernet.HypernetFormatError)
    _assert_keywords(err, "not a hypernetwork")
    _assert_keywords(err, "LoRA")


@pytest.mark.parametrize("metadata", [None, {"format": "a1111-hypernetwork", "format_version": "1"}])
def test_safetensors_without_tensors(metadata: dict | None, tmp_path: Path) -> None:
    path = tmp_path / "empty.safetensors"
    save_file({}, str(path), metadata=metadata)
    _assert_keywords(_load_error(path, lib_hypernet.HypernetFormatError), "not a hypernetwork", "no layers")


def test_safetensors_newer_format_version(tmp_path: Path) -> None:
    path = tmp_path / "future.safetensors"
    save_file({"8.k.linear.0.weight": torch.zeros(16, 8)}, str(path),
              metadata={"format": "a1111-hypernetwork", "format_version": "2"})
    _assert_keywords(_load_error(path, lib_hypernet.HypernetFormatError), "format_version")


def test_safetensors_bad_metadata_json(tmp_path: Path) -> None:
    good = tmp_path / "good.safetensors"
    hn = lib_hypernet.create("good", sizes=[8], activation_func="relu", seed=0)
    hn.save(good)
    from safetensors.torch import load_file

    tensors = load_file(str(good))
    path = tmp_path / "badmeta.safetensors"
    save_file(tensors, str(path), metadata={"format": "a1111-hypernetwork", "layer_structure": "[1, 2,"})
    _assert_keywords(_load_error(path, lib_hypernet.HypernetFormatError), "layer_structure")


# --------------------------------------------------------------------------- well-formed files with bad contents
def _edited(tmp_path: Path, edit: Callable[[dict], Any], name: str = "edited.pt") -> Path:
    raw = good_raw(sizes=(8, 16))
    edit(raw)
    path = tmp_path / name
    torch.save(raw, path)
    return path


def _set(key: Any, value: Any) -> Callable[[dict], None]:
    return lambda raw: raw.__setitem__(key, value)


BAD_CONTENTS: dict[str, tuple[Callable[[dict], Any], type[Exception], tuple[str, ...]]] = {
    "wrong_shape": (
        lambda r: r[8][0].__setitem__("linear.0.weight", torch.zeros(16, 9)), lib_hypernet.HypernetFormatError,
        ("shape",),
    ),
    "v_missing_1_tuple": (lambda r: r.__setitem__(8, (r[8][0],)), lib_hypernet.HypernetFormatError, ("pair",)),
    "not_a_state_dict": (lambda r: r.__setitem__(8, (r[8][0], [1, 2])), lib_hypernet.HypernetFormatError, ("pair",)),
    "missing_key": (lambda r: r[8][1].pop("linear.2.bias"), lib_hypernet.HypernetFormatError, ("linear.2.bias",)),
    "extra_key": (
        lambda r: r[16][0].__setitem__("linear.9.weight", torch.zeros(2)), lib_hypernet.HypernetFormatError,
        ("unexpected",),
    ),
    "no_int_keys": (lambda r: [r.pop(8), r.pop(16)], lib_hypernet.HypernetFormatError, ("no layers",)),
    "only_str_width_keys": (
        lambda r: r.update({"768": r.pop(8)}) or r.pop(16), lib_hypernet.HypernetFormatError, ("no layers",),
    ),
    "nan_weight": (
        lambda r: r[16][0]["linear.0.weight"].__setitem__((0, 0), float("nan")), lib_hypernet.HypernetFormatError,
        ("nan",),
    ),
    "inf_weight": (
        lambda r: r[8][1]["linear.2.bias"].__setitem__(3, float("inf")), lib_hypernet.HypernetFormatError,
        ("infinite",),
    ),
    "int_tensor": (
        lambda r: r[8][0].__setitem__("linear.0.bias", torch.zeros(16, dtype=torch.int64)),
        lib_hypernet.HypernetFormatError, ("dtype",),
    ),
    "layer_structure_2_1": (_set("layer_structure", [2, 1]), lib_hypernet.HypernetFormatError, ("layer_structure",)),
    "layer_structure_abc": (_set("layer_structure", "abc"), lib_hypernet.HypernetFormatError, ("layer_structure",)),
    "layer_structure_inf": (
        _set("layer_structure", [1, float("inf"), 1]), lib_hypernet.HypernetFormatError, ("layer_structure",),
    ),
    "layer_structure_nan": (
        _set("layer_structure", [1, float("nan"), 1]), lib_hypernet.HypernetFormatError, ("layer_structure",),
    ),
    "layer_structure_huge": (
        _set("layer_structure", [1, 1e30, 1]), lib_hypernet.HypernetFormatError, ("layer_structure",),
    ),
    "layer_structure_zero_width": (
        _set("layer_structure", [1, 0.01, 1]), lib_hypernet.HypernetFormatError, ("width 0",),
    ),
    "dropout_1": (
        lambda r: r.update(use_dropout=True, dropout_structure=[0, 1.0, 0]), lib_hypernet.HypernetFormatError,
        ("dropout",),
    ),
    "dropout_above_1": (
        lambda r: r.update(use_dropout=True, dropout_structure=[0, 1.5, 0]), lib_hypernet.HypernetFormatError,
        ("dropout",),
    ),
    "dropout_too_short": (
        _set("dropout_structure", [0, 0.3]), lib_hypernet.HypernetFormatError, ("dropout_structure",),
    ),
    "unknown_activation": (_set("activation_func", "swishy"), ActivationError, ("swishy",)),
    "activation_not_a_string": (_set("activation_func", 3), lib_hypernet.HypernetFormatError, ("activation_func",)),
    "step_not_a_number": (_set("step", "many"), lib_hypernet.HypernetFormatError, ("step",)),
    "name_not_a_string": (_set("name", ["a"]), lib_hypernet.HypernetFormatError, ("name",)),
    "negative_width": (
        lambda r: r.update({-8: r.pop(8)}), lib_hypernet.HypernetFormatError, ("width",),
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CONTENTS))
def test_bad_contents(case: str, tmp_path: Path) -> None:
    edit, error_type, keywords = BAD_CONTENTS[case]
    path = _edited(tmp_path, edit, f"{case}.pt")
    err = _load_error(path, error_type)
    _assert_keywords(err, *keywords)


@pytest.mark.parametrize(
    "obj", [[1, 2, 3], torch.zeros(3), "a string", None, (1, 2)], ids=["list", "tensor", "str", "none", "tuple"]
)
@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_non_dict_pickle(obj: Any, zip_format: bool, tmp_path: Path) -> None:
    path = tmp_path / "thing.pt"
    torch.save(obj, path, _use_new_zipfile_serialization=zip_format)
    err = _load_error(path, lib_hypernet.HypernetFormatError)
    _assert_keywords(err, "not a hypernetwork")


def test_bad_safetensors_contents_same_checks(tmp_path: Path) -> None:
    """The .safetensors path shares the validation: NaN weights and a bad structure are refused there too."""
    hn = lib_hypernet.create("good", sizes=[8], activation_func="relu", seed=0)
    good = tmp_path / "good.safetensors"
    hn.save(good)
    from safetensors import safe_open

    with safe_open(str(good), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        metadata = f.metadata()
    tensors["8.v.linear.0.weight"][0, 0] = float("nan")
    nan_path = tmp_path / "nan.safetensors"
    save_file(tensors, str(nan_path), metadata=metadata)
    _assert_keywords(_load_error(nan_path, lib_hypernet.HypernetFormatError), "nan")

    tensors["8.v.linear.0.weight"][0, 0] = 0.0
    bad_ls = tmp_path / "ls.safetensors"
    save_file(tensors, str(bad_ls), metadata={**metadata, "layer_structure": json.dumps([1, 3, 1])})
    _assert_keywords(_load_error(bad_ls, lib_hypernet.HypernetFormatError), "shape")


def test_errors_are_catchable_as_hypernet_error(tmp_path: Path) -> None:
    """A loop over a folder can keep going after each bad file by catching HypernetError only."""
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "text.pt").write_text("nope")
    (tmp_path / "garbage.safetensors").write_bytes(bytes(range(64)))
    _good_pt(tmp_path / "good.pt")
    loaded, failed = [], []
    for path in sorted(tmp_path.iterdir()):
        try:
            loaded.append(lib_hypernet.load(path).name)
        except lib_hypernet.HypernetError as exc:
            failed.append(exc.path)
    assert loaded == ["good"]
    assert sorted(failed) == sorted(str(tmp_path / n) for n in ("empty.pt", "text.pt", "garbage.safetensors"))
