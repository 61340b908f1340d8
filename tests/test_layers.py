"""The layers of ``lib_hypernet``, enforced: who may import whom, what each layer may load, no cycle.

Layers, each importing only those below it (a layer may import itself)::

    base (errors, _compat) < formats < model < engine < prompt < baking < library < {cli, ui} < webui

The core (everything but ``ui/`` and ``webui/``) imports only torch, safetensors and the standard library;
``ui/`` adds gradio (and the ASGI pieces gradio serves with) but never the webui's ``modules``; only
``webui/`` imports the host.  Checked twice: statically (every import statement, a function's lazy import
too) and by importing every module in a fresh interpreter and looking at what got loaded.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

from hn_testutil import REPO_ROOT

PACKAGE = REPO_ROOT / "lib_hypernet"

ORDER = ["base", "formats", "model", "engine", "prompt", "baking", "library", "cli", "ui", "webui"]
SIBLINGS = {("cli", "ui"), ("ui", "cli")}  # two front ends on the library: neither imports the other
CORE_THIRD_PARTY = {"torch", "safetensors"}
UI_THIRD_PARTY = CORE_THIRD_PARTY | {"gradio", "gradio_client", "fastapi", "starlette", "pydantic", "anyio"}
# Optional imports a module guards with ``except ImportError`` (numpy's globals are allow-listed for torch's
# loader only where numpy exists: the webuis ship it, the core does not need it).
OPTIONAL = {("lib_hypernet.formats.pt", "numpy")}
HOST_MODULES = ("modules", "launch", "webui", "ldm_patched", "backend", "modules_forge")
UI_FORBIDDEN_LOADED = ("modules", "launch", "modules_forge", "ldm_patched")
CORE_FORBIDDEN_LOADED = ("gradio", "fastapi", "starlette", "pydantic", *UI_FORBIDDEN_LOADED)


def modules() -> dict[str, Path]:
    """``lib_hypernet.x.y`` → its file (a package is named by its ``__init__.py``)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ["lib_hypernet", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def layer_of(name: str) -> str:
    parts = name.split(".")
    if len(parts) == 1 or parts[1] in ("errors", "_compat"):
        return "base"
    if parts[1] == "__main__":
        return "cli"
    return parts[1]


def imports_of(name: str, path: Path, source: str | None = None) -> set[str]:
    """Every module ``name`` imports anywhere, as absolute dotted names (relative ones resolved; an imported
    name that is a submodule counts as that submodule).  Imports under ``if TYPE_CHECKING:`` are not loads."""
    known = modules()
    is_package = path.name == "__init__.py"
    here = name.split(".") if is_package else name.split(".")[:-1]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:  # relative: from the module's package, one level up per extra dot
                    parent = here[: len(here) - child.level + 1]
                    base = ".".join([*parent, child.module] if child.module else parent)
                else:
                    base = child.module or ""
                found.add(base)
                found.update(f"{base}.{a.name}" for a in child.names if f"{base}.{a.name}" in known)
            visit(child)

    visit(ast.parse(source if source is not None else path.read_text(encoding="utf-8"), str(path)))
    return found


def violations(name: str, imported: set[str]) -> list[str]:
    """Why ``name`` may not import ``imported`` (empty when it may)."""
    layer = layer_of(name)
    rank = ORDER.index(layer)
    is_package_face = name == "lib_hypernet"  # it re-exports the public API lazily; only names, no layering
    found = []
    for target in sorted(imported):
        top = target.split(".")[0]
        if top == "lib_hypernet":
            if is_package_face or target == "lib_hypernet" or target.startswith(name + "."):
                continue
            other = layer_of(target)
            if (layer, other) in SIBLINGS or ORDER.index(other) > rank:
                found.append(f"{name} ({layer}) imports {target} ({other})")
        elif not (
            top in sys.stdlib_module_names or top == "__future__"
            or layer == "webui"  # the host adapters may import anything the host has
            or (layer == "ui" and top not in HOST_MODULES and top in UI_THIRD_PARTY)
            or top in CORE_THIRD_PARTY or (name, top) in OPTIONAL
        ):
            found.append(f"{name} ({layer}) imports {target}")
    return found


# ---------------------------------------------------------------------------- static
def test_every_import_respects_the_layers() -> None:
    found = {name: imports_of(name, path) for name, path in modules().items()}
    assert sum(map(len, found.values())) > 150  # the files were read (a parse that finds nothing proves nothing)
    assert [v for name, imported in sorted(found.items()) for v in violations(name, imported)] == []


def test_the_static_check_can_fail() -> None:
    """Each rule catches what it is for, relative imports included."""
    service = PACKAGE / "library" / "service.py"
    cases = {
        "import gradio\n": "imports gradio",
        "from modules import shared\n": "imports modules",
        "def f():\n    import fastapi\n": "imports fastapi",
        "from ..cli import commands\n": "(cli)",
        "from ..webui import extension\n": "(webui)",
        "from ..ui import library_panel\n": "(ui)",
    }
    for source, expected in cases.items():
        found = violations("lib_hypernet.library.service", imports_of("lib_hypernet.library.service", service, source))
        assert any(expected in v for v in found), (source, found)
    panel = PACKAGE / "ui" / "library_panel.py"
    assert violations("lib_hypernet.ui.library_panel", imports_of("lib_hypernet.ui.library_panel", panel,
                                                                  "import gradio\nfrom ..cli import commands\n"))
    assert not violations("lib_hypernet.ui.library_panel", imports_of("lib_hypernet.ui.library_panel", panel,
                                                                      "import gradio\nfrom ..library import actions\n"))


# ---------------------------------------------------------------------------- loaded, in a fresh interpreter
_PROBE = """
import importlib, json, sys
names, forbidden = json.loads(sys.argv[1])
first = {}
for name in names:
    importlib.import_module(name)
    for loaded in list(sys.modules):
        top = loaded.split(".")[0]
        if top in forbidden and top not in first:
            first[top] = name
print(json.dumps(first))
"""


def loaded_by(names: list[str], forbidden: tuple[str, ...]) -> dict[str, str]:
    """Import ``names`` one after another in a fresh interpreter: forbidden top-level module → the first
    module after whose import it was loaded (so a culprit is named even when all share one process)."""
    venv = REPO_ROOT / ".venv" / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    result = subprocess.run(
        [str(venv) if venv.exists() else sys.executable, "-c", _PROBE, json.dumps([names, list(forbidden)])],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found: dict[str, str] = json.loads(result.stdout.strip().splitlines()[-1])
    return found


def test_core_modules_load_no_gradio_fastapi_or_host() -> None:
    core = sorted(n for n in modules() if layer_of(n) not in ("ui", "webui") and not n.endswith("__main__"))
    assert len(core) > 40
    assert loaded_by(core, CORE_FORBIDDEN_LOADED) == {}


def test_ui_modules_load_no_host_module() -> None:
    ui = sorted(n for n in modules() if layer_of(n) == "ui" and not n.endswith("__main__"))
    assert len(ui) >= 5
    assert loaded_by(ui, UI_FORBIDDEN_LOADED) == {}


def test_the_loaded_check_names_the_culprit() -> None:
    """A module that pulls in a forbidden one is named (safetensors stands in for gradio: always importable)."""
    found = loaded_by(["lib_hypernet.errors", "lib_hypernet.formats", "lib_hypernet.model"], ("safetensors",))
    assert found == {"safetensors": "lib_hypernet.formats"}


def test_import_lib_hypernet_is_the_package_in_this_checkout() -> None:
    """``import lib_hypernet`` alone loads no torch and nothing of a host (the CLI's --help depends on it)."""
    assert loaded_by(["lib_hypernet"], ("torch", "gradio", "modules", "fastapi")) == {}


# ---------------------------------------------------------------------------- cycles
def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``graph`` (empty when there is none)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*path[path.index(target):], target]
            if target not in state and (found := walk(target)):
                return found
        state[node] = 2
        path.pop()
        return []

    for node in sorted(graph):
        if node not in state and (found := walk(node)):
            return found
    return []


def test_no_import_cycle() -> None:
    known = modules()
    graph = {}
    for name, path in known.items():
        imported = {m for m in imports_of(name, path) if m in known and m != name}
        if path.name == "__init__.py":  # a package face importing its children is no dependency between modules
            imported = {m for m in imported if not m.startswith(name + ".")}
        graph[name] = imported
    assert sum(map(len, graph.values())) > 100
    assert _cycle(graph) == []
    assert _cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]  # and it finds one where there is one


# ---------------------------------------------------------------------------- wording
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
