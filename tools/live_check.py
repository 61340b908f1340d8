#!/usr/bin/env python3
"""Check an installed sd-webui-hypernet inside a running webui (A1111 1.10, Forge 2, reForge): "check my install".

Run it from the extension folder with the webui's own python, while the webui runs with ``--api``::

    /path/to/webui/venv/bin/python tools/live_check.py --url http://127.0.0.1:7860 [--browser]

It writes three small test hypernetworks into a new sub-folder of the webui's hypernetwork folder (so it
must run on the webui's machine; the sub-folder is removed at the end, also on Ctrl-C), refreshes the
extension's listing, generates tiny images over the HTTP API (64x64, 4 steps, Euler, a fixed seed: 5-30 s
each on a CPU) and compares them pixel by pixel: plain, a tag, ``:0``, a stack, ``self=0:cross=0``,
``start=0.99``, a missing file, a truncated file beside a good one, plain again; then the list, png-info
(paste-back) and convert routes.  ``--browser`` also drives the UI in headless Chromium (Playwright):
the Hypernetworks accordion, the Hypernetworks tab, the Extra Networks cards and the X/Y/Z plot axes.

Prints one row per check (check, expected, got, PASS/FAIL) and exits 0 when every check passes, 1 otherwise
(2 for bad arguments).  Needs only the standard library plus torch (the webui has it) to create the test
files; PIL is used when present; ``--browser`` needs the ``playwright`` package and a Chromium.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import struct
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PREFIX = "/hypernet/v1"
SD1_SIZES = "768,320,640,1280"
CHROMIUM = "/usr/bin/chromium"
XYZ_AXES = ("Hypernet", "Hypernet strength", "Hypernet self strength", "Hypernet cross strength")  # lib_hypernet/webui/xyz.py


# ---------------------------------------------------------------------------- the table
@dataclass
class Row:
    name: str
    expected: str
    got: str
    ok: bool


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    quiet: bool = False

    def add(self, name: str, expected: str, ok: bool, got: str) -> bool:
        self.rows.append(Row(name, expected, got, bool(ok)))
        if not self.quiet:
            print(f"  [{len(self.rows):2d}] {'PASS' if ok else 'FAIL'}  {name}: {got}", file=sys.stderr, flush=True)
        return bool(ok)

    @property
    def failures(self) -> list[Row]:
        return [r for r in self.rows if not r.ok]

    def table(self) -> str:
        head = ("#", "check", "expected", "got", "result")
        cells = [(str(i), r.name, r.expected, r.got, "PASS" if r.ok else "FAIL") for i, r in enumerate(self.rows, 1)]
        widths = [max(len(c[k]) for c in [head, *cells]) for k in range(4)]
        widths[3] = min(widths[3], 70)
        lines = []
        for c in [head, *cells]:
            got = c[3] if len(c[3]) <= widths[3] else c[3][: widths[3] - 1] + "…"
            lines.append("  ".join([c[0].rjust(widths[0]), c[1].ljust(widths[1]), c[2].ljust(widths[2]),
                                    got.ljust(widths[3]), c[4]]).rstrip())
        lines.insert(1, "-" * len(lines[0]))
        return "\n".join(lines)


# ---------------------------------------------------------------------------- HTTP
class Client:
    """JSON over HTTP with urllib; a request never raises for an HTTP status (only for no connection)."""

    def __init__(self, url: str, auth: str | None, timeout: float) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth:
            self.headers["Authorization"] = "Basic " + base64.b64encode(auth.encode("utf-8")).decode("ascii")

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=self.headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        try:
            return status, json.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, ValueError):
            return status, raw.decode("utf-8", "replace")


def describe_error(status: int, data: Any) -> str:
    """``HTTP 500: RuntimeError: …`` from what A1111 (``errors``), Forge (``message``) or FastAPI (``detail``) return."""
    text = ""
    if isinstance(data, dict):
        error, detail = data.get("error"), data.get("detail")
        errors = data.get("errors") or data.get("message")  # A1111 / Forge 2
        if errors and isinstance(errors, str):
            text = f"{error}: {errors}" if error and not errors.startswith(str(error)) else errors
        elif detail:
            text = detail if isinstance(detail, str) else json.dumps(detail)
        elif error:
            text = str(error)
    elif isinstance(data, str):
        text = data.strip()
    text = " ".join(text.split())
    return f"HTTP {status}" + (f": {text[:300]}" if text else "")


# ---------------------------------------------------------------------------- images
@dataclass
class Pixels:
    width: int
    height: int
    channels: int
    data: bytes

    def diff(self, other: Pixels) -> tuple[int, int]:
        """(pixels that differ, largest difference of one channel); every pixel when the sizes differ."""
        if (self.width, self.height, self.channels) != (other.width, other.height, other.channels):
            return max(self.width * self.height, other.width * other.height), 255
        ch, a, b = self.channels, self.data, other.data
        if a == b:
            return 0, 0
        changed, largest = 0, 0
        for i in range(0, len(a), ch):
            d = max(abs(a[i + k] - b[i + k]) for k in range(ch))
            if d:
                changed += 1
                largest = max(largest, d)
        return changed, largest


def decode_image(data: bytes) -> Pixels:
    """RGB pixels: with PIL when the python has it (every format), else a stdlib PNG decoder (8-bit, not interlaced)."""
    try:
        from PIL import Image
    except ImportError:
        return _decode_png(data)
    with Image.open(io.BytesIO(data)) as image:
        rgb = image.convert("RGB")
        return Pixels(rgb.width, rgb.height, 3, rgb.tobytes())


def _decode_png(data: bytes) -> Pixels:
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG (install Pillow to compare other image formats)")
    pos, idat, header = 8, [], None
    while pos + 8 <= len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError("PNG without IHDR")
    width, height, depth, ctype, _, _, interlace = header
    if depth != 8 or interlace or ctype not in (0, 2, 4, 6):
        raise ValueError("PNG kind not supported without Pillow")
    ch = {0: 1, 2: 3, 4: 2, 6: 4}[ctype]
    raw, stride = zlib.decompress(b"".join(idat)), width * ch
    out, prev = bytearray(), bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind_, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for x in range(stride):
            a = line[x - ch] if x >= ch else 0
            b = prev[x]
            c = prev[x - ch] if x >= ch else 0
            if kind_ == 1:
                line[x] = (line[x] + a) & 255
            elif kind_ == 2:
                line[x] = (line[x] + b) & 255
            elif kind_ == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif kind_ == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out += line
        prev = line
    if ch in (1, 2, 4):  # to RGB, as PIL's convert("RGB") does
        rgb = bytearray()
        for i in range(0, len(out), ch):
            rgb += bytes(out[i:i + 3]) if ch == 4 else bytes([out[i]] * 3)
        out = rgb
    return Pixels(width, height, 3, bytes(out))


# ---------------------------------------------------------------------------- generations
@dataclass
class Gen:
    prompt: str
    status: int = 0
    error: str = ""
    image_b64: str = ""
    pixels: Pixels | None = None
    infotext: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.pixels is not None

    def why_not(self) -> str:
        return self.error or "no image"


class Checker:
    def __init__(self, args: argparse.Namespace, report: Report) -> None:
        self.args = args
        self.report = report
        self.client = Client(args.url, args.auth, args.timeout)
        self.token = "livecheck_" + os.urandom(3).hex()
        self.folder: Path | None = None
        self.root: Path | None = None
        self.files: dict[str, Path] = {}
        self.gens: dict[str, Gen] = {}
        self.version = ""

    # -------------------------------------------------------------- helpers
    def name(self, key: str) -> str:
        return f"{self.token}_{key}"

    def tag(self, key: str, args: str = "0.8") -> str:
        return f"<hypernet:{self.name(key)}:{args}>"

    def generate(self, label: str, tags: str) -> Gen:
        prompt = tags + "a cat"
        gen = Gen(prompt)
        payload = {"prompt": prompt, "negative_prompt": "", "seed": self.args.seed, "steps": self.args.steps,
                   "width": 64, "height": 64, "sampler_name": "Euler", "cfg_scale": 7, "batch_size": 1, "n_iter": 1,
                   "save_images": False, "send_images": True}
        t0 = time.monotonic()
        try:
            gen.status, data = self.client.request("POST", "/sdapi/v1/txt2img", payload)
        except (OSError, urllib.error.URLError) as exc:
            gen.error = f"no answer: {exc}"
            data = None
        gen.seconds = time.monotonic() - t0
        if gen.status == 200 and isinstance(data, dict) and data.get("images"):
            gen.image_b64 = str(data["images"][0]).split(",", 1)[-1]
            try:
                gen.pixels = decode_image(base64.b64decode(gen.image_b64))
            except Exception as exc:  # a broken image is a result too
                gen.error = f"HTTP 200 but the image does not decode: {exc}"
            try:
                info = json.loads(data.get("info") or "{}")
                texts = info.get("infotexts") or [info.get("infotext", "")]
                gen.infotext = str(texts[0] or "")
            except (ValueError, AttributeError):
                gen.infotext = str(data.get("info", ""))
            if not self.version and "Version: " in gen.infotext:
                self.version = gen.infotext.rsplit("Version: ", 1)[1].split(",")[0].strip()
        elif not gen.error:
            gen.error = describe_error(gen.status, data) if gen.status != 200 else "HTTP 200 without an image"
        if not self.report.quiet:
            print(f"       generated {label!r} in {gen.seconds:.1f} s: {gen.status or '-'} {gen.error}", file=sys.stderr,
                  flush=True)
        self.gens[label] = gen
        return gen

    def compare(self, check: str, a: str, b: str, same: bool, expected: str) -> bool:
        ga, gb = self.gens[a], self.gens[b]
        if not ga.ok or not gb.ok:
            broken = ga if not ga.ok else gb
            return self.report.add(check, expected, False, f"{broken.prompt!r}: {broken.why_not()}")
        assert ga.pixels is not None and gb.pixels is not None
        changed, largest = ga.pixels.diff(gb.pixels)
        total = ga.pixels.width * ga.pixels.height
        got = "identical" if changed == 0 else f"differs in {changed}/{total} px (max {largest})"
        return self.report.add(check, expected, (changed == 0) == same, got)

    def shorthash(self, key: str) -> str:
        h = hashlib.sha256()
        with open(self.files[key], "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()[:10]

    def listing(self) -> tuple[int, Any]:
        return self.client.request("GET", f"{PREFIX}/hypernetworks")

    # -------------------------------------------------------------- set-up
    def find_folder(self) -> Path | None:
        """The webui's hypernetwork folder: --hn-dir, else the webui's --hypernetwork-dir (cmd-flags), else the listing."""
        if self.args.hn_dir:
            return Path(self.args.hn_dir)
        with contextlib.suppress(OSError, urllib.error.URLError):
            status, flags = self.client.request("GET", "/sdapi/v1/cmd-flags")
            if status == 200 and isinstance(flags, dict) and flags.get("hypernetwork_dir"):
                return Path(flags["hypernetwork_dir"])
        with contextlib.suppress(OSError, urllib.error.URLError):
            status, items = self.listing()
            for item in items if status == 200 and isinstance(items, list) else []:
                path, rel = str(item.get("path", "")), str(item.get("relpath", ""))
                if rel and path.replace("\\", "/").endswith("/" + rel.replace("\\", "/")):
                    return Path(path[: -len(rel) - 1])
        return None

    def make_files(self, folder: Path) -> None:
        """Two test hypernetworks made visibly strong (weights + N(0, noise)), and a truncated copy of the first."""
        if str(REPO) not in sys.path:
            sys.path.insert(0, str(REPO))
        import torch

        import lib_hypernet

        sizes = [int(s) for s in self.args.sizes.split(",") if s.strip()]
        gen = torch.Generator().manual_seed(self.args.seed)
        specs: list[tuple[str, str, dict[str, Any]]] = [
            ("a", ".pt", {"layer_structure": (1, 2, 1), "activation_func": "relu"}),
            ("b", ".safetensors", {"layer_structure": (1, 1.5, 1), "activation_func": "gelu", "is_layer_norm": True}),
        ]
        for i, (key, suffix, options) in enumerate(specs):
            hn = lib_hypernet.create(self.name(key), sizes=sizes, seed=self.args.seed + i,
                                     optional_info="sd-webui-hypernet tools/live_check.py test file (temporary)", **options)
            with torch.no_grad():
                for pair in hn.layers.values():
                    for module in pair:
                        for p in module.parameters():
                            p.add_(torch.randn(p.shape, generator=gen) * self.args.noise)
            path = folder / (self.name(key) + suffix)
            hn.save(path)
            self.files[key] = path
        data = self.files["a"].read_bytes()
        self.files["trunc"] = folder / (self.name("trunc") + ".pt")
        self.files["trunc"].write_bytes(data[: len(data) // 2])

    def setup(self) -> bool:
        r = self.report
        deadline = time.monotonic() + self.args.wait
        while True:  # a webui that is still starting answers its own API before the extension's routes exist
            try:
                status, items = self.listing()
            except (OSError, urllib.error.URLError) as exc:
                if time.monotonic() < deadline:
                    time.sleep(3)
                    continue
                return r.add("webui reachable", f"an answer from {self.args.url}", False,
                             f"{exc} (is the webui running? started with --api? right --url?)")
            if status != 404 or time.monotonic() >= deadline:
                break
            if not r.quiet:
                print(f"       {PREFIX}/hypernetworks: 404, waiting (up to --wait {self.args.wait:g} s)", file=sys.stderr)
            time.sleep(3)
        if status != 200:
            hint = " (the extension is not installed or not enabled)" if status == 404 else ""
            return r.add("extension answers", f"GET {PREFIX}/hypernetworks: 200", False, describe_error(status, items) + hint)
        root = self.find_folder()
        if root is None or not root.is_dir():
            return r.add("hypernetwork folder", "a folder on this machine", False,
                         f"{root or 'not found'}: run this on the webui's machine, or pass --hn-dir")
        self.root = root
        self.folder = root / f"_{self.token}"
        try:
            self.folder.mkdir()
            self.make_files(self.folder)
        except ImportError as exc:
            return r.add("create test files", "3 files in a sub-folder", False,
                         f"{exc}: run this with the webui's python (it has torch)")
        except Exception as exc:
            return r.add("create test files", "3 files in a sub-folder", False, f"{type(exc).__name__}: {exc}")
        mb = sum(p.stat().st_size for p in self.files.values()) / 2**20
        r.add("create test files", "3 files in a sub-folder", True, f"{self.folder} ({mb:.0f} MB)")
        status, data = self.client.request("POST", f"{PREFIX}/refresh")
        count = data.get("count") if isinstance(data, dict) else None
        return r.add("refresh route", f"POST {PREFIX}/refresh: 200", status == 200,
                     f"200, {count} files" if status == 200 else describe_error(status, data))

    # -------------------------------------------------------------- the checks
    def run_api(self) -> None:
        """Each check guarded: a dead server or an odd answer is that check's FAIL, and the next ones still run."""
        quick = [("list route after use", self.list_route), ("convert route on a used file", self.convert)]
        for label, check in quick if self.args.quick else [
            ("plain generation", self.plain),
            ("tag changes the image", self.single),
            (":0 = plain", lambda: self.same_as("zero", self.tag("a", "0"), ":0 = plain", "plain")),
            ("stack a+b", lambda: self.differs("stack", self.tag("a") + self.tag("b"), "stack a+b", "tag",
                                               "differs from the tag alone")),
            ("self=0:cross=0 = plain", lambda: self.same_as("selfcross", self.tag("a", "0.8:self=0:cross=0"),
                                                            "self=0:cross=0 = plain", "plain")),
            ("start=0.99 = plain", lambda: self.same_as("start", self.tag("a", "0.8:start=0.99"),
                                                        f"start=0.99 ({self.args.steps} steps) = plain", "plain")),
            ("missing file", self.missing),
            ("truncated file + good one", lambda: self.same_as("trunc", self.tag("trunc") + self.tag("a"),
                                                               "truncated file + good one", "tag")),
            ("plain again", lambda: self.same_as("plain again", "", "plain again (nothing left on)", "plain")),
            ("list route after use", self.list_route),
            ("png-info paste-back", self.paste_back),  # before the convert: then the name means the .safetensors,
            ("convert route on a used file", self.convert),  # and a pasted tag follows its recorded hash to the .pt
        ]:
            self.guard(label, check)

    def guard(self, label: str, check: Any) -> None:
        try:
            check()
        except Exception as exc:
            self.report.add(label, "no error in the tool", False, f"{type(exc).__name__}: {exc}"[:500])

    def plain(self) -> None:
        gen = self.generate("plain", "")
        self.report.add("plain generation", "HTTP 200, an image", gen.ok,
                        f"200, {gen.pixels.width}x{gen.pixels.height}, {gen.seconds:.0f} s" if gen.pixels else gen.why_not())

    def single(self) -> None:
        tag = self.generate("tag", self.tag("a"))
        self.compare("tag changes the image", "tag", "plain", False, "differs from plain")
        want = f"{self.name('a')}: {self.shorthash('a')}"
        self.report.add("Hypernet hashes", f"infotext has {want}", want in tag.infotext,
                        _field(tag.infotext, "Hypernet hashes")
                        or (tag.why_not() if not tag.ok else "no Hypernet hashes in the infotext"))

    def same_as(self, label: str, tags: str, check: str, other: str) -> None:
        self.generate(label, tags)
        self.compare(check, label, other, True, "bit-identical to " + ("plain" if other.startswith("plain") else
                                                                      "the good tag alone"))

    def differs(self, label: str, tags: str, check: str, other: str, expected: str) -> None:
        self.generate(label, tags)
        self.compare(check, label, other, False, expected)

    def missing(self) -> None:
        r = self.report
        gen = self.generate("missing", self.tag("absent"))
        self.compare("missing file = plain", "missing", "plain", True, "HTTP 200, bit-identical to plain")
        # A1111/Forge's API return no p.comment() text: the infotext (minus the prompt), else the info route (404)
        if "not found" in gen.infotext.replace(gen.prompt, "").lower():
            r.add("missing file: said", "the infotext says 'not found'", True, "infotext says 'not found'")
            return
        status, data = self.client.request("GET", f"{PREFIX}/hypernetworks/{urllib.parse.quote(self.name('absent'))}")
        ok = gen.status == 200 and status == 404
        got = (f"not in the API response (the webui drops generation comments); info route: {describe_error(status, data)}"
               if gen.status == 200 else gen.why_not())
        r.add("missing file: said", "response says so, or info route 404", ok, got)

    def list_route(self) -> None:
        status, items = self.listing()
        if status != 200 or not isinstance(items, list):
            self.report.add("list route after use", "200, lists a, b, trunc (with an error)", False,
                            describe_error(status, items))
            return
        by_name = {str(i.get("name")): i for i in items if isinstance(i, dict)}
        ours = [self.name(k) for k in ("a", "b", "trunc")]
        found = [n for n in ours if n in by_name]
        trunc = by_name.get(self.name("trunc"), {})
        trunc_bad = bool(trunc.get("error")) or trunc.get("ok") is False
        good_ok = all(not by_name.get(self.name(k), {}).get("error") for k in ("a", "b"))
        ok = len(found) == 3 and trunc_bad and good_ok
        got = f"200, {len(items)} files, ours: {len(found)}/3" + (", trunc has an error" if trunc_bad else ", trunc NOT flagged")
        if not good_ok:
            got += ", a/b have errors: " + "; ".join(str(by_name.get(self.name(k), {}).get("error")) for k in ("a", "b"))
        self.report.add("list route after use", "200, lists a, b, trunc (with an error)", ok, got)

    def paste_back(self) -> None:
        r = self.report
        tag = self.gens["tag"]
        if not tag.ok:
            r.add("png-info paste-back", "tag and Hypernet hashes come back", False, f"no image to paste: {tag.why_not()}")
            return
        status, data = self.client.request("POST", "/sdapi/v1/png-info", {"image": "data:image/png;base64," + tag.image_b64})
        if status != 200 or not isinstance(data, dict):
            r.add("png-info paste-back", "tag and Hypernet hashes come back", False, describe_error(status, data))
            return
        params = data.get("parameters") or {}
        info = str(data.get("info") or "")
        want_tag, want_hash = self.tag("a"), self.shorthash("a")
        has = {"tag in info": want_tag in info, "hashes in info": want_hash in info,
               "Prompt": want_tag in str(params.get("Prompt", "")),
               "Hypernet hashes": want_hash in str(params.get("Hypernet hashes", ""))}
        missing = [k for k, v in has.items() if not v]
        r.add("png-info paste-back", "tag and Hypernet hashes come back", not missing,
              "200, prompt tag and hashes in info and parameters" if not missing else "200, missing: " + ", ".join(missing))

    def convert(self) -> None:
        r = self.report
        assert self.folder is not None
        target = self.folder / (self.name("a") + ".safetensors")
        status, data = self.client.request("POST", f"{PREFIX}/convert", {"name": self.name("a")})
        ok = status == 200 and target.is_file()
        got = (f"200, wrote {target.name} ({target.stat().st_size / 2**20:.0f} MB)" if ok
               else describe_error(status, data) if status != 200 else f"200 but no {target.name}")
        if not r.add("convert route on a used file", "200, writes a .safetensors", ok, got) or self.args.quick:
            return
        self.generate("converted", self.tag("a"))
        self.compare("converted file = the .pt", "converted", "tag", True, "bit-identical to the .pt's image")

    # -------------------------------------------------------------- clean-up
    def cleanup(self) -> None:
        if self.folder is None or not self.folder.exists():
            return
        shutil.rmtree(self.folder, ignore_errors=True)
        try:
            status, _ = self.client.request("POST", f"{PREFIX}/refresh")
            _, items = self.listing()
        except (OSError, urllib.error.URLError) as exc:
            self.report.add("clean-up", "folder removed, listing refreshed", False, f"refresh: {exc}")
            return
        left = [i.get("name") for i in items or [] if isinstance(i, dict) and self.token in str(i.get("name"))]
        ok = not self.folder.exists() and status == 200 and not left
        got = ("removed, listing refreshed" if ok
               else f"{'folder still there; ' if self.folder.exists() else ''}refresh {status}, still listed: {left}")
        self.report.add("clean-up", "folder removed, listing refreshed", ok, got)


