"""The ``python -m lib_hypernet`` command (``hypernet`` when pip-installed): inspect, hash, convert, verify, create.

Subcommands: ``info``, ``hash``, ``convert``, ``verify``, ``create``, ``examples``.
Every :class:`~lib_hypernet.HypernetError` is reported as one ``error: ...`` line on
stderr with exit status 1; usage errors exit with 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

from .. import __version__
from ..errors import HypernetError, HypernetExistsError, HypernetFileError, InvalidNameError
from ..formats.hashing import LEGACY_HASH_OF_SMALL_FILES, SHORTHASH_LENGTH, legacy_model_hash, sha256
from ..library.actions import convert_file, create_file, verify_file
from ..library.description import by_width, checkpoint_label, describe_file
from ..library.text import entry_names, human_size, structure_text, yes_no
from ..model.activations import creatable_activations
from ..model.create import WEIGHT_INITIALIZATIONS
from ..model.hypernetwork import Hypernetwork
from .progress import ProgressBar, should_show

SD1_SIZES = (768, 320, 640, 1280)


class UsageError(Exception):
    """A bad combination of arguments found after parsing (exit status 2)."""


# --------------------------------------------------------------------- small helpers
def _error(message: str) -> None:
    print("error: " + " ".join(str(message).splitlines()), file=sys.stderr)


def _warn(message: str) -> None:
    sys.stdout.flush()
    print("warning: " + " ".join(str(message).splitlines()), file=sys.stderr)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _arrow() -> str:
    """``→`` where stdout can print it, else ``->``."""
    try:
        "→".encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return "->"
    return "→"


# How the hints spell this command: runnable as written from the extension folder, with no install step.
COMMAND = "python -m lib_hypernet"


def _fix_command(path: str) -> str:
    quoted = shlex.quote(path)
    return f"{COMMAND} convert {quoted} {quoted} --force"


def hash_files(paths: Sequence[str], force_progress: bool | None) -> dict[str, str | HypernetError]:
    """sha256 of each path (or the error), with a progress bar when the work is large."""
    total = 0
    for path in paths:
        with contextlib.suppress(OSError):
            total += os.path.getsize(path) if os.path.isfile(path) else 0
    show = should_show(total, len(paths), force_progress, _isatty(sys.stderr))
    results: dict[str, str | HypernetError] = {}
    with ProgressBar(total, enabled=show, stream=sys.stderr) as bar:
        for path in paths:
            if path in results:
                continue
            if not os.path.isfile(path):
                results[path] = HypernetFileError(
                    "file not found" if not os.path.exists(path) else "not a regular file", path
                )
                continue
            try:
                results[path] = sha256(path, progress=bar.update)
            except HypernetError as exc:
                results[path] = exc
    return results


# --------------------------------------------------------------------- info
def inspect_file(path: str, digest: str | HypernetError | None = None) -> dict[str, Any]:
    """Everything ``info`` reports about one file: its :class:`~lib_hypernet.library.description.FileDescription`
    as JSON (``ok`` false and ``error`` set on failure)."""
    return describe_file(path, digest=digest).to_json()


def render_info(entry: dict[str, Any]) -> str:
    """The aligned ``key: value`` text for one :func:`inspect_file` entry."""
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
                        f"NO: A1111 1.10.1 refuses its zip entries {entry_names(entry['a1111_rejected_entries'])} "
                        "(written by newer torch)",
                        f"fix: {_fix_command(entry['path'])}  (rewrites it in the legacy .pt format A1111 loads)",
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


def cmd_info(args: argparse.Namespace) -> int:
    digests = hash_files(args.files, args.progress)
    entries = [inspect_file(path, digests.get(path)) for path in args.files]
    if args.json:
        print(json.dumps(entries, indent=2))
    else:
        print("\n\n".join(render_info(entry) for entry in entries))
    failed = [entry for entry in entries if not entry["ok"]]
    for entry in failed:
        _error(entry["error"])
    return 1 if failed else 0


# --------------------------------------------------------------------- hash
def cmd_hash(args: argparse.Namespace) -> int:
    digests = hash_files(args.files, args.progress)
    status = 0
    for path in args.files:
        digest = digests[path]
        if isinstance(digest, HypernetError):
            _error(str(digest))
            status = 1
            continue
        columns = [digest, digest[:SHORTHASH_LENGTH]]
        if args.legacy:
            columns.append(legacy_model_hash(path))
        print("  ".join([*columns, path]))
    return status


# --------------------------------------------------------------------- convert
def convert(src: str, dst: str, force: bool = False, *, loaded: Hypernetwork | None = None) -> str:
    """Convert ``src`` to ``dst`` (format from the suffix), verified before it is kept; a one-line report."""
    done = convert_file(src, dst, overwrite=force, loaded=loaded)
    kind = {"pt": "legacy .pt, loadable by every A1111", "safetensors": "safetensors"}[done.format]
    widths = ", ".join(str(w) for w in done.widths)
    report = (
        f"wrote {dst} ({kind}, {human_size(os.path.getsize(dst))}, sha256 {done.sha256[:SHORTHASH_LENGTH]}); "
        f"weights bit-identical to {src} for widths {widths}"
    )
    note = done.optim_note + (" (pass --force to overwrite it)" if done.optim_kept else "")
    return report + (f"; {note}" if note else "")


def cmd_convert(args: argparse.Namespace) -> int:
    print(convert(args.src, args.dst, force=args.force))
    return 0


# --------------------------------------------------------------------- verify
def cmd_verify(args: argparse.Namespace) -> int:
    digests = hash_files(args.files, args.progress)
    failed = warned = 0
    for path in args.files:
        found = verify_file(path, digests.get(path))
        reason, notes = found.failure, list(found.notes)
        if found.a1111_rejected:
            notes.append(f"A1111 1.10.1 refuses its zip entries {entry_names(found.a1111_rejected)}; "
                         f"fix: {_fix_command(path)}")
        if reason is None:
            print(f"OK  {path}")
        else:
            failed += 1
            print(f"FAIL {path}: {' '.join(reason.splitlines())}")
        for note in notes:
            _warn(f"{path}: {note}")
        warned += bool(notes)
    if len(args.files) > 1:
        sys.stdout.flush()
        print(
            f"{len(args.files)} files: {len(args.files) - failed} OK, {failed} failed, {warned} with warnings",
            file=sys.stderr,
        )
    return 1 if failed else 0


# --------------------------------------------------------------------- create
def cmd_create(args: argparse.Namespace) -> int:
    if args.dropout_structure is not None and not args.dropout:
        _warn("--dropout-structure is ignored without --dropout (as in A1111)")
    if args.dropout and args.dropout_structure is None:
        _warn("--dropout without --dropout-structure adds no dropout layers (as in A1111)")
    path, hn = create_file(
        args.name,
        out=args.out,
        file_format=args.format,
        overwrite=args.force,
        sizes=args.sizes,
        layer_structure=args.layer_structure,
        activation_func=args.activation,
        weight_initialization=args.init,
        is_layer_norm=args.layer_norm,
        use_dropout=args.dropout,
        dropout_structure=args.dropout_structure,
        activate_output=args.activate_output,
        optional_info=args.info,
        seed=args.seed,
    )
    size = os.path.getsize(path)
    print(
        f"created {path} ({args.format}, {human_size(size)}, {hn.param_count:,} parameters, "
        f"widths {', '.join(str(w) for w in hn.widths)}, sha256 {sha256(path)[:SHORTHASH_LENGTH]})"
    )
    return 0


# --------------------------------------------------------------------- examples
def cmd_examples(args: argparse.Namespace) -> int:
    """The standalone panel's example folder (:mod:`lib_hypernet.library.examples`, a few MB); existing files are kept."""
    from ..library.examples import EXAMPLES, make_examples

    written = set(make_examples(args.out))
    for example in EXAMPLES:
        path = os.path.join(args.out, *example.relpath.split("/"))
        if path in written:
            print(f"wrote {path} ({human_size(os.path.getsize(path))})", flush=True)
        else:
            print(f"skipped {path} (already exists)", flush=True)
    return 0


