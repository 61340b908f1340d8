"""What each command prints as text: the ``info`` block, the one-line reports of a conversion or a creation,
the batch summaries, and the ``fix:`` hints (spelled to run from any folder)."""

from __future__ import annotations

import importlib.machinery
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..formats.hashing import LEGACY_HASH_OF_SMALL_FILES, SHORTHASH_LENGTH
from ..library.actions import FINE, WRITTEN, Conversion, FileOutcome
from ..library.actions import batch_summary as actions_batch_summary

if TYPE_CHECKING:
    from ..baking import BakeReport
from ..library.description import by_width, checkpoint_label
from ..library.text import entry_names, human_size, structure_text, yes_no
from .messages import FORCE_HINT

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
"""The folder holding ``lib_hypernet`` (the extension's folder in a checkout)."""


# --------------------------------------------------------------------- hints
def command_prefix() -> str:
    """How a hint spells this command so that it runs as written from any folder.

    ``<python> -m lib_hypernet`` (the interpreter's absolute path) when that finds this package from
    anywhere (installed, editable too); else with ``PYTHONPATH=<the extension folder>`` in front.
    """
    python = os.path.abspath(sys.executable)
    if _importable_anywhere():
        return f"{_quote(python)} -m lib_hypernet"
    if os.name == "nt":
        return f'set "PYTHONPATH={PACKAGE_ROOT}" && {_quote(python)} -m lib_hypernet'
    return f"PYTHONPATH={_quote(PACKAGE_ROOT)} {_quote(python)} -m lib_hypernet"


def fix_command(path: str) -> str:
    """The command that repairs ``path`` (a ``.pt`` A1111 cannot load), runnable from any folder."""
    return f"{command_prefix()} repair {_quote(os.path.abspath(path))} --force"


def _quote(text: str) -> str:
    return subprocess.list2cmdline([text]) if os.name == "nt" else shlex.quote(text)


def _importable_anywhere() -> bool:
    """Whether ``import lib_hypernet`` works without the current folder, the script's folder and ``PYTHONPATH``:
    found on the rest of ``sys.path`` (site-packages, a ``.pth`` file) or by an import hook (an editable install)."""
    transient = {os.path.realpath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p}
    transient.add(os.path.realpath(os.getcwd()))
    if sys.path and not getattr(sys.flags, "safe_path", False):
        transient.add(os.path.realpath(sys.path[0] or os.getcwd()))
    stable = [p for p in sys.path if p and os.path.realpath(p) not in transient]
    if importlib.machinery.PathFinder.find_spec("lib_hypernet", stable) is not None:
        return True
    standard = (importlib.machinery.PathFinder, importlib.machinery.BuiltinImporter, importlib.machinery.FrozenImporter)
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        if finder in standard or find_spec is None or type(finder).__module__.startswith("_pytest"):
            continue
        try:
            if find_spec("lib_hypernet", None) is not None:
                return True
        except Exception:  # a third-party finder's trouble means "not found by it"
            continue
    return False


# --------------------------------------------------------------------- info
def render_info(entry: dict[str, Any]) -> str:
    """The aligned ``key: value`` text for one file description (:meth:`FileDescription.to_json`)."""
    rows: list[tuple[str, str | list[str]]] = [("file", entry["path"])]
    if entry.get("internal_name") is not None:
        stem = os.path.splitext(os.path.basename(entry["path"]))[0]
        internal = entry["internal_name"]
        note = "" if internal == stem else f" (from the file's 'name' key; the file stem is {stem!r})"
        rows.append(("name", f"{internal}{note}"))
    if entry.get("format") is not None or entry.get("sha256"):
        fmt = entry.get("format") or "unknown"
        if fmt == "pt":
            fmt = f"pt ({entry['container']})" if entry.get("container") else "pt (unreadable)"
        rows.append(("format", fmt))
    if entry.get("size") is not None:
        rows.append(("size", f"{human_size(entry['size'])} ({entry['size']:,} bytes)"))
    if entry.get("safe_detail"):
        verdict = {True: "yes", False: "NO", None: "unknown"}[entry["safe"]]
        rows.append(("safe", f"{verdict}: {entry['safe_detail']}"))
    if entry.get("format") == "pt" and entry.get("a1111_loadable") is not None:
        if entry["a1111_loadable"]:
            rows.append(("A1111 loads", "yes (A1111 1.10.1's restricted loader accepts it)"))
        else:
            rows.append(
                (
                    "A1111 loads",
                    [
                        f"NO: {a1111_refusal(entry['a1111_rejected_entries'])}",
                        f"fix: {fix_command(entry['path'])}  (rewrites it in the legacy .pt format A1111 loads)",
                    ],
                )
            )
    elif entry.get("format") == "safetensors":
        rows.append(("A1111 loads", "n/a (built-in A1111 reads only .pt; this extension reads .safetensors)"))
    if entry.get("ok"):
        arrow = f" {_arrow()} "
        rows += [
            ("widths", ", ".join(str(w) for w in entry["widths"])),
            ("SD version", entry["sd_version"] or "unknown (no Stable Diffusion attention width)"),
            ("layer structure", structure_text(entry["layer_structure"])),
            ("modules", [f"{width}: {arrow.join(names)}" for width, names in by_width(entry["modules"])]),
            ("parameters", f"{entry['param_count']:,} (k and v modules of all widths)"),
            ("activation", _activation_text(entry["activation_func"])),
            ("layer norm", yes_no(entry["is_layer_norm"])),
            ("activate output", yes_no(entry["activate_output"])),
            ("dropout", _dropout_text(entry)),
            ("weight init", str(entry["weight_initialization"])),
            ("step", str(entry["step"])),
            ("base model", checkpoint_label(entry["sd_checkpoint_name"], entry["sd_checkpoint"]) or "not recorded"),
            ("info", entry["optional_info"] if entry["optional_info"] else "-"),
            ("ignored keys", ", ".join(entry["ignored_keys"]) if entry["ignored_keys"] else "none"),
        ]
        if entry.get("source_sha256"):
            rows.append(("converted from", f"sha256 {entry['source_sha256']}"))
    if entry.get("sha256") and entry.get("legacy_hash"):
        legacy = entry["legacy_hash"]
        if not entry["legacy_hash_meaningful"]:
            legacy += f" (meaningless under 1 MiB: every such file hashes to {LEGACY_HASH_OF_SMALL_FILES})"
        rows += [("sha256", entry["sha256"]), ("shorthash", entry["shorthash"]), ("legacy hash", legacy)]
    if entry.get("optim"):
        optim = entry["optim"]
        detail = optim["reason"]
        if optim["status"] == "ok" and optim["optimizer_name"]:
            detail = f"{optim['optimizer_name']}, {detail}"
        rows.append((".optim", f"{optim['status']}: {detail}"))
    for warning in entry.get("warnings") or ():
        rows.append(("warning", warning))
    if entry.get("error"):
        rows.append(("error", entry["error"]))

    width = max(len(key) for key, _ in rows) + 2
    lines = []
    for key, value in rows:
        values = value if isinstance(value, list) else [value]
        for i, text in enumerate(values):
            label = f"{key}:" if i == 0 else ""
            lines.append(f"{label:<{width}}{text}")
    return "\n".join(lines)


