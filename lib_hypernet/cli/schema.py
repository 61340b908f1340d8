"""The one form of every command's ``--json`` output: a small envelope, one result per file, and each file's
description (:meth:`lib_hypernet.library.description.FileDescription.to_json`, the HTTP API's form).

Imports nothing but the standard library: the parser prints :data:`HELP` and a failed command's envelope
without loading torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

SCHEMA_VERSION = 1

HELP = """\
--json (every command) prints one JSON document on stdout; error lines still go to stderr:
  {"command": "convert", "schema": 1, "ok": true, "summary": "converted 2 of 2 files; 0 failed" or null,
   "results": [{"file": PATH, "status": "ok|written|fine|exists|failed", "ok": true, "error": null,
                "written": PATH or null, "warnings": [...], "description": {...}}],
   "errors": [{"file": PATH or null, "error": "..."}]}
"description" is the file's description (as `info` and the HTTP API give it) of "written" when a file was
written, else of "file"; "ok" is false when "errors" is not empty. Usage errors (exit status 2) print no JSON."""


def result(
    file: str | None,
    status: str,
    *,
    error: str | None = None,
    written: str | None = None,
    warnings: Iterable[str] = (),
    description: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One file's result (every command gives every key); ``error`` set makes it a failed one.

    ``status``: ``ok`` (read and reported), ``written``, ``fine`` (nothing to do), ``exists`` (not written: the
    target exists and --force was not given) or ``failed`` (:mod:`lib_hypernet.library.actions` names the last four).
    """
    return {
        "file": file,
        "status": status,
        "ok": error is None,
        "error": error,
        "written": written,
        "warnings": list(warnings),
        "description": description,
    }


def document(
    command: str, results: Sequence[dict[str, Any]], *, errors: Iterable[dict[str, Any]] = (), summary: str | None = None
) -> dict[str, Any]:
    """The whole output of one command: its results, every error (the results' and ``errors``) and the summary."""
    found = [{"file": r["file"], "error": r["error"]} for r in results if r["error"] is not None]
    found += list(errors)
    return {
        "command": command,
        "schema": SCHEMA_VERSION,
        "ok": not found,
        "summary": summary,
        "results": list(results),
        "errors": found,
    }
