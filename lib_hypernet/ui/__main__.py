"""``python -m lib_hypernet.ui [--dir DIR] [--host 127.0.0.1] [--port N] [--auth USER:PASSWORD] [--theme light|dark]
[--checkpoints DIR] [--no-browser]``: the standalone library page.

The command line only; the page itself is :mod:`lib_hypernet.ui.standalone`.  The console shows only our own
lines (the folder, the address); a busy port or a missing folder is one line saying how to fix it, found before
torch and gradio are imported (so it comes at once).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import logging
import os
import socket
import sys
import time
from pathlib import Path

THEMES = ("system", "light", "dark")
AUTH_ENV = "HYPERNET_PANEL_AUTH"
QUIET_LOGGERS = ("httpx", "httpcore", "uvicorn", "uvicorn.access", "uvicorn.error", "gradio", "matplotlib")
"""Per-request and start-up chatter of the web stack (e.g. httpx's ``POST /api/predict 200`` on every click,
matplotlib's font cache on a first start): errors only."""


def parse_auth(text: str) -> tuple[str, str]:
    """``user:password`` (the password may hold ``:``) → ``(user, password)``; both must be non-empty."""
    user, sep, password = text.partition(":")
    if not sep or not user.strip() or not password:
        raise argparse.ArgumentTypeError("expected USER:PASSWORD, both non-empty")
    return user.strip(), password


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lib_hypernet.ui",
                                     description="Browse, inspect, repair, convert and create hypernetworks in a "
                                                 "web page.")
    parser.add_argument("--dir", default=None, help="the hypernetwork folder (default: a small example folder)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine)")
    parser.add_argument("--port", type=int, default=None, help="port (default: 7860 or the next free one)")
    parser.add_argument("--theme", choices=THEMES, default="system",
                        help="light or dark page (default: system, the browser's preference)")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser window")
    parser.add_argument("--auth", type=parse_auth, default=None, metavar="USER:PASSWORD",
                        help=f"require this login (default: ${AUTH_ENV} if set, which other users cannot read "
                             "in the process list; else no login)")
    parser.add_argument("--checkpoints", default=None, metavar="DIR",
                        help="a folder of checkpoints: turns on Bake (LoRA files and merged checkpoints are written "
                             "into it too)")
    args = parser.parse_args(argv)
    if args.auth is None and os.environ.get(AUTH_ENV):
        try:
            args.auth = parse_auth(os.environ[AUTH_ENV])
        except argparse.ArgumentTypeError as exc:
            parser.error(f"${AUTH_ENV}: {exc}")
    return args


def port_problem(host: str, port: int) -> str | None:
    """Why ``port`` cannot be listened on at ``host`` (with the fix), or None when it can."""
    exc = bind_error(host, port)
    if exc is None:
        return None
    if exc.errno == errno.EADDRINUSE:
        free = next((p for p in range(port + 1, min(port + 100, 65536)) if bind_error(host, p) is None), None)
        return f"port {port} is in use: pass --port {free}" if free else f"port {port} is in use: pass another --port"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"port {port} needs administrator rights: pass --port 7860 (or another above 1023)"
    return f"cannot listen on {host}:{port} ({exc.strerror or exc}): pass another --host or --port"


def bind_error(host: str, port: int) -> OSError | None:
    """What binding ``host:port`` raises (None: it is free), as uvicorn binds (a closing socket is no user)."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        return exc
    return None


def quiet_web_logs() -> None:
    """Only our own lines on the console: ours from INFO up, the rest's warnings, the web stack's errors only."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("lib_hypernet").setLevel(logging.INFO)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.dir is not None and not Path(args.dir).is_dir():
        what = "is not a folder" if Path(args.dir).exists() else "does not exist"
        return fail(f"{args.dir} {what}: pass --dir with your hypernetwork folder "
                    "(e.g. stable-diffusion-webui/models/hypernetworks), or no --dir for the examples")
    if args.checkpoints is not None and not Path(args.checkpoints).is_dir():
        return fail(f"{args.checkpoints} is not a folder: pass --checkpoints with your checkpoint folder "
                    "(e.g. stable-diffusion-webui/models/Stable-diffusion)")
    if args.port is not None:
        if not 0 < args.port < 65536:
            return fail(f"port {args.port} is not a port number: pass --port 7860 (or another from 1024 to 65535)")
        problem = port_problem(args.host, args.port)
        if problem:
            return fail(problem)
    quiet_web_logs()
    # Imported here, so that the checks above answer without loading torch and gradio (seconds).
    from ..errors import HypernetError
    from ..library.examples import make_examples
    from ..library.source import BakeFolders
    from .standalone import build_app, cache_dir, default_examples_dir, make_source, serve

    folder = Path(args.dir) if args.dir else default_examples_dir()
    if args.dir is None:
        try:
            written = make_examples(folder)
        except HypernetError as exc:
            return fail(str(exc))
        if written:
            print(f"made {len(written)} example hypernetworks in {folder}", flush=True)
    bake = BakeFolders(args.checkpoints, args.checkpoints, args.checkpoints) if args.checkpoints else None
    app = build_app(make_source(folder, cache_dir(), bake_folders=bake), theme=args.theme)
    try:
        # gradio prints "Running on local URL" even when quiet (and a share=True hint when not): ours say it
        with contextlib.redirect_stdout(io.StringIO()):
            _, url, _ = serve(app, host=args.host, port=args.port, auth=args.auth, inbrowser=not args.no_browser,
                              prevent_thread_lock=True, quiet=True)
    except OSError as exc:  # the port was taken between the check and the start
        return fail(f"{exc}".splitlines()[0])
    print(f"hypernetwork library of {folder.resolve()}", flush=True)
    print(f"open {url} in a browser (Ctrl+C stops)", flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        return 0
    finally:
        app.close(verbose=False)


if __name__ == "__main__":
    sys.exit(main())
