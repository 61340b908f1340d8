"""Helpers shared by the lib_hypernet tests (imported through ``tests/conftest.py``'s sys.path)."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import pickle
import re
import shutil
import stat
import subprocess
import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

# The one repository root of the tests (test files sit one or two folders below tests/: never count parents there).
REPO_ROOT = Path(__file__).resolve().parents[2]
TESTS_DIR = REPO_ROOT / "tests"
HELPERS_DIR = TESTS_DIR / "helpers"
WEBUI_STUB_DIR = TESTS_DIR / "webui_stub"  # the A1111 stand-in (see its README)
FORGE_STUB_DIR = TESTS_DIR / "forge_stub"  # the Forge 2 / reForge stand-ins
# The A1111-made golden fixtures are part of the repository (tests/fixtures/a1111, see its README).
FIXTURES_DIR = TESTS_DIR / "fixtures" / "a1111"


HYPERNET_JS = REPO_ROOT / "javascript" / "hypernet.js"
# A page's prompt box as javascript/hypernet.js finds it, with a fake gradioApp()/updateInput() (node has no DOM).
FAKE_PROMPT_BOX = """
const box = {value: %s, dispatched: 0};
globalThis.gradioApp = () => ({querySelector: (sel) => sel === "#" + %s + "_prompt > label > textarea" ? box : null});
globalThis.updateInput = (t) => { t.dispatched += 1; };
"""


def run_node(script: str, *, prompt: str | None = None, tab: str = "txt2img") -> Any:
    """Run ``script`` with node after ``const sdHypernet = require(javascript/hypernet.js)``; the JSON it prints.

    With ``prompt``, ``box`` is ``tab``'s prompt box holding it (see :data:`FAKE_PROMPT_BOX`).
    """
    node = shutil.which("node")
    assert node, "node (v18+) is needed for the JavaScript tests"
    setup = f"const sdHypernet = require({json.dumps(str(HYPERNET_JS))});\n"
    if prompt is not None:
        setup += FAKE_PROMPT_BOX % (json.dumps(prompt), json.dumps(tab))
    result = subprocess.run([node, "-e", setup + script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def require_fixtures() -> Path:
    """The fixture folder; a missing or incomplete one is an error (never a skip)."""
    for name in ("manifest.json", "expected.safetensors"):
        if not (FIXTURES_DIR / name).is_file():
            raise FileNotFoundError(f"A1111 golden fixture {FIXTURES_DIR / name} is missing: the checkout is incomplete")
    return FIXTURES_DIR


# The root conftest's ``copy_fixtures(folder, *names)``: copies of golden fixture files in ``folder`` (made when
# missing); returns the first copy's path.
CopyFixtures = Callable[..., Path]


def load_manifest() -> dict[str, Any]:
    with open(require_fixtures() / "manifest.json", encoding="utf-8") as f:
        return json.load(f)


def case_params() -> list[Any]:
    """Case names of the fixture manifest, for ``pytest.mark.parametrize``."""
    return [case["case"] for case in load_manifest()["cases"]]


def stack_params() -> list[Any]:
    return [stack["stack"] for stack in load_manifest()["stacks"]]


def fixture_pt_params() -> list[Any]:
    """File names of every ``.pt`` in the fixture folder."""
    names = sorted(p.name for p in require_fixtures().glob("*.pt"))
    if not names:
        raise FileNotFoundError(f"no .pt fixtures in {FIXTURES_DIR}")
    return names


# ---------------------------------------------------------------------------- comparisons
def typed(value: Any) -> Any:
    """``value`` with every scalar tagged by its exact type, so ``1 != 1.0`` and ``True != 1`` compare unequal."""
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [typed(v) for v in value])
    if isinstance(value, dict):
        return ("dict", {k: typed(v) for k, v in value.items()})
    return (type(value).__name__, value)


def module_repr(layer: torch.nn.Module) -> str:
    """A module in the manifest's spelling: ``Linear(8, 16)``, ``LayerNorm(16)``, ``Dropout(p=0.3)``, ``ReLU``."""
    if isinstance(layer, torch.nn.Linear):
        return f"Linear({layer.in_features}, {layer.out_features})"
    if isinstance(layer, torch.nn.LayerNorm):
        return f"LayerNorm({', '.join(str(n) for n in layer.normalized_shape)})"
    if isinstance(layer, torch.nn.Dropout):
        return f"Dropout(p={layer.p})"
    if isinstance(layer, torch.nn.PReLU):
        return f"PReLU(num_parameters={layer.num_parameters})"
    return type(layer).__name__


def module_reprs(module: torch.nn.Module) -> list[str]:
    return [module_repr(layer) for layer in module.linear]


def assert_hypernetworks_equal(a: Any, b: Any, *, check_name: bool = True) -> None:
    """Same metadata (with exact Python types), same widths, same module layout, every tensor ``torch.equal``."""
    meta_a, meta_b = a.metadata(), b.metadata()
    if not check_name:
        meta_a.pop("name")
        meta_b.pop("name")
    assert typed(meta_a) == typed(meta_b)
    assert a.widths == b.widths
    for width in a.widths:
        for module_a, module_b in zip(a.layers[width], b.layers[width]):
            assert module_reprs(module_a) == module_reprs(module_b)
            sd_a, sd_b = module_a.state_dict(), module_b.state_dict()
            assert list(sd_a) == list(sd_b)
            for key in sd_a:
                assert sd_a[key].dtype == sd_b[key].dtype, key
                assert torch.equal(sd_a[key], sd_b[key]), f"width {width} {key}"


