"""The ``hypernet`` command's arguments, entry point and exit statuses; answers ``--help`` and usage errors
without loading torch (the commands, and torch with them, are imported only once the arguments parsed).

Exit statuses: 0 ok; 1 a file failed (every :class:`~lib_hypernet.HypernetError` is one ``error: ...`` line on
stderr); 2 a usage error; 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

from .. import __version__
from ..errors import HypernetError, InvalidNameError
from ..model.options import WEIGHT_INITIALIZATIONS
from . import schema
from .messages import UsageError, error_text, print_error

SD1_SIZES = (768, 320, 640, 1280)


# --------------------------------------------------------------------- argument types
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


def _add_common(parser: argparse.ArgumentParser, *, progress: str | None = "hashing") -> None:
    """``--json`` (every command) and, where there is work to show, ``--progress``/``--no-progress``."""
    parser.add_argument("--json", action="store_true", help="print one JSON document (see `hypernet --help`)")
    if progress is None:
        return
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--progress", dest="progress", action="store_true", default=None,
        help=f"always draw the {progress} progress bar on stderr",
    )
    group.add_argument("--no-progress", dest="progress", action="store_false", help="never draw the progress bar")


# --------------------------------------------------------------------- the parser
def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of the ``hypernet`` command."""
    parser = argparse.ArgumentParser(
        prog=prog or "hypernet",
        description="Inspect, hash, convert, repair, verify and create A1111 hypernetworks (.pt and .safetensors).",
        epilog="A progress bar is drawn on a terminal when hashing more than 64 MiB or more than 8 files,\n"
        "or converting or repairing more than 8 files.\n\n" + schema.HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("info", help="describe hypernetwork files", description="Describe hypernetwork files.")
    p.add_argument("files", nargs="+", metavar="FILE")
    _add_common(p)

    p = sub.add_parser(
        "hash", help="print sha256, A1111 short hash (and legacy hash)",
        description="Print '<sha256>  <shorthash>  <path>' per file\n(like sha256sum, plus A1111's 10-hex short hash).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--legacy", action="store_true", help="add A1111's legacy 8-hex model hash column")
    _add_common(p)

    p = sub.add_parser(
        "convert", help="convert .pt <-> .safetensors (a file, or every file of a folder)",
        description="Convert between .pt and .safetensors, then check the result has bit-identical weights and "
        "metadata. DST is a file (its suffix says the format) or an existing folder (SRC's name with the new "
        "suffix, inside it); without DST the result goes beside SRC. The new format: DST's suffix, else --to, "
        "else the other one (x.pt -> x.safetensors). SRC may be a folder: every file in it (recursively) not "
        "in the --to format (default: safetensors) is converted beside itself; nothing is overwritten without "
        "--force; the exit status is 1 when any file was not written.",
    )
    p.add_argument("src", metavar="SRC", help="a .pt or .safetensors file, or a folder")
    p.add_argument("dst", metavar="DST", nargs="?", default=None, help="a file or an existing folder (default: beside SRC)")
    p.add_argument("--to", choices=("safetensors", "pt"), default=None, help="the format to write")
    p.add_argument("--force", action="store_true", help="overwrite what exists")
    _add_common(p, progress="files")

    p = sub.add_parser(
        "repair", help="rewrite .pt files A1111 cannot load (files or folders)",
        description="Rewrite every .pt that A1111 cannot load (saved by a newer torch) in place, in the legacy "
        ".pt format every A1111 loads: weights bit-identical, the file's hash changes, its .optim is "
        "re-hashed. A folder: every .pt in it, recursively. Without --force nothing is written: the files "
        "that need it are listed and the exit status is 1.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="a .pt file or a folder")
    p.add_argument("--force", action="store_true", help="rewrite the files (they are replaced in place)")
    _add_common(p, progress="files")

    p = sub.add_parser(
        "verify", help="check files load and run", description="Load each file, run it once per width on a seeded "
        "context and check everything is finite; also check the .optim and A1111 loadability (warnings).",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    _add_common(p)

    p = sub.add_parser(
        "create", help="create a new hypernetwork (A1111's options)",
        description="Create a new hypernetwork with A1111's creation options and save it as OUT/NAME.pt. "
        "A file over 1 GiB is written only when confirmed (--yes, or the question on a terminal).",
    )
    p.add_argument("name", metavar="NAME", help="name (only letters, digits and '._- ' are kept, as in A1111)")
    p.add_argument("--sizes", type=_sizes, default=list(SD1_SIZES), metavar="W,W,...",
                   help="module widths (default: 768,320,640,1280)")
    p.add_argument("--layer-structure", type=_layer_structure, default=[1.0, 2.0, 1.0], metavar="'1, 2, 1'",
                   help="layer width multipliers (default: '1, 2, 1')")
    p.add_argument("--activation", default="linear", metavar="NAME",
                   help="activation function (default: linear): A1111's linear, relu, leakyrelu, elu, swish "
                   "(Hardswish, as in A1111), tanh, sigmoid, or any torch.nn activation by its lower-case class "
                   "name (gelu, silu, mish, ...); an unknown name lists them all")
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
    p.add_argument("--force", action="store_true", help="overwrite an existing file (and write one over 1 GiB)")
    p.add_argument("-y", "--yes", action="store_true", help="write a file over 1 GiB without asking")
    _add_common(p, progress=None)

    p = sub.add_parser(
        "bake", help="bake hypernetworks into a LoRA file or a merged checkpoint (exact, affine files only)",
        description="Turn hypernetworks (a stack of them, applied in the given order as a prompt's tags are) into a "
        "LoRA \"full\" file (--lora: loads in A1111's Lora, Forge 2, reForge and ComfyUI; strength 1 reproduces the "
        "stack) or a merged copy of CKPT (--merge). Exact for hypernetworks without activation and layer norm "
        "(A1111's default 'linear'); others, and step ranges, are refused with the reason. The result is made "
        "for CKPT: on another checkpoint it only approximates. It is read back and compared with the "
        "hypernetworks applied the A1111 way; the largest difference per layer is printed.",
    )
    p.add_argument("specs", nargs="+", metavar="SPEC",
                   help="FILE[:STRENGTH][:self=S][:cross=C], as in a <hypernet:…> tag (default strength 1)")
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="the checkpoint (.safetensors; .ckpt read safely)")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("--lora", metavar="OUT", help="write a LoRA file (.safetensors)")
    out.add_argument("--merge", metavar="OUT", help="write a merged checkpoint (.safetensors)")
    p.add_argument("--force", action="store_true", help="overwrite OUT")
    _add_common(p, progress="steps")

    p = sub.add_parser(
        "examples", help="generate example hypernetworks (skips existing files)",
        description="Write a few example hypernetworks (random weights) into DIR; files that exist are skipped.",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    _add_common(p, progress=None)
    return parser


# --------------------------------------------------------------------- running
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
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        from . import commands  # torch and the library load here, once the arguments are known to be good

        return int(getattr(commands, f"cmd_{args.command}")(args))
    except UsageError as exc:
        print_error(str(exc))
        return 2
    except InvalidNameError as exc:  # a usage error; the name's folder goes in --out
        print_error(f"{exc}{' and the folder with --out DIR' if exc.rule == 'separator' else ''}")
        return 2
    except HypernetError as exc:
        return _failed(args, error_text(exc), exc.path)
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:
        return _failed(args, f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}", exc.filename)
    except MemoryError:
        return _failed(args, "out of memory", None)


def _failed(args: argparse.Namespace, message: str, path: Any) -> int:
    """A command that stopped on an error: the error line, and with ``--json`` the document saying so."""
    print_error(message)
    if getattr(args, "json", False):
        file = os.fspath(path) if isinstance(path, (str, os.PathLike)) else None
        print(json.dumps(schema.document(args.command, [], errors=[{"file": file, "error": message}]), indent=2))
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
