"""Optimizer state side files (``<file>.pt.optim``), A1111's layout with its hash bug fixed.

The file holds ``{"optimizer_name": str, "hash": <10-hex shorthash of the .pt>,
"optimizer_state_dict": dict}``.  :func:`save_optimizer_state` stores the hash of
the ``.pt`` actually on disk (A1111 stores the hash of the file it loaded from).
:func:`load_optimizer_state` returns the state only when that hash matches.
Inference never needs this file; nothing in the loading path reads it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from ..errors import HypernetError, HypernetFileError
from . import read_torch_file, write_torch_file
from .hashing import (
    LEGACY_HASH_OF_SMALL_FILES,
    SHORTHASH_LENGTH,
    legacy_hash_is_meaningful,
    legacy_model_hash,
    sha256,
)

log = logging.getLogger(__name__)

DEFAULT_OPTIMIZER = "AdamW"


def optim_path(pt_path: str | os.PathLike[str]) -> str:
    return os.fspath(pt_path) + ".optim"


@dataclass(frozen=True)
class OptimizerState:
    """The verdict on a ``.optim`` file.

    ``status`` is ``"ok"``, ``"missing"``, ``"stale"`` or ``"unreadable"``;
    ``state_dict`` is set only when ``status == "ok"``; ``reason`` says why in words.
    """

    status: str
    reason: str
    state_dict: dict[str, Any] | None = None
    optimizer_name: str = DEFAULT_OPTIMIZER
    stored_hash: str | None = None
    expected_hash: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def load_optimizer_state(pt_path: str | os.PathLike[str], pt_sha256: str | None = None) -> OptimizerState:
    """Read ``<pt_path>.optim`` and accept it only if its hash matches ``pt_path``.

    A legacy 8-hex hash (2022 A1111) is accepted only for files over 1 MiB,
    since every smaller file has the same legacy hash.  Never raises for a bad
    ``.optim``; the verdict says what is wrong.  ``pt_sha256`` skips re-hashing.
    """
    pt_path = os.fspath(pt_path)
    path = optim_path(pt_path)
    try:
        return _load_optimizer_state(pt_path, path, pt_sha256)
    except HypernetError as exc:
        return OptimizerState("unreadable", f"cannot read {os.path.basename(path)}: {exc.reason}")
    except (OSError, ValueError, TypeError, RecursionError, MemoryError) as exc:
        log.warning("optimizer state %s could not be read", path, exc_info=True)
        return OptimizerState("unreadable", f"cannot read {os.path.basename(path)}: {type(exc).__name__}: {exc}"[:300])


def _load_optimizer_state(pt_path: str, path: str, pt_sha256: str | None) -> OptimizerState:
    if not os.path.exists(path):
        return OptimizerState("missing", f"no optimizer state file {os.path.basename(path)}")
    try:
        data = read_torch_file(path)
    except HypernetError as exc:
        return OptimizerState("unreadable", f"cannot read {os.path.basename(path)}: {exc.reason}")
    if not isinstance(data, dict) or not isinstance(data.get("optimizer_state_dict"), dict):
        return OptimizerState("unreadable", f"{os.path.basename(path)} holds no 'optimizer_state_dict'")
    stored = data.get("hash")
    name = data.get("optimizer_name")
    if not isinstance(name, str) or not name:
        name = DEFAULT_OPTIMIZER
    try:
        full = pt_sha256 or sha256(pt_path)
    except HypernetFileError as exc:
        return OptimizerState("unreadable", f"cannot hash the hypernetwork file: {exc.reason}", stored_hash=stored)
    expected = full[:SHORTHASH_LENGTH]
    if not isinstance(stored, str) or not stored:
        return OptimizerState("stale", "the optimizer state stores no hash, so it cannot be matched to this file",
                              stored_hash=None, expected_hash=expected)
    stored = stored.lower()
    if len(stored) == 8:
        if not legacy_hash_is_meaningful(pt_path):
            return OptimizerState(
                "stale",
                f"legacy 8-hex hash {stored} cannot be trusted for files of 1 MiB or less "
                f"(they all hash to {LEGACY_HASH_OF_SMALL_FILES})",
                stored_hash=stored, expected_hash=expected,
            )
        legacy = legacy_model_hash(pt_path)
        if stored == legacy:
            return OptimizerState("ok", "legacy hash matches", data["optimizer_state_dict"], name, stored, legacy)
        return OptimizerState("stale", f"legacy hash {stored} does not match the file ({legacy})",
                              stored_hash=stored, expected_hash=legacy)
    if stored == expected:
        return OptimizerState("ok", "hash matches", data["optimizer_state_dict"], name, stored, expected)
    return OptimizerState(
        "stale",
        f"the optimizer state belongs to another version of the file (stored hash {stored}, file is {expected})",
        stored_hash=stored, expected_hash=expected,
    )


def save_optimizer_state(
    pt_path: str | os.PathLike[str], optimizer_state_dict: dict[str, Any], optimizer_name: str = DEFAULT_OPTIMIZER
) -> str:
    """Write ``<pt_path>.optim`` for the ``.pt`` now on disk (hashing that file); returns the stored hash."""
    stored = sha256(pt_path)[:SHORTHASH_LENGTH]
    write_torch_file(
        optim_path(pt_path),
        {"optimizer_name": optimizer_name, "hash": stored, "optimizer_state_dict": optimizer_state_dict},
    )
    return stored