def raw_torch_load(path: str | os.PathLike[str]) -> Any:
    return torch.load(path, map_location="cpu", weights_only=True)


# ---------------------------------------------------------------------------- malicious pickles
class TouchViaSystem:
    """Unpickling this runs ``os.system('touch <marker>')`` (global ``posix.system``)."""

    def __init__(self, marker: str | os.PathLike[str]) -> None:
        self.marker = os.fspath(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch '{self.marker}'",))


class TouchViaOpen:
    """Unpickling this creates the marker file with ``open(marker, 'w')`` (global ``io.open``)."""

    def __init__(self, marker: str | os.PathLike[str]) -> None:
        self.marker = os.fspath(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


SYSTEM_GLOBALS = {"posix.system", "os.system", "nt.system"}
OPEN_GLOBALS = {"io.open", "builtins.open", "_io.open"}


# ---------------------------------------------------------------------------- A1111 1.10.1 safe loader
# The zip entry names A1111 1.10.1's modules/safe.py accepts (its regex, reproduced verbatim).
A1111_ALLOWED_ZIP_NAMES = re.compile(r"^([^/]+)/((data/\d+)|version|byteorder|.data/serialization_id|(data\.pkl))$")
_A1111_DATA_PKL = re.compile(r"^([^/]+)/data\.pkl$")

# The globals its restricted unpickler resolves (spec §3.6); anything else is forbidden.
_A1111_ALLOWED: dict[str, set[str]] = {
    "collections": {"OrderedDict"},
    "torch._utils": {"_rebuild_tensor_v2", "_rebuild_parameter", "_rebuild_device_tensor_from_numpy"},
    "torch": {
        "FloatStorage", "HalfStorage", "IntStorage", "LongStorage", "DoubleStorage", "ByteStorage", "float32",
        "BFloat16Storage",
    },
    "torch.nn.modules.container": {"ParameterDict"},
    "numpy.core.multiarray": {"scalar", "_reconstruct"},
    "numpy": {"dtype", "ndarray"},
    "_codecs": {"encode"},
    "__builtin__": {"set"},
}


class A1111Rejected(Exception):
    """The emulated A1111 1.10.1 safe loader refused the file."""


class _A1111Unpickler(pickle.Unpickler):
    """Our own equivalent of A1111's RestrictedUnpickler: real objects for allowed names, refusal otherwise."""

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise A1111Rejected(f"persistent id {pid!r} is not a storage")
        return torch.storage.TypedStorage(_internal=True)

    def find_class(self, module: str, name: str) -> Any:
        if name not in _A1111_ALLOWED.get(module, set()):
            raise A1111Rejected(f"global '{module}/{name}' is forbidden")
        if module == "__builtin__":
            return set
        if module == "_codecs":
            import _codecs

            return _codecs.encode
        if module == "collections":
            return collections.OrderedDict
        if module.startswith("numpy"):
            import numpy

            target: Any = numpy
            for part in module.split(".")[1:]:
                target = getattr(target, part)
            return getattr(target, name)
        target = torch
        for part in module.split(".")[1:]:
            target = getattr(target, part)
        return getattr(target, name)


def a1111_safe_check(path: str | os.PathLike[str]) -> str:
    """``"ok"`` if A1111 1.10.1's restricted loader (safe unpickling on) accepts the file, else ``"rejected: …"``.

    Zip files: every entry name must match A1111's regex and there must be exactly one
    ``*/data.pkl``, which must unpickle with the allow-list.  Other files (torch's legacy
    format) must yield five consecutive pickles through the restricted unpickler.
    """
    path = os.fspath(path)
    base = os.path.basename(path)
    try:
        try:
            archive = zipfile.ZipFile(path)
        except zipfile.BadZipFile:
            archive = None
        if archive is not None:
            with archive:
                names = archive.namelist()
                for name in names:
                    if not A1111_ALLOWED_ZIP_NAMES.match(name):
                        raise A1111Rejected(f"bad file inside {base}: {name}")
                pickles = [n for n in names if _A1111_DATA_PKL.match(n)]
                if len(pickles) != 1:
                    raise A1111Rejected(f"expected one data.pkl in {base}, found {len(pickles)}")
                with archive.open(pickles[0]) as f:
                    _A1111Unpickler(f).load()
        else:
            with open(path, "rb") as f:
                unpickler = _A1111Unpickler(f)
                for _ in range(5):
                    unpickler.load()
    except Exception as exc:
        return f"rejected: {exc}"
    return "ok"


@contextlib.contextmanager
def fifo_rescuer(fifos: list[str], after_s: float = 20.0) -> Iterator[list[str]]:
    """Unblocks a reader stuck opening one of ``fifos`` (a writer's open ends its wait) after ``after_s`` seconds,
    so a start-up that blocks fails the test instead of hanging it; yields the FIFOs it had to open."""
    rescued: list[str] = []
    done = threading.Event()

    def rescue() -> None:
        if done.wait(after_s):
            return
        while not done.is_set():
            for fifo in fifos:
                try:
                    if not stat.S_ISFIFO(os.stat(fifo).st_mode):
                        continue  # replaced by a saved cache
                    fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # succeeds only while a reader waits
                except OSError:
                    continue
                os.close(fd)
                rescued.append(fifo)
            done.wait(0.05)

    thread = threading.Thread(target=rescue, daemon=True)
    thread.start()
    try:
        yield rescued
    finally:
        done.set()
        thread.join()