# --------------------------------------------------------------------- argument parsing
def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected widths separated by commas, e.g. 768,320,640,1280; got {text!r}"
        ) from None
    if not sizes or any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"expected positive widths, e.g. 768,320,640,1280; got {text!r}")
    return sizes


def _numbers(text: str) -> list[float]:
    try:
        return [float(part.strip()) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, e.g. '1, 2, 1'; got {text!r}") from None


def _layer_structure(text: str) -> list[float]:
    values = _numbers(text)
    if len(values) < 2 or values[0] != 1 or values[-1] != 1:
        raise argparse.ArgumentTypeError(f"must start and end with 1 (e.g. '1, 2, 1'), got {text!r}")
    if any(not v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"every entry must be positive, got {text!r}")
    return values


def _add_progress_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--progress", dest="progress", action="store_true", default=None,
        help="always draw the hashing progress bar on stderr",
    )
    group.add_argument("--no-progress", dest="progress", action="store_false", help="never draw the progress bar")


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of the ``hypernet`` command."""
    parser = argparse.ArgumentParser(
        prog=prog or "hypernet",
        description="Inspect, hash, convert, verify and create A1111 hypernetworks (.pt and .safetensors).",
        epilog="A progress bar is drawn on a terminal when hashing more than 64 MiB or more than 8 files.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("info", help="describe hypernetwork files", description="Describe hypernetwork files.")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print one JSON document (a list of objects)")
    _add_progress_flags(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "hash", help="print sha256, A1111 short hash (and legacy hash)",
        description="Print '<sha256>  <shorthash>  <path>' per file\n(like sha256sum, plus A1111's 10-hex short hash).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--legacy", action="store_true", help="add A1111's legacy 8-hex model hash column")
    _add_progress_flags(p)
    p.set_defaults(func=cmd_hash)

    p = sub.add_parser(
        "convert", help="convert .pt <-> .safetensors (or re-save a .pt A1111 can load)",
        description="Convert between .pt and .safetensors (format from DST's suffix), then check the result "
        "has bit-identical weights and metadata. .pt -> .pt rewrites the legacy format every A1111 loads.",
    )
    p.add_argument("src", metavar="SRC")
    p.add_argument("dst", metavar="DST")
    p.add_argument("--force", action="store_true", help="overwrite DST if it exists")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser(
        "verify", help="check files load and run", description="Load each file, run it once per width on a seeded "
        "context and check everything is finite; also check the .optim and A1111 loadability (warnings).",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    _add_progress_flags(p)
    p.set_defaults(func=cmd_verify)

    activations = creatable_activations()
    p = sub.add_parser(
        "create", help="create a new hypernetwork (A1111's options)",
        description="Create a new hypernetwork with A1111's creation options and save it as OUT/NAME.pt.",
    )
    p.add_argument("name", metavar="NAME", help="name (only letters, digits and '._- ' are kept, as in A1111)")
    p.add_argument("--sizes", type=_sizes, default=list(SD1_SIZES), metavar="W,W,...",
                   help="module widths (default: 768,320,640,1280)")
    p.add_argument("--layer-structure", type=_layer_structure, default=[1.0, 2.0, 1.0], metavar="'1, 2, 1'",
                   help="layer width multipliers (default: '1, 2, 1')")
    p.add_argument("--activation", choices=activations, default="linear", metavar="NAME",
                   help=f"activation function (default: linear; swish is Hardswish, as in A1111); one of: "
                   f"{', '.join(activations)}")
    p.add_argument("--init", choices=WEIGHT_INITIALIZATIONS, default="Normal",
                   help="weight initialization (default: Normal)")
    p.add_argument("--layer-norm", action="store_true", help="add LayerNorm after every Linear")
    p.add_argument("--dropout", action="store_true", help="use dropout (use_dropout)")
    p.add_argument("--dropout-structure", type=_numbers, default=None, metavar="'0, 0.1, 0'",
                   help="dropout probability per layer-structure entry (with --dropout)")
    p.add_argument("--activate-output", action="store_true", help="apply the activation after the last layer too")
    p.add_argument("--info", default=None, metavar="TEXT", help="optional_info text stored in the file")
    p.add_argument("--seed", type=int, default=None, help="seed for reproducible initial weights")
    p.add_argument("--out", default=".", metavar="DIR", help="output folder (default: .)")
    p.add_argument("--format", choices=("pt", "safetensors"), default="pt", help="file format (default: pt)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=cmd_create)

    p = sub.add_parser(
        "examples", help="generate example hypernetworks (skips existing files)",
        description="Write a few example hypernetworks (random weights) into DIR; files that exist are skipped.",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.set_defaults(func=cmd_examples)
    return parser


def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 file errors, 2 usage errors, 130 interrupted)."""
    with _printable_output():
        try:
            return _main(argv, prog)
        except KeyboardInterrupt:
            _interrupted()
            return 130


