"""The webui extension inside the A1111 stand-in: its HTTP API (FastAPI's TestClient on the app the webui
passes to ``on_app_started``), ``--api-auth``, and ``install.py``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import webui_util as wu
from fastapi.testclient import TestClient

SUMMARY_FIELDS = {
    "name",
    "path",
    "format",
    "widths",
    "layer_structure",
    "activation_func",
    "step",
    "sd_checkpoint_name",
    "shorthash",
    "size",
    "safe",
}


def _write_files(tmp_path) -> None:
    wu.write_hn("x", seed=1)
    wu.write_hn("dup", subdir="sub1", seed=2)
    wu.write_hn("dup", subdir="sub2", seed=3)
    wu.write_hn("st", suffix=".safetensors", seed=4)
    wu.write_malicious(os.path.join(wu.hn_dir(), "evil.pt"), str(tmp_path / "pwned"))


@pytest.fixture
def client(tmp_path):
    wu.reset(tmp_path)
    try:
        _write_files(tmp_path)
        app = wu.start(nowebui=True)
        yield TestClient(app)
    finally:
        wu.webui.unload()


def test_list(client, tmp_path):
    response = client.get("/hypernet/v1/hypernetworks")
    assert response.status_code == 200
    items = {item["name"]: item for item in response.json()}
    assert set(items) == {"x", "sub1/dup", "sub2/dup", "st", "evil"}
    for name in ("x", "sub1/dup", "st"):
        assert set(items[name]) >= SUMMARY_FIELDS, name
        assert items[name]["safe"] is True
        assert items[name]["widths"] == list(wu.SD1_TINY_WIDTHS)
        assert items[name]["activation_func"] == "relu"
        assert items[name]["layer_structure"] == [1, 0.25, 1]
        assert items[name]["shorthash"] == wu.lib_hypernet.shorthash(items[name]["path"])
        assert items[name]["size"] == os.path.getsize(items[name]["path"])
    assert items["x"]["format"] == "pt" and items["st"]["format"] == "safetensors"
    assert items["x"]["path"] == os.path.join(wu.hn_dir(), "x.pt")
    evil = items["evil"]
    assert evil["safe"] is False
    assert "io.open" in evil["error"]
    assert not (tmp_path / "pwned").exists()
    json.dumps(response.json())  # plain JSON


def test_info_refresh_and_not_found(client):
    response = client.get("/hypernet/v1/hypernetworks/x")
    assert response.status_code == 200
    assert response.json()["name"] == "x" and response.json()["tag"] == "<hypernet:x:1>"
    response = client.get("/hypernet/v1/hypernetworks/sub1/dup")
    assert response.status_code == 200
    assert response.json()["path"] == os.path.join(wu.hn_dir(), "sub1", "dup.pt")
    assert client.get("/hypernet/v1/hypernetworks/evil").json()["safe"] is False
    assert client.get("/hypernet/v1/hypernetworks/nope").status_code == 404
    ambiguous = client.get("/hypernet/v1/hypernetworks/dup")
    assert ambiguous.status_code == 404 and "ambiguous" in ambiguous.json()["detail"]

    wu.write_hn("added", seed=5)
    response = client.post("/hypernet/v1/refresh")
    assert response.status_code == 200
    assert response.json()["count"] == 6
    assert response.json()["duplicates"] == {"dup": ["sub1/dup.pt", "sub2/dup.pt"]}
    assert "added" in {item["name"] for item in client.get("/hypernet/v1/hypernetworks").json()}


def test_convert(client):
    pt = os.path.join(wu.hn_dir(), "x.pt")
    st = os.path.join(wu.hn_dir(), "x.safetensors")
    response = client.post("/hypernet/v1/convert", json={"name": "x"})
    assert response.status_code == 200, response.text
    assert response.json()["format"] == "safetensors" and response.json()["path"] == st
    assert os.path.isfile(st)
    a, b = wu.lib_hypernet.load(pt), wu.lib_hypernet.load(st)
    context = torch.randn(2, 77, 768, generator=torch.Generator().manual_seed(0))
    assert all(
        torch.equal(u, v)
        for u, v in zip(
            wu.lib_hypernet.apply_hypernetworks(context, [(a, 0.8)]), wu.lib_hypernet.apply_hypernetworks(context, [(b, 0.8)])
        )
    )
    # generations agree, and the plain name now is the .safetensors
    assert wu.same(wu.gen("<hypernet:x:0.8>a cat"), wu.gen("<hypernet:x.pt:0.8>a cat"))
    assert client.get("/hypernet/v1/hypernetworks/x").json()["format"] == "safetensors"

    before = os.stat(st).st_mtime_ns
    response = client.post("/hypernet/v1/convert", json={"name": "x.pt"})
    assert response.status_code == 409 and "overwrite" in response.json()["detail"]  # HypernetExistsError
    assert os.stat(st).st_mtime_ns == before
    assert client.post("/hypernet/v1/convert", json={"name": "x.pt", "overwrite": True}).status_code == 200
    assert client.post("/hypernet/v1/convert", json={"name": "nope"}).status_code == 404
    assert client.post("/hypernet/v1/convert", json={"name": "st"}).status_code == 400  # already safetensors
    response = client.post("/hypernet/v1/convert", json={"name": "evil"})
    assert response.status_code == 400
    assert not os.path.exists(os.path.join(wu.hn_dir(), "evil.safetensors"))


FAKE_LAUNCH = textwrap.dedent('''
    """Stand-in of the webui's launch module: records calls into $FAKE_LAUNCH_LOG."""
    import importlib.metadata
    import importlib.util
    import json
    import os

    MISSING = set(filter(None, os.environ.get("FAKE_LAUNCH_MISSING", "").split(",")))

    def _log(*call):
        with open(os.environ["FAKE_LAUNCH_LOG"], "a") as f:
            f.write(json.dumps(call) + "\\n")

    def is_installed(package):
        _log("is_installed", package)
        if package in MISSING:
            return False
        try:
            return importlib.metadata.distribution(package) is not None
        except Exception:
            return importlib.util.find_spec(package) is not None

    def run_pip(command, desc=None, live=False):
        _log("run_pip", command, desc)
''')


def _run_install(tmp_path, missing: str = "") -> list[list[str]]:
    fake = tmp_path / "fake_launch"
    fake.mkdir(exist_ok=True)
    (fake / "launch.py").write_text(FAKE_LAUNCH)
    log = tmp_path / f"calls{missing}.jsonl"
    env = {**os.environ, "PYTHONPATH": str(fake), "FAKE_LAUNCH_LOG": str(log), "FAKE_LAUNCH_MISSING": missing}
    result = subprocess.run(
        [sys.executable, str(wu.REPO_ROOT / "install.py")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_install_py_installs_nothing(tmp_path):
    """A true no-op: the webui owns torch and ships safetensors, so nothing is installed even when "missing"."""
    assert _run_install(tmp_path) == []
    assert _run_install(tmp_path, missing="torch") == []
    assert _run_install(tmp_path, missing="safetensors") == []
