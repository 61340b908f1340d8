"""Stand-in of ``modules/errors.py``: prints like A1111 and records every message for tests."""
from __future__ import annotations

import sys
import traceback
from typing import Any

records: list[dict[str, Any]] = []
"""Every report/display/print_error_explanation call, in order: {'kind', 'message', 'exception'}."""

exception_records: list[dict[str, Any]] = []


def clear() -> None:
    """Forget recorded messages (called by the harness reset)."""
    records.clear()
    exception_records.clear()


def messages() -> list[str]:
    """All recorded messages, as strings."""
    return [r["message"] for r in records]


def record_exception() -> None:
    _, e, tb = sys.exc_info()
    if e is None:
        return
    if exception_records and exception_records[-1]["exception_obj"] is e:
        return
    exception_records.append({"exception": str(e), "exception_obj": e, "traceback": traceback.format_tb(tb)})
    del exception_records[:-5]


def report(message: str, *, exc_info: bool = False) -> None:
    """Print an error message (and the current traceback when exc_info) to stderr."""
    record_exception()
    exc = sys.exc_info()[1] if exc_info else None
    records.append({"kind": "report", "message": message, "exception": exc})
    for line in message.splitlines():
        print("***", line, file=sys.stderr)
    if exc_info:
        print("    " + traceback.format_exc().replace("\n", "\n    "), file=sys.stderr)
        print("---", file=sys.stderr)


def print_error_explanation(message: str) -> None:
    record_exception()
    records.append({"kind": "explanation", "message": message.strip(), "exception": None})
    lines = message.strip().split("\n")
    width = max((len(x) for x in lines), default=0)
    print("=" * width, *lines, "=" * width, sep="\n", file=sys.stderr)


def display(e: BaseException, task: str | None, *, full_traceback: bool = False) -> None:
    """Print ``<task>: <ExceptionType>`` and the exception's traceback, like A1111."""
    record_exception()
    records.append({"kind": "display", "message": f"{task or 'error'}: {type(e).__name__}", "exception": e, "task": task})
    print(f"{task or 'error'}: {type(e).__name__}", file=sys.stderr)
    print("".join(traceback.TracebackException.from_exception(e).format()), file=sys.stderr)


already_displayed: dict[str, int] = {}


def display_once(e: BaseException, task: str) -> None:
    if task in already_displayed:
        return
    display(e, task)
    already_displayed[task] = 1


def run(code, task: str) -> None:
    try:
        code()
    except Exception as e:
        display(e, task)
