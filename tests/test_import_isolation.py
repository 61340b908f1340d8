"""``import lib_hypernet`` stays webui-independent: no A1111 ``modules``, gradio, ``launch`` or fastapi."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("modules", "gradio", "launch", "fastapi")

_PROBE = f"""
import json, sys
import lib_hypernet
forbidden = {FORBIDDEN!r}
bad = sorted(m for m in sys.modules if m.split(".")[0] in forbidden)
print(json.dumps({{"bad": bad, "file": lib_hypernet.__file__}}))
"""


def _python() -> str:
    venv = REPO_ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def test_import_pulls_in_no_webui_modules() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    result = subprocess.run(
        [_python(), "-c", _PROBE], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["bad"] == []
    assert Path(report["file"]).resolve().parent == REPO_ROOT / "lib_hypernet"


# --------------------------------------------------------------------- the command line is a front end (issue 14)
PACKAGE = REPO_ROOT / "lib_hypernet"


def _imported_modules(path: Path, source: str | None = None) -> set[str]:
    """Every module ``path`` (its text, or ``source``) imports, as absolute dotted names (relative ones resolved)."""
    package = path.relative_to(REPO_ROOT).parts[:-1]  # of a module and of a package's __init__.py alike
    found: set[str] = set()
    text = path.read_text(encoding="utf-8") if source is None else source
    for node in ast.walk(ast.parse(text, str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = list(package[: len(package) - (node.level - 1)])
                base = ".".join([*parent, base] if base else parent)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def test_no_library_or_ui_module_imports_the_command_line() -> None:
    """library/, ui/ and webui/ do their work through library.actions, never through ``lib_hypernet.cli``."""
    offenders = {}
    for folder in ("library", "ui", "webui"):
        for path in sorted((PACKAGE / folder).rglob("*.py")):
            bad = sorted(m for m in _imported_modules(path) if m == "lib_hypernet.cli" or m.startswith("lib_hypernet.cli."))
            if bad:
                offenders[str(path.relative_to(REPO_ROOT))] = bad
    assert offenders == {}


def test_the_import_check_sees_relative_imports() -> None:
    """The check above can fail: relative and absolute imports of the command line are found."""
    probe = PACKAGE / "library" / "probe.py"
    source = "from ..cli import commands as cli\nimport lib_hypernet.cli.progress\nfrom .. import cli\n"
    assert {"lib_hypernet.cli.commands", "lib_hypernet.cli.progress", "lib_hypernet.cli"} <= _imported_modules(
        probe, source)
    assert "lib_hypernet.library.actions" in _imported_modules(PACKAGE / "ui" / "__init__.py",
                                                               "from ..library import actions\n")


CLI_WORDING = ("--force", "--out", "with the CLI")


def test_core_messages_name_no_command_line_flag() -> None:
    """Only the command line (``cli/``, ``__main__.py``) words its hints with its flags; every other string
    literal (docstrings aside) says what happened and lets each front end say how to ask for more."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "cli" or relative == Path("__main__.py"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        docstrings = {
            id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                offenders += [f"{relative}:{node.lineno}: {word}" for word in CLI_WORDING if word in node.value]
    assert offenders == []