def _main(argv: list[str] | None, prog: str | None) -> int:
    parser = build_parser(prog)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args))
    except UsageError as exc:
        _error(str(exc))
        return 2
    except InvalidNameError as exc:  # a usage error; the name's folder goes in --out
        _error(f"{exc}{' and the folder with --out DIR' if exc.rule == 'separator' else ''}")
        return 2
    except HypernetExistsError as exc:
        _error(f"{exc}; pass --force to overwrite it")
        return 1
    except HypernetError as exc:
        _error(str(exc))
        return 1
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:
        _error(f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}")
        return 1
    except MemoryError:
        _error("out of memory")
        return 1


def _interrupted() -> None:
    """One line on stderr (after a newline, in case a progress bar was being drawn)."""
    with contextlib.suppress(OSError, ValueError):
        print("\ninterrupted", file=sys.stderr)


@contextlib.contextmanager
def _printable_output() -> Iterator[None]:
    """Let stdout/stderr print any file name: characters their encoding lacks (a cp1252 or ASCII
    console, a redirected Windows pipe) come out as ``\\xfc``-style escapes instead of raising."""
    changed: list[Any] = []
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and getattr(stream, "errors", None) == "strict":
            with contextlib.suppress(ValueError, OSError, TypeError):
                reconfigure(errors="backslashreplace")
                changed.append(stream)
    try:
        yield
    finally:
        for stream in changed:
            with contextlib.suppress(ValueError, OSError, TypeError):
                stream.reconfigure(errors="strict")
