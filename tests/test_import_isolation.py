"""``import lib_hypernet`` stays webui-independent: no A1111 ``modules``, gradio, ``launch`` or fastapi."""

from __future__ import annotations

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
