"""A small example folder (about 5 MB) for the standalone panel: one file of each kind a user meets.

SD1-, SD2- and SDXL-shaped files with reduced layer structures (so they stay small), a
``.safetensors`` conversion, a zip-format ``.pt`` written by newer torch that A1111 1.10.1
cannot load, a ``.optim`` side file, a file with training metadata and a sub-folder.
Weights are random (seeded): they show the panel, they have no trained style.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import HypernetFileError
from ..formats.optim import save_optimizer_state
from ..model.create import create
from ..model.hypernetwork import Hypernetwork
from .actions import convert_file, save, write_file


@dataclass(frozen=True)
class Example:
    """One example: ``options`` for :func:`lib_hypernet.create`, or converted from ``convert_from``."""

    relpath: str
    options: dict[str, Any] = field(default_factory=dict)
    convert_from: str | None = None
    zip_format: bool = False  # written like torch.save does by default (A1111 1.10.1 refuses it)
    trained: dict[str, Any] = field(default_factory=dict)  # metadata a training run would have set
    optim: bool = False


def _info(seed: int, what: str) -> str:
    return f"sd-webui-hypernet example ({what}): random initial weights, seed {seed}; it has no trained style"


EXAMPLES: tuple[Example, ...] = (
    Example("anime-style.pt", dict(sizes=(768, 320, 640), layer_structure=(1, 0.03, 1), activation_func="relu",
                                   seed=1, optional_info=_info(1, "SD1 widths, layer structure 1, 0.03, 1, relu")),
            optim=True),
    Example("anime-style.safetensors", convert_from="anime-style.pt"),
    Example("styles/painterly-ln.pt",
            dict(sizes=(768, 320, 640, 1280), layer_structure=(1, 0.02, 1), activation_func="swish", is_layer_norm=True,
                 seed=2, optional_info=_info(2, "SD1, 1, 0.02, 1, swish, layer norm"))),
    Example("sd2-lite.pt", dict(sizes=(1024, 320, 640, 1280), layer_structure=(1, 0.02, 1), activation_func="linear",
                                seed=3, optional_info=_info(3, "SD2 widths, 1, 0.02, 1, linear"))),
    Example("sdxl-newer-torch.pt",
            dict(sizes=(2048, 640, 1280), layer_structure=(1, 0.01, 1), activation_func="gelu", seed=4,
                 optional_info=_info(4, "SDXL widths, saved as zip by newer torch: A1111 1.10.1 cannot load it")),
            zip_format=True),
    Example("tiny/deep-dropout.pt",
            dict(sizes=(32, 64), layer_structure=(1, 2, 2, 1), activation_func="leakyrelu", use_dropout=True,
                 dropout_structure=(0, 0.1, 0.1, 0), seed=5, optional_info=_info(5, "tiny widths, dropout"))),
    Example("tiny/trained-elsewhere.pt",
            dict(sizes=(32, 64), layer_structure=(1, 2, 1), activation_func="tanh", seed=6,
                 optional_info=_info(6, "tiny widths, with training metadata")),
            trained=dict(step=1500, sd_checkpoint="a1b2c3d4e5", sd_checkpoint_name="example-sd15")),
)


def _save_zip(path: str, hn: Hypernetwork) -> None:
    """Save like ``torch.save`` does by default on torch ≥ 1.6 (zip with ``.format_version``)."""
    state = hn.state_dict()
    write_file(path, lambda f: torch.save(state, f), overwrite=False)


def make_examples(out: str | os.PathLike[str], examples: tuple[Example, ...] = EXAMPLES) -> list[str]:
    """Write the examples into ``out`` (skipping files that exist); returns the paths written."""
    out = os.fspath(out)
    written: list[str] = []
    made: dict[str, Hypernetwork] = {}
    for example in examples:
        path = os.path.join(out, *example.relpath.split("/"))
        if os.path.exists(path):
            continue
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        except OSError as exc:
            raise HypernetFileError(f"cannot create the folder: {exc.strerror or exc}", os.path.dirname(path)) from exc
        if example.convert_from is not None:
            source = os.path.join(out, *example.convert_from.split("/"))
            convert_file(source, path, loaded=made.get(example.convert_from))
        else:
            stem = os.path.splitext(os.path.basename(path))[0]
            hn = create(stem, **example.options)
            for key, value in example.trained.items():
                setattr(hn, key, value)
            if example.zip_format:
                _save_zip(path, hn)
            else:
                save(hn, path, overwrite=False)
            if example.optim:
                params = {"state": {}, "param_groups": [{"lr": 5e-6, "params": list(range(len(list(hn.parameters()))))}]}
                save_optimizer_state(path, params)
            made[example.relpath] = hn
        written.append(path)
    return written
