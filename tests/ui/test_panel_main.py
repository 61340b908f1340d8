"""The main job, ``tools/panel.sh`` (issue 16): a runtime-only set-up with pip's progress visible, and a command
line (``python -m lib_hypernet.ui``) whose mistakes are one line with the fix."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

from hn_testutil import REPO_ROOT

RUNTIME = {"safetensors", "gradio", "gradio-client", "fastapi", "httpx", "httpcore", "pydantic", "numpy"}
"""What the panel needs besides torch: safetensors and gradio 3.41.2 with A1111 1.10.1's pins."""
TEST_STACK = {"pytest", "ruff", "mypy", "playwright", "hypothesis", "stable-diffusion-sdkit", "einops", "omegaconf"}


def _requirement_names(name: str) -> set[str]:
    """The packages a requirements file names, following its ``-r`` includes."""
    found: set[str] = set()
    for line in (REPO_ROOT / name).read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r"):
            found |= _requirement_names(line[2:].strip())
        elif line:
            found.add(re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower())
    return found


def test_the_panels_requirement_list_is_runtime_only() -> None:
    assert _requirement_names("requirements-panel.txt") == RUNTIME
    assert _requirement_names("requirements-test.txt") >= RUNTIME | TEST_STACK - {"stable-diffusion-sdkit"} | {"torch"}


FAKE_PYTHON = """#!/usr/bin/env bash
# Records how it is called; "-m venv DIR" makes DIR/bin/python (this script); "-c" (is torch there?) says $TORCH.
echo "$*" >> "$FAKE_LOG"
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then mkdir -p "$3/bin"; cp "$0" "$3/bin/python"; exit 0; fi
if [ "$1" = "-c" ]; then exit "${TORCH:-1}"; fi
exit 0
"""


def _run_panel_sh(tmp_path: Path, venv: Path, **env: str) -> list[str]:
    log = tmp_path / "calls.log"
    log.unlink(missing_ok=True)
    fake = tmp_path / "python3"
    fake.write_text(FAKE_PYTHON, encoding="utf-8")
    fake.chmod(0o755)
    done = subprocess.run(["bash", str(REPO_ROOT / "tools" / "panel.sh"), "--help"], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHON": str(fake), "HYPERNET_VENV": str(venv),
                                           "FAKE_LOG": str(log), **env})
    assert done.returncode == 0, done.stderr
    return log.read_text(encoding="utf-8").splitlines()


def test_panel_sh_installs_the_runtime_only_with_pips_progress(tmp_path: Path) -> None:
    """Run with a stand-in python: what tools/panel.sh asks pip for, in its own venv (HYPERNET_VENV)."""
    venv = tmp_path / "venv"
    calls = _run_panel_sh(tmp_path, venv)
    pip = [c for c in calls if c.startswith("-m pip install")]
    assert calls[:2] == ["--version", f"-m venv {venv}"]
    assert [c.split()[-1] for c in pip] == ["torch==2.13.0", "requirements-panel.txt"], calls
    assert all(" -q" not in c and "--quiet" not in c for c in pip)  # pip's own progress shows
    assert not any("requirements-test" in c or "sdkit" in c for c in calls)
    assert calls[-1] == "-m lib_hypernet.ui --help"
    assert _run_panel_sh(tmp_path, venv) == ["-m lib_hypernet.ui --help"]  # set up: nothing to install

    # the webui owns torch: one already in the venv is kept; TORCH_SPEC chooses another build
    other = tmp_path / "other"
    calls = _run_panel_sh(tmp_path, other, TORCH="0")
    assert not any("torch" in c for c in calls if c.startswith("-m pip"))
    spec = "torch==2.1.2 --index-url https://download.pytorch.org/whl/cpu"
    calls = _run_panel_sh(tmp_path, tmp_path / "third", TORCH_SPEC=spec)
    assert f"-m pip install --disable-pip-version-check {spec}" in calls


def _ui(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lib_hypernet.ui", "--no-browser", *args], capture_output=True,
                          text=True, timeout=120, cwd=REPO_ROOT)


def test_a_busy_port_is_one_line_with_the_fix() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = _ui("--port", str(port), "--dir", str(REPO_ROOT / "tests" / "fixtures" / "a1111"))
    assert done.returncode != 0 and done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert re.fullmatch(rf"error: port {port} is in use: pass --port \d+", line), line


def test_a_missing_folder_is_one_line_with_the_fix(tmp_path: Path) -> None:
    done = _ui("--dir", str(tmp_path / "nonexistent"))
    assert done.returncode != 0 and done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"error: {tmp_path / 'nonexistent'} does not exist: pass --dir with your hypernetwork "
                           "folder"), line
