"""File hashes as A1111 computes them: sha256, the short hash, the legacy model hash.

* :func:`sha256` — the whole file in 1 MiB blocks (A1111's ``calculate_sha256``).
* :func:`shorthash` — its first 10 hex characters (what A1111 shows for hypernetworks).
* :func:`legacy_model_hash` — A1111's old 8-hex "model hash": sha256 of the 64 KiB at
  offset 1 MiB.  Every file under 1 MiB gets ``e3b0c442`` (the hash of nothing).

The persisted, path-keyed cache of these hashes is :class:`lib_hypernet.library.caches.HashCache`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable

from ..errors import HypernetFileError

log = logging.getLogger(__name__)

BLOCK_SIZE = 1024 * 1024
SHORTHASH_LENGTH = 10
LEGACY_OFFSET = 0x100000
LEGACY_LENGTH = 0x10000
LEGACY_HASH_OF_SMALL_FILES = "e3b0c442"

ProgressCallback = Callable[[int], None]
"""Called with the number of bytes just hashed."""


def sha256(path: str | os.PathLike[str], progress: ProgressCallback | None = None) -> str:
    """Hex sha256 of the whole file."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while block := f.read(BLOCK_SIZE):
                digest.update(block)
                if progress is not None:
                    progress(len(block))
    except OSError as exc:
        raise HypernetFileError(f"cannot read for hashing: {exc.strerror or exc}", path) from exc
    return digest.hexdigest()


def shorthash(path: str | os.PathLike[str]) -> str:
    """The first 10 hex characters of :func:`sha256` (A1111's hypernetwork short hash)."""
    return sha256(path)[:SHORTHASH_LENGTH]


def legacy_model_hash(path: str | os.PathLike[str]) -> str:
    """A1111's legacy 8-hex model hash (sha256 of 64 KiB at offset 1 MiB)."""
    try:
        with open(path, "rb") as f:
            f.seek(LEGACY_OFFSET)
            data = f.read(LEGACY_LENGTH)
    except OSError as exc:
        raise HypernetFileError(f"cannot read for hashing: {exc.strerror or exc}", path) from exc
    return hashlib.sha256(data).hexdigest()[:8]


def legacy_hash_is_meaningful(path: str | os.PathLike[str]) -> bool:
    """False for files of 1 MiB or less, whose legacy hash is the same for every file."""
    return os.path.getsize(path) > LEGACY_OFFSET




def same_checkpoint(recorded: str | None, actual: str | None) -> bool | None:
    """Whether a hash recorded in a hypernetwork (``sd_checkpoint``: A1111's 10-hex short hash, or the
    8-hex legacy hash of 2022 files) names the checkpoint whose hash is ``actual`` (any prefix length).

    ``None`` when either is unknown.  Both are compared trimmed and lower-case, as a prefix either way.
    """
    a = (recorded or "").strip().lower()
    b = (actual or "").strip().lower()
    if not a or not b:
        return None
    return a.startswith(b) or b.startswith(a)


__all__ = ["legacy_hash_is_meaningful", "legacy_model_hash", "same_checkpoint", "sha256", "shorthash"]