def _field(infotext: str, key: str) -> str:
    """``key: "value"`` or ``key: value`` from an infotext's parameter line (quoted values may hold commas)."""
    i = infotext.find(key + ": ")
    if i < 0:
        return ""
    rest = infotext[i + len(key) + 2:]
    if rest.startswith('"'):
        end = rest.find('"', 1)
        return rest[: end + 1] if end > 0 else rest
    return rest.split(",")[0]


# ---------------------------------------------------------------------------- browser
BROWSER_HINT = ("pip install playwright into a python, then run this tool with it (the repo's .venv has it: "
                "tools/setup-venv.sh); Chromium: Debian's `apt-get install chromium` (tools/setup-browser.sh) or "
                "`python -m playwright install chromium`")


def run_browser(checker: Checker, chromium: str) -> None:
    """The UI in headless Chromium: accordion row 1 → the prompt's tag, the tab, the cards, the X/Y/Z axes."""
    r = checker.report
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        r.add("browser", "playwright importable", False, f"no playwright in {sys.executable}: {BROWSER_HINT}")
        return
    with sync_playwright() as pw:
        options: dict[str, Any] = {"args": ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"], "headless": True}
        if os.path.exists(chromium):
            options["executable_path"] = chromium
        try:
            browser = pw.chromium.launch(**options)
        except Exception as exc:
            r.add("browser", "Chromium starts", False, f"{str(exc).splitlines()[0]} ({BROWSER_HINT})")
            return
        try:
            BrowserChecks(checker, browser).run()
        finally:
            browser.close()


# Clicks a tab button by its label among the buttons of the tab set `root` (not those of nested tab sets);
# gradio 3 (A1111, reForge) and gradio 4 (Forge 2) both render tab buttons as <button> outside the .tabitem panes.
CLICK_TAB_JS = """([root, label]) => {
  const scope = document.querySelector(root);
  if (!scope) return 'no ' + root;
  const own = b => { const item = b.closest('.tabitem'); return !item || !scope.contains(item); };
  const same = b => b.textContent.trim().toLowerCase() === label.toLowerCase();  // Forge capitalizes by CSS
  const button = [...scope.querySelectorAll('button')].find(b => same(b) && own(b));
  if (!button) return 'no tab ' + label + ' in ' + root;
  button.click();
  return '';
}"""
XYZ_VALUES_JS = """(name) => [...document.querySelectorAll('#txt2img_script_container .block')].some(b => {
  const label = b.querySelector('[data-testid="block-info"]');
  return label && label.innerText.trim() === 'X values' && b.offsetParent !== null && b.innerText.includes(name);
})"""


class BrowserChecks:
    """Each check one row; a timeout or a missing element is that row's FAIL, never the end of the run."""

    TIMEOUT_MS = 120_000

    def __init__(self, checker: Checker, browser: Any) -> None:
        self.checker = checker
        self.report = checker.report
        self.browser = browser
        self.name = checker.name("b")  # the .safetensors: one name, one file

    def run(self) -> None:
        page = self.browser.new_page(viewport={"width": 1400, "height": 1100})
        page.set_default_timeout(self.TIMEOUT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            page.goto(self.checker.args.url.rstrip("/") + "/")
            page.wait_for_selector("#txt2img_prompt textarea")
        except Exception as exc:
            self.report.add("UI loads", "the txt2img prompt appears", False, _first_line(exc))
            return
        checks = (("UI: accordion row 1", "choosing our file puts its tag in the prompt", self.accordion),
                  ("UI: Hypernetworks tab", "its table lists our file", self.tab),
                  ("UI: Extra Networks card", "a card for our file; a click adds its tag", self.cards),
                  ("UI: X/Y/Z plot axes", "the 4 Hypernet axes; 'Hypernet' lists our file", self.xyz))
        for name, expected, check in checks:
            try:
                ok, got = check(page)
            except Exception as exc:
                ok, got = False, _first_line(exc)
            self.report.add(name, expected, ok, got)
        ours = [e for e in errors if "hypernet" in e.lower()]
        self.report.add("UI: no JS errors from us", "no page errors naming hypernet", not ours,
                        f"{len(errors)} page errors, ours: {len(ours)}" + (f": {ours[0][:150]}" if ours else ""))

    # -------------------------------------------------------------- helpers
    def click_tab(self, page: Any, root: str, label: str) -> None:
        problem = page.evaluate(CLICK_TAB_JS, [root, label])
        if problem:
            raise RuntimeError(problem)

    def to_txt2img(self, page: Any) -> None:
        """The txt2img tab, its "Generation" pane (the Extra Networks panes hide the scripts and accordions)."""
        self.click_tab(page, "#tabs", "txt2img")
        with contextlib.suppress(RuntimeError):
            self.click_tab(page, "#txt2img_extra_tabs", "Generation")

    def choose(self, page: Any, elem_id: str, text: str, exact: bool = False) -> str:
        """Pick the option containing (``exact``: being) ``text`` of a gradio 3/4 dropdown (typing filters it)."""
        box = page.locator(f"#{elem_id} input").first
        box.click()
        box.fill(text)
        options = page.locator(f"#{elem_id} ul li, ul.options li")  # gradio 3 / gradio 4
        # both gradios label each option with aria-label = its text
        option = options.and_(page.locator(f"li[aria-label={json.dumps(text)}]")) if exact else options.filter(has_text=text)
        option.first.click()  # waits for the list
        return str(box.input_value())

    def set_prompt(self, page: Any, text: str) -> None:
        page.fill("#txt2img_prompt textarea", text)

    def wait_prompt_has(self, page: Any, text: str, timeout: int = 30_000) -> tuple[bool, str]:
        try:
            page.wait_for_function("(t) => document.querySelector('#txt2img_prompt textarea').value.includes(t)",
                                   arg=text, timeout=timeout)
        except Exception:
            pass
        prompt = page.evaluate("() => document.querySelector('#txt2img_prompt textarea').value")
        return text in prompt, prompt

    def wait_text(self, page: Any, selector: str, text: str, timeout: int) -> bool:
        try:
            page.wait_for_function("([s, t]) => { const e = document.querySelector(s); return !!e && e.innerText.includes(t); }",
                                   arg=[selector, text], timeout=timeout)
            return True
        except Exception:
            return False

    # -------------------------------------------------------------- checks
    def accordion(self, page: Any) -> tuple[bool, str]:
        self.to_txt2img(page)
        self.set_prompt(page, "a cat")
        panel = "#script_txt2img_hypernetworks_panel"  # A1111's Script.elem_id("panel"): script_{tab}_{title}_panel
        if not page.locator(panel).count():
            return False, f"no {panel} in the page"
        page.locator(f"{panel} .label-wrap").first.click()
        page.locator("#txt2img_sd_hypernet_name_0").wait_for(state="visible")
        page.locator("#txt2img_sd_hypernet_refresh").first.click()  # our files came after the page was built
        page.wait_for_function("(n) => document.querySelector('#txt2img_sd_hypernet_config textarea').value.includes(n)",
                               arg=self.name)
        self.choose(page, "txt2img_sd_hypernet_name_0", self.name)
        ok, prompt = self.wait_prompt_has(page, f"<hypernet:{self.name}:")
        return ok, f"prompt: {prompt!r}"

    def tab(self, page: Any) -> tuple[bool, str]:
        self.click_tab(page, "#tabs", "Hypernetworks")
        page.locator("#hypernet_lib_refresh").first.click()
        ok = self.wait_text(page, "#hypernet_lib_table", self.name, 60_000)
        return ok, "lists our file" if ok else "does NOT list our file (after its Refresh)"

    def cards(self, page: Any) -> tuple[bool, str]:
        self.click_tab(page, "#tabs", "txt2img")
        self.set_prompt(page, "a cat")
        self.click_tab(page, "#txt2img_extra_tabs", "Hypernetworks")
        card = f'#txt2img_hypernetworks_cards .card[data-name="{self.name}"]'
        try:
            page.locator(card).first.wait_for(state="attached", timeout=15_000)
        except Exception:
            page.locator("#txt2img_hypernetworks_extra_refresh").first.click()
            page.locator(card).first.wait_for(state="attached", timeout=60_000)
        count = page.evaluate("() => document.querySelectorAll('#txt2img_hypernetworks_cards .card').length")
        page.locator(card).first.click()
        ok, prompt = self.wait_prompt_has(page, f"<hypernet:{self.name}")
        return ok, f"{count} cards; a click → prompt {prompt!r}"

    def xyz(self, page: Any) -> tuple[bool, str]:
        self.to_txt2img(page)
        self.choose(page, "script_list", "X/Y/Z plot")
        axis = "script_txt2img_xyz_plot_x_type"
        page.locator(f"#{axis}").wait_for(state="visible")
        box = page.locator(f"#{axis} input").first
        box.click()
        page.locator(f"#{axis} ul li, ul.options li").first.wait_for(state="visible")
        offered = page.evaluate("() => [...document.querySelectorAll('li[aria-label]')].map(li => li.getAttribute('aria-label'))")
        box.blur()
        missing = [a for a in XYZ_AXES if a not in offered]
        if missing:
            return False, f"{len(offered)} axes; missing: {', '.join(missing)}"
        value = self.choose(page, axis, "Hypernet", exact=True)  # also a prefix of the strength axes
        fill = page.locator("#txt2img_script_container #xyz_grid_fill_x_tool_button").first
        fill.wait_for(state="visible")
        fill.click()
        try:  # the "X values" dropdown (no elem_id) shows the filled choices as tokens
            page.wait_for_function(XYZ_VALUES_JS, arg=self.name, timeout=30_000)
            listed = True
        except Exception:
            listed = False
        return listed and value == "Hypernet", (f"all 4 axes; X = {value!r}, its values "
                                                f"{'list' if listed else 'do NOT list'} our file")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:200]


# ---------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="live_check.py", description=__doc__.split("\n\n")[0] + " See the module docstring / README 'Check your install'.",
        epilog="Exit status: 0 all checks pass, 1 a check failed (or the webui could not be reached), 2 bad arguments.")
    parser.add_argument("--url", default="http://127.0.0.1:7860", help="the webui (default: %(default)s); it needs --api")
    parser.add_argument("--browser", action="store_true", help="also drive the UI in headless Chromium (needs playwright)")
    parser.add_argument("--hn-dir", help="the webui's hypernetwork folder (default: asked from the webui)")
    parser.add_argument("--auth", metavar="USER:PASSWORD", help="HTTP Basic login (the webui's --api-auth)")
    parser.add_argument("--sizes", default=SD1_SIZES,
                        help="module widths of the test hypernetworks (default SD1: %(default)s; SDXL: 640,1280,2048)")
    parser.add_argument("--steps", type=int, default=4, help="sampling steps per image (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1234, help="seed of every image and of the test files (default: %(default)s)")
    parser.add_argument("--noise", type=float, default=0.05, help="N(0, NOISE) added to the test weights (default: %(default)s)")
    parser.add_argument("--wait", type=float, default=60,
                        help="seconds to wait for a starting webui and the extension's routes (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per HTTP request (default: %(default)s)")
    parser.add_argument("--chromium", default=CHROMIUM, help="Chromium for --browser (default: %(default)s, else Playwright's)")
    parser.add_argument("--quick", action="store_true", help="no image generations: files and routes (and --browser) only")
    parser.add_argument("--quiet", action="store_true", help="only the table (no progress lines on stderr)")
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error("--steps must be at least 2 (start=0.99 must leave every step out)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = Report(quiet=args.quiet)
    checker = Checker(args, report)

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)  # also where a shell started us ignoring it
    interrupted = False
    if not args.quiet:
        print(f"sd-webui-hypernet live check against {args.url} (test files: {checker.token}_*)", file=sys.stderr, flush=True)
    try:
        try:
            if checker.setup():
                checker.run_api()
                if args.browser:
                    run_browser(checker, args.chromium)
            elif args.browser:
                report.add("browser", "after the API checks", False, "skipped: the set-up failed")
        except Exception as exc:  # e.g. the webui went away during the set-up: a row, then the clean-up
            report.add("live check", "no error in the tool", False, f"{type(exc).__name__}: {exc}"[:500])
        finally:
            checker.cleanup()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
    host = f", webui version {checker.version}" if checker.version else ""
    print(f"\nsd-webui-hypernet live check: {args.url}{host}")
    if checker.root is not None:
        print(f"hypernetwork folder: {checker.root} (test files in _{checker.token}/, removed)")
    print(report.table())
    if report.failures:
        print()
    for i, row in enumerate(report.rows, 1):
        if not row.ok:
            print(f"FAIL {i} {row.name}: {row.got}")
    passed = len(report.rows) - len(report.failures)
    print(f"\n{passed}/{len(report.rows)} checks passed" + (" — INTERRUPTED" if interrupted else ""))
    if interrupted:
        return 130
    return 0 if report.rows and not report.failures else 1


if __name__ == "__main__":
    sys.exit(main())
