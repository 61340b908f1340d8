"""Safetensors keys must match the documented layout exactly (no aliases), headers must be unambiguous,
and every bad header gives our own error (issue 7, classes 3 and 5)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from hostile_util import assert_refused, safetensors_bytes, safetensors_parts

import lib_hypernet


def _good(tmp_path: Path) -> bytes:
    path = tmp_path / "good.safetensors"
    lib_hypernet.create("good", sizes=[8], activation_func="relu", seed=0).save(path)
    return path.read_bytes()


def _error(path: Path, *keywords: str) -> lib_hypernet.HypernetError:
    return assert_refused(path, *keywords, error=lib_hypernet.HypernetFormatError)


def _rename(header: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    return {new if k == old else k: v for k, v in header.items()}


def test_header_round_trip_is_loadable(tmp_path: Path) -> None:
    """Positive control: re-encoding the header the way the tests below do keeps the file loadable."""
    header, body = safetensors_parts(_good(tmp_path))
    path = tmp_path / "same.safetensors"
    path.write_bytes(safetensors_bytes(header, body))
    assert lib_hypernet.load(path).widths == [8]


@pytest.mark.parametrize(
    "new_key",
    [
        "8.k.linear.0.bias\n",  # trailing newline
        "8.k.linear.0.bias ",  # trailing space
        " 8.k.linear.0.bias",
        "\u0668.k.linear.0.bias",  # Arabic-Indic eight
        "8.k.linear.\u0660.bias",  # Arabic-Indic zero
        "08.k.linear.0.bias",  # leading zero: a second spelling of width 8
        "8.k.linear.00.bias",
        "8.K.linear.0.bias",
        "8.k.linear.0.bias.x",
        "8.k.linear1.bias",
    ],
    ids=["newline", "space", "leading_space", "arabic_width", "arabic_index", "leading_zero", "index_zero",
         "upper_branch", "suffix", "old_key_name"],
)
def test_key_aliases_refused(new_key: str, tmp_path: Path) -> None:
    header, body = safetensors_parts(_good(tmp_path))
    path = tmp_path / "alias.safetensors"
    path.write_bytes(safetensors_bytes(_rename(header, "8.k.linear.0.bias", new_key), body))
    _error(path, "unexpected tensor names")


def test_alias_next_to_the_real_key_refused(tmp_path: Path) -> None:
    """Two names for one tensor: the old reader let the last one win silently."""
    header, body = safetensors_parts(_good(tmp_path))
    info = header["8.k.linear.0.bias"]
    header["08.k.linear.0.bias"] = {**info}
    body += body[info["data_offsets"][0]:info["data_offsets"][1]]
    header["08.k.linear.0.bias"]["data_offsets"] = [len(body) - (info["data_offsets"][1] - info["data_offsets"][0]),
                                                    len(body)]
    path = tmp_path / "both.safetensors"
    path.write_bytes(safetensors_bytes(header, body))
    _error(path, "unexpected tensor names")


def test_duplicate_json_keys_refused(tmp_path: Path) -> None:
    header, body = safetensors_parts(_good(tmp_path))
    text = json.dumps(header)
    key = '"8.k.linear.0.bias": '
    at = text.index(key)
    end = text.index("}", at) + 1
    doubled = text[:end] + ", " + text[at:end] + text[end:]
    path = tmp_path / "dup.safetensors"
    path.write_bytes(safetensors_bytes(doubled, body))
    _error(path, "twice")


def test_deeply_nested_header_json(tmp_path: Path) -> None:
    header, body = safetensors_parts(_good(tmp_path))
    text = json.dumps(header)[:-1] + ', "deep": ' + "[" * 100_000 + "]" * 100_000 + "}"
    path = tmp_path / "deep.safetensors"
    path.write_bytes(safetensors_bytes(text, body))
    _error(path, "json", "nested", "safetensors")


@pytest.mark.parametrize(
    ("field", "text", "keyword"),
    [
        ("optional_info", "[" * 100_000 + "]" * 100_000, "optional_info"),
        ("step", "1" + "0" * 5000, "step"),
        ("step", "1" + "0" * 400, "step"),
        ("layer_structure", "[1, 1" + "0" * 400 + ", 1]", "layer_structure"),
        ("dropout_structure", "[0, 1" + "0" * 400 + ", 0]", "dropout_structure"),
        ("step", "1e400", "step"),
        ("optional_info", '{"a": 1, "a": 2}', "optional_info"),
    ],
    ids=["nested_optional_info", "int_5000_digits", "step_10e400", "layer_structure_10e400",
         "dropout_structure_10e400", "step_inf", "duplicate_keys"],
)
def test_bad_metadata_values(field: str, text: str, keyword: str, tmp_path: Path) -> None:
    header, body = safetensors_parts(_good(tmp_path))
    header["__metadata__"][field] = text
    path = tmp_path / "meta.safetensors"
    path.write_bytes(safetensors_bytes(header, body))
    _error(path, keyword)


@pytest.mark.parametrize("dtype", ["F8_E4M3", "F8_E5M2", "I64", "BOOL", "U8", "C64", "F4"])
def test_only_float_weight_dtypes(dtype: str, tmp_path: Path) -> None:
    header, body = safetensors_parts(_good(tmp_path))
    header["8.k.linear.0.bias"]["dtype"] = dtype
    path = tmp_path / "dtype.safetensors"
    path.write_bytes(safetensors_bytes(header, body))
    _error(path, "dtype")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_float_weight_dtypes_load(dtype: torch.dtype, tmp_path: Path) -> None:
    hn = lib_hypernet.create("good", sizes=[8], activation_func="relu", seed=0)
    hn.to(dtype=dtype)
    path = tmp_path / "half.safetensors"
    hn.save(path)
    assert lib_hypernet.load(path).widths == [8]


@pytest.mark.parametrize(
    "header",
    [
        '\ufeff{"__metadata__": {}}'.encode(),
        '{"__metadata__": {}}'.encode("utf-16"),
        b'{"__metadata__": {"format": "a1111-hypernetwork"}, "8.k.linear.0.bias": {"dtype": "F32", "shape": [-1]}}',
        b'{"__metadata__": {"format": 5}}',
        b"[1, 2, 3]",
        b'{"__metadata__": {}, "8.k.linear.0.bias": 1}',
        b"\xff\xfe\xfd",
    ],
    ids=["bom", "utf16", "negative_shape", "metadata_not_str", "not_an_object", "tensor_not_an_object", "not_utf8"],
)
def test_malformed_headers(header: bytes, tmp_path: Path) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(safetensors_bytes(header, b"\0" * 64))
    _error(path, "safetensors")


def test_huge_width_refused(tmp_path: Path) -> None:
    header, body = safetensors_parts(_good(tmp_path))
    for key in [k for k in header if k.startswith("8.")]:
        header = _rename(header, key, "9" * 40 + key[1:])
    path = tmp_path / "wide.safetensors"
    path.write_bytes(safetensors_bytes(header, body))
    _error(path, "width")
