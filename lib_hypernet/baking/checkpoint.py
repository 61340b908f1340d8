"""The attention layers of a Stable Diffusion checkpoint file, read one tensor at a time.

A ``.safetensors`` checkpoint is read in place (one tensor in memory at a time); a ``.ckpt`` goes through
the project's safe torch loader (nothing in it is executed) and is held in memory while it is used.
Keys are the single-file (CompVis / SGM) names the webuis use: ``model.diffusion_model.<path>.attn1.to_k.weight``.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import HypernetFormatError
from ..formats.pt import read_torch_file
from ..formats.safetensors_file import SafetensorsFile

_ATTENTION_KEY = re.compile(r"(?P<prefix>(?:model\.)?diffusion_model\.(?P<path>.+\.(?P<attn>attn[12])))\.to_k\.weight\Z")


@dataclass(frozen=True)
class AttentionLayer:
    """One attention layer: where its tensors are and which hypernetwork module width it takes."""

    prefix: str  # e.g. "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1"
    path: str  # the part after "diffusion_model.", e.g. "input_blocks.1.1.transformer_blocks.0.attn1"
    kind: str  # "self" (attn1) or "cross" (attn2)
    width: int  # the input width of to_k / to_v

    def key(self, part: str) -> str:
        return f"{self.prefix}.{part}"

    @property
    def lora_name(self) -> str:
        """The kohya/webui LoRA name: ``lora_unet_`` + the compvis path with dots as underscores."""
        return "lora_unet_" + self.path.replace(".", "_")


class Checkpoint:
    """A checkpoint's tensors by key; ``read`` gives a fresh float tensor each time."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        suffix = os.path.splitext(self.path)[1].lower()
        self._file: SafetensorsFile | None = None
        self._state: dict[str, torch.Tensor] | None = None
        if suffix == ".safetensors":
            self._file = SafetensorsFile(self.path)
        elif suffix in (".ckpt", ".pt", ".pth"):
            self._state = _state_dict(read_torch_file(self.path), self.path)
        else:
            raise HypernetFormatError(f"unknown checkpoint type {suffix!r}: use a .safetensors (or .ckpt) file",
                                      self.path)

    @property
    def is_safetensors(self) -> bool:
        return self._file is not None

    def names(self) -> list[str]:
        return list(self._file.tensors) if self._file is not None else list(self._state or {})

    def dtype(self, key: str) -> torch.dtype:
        return self._file.tensors[key].dtype if self._file is not None else (self._state or {})[key].dtype

    def shape(self, key: str) -> tuple[int, ...]:
        if self._file is not None:
            return self._file.tensors[key].shape
        return tuple((self._state or {})[key].shape)

    @contextmanager
    def reader(self) -> Iterator[Any]:
        """A function ``read(key)`` valid inside the block (one open file for many reads)."""
        if self._file is None:
            state = self._state or {}
            yield lambda key: state[key]
            return
        file = self._file
        with open(self.path, "rb") as f:
            assert isinstance(f, io.BufferedReader)
            yield lambda key: file.read(key, f)

    def attention_layers(self) -> list[AttentionLayer]:
        """Every UNet attention layer with the tensors a bake needs (to_k, to_v, to_out.0 weight and bias)."""
        keys = set(self.names())
        layers = []
        for key in self.names():
            match = _ATTENTION_KEY.match(key)
            if match is None:
                continue
            prefix = match["prefix"]
            needed = [f"{prefix}.to_v.weight", f"{prefix}.to_out.0.weight", f"{prefix}.to_out.0.bias"]
            if not all(k in keys for k in needed):
                continue
            shape = self.shape(key)
            if len(shape) != 2:
                continue
            kind = "self" if match["attn"] == "attn1" else "cross"
            layers.append(AttentionLayer(prefix, match["path"], kind, shape[1]))
        return layers


def _state_dict(obj: Any, path: str) -> dict[str, torch.Tensor]:
    """The tensors of a loaded ``.ckpt`` (Lightning's ``{"state_dict": …}`` or a bare state dict)."""
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise HypernetFormatError("not a checkpoint: no state dict in the file", path)
    return {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
