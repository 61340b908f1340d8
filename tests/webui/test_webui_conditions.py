"""The real webui's process-wide patches, installed in the real order — before ``lib_hypernet`` is imported —
in a fresh interpreter: pytorch_lightning 1.9.4's pure-Python ``pickle.Unpickler``, then ``modules.safe``'s
``torch.load``.  Through the real entry script: load, list, every route, generations with good and bad tags,
for A1111 zip files, legacy ``.pt`` files and truncated copies of both."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import webui_util as wu

SCRIPT = textwrap.dedent(r'''
    import json, os, pickle, shutil, sys
    sys.path[:0] = [sys.argv[1], os.path.join(sys.argv[1], "tests", "webui_stub"), os.path.join(sys.argv[1], "tests", "helpers")]
    import conditions                      # the stand-in's copy of the real patches, first of all
    conditions.apply()
    assert "lib_hypernet" not in sys.modules
    import torch
    assert torch.load.__module__ == "modules.safe" and pickle.Unpickler is conditions.RedirectingUnpickler

    import webui_util as wu                # imports webui, then lib_hypernet: after the patches, as in the webui
    from fastapi.testclient import TestClient
    from modules import errors, safe

    fixtures, tmp = sys.argv[2], sys.argv[3]
    out = {}
    wu.reset(tmp)
    os.makedirs(wu.hn_dir(), exist_ok=True)
    good = wu.write_hn("good", seed=1)
    state = torch.serialization.load(good, map_location="cpu", weights_only=True)
    torch.save(state, os.path.join(wu.hn_dir(), "zipgood.pt"))     # what A1111's Hypernetwork.save writes now
    shutil.copy(os.path.join(fixtures, "act_relu.pt"), os.path.join(wu.hn_dir(), "fixture.pt"))
    for src in ("good", "zipgood", "fixture"):
        data = open(os.path.join(wu.hn_dir(), src + ".pt"), "rb").read()
        for at in (10, 1000, len(data) // 2, len(data) - 1):
            with open(os.path.join(wu.hn_dir(), f"cut_{src}_{at}.pt"), "wb") as f:
                f.write(data[:at])
    client = TestClient(wu.start(args=["--api"], real_conditions=False))   # already applied, at import time
    listing = client.get("/hypernet/v1/hypernetworks")
    out["list_status"] = listing.status_code
    out["items"] = {i["name"]: i.get("error") for i in listing.json()} if listing.status_code == 200 else {}
    out["info"] = {n: client.get(f"/hypernet/v1/hypernetworks/{n}").status_code for n in out["items"]}
    out["refresh"] = client.post("/hypernet/v1/refresh").status_code
    out["convert_bad"] = client.post("/hypernet/v1/convert", json={"name": "cut_good_1000"}).status_code
    only = wu.gen("<hypernet:good:0.8>a cat")
    out["zip_same"] = wu.same(wu.gen("<hypernet:zipgood:0.8>a cat"), only)
    out["mixed"] = {}
    for bad in [n for n in out["items"] if n.startswith("cut_")]:
        res = wu.gen(f"<hypernet:good:0.8><hypernet:{bad}:1>a cat")
        out["mixed"][bad] = [wu.same(res, only), wu.comments(res)]
    out["refused_by_host"] = list(safe.refused)
    wu.webui.unload()
    print("RESULT " + json.dumps(out))
''')


def test_real_webui_conditions_in_import_order(tmp_path, fixtures_dir):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(wu.REPO_ROOT), str(fixtures_dir), str(tmp_path / "data")],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-6000:]
    out = json.loads(lines[-1][len("RESULT "):])
    assert out["list_status"] == 200
    items = out["items"]
    for name in ("good", "zipgood", "fixture"):
        assert items[name] is None, (name, items[name])
    cut = [n for n in items if n.startswith("cut_")]
    assert len(cut) == 12
    for name in cut:
        assert items[name], name
        assert "NoneType" not in items[name], (name, items[name])
    assert set(out["info"].values()) == {200}, out["info"]
    assert out["refresh"] == 200 and out["convert_bad"] == 400
    assert out["zip_same"]
    for name, (same, comments) in out["mixed"].items():
        assert same, (name, comments)
        assert any(name in c and "failed to load" in c for c in comments), (name, comments)
    assert not any("zipgood" in p or "fixture" in p for p in out["refused_by_host"]), out["refused_by_host"]


def test_start_installs_the_patches_and_unload_undoes_them(tmp_path):
    import pickle

    import torch
    from modules import safe

    original_load, original_unpickler = torch.load, pickle.Unpickler
    with wu.running(tmp_path):
        assert torch.load is safe.load
        assert pickle.Unpickler is not original_unpickler and issubclass(pickle.Unpickler, pickle._Unpickler)
    assert torch.load is original_load and pickle.Unpickler is original_unpickler


STARTUP = r"""
import os, sys
root, data = sys.argv[1], sys.argv[2]
sys.path[:0] = [root, os.path.join(root, "tests", "webui_stub")]
import webui
from modules import scripts
webui.reset(data)
scripts.load_scripts([root])
print("LOADED " + " ".join(sorted(m for m in sys.modules if m.startswith("lib_hypernet"))))
"""


def test_loading_the_script_leaves_the_routes_for_app_start(tmp_path):
    """Start-up imports only what registering needs; the HTTP routes (and fastapi's parts) load at app start."""
    script = tmp_path / "startup.py"
    script.write_text(STARTUP)
    proc = subprocess.run([sys.executable, str(script), str(wu.REPO_ROOT), str(tmp_path / "data")],
                          capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("LOADED ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    loaded = set(lines[-1].split()[1:])
    assert "lib_hypernet.webui.a1111" in loaded and "lib_hypernet.webui.extension" in loaded
    assert "lib_hypernet.webui.routes" not in loaded
