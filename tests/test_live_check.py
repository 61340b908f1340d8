"""tools/live_check.py against a fake webui (stdlib http.server in a thread): the table, the exit code, the clean-up.

The fake serves the routes the tool uses (``/sdapi/v1/cmd-flags``, ``txt2img``, ``png-info``, and the extension's
``/hypernet/v1/`` list, info, refresh, convert) over a real folder.  Its "images" are 64x64 PNGs whose pixels
depend only on which hypernetworks (file hash and strength) would apply, which is what the tool compares; a
``bugs`` set makes it misbehave the way a broken install would.  The real webuis are checked by running the
tool against them (README, "Check your install").
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import json
import os
import re
import struct
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hn_testutil import REPO_ROOT

import lib_hypernet

TOOL = REPO_ROOT / "tools" / "live_check.py"
_spec = importlib.util.spec_from_file_location("live_check", TOOL)
assert _spec is not None and _spec.loader is not None
live_check = importlib.util.module_from_spec(_spec)
sys.modules["live_check"] = live_check  # dataclasses look their module up
_spec.loader.exec_module(live_check)

TAG_RE = re.compile(r"<hypernet:([^:>]+)(?::([^>]*))?>")
FAST = ["--sizes", "320", "--quiet", "--timeout", "60", "--wait", "0"]  # small test files (a few MB)


def png(pixels: bytes, size: int, text: str) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = b"".join(b"\x00" + pixels[y * size * 3:(y + 1) * size * 3] for y in range(size))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
            + chunk(b"tEXt", b"parameters\x00" + text.encode("latin-1", "replace")) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def png_text(data: bytes) -> str:
    pos = 8
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        if kind == b"tEXt":
            key, _, value = data[pos + 8:pos + 8 + length].partition(b"\x00")
            if key == b"parameters":
                return value.decode("latin-1")
        pos += 12 + length
    return ""


class FakeWebui:
    """The routes of a webui with the extension, over ``folder``; ``bugs`` breaks some of them."""

    def __init__(self, folder: Path, bugs: set[str] | None = None) -> None:
        self.folder = folder
        self.bugs = bugs or set()
        self.generations: list[str] = []

    # -------------------------------------------------------------- the library
    def files(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for path in sorted(self.folder.rglob("*")):
            if path.suffix in (".pt", ".safetensors"):
                stem = path.stem
                if stem in found and path.suffix == ".pt":  # a .pt beside its .safetensors: named by its relpath
                    stem = str(path.relative_to(self.folder))
                found[stem] = path
        return found

    def describe(self, name: str, path: Path) -> dict[str, Any]:
        item: dict[str, Any] = {"name": name, "path": str(path), "relpath": str(path.relative_to(self.folder)),
                                "format": path.suffix[1:], "size": path.stat().st_size}
        try:
            lib_hypernet.load(str(path))
            item.update(ok=True, error=None, shorthash=hashlib.sha256(path.read_bytes()).hexdigest()[:10])
        except Exception as exc:
            item.update(ok=False, error=f"{path}: {exc}")
        return item

    # -------------------------------------------------------------- generation
    def txt2img(self, body: dict[str, Any]) -> tuple[int, Any]:
        prompt, steps = body["prompt"], int(body["steps"])
        self.generations.append(prompt)
        files, applied, hashes = self.files(), [], []
        for name, args in TAG_RE.findall(prompt):
            parts = [a for a in args.split(":") if a] if args else []
            named = dict(p.split("=", 1) for p in parts if "=" in p)
            strength = float(next((p for p in parts if "=" not in p), "1"))
            self_s, cross_s = float(named.get("self", strength)), float(named.get("cross", strength))
            start, stop = float(named.get("start", 0)), float(named.get("stop", 1))
            path = files.get(name)
            if path is None:
                if "missing_500" in self.bugs:  # Forge 2's error body
                    return 500, {"error": "FileNotFoundError", "detail": "", "body": "", "message": f"no {name}"}
                continue
            if not self.describe(name, path)["ok"]:
                continue
            if "stack_500" in self.bugs and len(TAG_RE.findall(prompt)) > 1:  # A1111's error body
                return 500, {"error": "RuntimeError", "detail": "", "body": "", "errors": "Inference tensors do not track"}
            short = hashlib.sha256(path.read_bytes()).hexdigest()[:10]
            weights = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in lib_hypernet.load(str(path)).parameters()))
            steps_on = [i for i in range(steps) if start <= i / steps < stop]
            if (self_s == 0 and cross_s == 0 and "zero_applies" not in self.bugs) or not steps_on:
                continue
            if strength == 0 and "zero_applies" not in self.bugs:
                continue
            applied.append((weights.hexdigest(), self_s, cross_s, tuple(steps_on)))  # the same weights, the same image
            hashes.append(f"{name}: {short}")
        seed = hashlib.sha256(repr((body["seed"], applied)).encode()).digest()
        size = int(body["width"])
        pixels = (seed * (size * size * 3 // len(seed) + 1))[: size * size * 3]
        infotext = (f"{prompt}\nSteps: {steps}, Sampler: Euler, Seed: {body['seed']}, Size: {size}x{size}"
                    + (f', Hypernet hashes: "{", ".join(hashes)}"' if hashes else "") + ", Version: fake-1.0")
        image = base64.b64encode(png(pixels, size, infotext)).decode("ascii")
        return 200, {"images": [image], "parameters": body, "info": json.dumps({"infotexts": [infotext]})}

    def png_info(self, body: dict[str, Any]) -> tuple[int, Any]:
        text = png_text(base64.b64decode(body["image"].split(",", 1)[-1]))
        params: dict[str, Any] = {"Prompt": text.split("\n")[0]}
        found = re.search(r'Hypernet hashes: "([^"]*)"', text)
        if found:
            params["Hypernet hashes"] = found.group(1)
        return 200, {"info": text, "items": {}, "parameters": params}

    def convert(self, body: dict[str, Any]) -> tuple[int, Any]:
        path = self.files().get(body["name"])
        if path is None:
            return 404, {"detail": f"hypernetwork {body['name']} not found"}
        target = path.with_suffix(".safetensors")
        if "convert_broken" in self.bugs:
            return 500, {"detail": "RuntimeError: Setting requires_grad=True on inference tensor (see the webui console)"}
        lib_hypernet.load(str(path)).save(str(target))
        return 200, {"source": str(path), "target": str(target)}

    # -------------------------------------------------------------- dispatch
    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if "no_extension" in self.bugs and path.startswith("/hypernet/"):
            return 404, {"detail": "Not Found"}
        if (method, path) == ("GET", "/sdapi/v1/cmd-flags"):
            return 200, {"hypernetwork_dir": str(self.folder), "api": True}
        if (method, path) == ("GET", "/hypernet/v1/hypernetworks"):
            return 200, [self.describe(n, p) for n, p in self.files().items()]
        if (method, path) == ("POST", "/hypernet/v1/refresh"):
            return 200, {"count": len(self.files()), "duplicates": {}}
        if method == "GET" and path.startswith("/hypernet/v1/hypernetworks/"):
            name = path.rsplit("/", 1)[1]
            found = self.files().get(name)
            return (200, self.describe(name, found)) if found else (404, {"detail": f"hypernetwork {name} not found"})
        if (method, path) == ("POST", "/hypernet/v1/convert"):
            return self.convert(body)
        if (method, path) == ("POST", "/sdapi/v1/txt2img"):
            return self.txt2img(body)
        if (method, path) == ("POST", "/sdapi/v1/png-info"):
            return self.png_info(body)
        return 404, {"detail": "Not Found"}


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[tuple[str, FakeWebui]]:
    folder = tmp_path / "models" / "hypernetworks"
    folder.mkdir(parents=True)
    webui = FakeWebui(folder)

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            from urllib.parse import unquote, urlsplit

            status, data = webui.handle(method, unquote(urlsplit(self.path).path), body)
            raw = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", webui
    finally:
        server.shutdown()
        server.server_close()


def rows(output: str) -> dict[str, str]:
    """check name → PASS/FAIL from the printed table."""
    found = {}
    for line in output.splitlines():
        m = re.match(r"\s*\d+\s{2}(.+?)\s{2,}.*\s(PASS|FAIL)$", line)
        if m:
            found[m.group(1).strip()] = m.group(2)
    return found


def test_all_pass_on_a_working_webui(fake, capsys) -> None:
    url, webui = fake
    assert live_check.main(["--url", url, *FAST]) == 0
    out = capsys.readouterr().out
    table = rows(out)
    assert len(table) >= 17 and set(table.values()) == {"PASS"}, out
    for check in ("tag changes the image", ":0 = plain", "stack a+b", "self=0:cross=0 = plain", "missing file = plain",
                  "truncated file + good one", "list route after use", "png-info paste-back",
                  "convert route on a used file", "converted file = the .pt", "Hypernet hashes", "clean-up"):
        assert check in table, (check, out)
    assert "webui version fake-1.0" in out
    assert re.search(r"\n(\d+)/\1 checks passed", out)
    assert list(webui.folder.iterdir()) == []  # the test sub-folder is gone
    assert any("start=0.99" in p for p in webui.generations)


def test_a_broken_webui_fails_the_right_rows(fake, capsys) -> None:
    url, webui = fake
    webui.bugs = {"zero_applies", "missing_500", "convert_broken", "stack_500"}
    assert live_check.main(["--url", url, *FAST]) == 1
    out = capsys.readouterr().out
    table = rows(out)
    assert table[":0 = plain"] == "FAIL"
    assert table["self=0:cross=0 = plain"] == "FAIL"
    assert table["missing file = plain"] == "FAIL"
    assert table["convert route on a used file"] == "FAIL"
    assert "converted file = the .pt" not in table  # nothing to compare without a converted file
    assert table["stack a+b"] == table["truncated file + good one"] == "FAIL"
    assert table["tag changes the image"] == table["png-info paste-back"] == table["clean-up"] == "PASS"
    assert re.search(r"FAIL \d+ stack a\+b: '<hypernet:\S+>a cat': HTTP 500: RuntimeError: Inference tensors do not track", out)
    assert "HTTP 500: FileNotFoundError: no " in out  # the server's message, in full below the table
    assert re.search(r"FAIL \d+ convert route on a used file: HTTP 500: RuntimeError: Setting requires_grad", out)
    assert list(webui.folder.iterdir()) == []


def test_no_extension_and_no_webui(fake, capsys) -> None:
    url, webui = fake
    webui.bugs = {"no_extension"}
    assert live_check.main(["--url", url, *FAST]) == 1
    out = capsys.readouterr().out
    assert rows(out) == {"extension answers": "FAIL"} and "not installed or not enabled" in out
    assert live_check.main(["--url", "http://127.0.0.1:9", *FAST, "--browser"]) == 1
    out = capsys.readouterr().out
    assert rows(out) == {"webui reachable": "FAIL", "browser": "FAIL"}, out


def test_png_fallback_decoder_matches_pil() -> None:
    from PIL import Image

    image = Image.frombytes("RGB", (37, 23), bytes((i * 7 + (i // 111) * 13) % 256 for i in range(37 * 23 * 3)))
    for mode in ("RGB", "RGBA", "L"):
        buf = io.BytesIO()
        image.convert(mode).save(buf, "PNG", optimize=True)  # PIL picks its filters per row (all five kinds)
        got = live_check._decode_png(buf.getvalue())
        assert (got.width, got.height) == (37, 23)
        assert got.data == image.convert(mode).convert("RGB").tobytes(), mode


def test_help_runs_as_a_script() -> None:
    env = {**os.environ, "PYTHONPATH": ""}
    done = subprocess.run([sys.executable, str(TOOL), "--help"], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    for option in ("--url", "--browser", "--hn-dir", "--auth"):
        assert option in done.stdout
    assert "Exit status: 0" in done.stdout


def test_ctrl_c_still_cleans_up(fake, capsys, monkeypatch) -> None:
    url, webui = fake

    def interrupted(self) -> None:
        assert len(list(webui.folder.iterdir())) == 1  # the test sub-folder exists while the checks run
        raise KeyboardInterrupt

    monkeypatch.setattr(live_check.Checker, "run_api", interrupted)
    assert live_check.main(["--url", url, *FAST]) == 130
    out = capsys.readouterr().out
    assert "INTERRUPTED" in out and rows(out)["clean-up"] == "PASS"
    assert list(webui.folder.iterdir()) == []


def test_waits_for_a_starting_webui(fake, capsys) -> None:
    url, webui = fake
    webui.bugs = {"no_extension"}  # the webui's own API answers, the extension's routes come a moment later
    timer = threading.Timer(1.5, webui.bugs.clear)
    timer.start()
    try:
        assert live_check.main(["--url", url, *FAST, "--quick", "--wait", "30"]) == 0
    finally:
        timer.cancel()
    assert set(rows(capsys.readouterr().out).values()) == {"PASS"}
