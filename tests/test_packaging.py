"""Dependencies fit the webui ecosystem: torch is the host's, test tools are pinned, one version, a real LICENSE."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import setuptools
import tomllib
from hn_testutil import REPO_ROOT

import lib_hypernet


def _pyproject() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _requirements(name: str) -> list[str]:
    lines = (REPO_ROOT / name).read_text(encoding="utf-8").splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower()


def test_runtime_requirements_leave_torch_to_the_webui() -> None:
    runtime = _requirements("requirements.txt")
    assert "torch" not in [_name(r) for r in runtime]
    assert all("==" not in r for r in runtime), "runtime requirements must not pin what the webui ships"


def test_test_requirements_pin_torch_and_the_tools() -> None:
    pins = {_name(r): r for r in _requirements("requirements-test.txt") if not r.startswith("-r")}
    for tool in ("torch", "pytest", "ruff", "mypy"):
        assert re.fullmatch(rf"{tool}==\d+(\.\d+)+", pins[tool]), pins.get(tool)


def test_test_extra_agrees_with_requirements_test() -> None:
    pins = {_name(r): r for r in _requirements("requirements-test.txt") if not r.startswith("-r")}
    extra = _pyproject()["project"]["optional-dependencies"]["test"]
    assert extra, "the [test] extra is empty"
    for requirement in extra:
        assert pins.get(_name(requirement)) == requirement, requirement


def test_one_version_string() -> None:
    project = _pyproject()
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "lib_hypernet.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", lib_hypernet.__version__)
    # setuptools reads the attr statically: it must be a literal assignment in __init__.py.
    tree = ast.parse((REPO_ROOT / "lib_hypernet" / "__init__.py").read_text(encoding="utf-8"))
    literal = [n.value.value for n in tree.body if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)
               and any(getattr(t, "id", None) == "__version__" for t in n.targets)]
    assert literal == [lib_hypernet.__version__]


def test_every_subpackage_is_packaged() -> None:
    find = _pyproject()["tool"]["setuptools"]["packages"]["find"]
    found = set(setuptools.find_packages(str(REPO_ROOT), include=find["include"]))
    on_disk = {
        ".".join(path.parent.relative_to(REPO_ROOT).parts)
        for path in (REPO_ROOT / "lib_hypernet").rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert on_disk <= found, f"not packaged: {sorted(on_disk - found)}"
    assert all(name.startswith("lib_hypernet") for name in found)


def test_license_is_the_agpl_pyproject_names() -> None:
    assert _pyproject()["project"]["license"] == {"text": "AGPL-3.0-or-later"}
    text = (REPO_ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.lstrip().startswith("GNU AFFERO GENERAL PUBLIC LICENSE")
    assert "Version 3, 19 November 2007" in text
    assert "13. Remote Network Interaction; Use with the GNU General Public License." in text
    assert "END OF TERMS AND CONDITIONS" in text and len(text) > 30000


def test_install_py_is_a_no_op(tmp_path: Path) -> None:
    """The webui runs install.py at launch: it must not import ``launch`` nor install anything."""
    tree = ast.parse((REPO_ROOT / "install.py").read_text(encoding="utf-8"))
    assert all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in tree.body)
    (tmp_path / "launch.py").write_text("raise SystemExit('install.py imported launch')\n", encoding="utf-8")
    result = subprocess.run([sys.executable, str(REPO_ROOT / "install.py")], cwd=tmp_path, capture_output=True,
                            text=True, env={"PYTHONPATH": str(tmp_path)}, timeout=60, check=False)
    assert result.returncode == 0 and result.stdout == result.stderr == ""


def test_console_script_runs_the_cli() -> None:
    target = _pyproject()["project"]["scripts"]["hypernet"]
    module, _, function = target.partition(":")
    assert (module, function) == ("lib_hypernet.__main__", "run")
    import lib_hypernet.__main__ as entry

    assert callable(getattr(entry, function))


_IMPORT_PROBE = """
import json, sys
import lib_hypernet
light = "torch" not in sys.modules
for name in lib_hypernet._LAZY:
    getattr(lib_hypernet, name)
forbidden = ("modules", "gradio", "launch", "fastapi")
print(json.dumps({"light": light, "bad": sorted(m for m in sys.modules if m.split(".")[0] in forbidden),
                  "all": sorted(set(lib_hypernet.__all__) - set(dir(lib_hypernet)))}))
"""


def test_lazy_names_resolve_without_webui_modules() -> None:
    """``import lib_hypernet`` loads nothing heavy (so the CLI can answer Ctrl-C at start-up); resolving every
    exported name still pulls in neither the webui nor gradio."""
    import json

    result = subprocess.run([sys.executable, "-c", _IMPORT_PROBE], cwd=REPO_ROOT, capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin"}, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"light": True, "bad": [], "all": []}
