"""Stand-in of ``modules/hashes.py`` (spec §3.1): title-keyed, mtime-validated sha256 cache, in memory."""
from __future__ import annotations

import hashlib
import os

from modules import cache as _cache
from modules import shared

cache = _cache.cache
dump_cache = _cache.dump_cache

calls: list[tuple[str, str]] = []
"""(filename, title) of every sha256 computation actually performed, for tests."""


def calculate_sha256(filename: str) -> str:
    h = hashlib.sha256()
    with open(filename, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_from_cache(filename: str, title: str, use_addnet_hash: bool = False) -> str | None:
    """Cached value or None (missing file/title, None value, or file mtime newer than cached); never computes."""
    hashes = cache("hashes-addnet" if use_addnet_hash else "hashes")
    try:
        mtime = os.path.getmtime(filename)
    except FileNotFoundError:
        return None
    entry = hashes.get(title)
    if entry is None or entry.get("sha256") is None or mtime > entry.get("mtime", 0):
        return None
    return entry["sha256"]


def sha256(filename: str, title: str, use_addnet_hash: bool = False) -> str | None:
    """Cached value, else None under --no-hashing, else compute and store under ``title``."""
    value = sha256_from_cache(filename, title, use_addnet_hash)
    if value is not None:
        return value
    if shared.cmd_opts.no_hashing:
        return None
    if use_addnet_hash:
        with open(filename, "rb") as f:
            value = addnet_hash_safetensors(f)
    else:
        value = calculate_sha256(filename)
    print(f"Calculating sha256 for {filename}: {value}")
    calls.append((filename, title))
    cache("hashes-addnet" if use_addnet_hash else "hashes")[title] = {"mtime": os.path.getmtime(filename), "sha256": value}
    return value


def addnet_hash_safetensors(b) -> str:
    """sha256 of the bytes after the safetensors header (kohya 'addnet' hash)."""
    h = hashlib.sha256()
    b.seek(0)
    n = int.from_bytes(b.read(8), "little")
    b.seek(n + 8)
    for block in iter(lambda: b.read(1 << 20), b""):
        h.update(block)
    return h.hexdigest()
