"""Stand-in of ``modules/shared_cmd_options.py``: ``parser`` and the parsed ``cmd_opts`` namespace.

``cmd_opts`` is one long-lived object; :func:`parse` refills it in place so that references taken with
``from modules.shared import cmd_opts`` stay valid across harness resets.
"""
from __future__ import annotations

import argparse

from modules import cmd_args

parser: argparse.ArgumentParser = cmd_args.make_parser()
cmd_opts: argparse.Namespace = parser.parse_args([])


def new_parser() -> argparse.ArgumentParser:
    """Rebuild ``parser`` (defaults follow the current data dir); preload scripts then add to it."""
    global parser
    parser = cmd_args.make_parser()
    return parser


def parse(args: list[str] | None = None) -> argparse.Namespace:
    """Parse ``args`` with the current parser into the shared ``cmd_opts`` object."""
    parsed = parser.parse_args(args or [])
    vars(cmd_opts).clear()
    vars(cmd_opts).update(vars(parsed))
    return cmd_opts
