"""Converting a hypernetwork file between ``.pt`` and ``.safetensors``, checked before it is kept.

The result is written to a temporary file beside the destination and moved over it only
after it re-loads with the source's metadata and bit-identical weights for every width,
so a failed or interrupted conversion never replaces anything.  When writing a ``.pt``,
a valid ``SRC.optim`` is re-written for the new file's hash (a re-saved file has a new
hash, so the old side file would no longer match).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from dataclasses import dataclass

import torch

from ..engine.reference import apply_hypernetworks
from ..errors import HypernetFileError, HypernetFormatError
from ..formats import format_of
from ..formats.hashing import sha256
from ..formats.optim import OptimizerState, load_optimizer_state, optim_path, save_optimizer_state
from ..model.hypernetwork import Hypernetwork, load

PROBE_SEED = 1234
PROBE_SHAPE = (2, 5)  # batch, tokens; the width is appended


@dataclass(frozen=True)
class Conversion:
    """What :func:`convert_file` wrote."""

    path: str
    format: str
    sha256: str
    widths: list[int]
    optim_note: str  # what happened to the source's optimizer state ("" when it had none)


def probe_outputs(hn: Hypernetwork, seed: int = PROBE_SEED) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """``(k, v)`` of ``hn`` at strength 1 on a seeded normal context, for every width."""
    generator = torch.Generator().manual_seed(seed)
    outputs = {}
    with torch.inference_mode(), warnings.catch_warnings():
        # A1111's softmax-family activations are built without dim (torch warns on every call).
        warnings.filterwarnings("ignore", message="Implicit dimension choice", category=UserWarning)
        for width in hn.widths:
            context = torch.randn(*PROBE_SHAPE, width, generator=generator)
            outputs[width] = apply_hypernetworks(context, [(hn, 1.0)])
    return outputs


def convert_file(
    src: str,
    dst: str,
    *,
    overwrite: bool = False,
    overwrite_hint: str = "convert with overwrite to replace it",
    loaded: Hypernetwork | None = None,
    source_sha256: str | None = None,
) -> Conversion:
    """Convert ``src`` to ``dst`` (format from the suffix) and verify it; see the module docstring.

    ``loaded`` is ``src`` already loaded and ``source_sha256`` its hash (each saves a re-read).
    ``overwrite_hint`` ends the error raised when ``dst`` exists and ``overwrite`` is false.
    """
    src_format, dst_format = format_of(src), format_of(dst)
    if os.path.exists(dst) and not overwrite:
        raise HypernetFileError(f"already exists; {overwrite_hint}", dst)
    folder = os.path.dirname(os.path.abspath(dst))
    if not os.path.isdir(folder):
        raise HypernetFileError(f"the folder {folder} does not exist", dst)
    hn = loaded if loaded is not None else load(src)
    src_sha256 = source_sha256 or sha256(src)
    optim_state = load_optimizer_state(src, pt_sha256=src_sha256) if os.path.exists(optim_path(src)) else None
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(dst)}.", suffix=f".tmp{os.path.splitext(dst)[1]}")
    except OSError as exc:
        raise HypernetFileError(f"cannot write in its folder: {exc.strerror or exc}", dst) from exc
    os.close(fd)
    try:
        try:
            hn.save(tmp, source_sha256=src_sha256 if src_format == "pt" and dst_format == "safetensors" else None)
        except HypernetFileError as exc:  # about our temporary file: name the destination instead
            raise HypernetFileError(exc.reason, dst) from exc
        _check_same(hn, load(tmp), src, dst)
        os.replace(tmp, dst)
    finally:
        with contextlib.suppress(OSError):
            os.remove(tmp)
    note = _carry_optim(optim_state, src, dst, dst_format, overwrite, overwrite_hint)
    return Conversion(dst, dst_format, sha256(dst), hn.widths, note)


def _carry_optim(
    state: OptimizerState | None, src: str, dst: str, dst_format: str, overwrite: bool, overwrite_hint: str
) -> str:
    """Write ``DST.optim`` from SRC's valid optimizer state; returns a note for the report."""
    if state is None:
        return ""
    if not state.ok:
        return f"{os.path.basename(optim_path(src))} is {state.status}, not carried over"
    if dst_format != "pt":
        return f"the optimizer state stays in {os.path.basename(optim_path(src))} (training uses .pt)"
    same_file = os.path.abspath(src) == os.path.abspath(dst)
    if os.path.exists(optim_path(dst)) and not (overwrite or same_file):
        return f"{optim_path(dst)} exists, so the optimizer state was not carried over ({overwrite_hint})"
    assert state.state_dict is not None
    save_optimizer_state(dst, state.state_dict, state.optimizer_name)
    return f"wrote {os.path.basename(optim_path(dst))} for it ({state.optimizer_name} state, re-hashed)"


def _check_same(original: Hypernetwork, copy: Hypernetwork, src: str, dst: str) -> None:
    """Same widths, metadata and every tensor equal (dtype and bits): the modules then compute the same.

    Compared as weights rather than outputs: a matmul's last bits may depend on memory alignment,
    so two loads of one file need not produce bit-equal outputs, while their weights always are.
    """
    if copy.widths != original.widths:
        raise HypernetFormatError(f"verification failed: widths {copy.widths} != {original.widths} of {src}", dst)
    differing = [k for k, v in original.metadata().items() if copy.metadata()[k] != v]
    if differing:
        raise HypernetFormatError(f"verification failed: metadata {differing} differs from {src}", dst)
    for width in original.widths:
        for branch, a, b in zip("kv", original.layers[width], copy.layers[width]):
            sa, sb = a.state_dict(), b.state_dict()
            if sa.keys() != sb.keys() or not all(sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]) for k in sa):
                raise HypernetFormatError(f"verification failed: width {width} ({branch}) weights differ from {src}", dst)
