"""The commands of ``hypernet``: ``info``, ``hash``, ``convert``, ``repair``, ``verify``, ``create``, ``bake``, ``examples``.

Imported by :mod:`.parser` once the arguments parsed (this module loads torch and the library).  Every
write goes through :mod:`lib_hypernet.library.actions`; the text comes from :mod:`.render`, the ``--json``
document from :mod:`.schema`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

from ..errors import HypernetError, HypernetFileError
from ..formats import format_of
from ..formats.hashing import SHORTHASH_LENGTH, legacy_model_hash, sha256
from ..library.actions import (
    EXISTS,
    FAILED,
    FINE,
    WRITTEN,
    FileOutcome,
    FilesProgress,
    attempt,
    check_target,
    convert_all,
    convert_file,
    converted_path,
    create_file,
    create_path,
    repair_all,
    repair_files,
    verify_file,
)
from ..library.description import describe_file
from ..library.text import human_size
from ..model.activations import creatable_activations
from ..model.create import MAX_CREATE_BYTES, estimate_parameters
from . import render, schema
from .messages import FORCE_HINT, UsageError, print_error, print_warning
from .progress import ProgressBar, should_show

READ = "ok"
"""The status of a file a read-only command (info, hash, verify) reported without error."""

CONFIRM_BYTES = 1024**3
"""``create`` asks before writing a bigger file (real hypernetworks are a few MiB to a few hundred)."""


# --------------------------------------------------------------------- small helpers
def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _print_json(command: str, results: Sequence[dict[str, Any]], summary: str | None = None) -> None:
    print(json.dumps(schema.document(command, results, summary=summary), indent=2))


def _described(path: str, digest: str | HypernetError | None = None) -> dict[str, Any]:
    return describe_file(path, digest=digest).to_json()


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


@contextlib.contextmanager
def files_progress(label: str, force_progress: bool | None) -> Iterator[FilesProgress]:
    """A :data:`FilesProgress` drawing a bar of files on stderr (when :func:`should_show` says so)."""
    bars: list[ProgressBar] = []

    def progress(done: int, total: int, name: str) -> None:
        if not bars:
            show = should_show(0, total, force_progress, _isatty(sys.stderr))
            bars.append(ProgressBar(total, label=label, stream=sys.stderr, enabled=show, files=True))
        bars[0].update(done - bars[0].done)

    try:
        yield progress
    finally:
        for bar in bars:
            bar.close()


# --------------------------------------------------------------------- info, hash
def cmd_info(args: argparse.Namespace) -> int:
    digests = hash_files(args.files, args.progress)
    entries = [_described(path, digests.get(path)) for path in args.files]
    if args.json:
        _print_json("info", [
            schema.result(path, READ if entry["ok"] else FAILED, error=entry["error"], warnings=entry["warnings"],
                          description=entry)
            for path, entry in zip(args.files, entries)
        ])
    else:
        print("\n\n".join(render.render_info(entry) for entry in entries))
    failed = [entry for entry in entries if not entry["ok"]]
    for entry in failed:
        print_error(entry["error"])
    return 1 if failed else 0


def cmd_hash(args: argparse.Namespace) -> int:
    digests = hash_files(args.files, args.progress)
    results = []
    for path in args.files:
        digest = digests[path]
        if isinstance(digest, HypernetError):
            print_error(str(digest))
        elif not args.json:
            columns = [digest, digest[:SHORTHASH_LENGTH]]
            if args.legacy:
                columns.append(legacy_model_hash(path))
            print("  ".join([*columns, path]))
        if args.json:
            error = str(digest) if isinstance(digest, HypernetError) else None
            results.append(schema.result(path, FAILED if error else READ, error=error,
                                         description=_described(path, digest)))
    if args.json:
        _print_json("hash", results)
    return 1 if any(isinstance(d, HypernetError) for d in digests.values()) else 0


# --------------------------------------------------------------------- convert, repair
def cmd_convert(args: argparse.Namespace) -> int:
    if os.path.isdir(args.src):
        if args.dst is not None:
            raise UsageError(f"{args.src} is a folder: each of its files is converted beside itself; give no DST")
        to = args.to or "safetensors"
        with files_progress("converting", args.progress) as progress:
            outcomes = convert_all(args.src, to=to, overwrite=args.force, progress=progress)
        summary = render.batch_summary("converted", outcomes, force_note=f"the .{to} file exists; {FORCE_HINT}")
        return _report(args, outcomes, summary)
    src = args.src
    dst = destination(src, args.dst, args.to)
    return _report(args, [attempt(src, dst, lambda: convert_file(src, dst, overwrite=args.force))], None)


def destination(src: str, dst: str | None, to: str | None) -> str:
    """Where ``convert SRC [DST] [--to FORMAT]`` writes: DST when it is a file; else SRC's name with the new
    suffix, inside DST when it is a folder, else beside SRC.  The new format: DST's suffix, else ``to``, else
    the other one."""
    if dst is not None and not os.path.isdir(dst):
        if to is not None and os.path.splitext(dst)[1].lower() != f".{to}":
            raise UsageError(f"DST {dst} does not end in .{to}, the format --to asks for")
        return dst
    new_format = to or ("safetensors" if format_of(src) == "pt" else "pt")
    return converted_path(src if dst is None else os.path.join(dst, os.path.basename(src)), new_format)


def cmd_repair(args: argparse.Namespace) -> int:
    outcomes: list[FileOutcome] = []
    files = [path for path in args.paths if not os.path.isdir(path)]
    with files_progress("repairing", args.progress) as progress:
        outcomes += repair_files(files, overwrite=args.force, progress=progress) if files else []
    for folder in (path for path in args.paths if os.path.isdir(path)):
        with files_progress("repairing", args.progress) as progress:
            outcomes += repair_all(folder, overwrite=args.force, progress=progress)
    batch = len(outcomes) != 1 or len(files) != len(args.paths)
    summary = render.batch_summary("repaired", outcomes, force_note="pass --force to rewrite them in place",
                                   fine=True) if batch else None
    return _report(args, outcomes, summary)


def _report(args: argparse.Namespace, outcomes: Sequence[FileOutcome], summary: str | None) -> int:
    """Print what a convert or repair did: a line per file (errors on stderr), the summary of a batch (on
    stderr, as ``verify``'s), or the JSON document.  Exit status 1 when any file was not written or failed."""
    batch = summary is not None
    results = []
    for outcome in outcomes:
        error = None
        if outcome.status == FAILED:
            error = outcome.message
        elif outcome.status == EXISTS:
            error = f"{outcome.message}; {FORCE_HINT}"
        if outcome.status == FAILED or (outcome.status == EXISTS and not batch):
            print_error(error or "")
        elif not args.json:
            print(render.outcome_line(outcome), flush=True)
        if args.json:
            results.append(_outcome_result(outcome, error))
    if args.json:
        _print_json(args.command, results, summary)
    if summary is not None:
        sys.stdout.flush()
        print(summary, file=sys.stderr)
    return 0 if all(o.status in (WRITTEN, FINE) for o in outcomes) else 1


def _outcome_result(outcome: FileOutcome, error: str | None) -> dict[str, Any]:
    done = outcome.conversion
    if done is not None:
        warnings = [f"{done.optim_note} ({FORCE_HINT})"] if done.optim_kept else []
        return schema.result(outcome.path, outcome.status, written=done.path, warnings=warnings,
                             description=_described(done.path, done.sha256))
    return schema.result(outcome.path, outcome.status, error=error, description=_described(outcome.path))


# --------------------------------------------------------------------- bake
def cmd_bake(args: argparse.Namespace) -> int:
    from ..baking import parse_spec
    from ..library.actions import bake
    from ..prompt.grammar import TagError

    sources = []
    for spec in args.specs:
        try:
            sources.append(parse_spec(spec))
        except TagError as exc:
            raise UsageError(f"{spec}: {exc.reason}") from exc
    mode, output = ("lora", args.lora) if args.lora else ("merge", args.merge)
    with files_progress("baking", args.progress) as progress:  # steps: read, hash, write, check
        report = bake(sources, args.checkpoint, output, mode=mode, overwrite=args.force, progress=progress)
    if args.json:
        layers = [{"layer": c.name, "kind": c.kind, "width": c.width, "k_error": c.k_error, "v_error": c.v_error}
                  for c in report.layers]
        result = schema.result(args.checkpoint, WRITTEN, written=report.output,
                               warnings=[*report.unmatched, *report.warnings])
        result["bake"] = {"mode": mode, "checkpoint_sha256": report.checkpoint_sha256, "max_error": report.max_error,
                          "layers": layers}
        _print_json("bake", [result], None)
        return 0
    print(render.bake_report(report, args.checkpoint))
    for note in [*report.unmatched, *report.warnings]:
        print_warning(note)
    return 0


# --------------------------------------------------------------------- verify
def cmd_verify(args: argparse.Namespace) -> int:
    digests = hash_files(args.files, args.progress)
    failed = warned = 0
    results = []
    for path in args.files:
        found = verify_file(path, digests.get(path))
        reason, notes = found.failure, list(found.notes)
        if found.a1111_rejected:
            notes.append(f"{render.a1111_refusal(found.a1111_rejected)}; fix: {render.fix_command(path)}")
        if args.json:
            results.append(schema.result(path, READ if reason is None else FAILED, error=reason, warnings=notes,
                                         description=_described(path, digests.get(path))))
        elif reason is None:
            print(f"OK  {path}")
        else:
            print(f"FAIL {path}: {' '.join(reason.splitlines())}")
        failed += reason is not None
        for note in notes:
            print_warning(f"{path}: {note}")
        warned += bool(notes)
    summary = None
    if len(args.files) > 1:
        summary = f"{len(args.files)} files: {len(args.files) - failed} OK, {failed} failed, {warned} with warnings"
    if args.json:
        _print_json("verify", results, summary)
    if summary is not None:
        sys.stdout.flush()
        print(summary, file=sys.stderr)
    return 1 if failed else 0


# --------------------------------------------------------------------- create
def cmd_create(args: argparse.Namespace) -> int:
    activations = creatable_activations()
    if args.activation not in activations:
        raise UsageError(f"argument --activation: invalid choice: {args.activation!r} (choose from {', '.join(activations)})")
    if args.dropout_structure is not None and not args.dropout:
        print_warning("--dropout-structure is ignored without --dropout (as in A1111)")
    if args.dropout and args.dropout_structure is None:
        print_warning("--dropout without --dropout-structure adds no dropout layers (as in A1111)")
    target = check_target(create_path(args.name, args.out, args.format), overwrite=args.force)  # before asking
    params = estimate_parameters(args.sizes, args.layer_structure, args.layer_norm)
    if CONFIRM_BYTES < params * 4 <= MAX_CREATE_BYTES:  # bigger ones create() refuses, saying why
        _confirm_size(target, params, args.yes or args.force)
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
    digest = sha256(path)
    if args.json:
        _print_json("create", [schema.result(path, WRITTEN, written=path,
                                             description=describe_file(path, digest=digest, loaded=hn).to_json())])
    else:
        print(render.created_line(path, args.format, os.path.getsize(path), hn.param_count, hn.widths, digest))
    return 0


def _confirm_size(path: str, params: int, confirmed: bool) -> None:
    """A file over :data:`CONFIRM_BYTES` is written only when confirmed: by ``--yes``/``--force``, else by
    the question on a terminal; refused without one (a script, a pipe)."""
    what = f"{path} would be a {human_size(params * 4)} file ({params:,} parameters)"
    check = "real hypernetworks are a few MiB to a few hundred: check --sizes and --layer-structure"
    if confirmed:
        print_warning(f"{what}; writing it as asked")
        return
    if _isatty(sys.stdin) and _isatty(sys.stderr):
        sys.stdout.flush()
        sys.stderr.write(f"{what}; {check}. Write it? [y/N] ")
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() in ("y", "yes"):
            return
        raise HypernetError("not written (not confirmed)", path)
    raise HypernetError(f"would be a {human_size(params * 4)} file ({params:,} parameters), over 1 GiB; {check}; "
                        "pass --yes to write it", path)


# --------------------------------------------------------------------- examples
def cmd_examples(args: argparse.Namespace) -> int:
    """The standalone panel's example folder (:mod:`lib_hypernet.library.examples`, a few MB); existing files are kept."""
    from ..library.examples import EXAMPLES, make_examples

    written = set(make_examples(args.out))
    results = []
    for example in EXAMPLES:
        path = os.path.join(args.out, *example.relpath.split("/"))
        if args.json:
            results.append(schema.result(path, WRITTEN if path in written else FINE,
                                         written=path if path in written else None, description=_described(path)))
        elif path in written:
            print(f"wrote {path} ({human_size(os.path.getsize(path))})", flush=True)
        else:
            print(f"skipped {path} (already exists)", flush=True)
    if args.json:
        _print_json("examples", results)
    return 0
