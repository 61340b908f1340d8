"""``python -m lib_hypernet.ui --dir DIR [--host 127.0.0.1] [--port N] [--auth USER:PASSWORD]``: the standalone library page.

The command line only; the page itself is :mod:`lib_hypernet.ui.standalone`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from ..errors import HypernetError
from ..library.examples import make_examples
from .standalone import build_app, cache_dir, default_examples_dir, make_source, serve

AUTH_ENV = "HYPERNET_PANEL_AUTH"


def parse_auth(text: str) -> tuple[str, str]:
    """``user:password`` (the password may hold ``:``) → ``(user, password)``; both must be non-empty."""
    user, sep, password = text.partition(":")
    if not sep or not user.strip() or not password:
        raise argparse.ArgumentTypeError("expected USER:PASSWORD, both non-empty")
    return user.strip(), password


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lib_hypernet.ui",
                                     description="Browse, inspect, convert and create hypernetworks in a web page.")
    parser.add_argument("--dir", default=None, help="the hypernetwork folder (default: a small example folder)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine)")
    parser.add_argument("--port", type=int, default=None, help="port (default: gradio's, 7860 or the next free one)")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser window")
    parser.add_argument("--auth", type=parse_auth, default=None, metavar="USER:PASSWORD",
                        help=f"require this login (default: ${AUTH_ENV} if set, which other users cannot read "
                             "in the process list; else no login)")
    args = parser.parse_args(argv)
    if args.auth is None and os.environ.get(AUTH_ENV):
        try:
            args.auth = parse_auth(os.environ[AUTH_ENV])
        except argparse.ArgumentTypeError as exc:
            parser.error(f"${AUTH_ENV}: {exc}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    folder = Path(args.dir) if args.dir else default_examples_dir()
    if args.dir is None:
        try:
            written = make_examples(folder)
        except HypernetError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        if written:
            print(f"made {len(written)} example hypernetworks in {folder}", flush=True)
    elif not folder.is_dir():
        print(f"error: {folder}: not a folder", file=sys.stderr)
        return 2
    source = make_source(folder, cache_dir())
    app = build_app(source)
    print(f"hypernetwork library of {folder.resolve()}", flush=True)
    try:
        serve(app, host=args.host, port=args.port, auth=args.auth, inbrowser=not args.no_browser)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