def a1111_refusal(rejected: Sequence[str]) -> str:
    """Why A1111 refuses a ``.pt`` (its zip entries a newer torch wrote)."""
    return f"A1111 1.10.1 refuses its zip entries {entry_names(rejected)} (written by newer torch)"


def _arrow() -> str:
    """``→`` where stdout can print it, else ``->``."""
    try:
        "→".encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return "->"
    return "→"


def _activation_text(name: str | None) -> str:
    if name is None:
        return "None (no activation module)"
    if name == "linear":
        return "linear (no activation module)"
    if name == "swish":
        return "swish (torch.nn.Hardswish, as in A1111)"
    return name


def _dropout_text(entry: dict[str, Any]) -> str:
    ds = entry["dropout_structure"]
    if not any(ds):
        return f"none (structure {structure_text(ds)})"
    return (
        f"{structure_text(ds)} (use_dropout={entry['use_dropout']}, last_layer_dropout={entry['last_layer_dropout']}; "
        "inactive at inference)"
    )


# --------------------------------------------------------------------- writes
def conversion_report(src: str, done: Conversion, size: int) -> str:
    """``wrote DST (safetensors, 1.2 MiB, sha256 …); weights bit-identical to SRC …`` and the ``.optim`` note."""
    kind = {"pt": "legacy .pt, loadable by every A1111", "safetensors": "safetensors"}[done.format]
    widths = ", ".join(str(w) for w in done.widths)
    report = (
        f"wrote {done.path} ({kind}, {human_size(size)}, sha256 {done.sha256[:SHORTHASH_LENGTH]}); "
        f"weights bit-identical to {src} for widths {widths}"
    )
    note = done.optim_note + (f" ({FORCE_HINT})" if done.optim_kept else "")
    return report + (f"; {note}" if note else "")


def outcome_line(outcome: FileOutcome) -> str:
    """One file of a batch on stdout (a failure is an error line instead: see :func:`outcome_error`)."""
    if outcome.status == WRITTEN and outcome.conversion is not None:
        return conversion_report(outcome.path, outcome.conversion, os.path.getsize(outcome.conversion.path))
    if outcome.status == FINE:
        return f"fine {outcome.path} (A1111 loads it as it is)"
    return f"not written: {outcome.message}"


def batch_summary(verb: str, outcomes: Sequence[FileOutcome], *, force_note: str, fine: bool = False) -> str:
    """:func:`~lib_hypernet.library.actions.batch_summary`, what --force would do said for the files not written."""
    return actions_batch_summary(verb, outcomes, not_written=f"not written ({force_note})", fine=fine)


def created_line(path: str, file_format: str, size: int, param_count: int, widths: Sequence[int], digest: str) -> str:
    return (
        f"created {path} ({file_format}, {human_size(size)}, {param_count:,} parameters, "
        f"widths {', '.join(str(w) for w in widths)}, sha256 {digest[:SHORTHASH_LENGTH]})"
    )


def bake_report(report: BakeReport, checkpoint: str) -> str:
    """What ``bake`` wrote and how exact it is: a line, then a line per layer (largest K and V difference)."""
    kind = "LoRA (full)" if report.mode == "lora" else "merged checkpoint"
    lines = [f"wrote {report.output} ({kind}, {len(report.layers)} attention layers of {checkpoint}); "
             f"largest difference from the hypernetworks applied the A1111 way: {report.max_error:.1e} (relative)"]
    lines += [f"  {c.name} ({c.kind}, {c.width}): K {c.k_error:.1e}, V {c.v_error:.1e}" for c in report.layers]
    return "\n".join(lines)
