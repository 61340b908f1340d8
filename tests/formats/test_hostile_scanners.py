"""The attack classes that got past trusted pickle scanners (picklescan, modelscan, fickling) and torch's own
``weights_only`` loader (CVE-2025-32434, CVE-2026-24747), each through the public entry points (issue 15 item 6).

Where it is cheap, each test first shows that the attack is real (Python's pickle or zipfile, or torch, reads
the file differently, or a payload would run), then that lib_hypernet refuses it with nothing executed.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import pickletools
import struct
import time
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest
import torch
from hn_testutil import TouchViaSystem
from hostile_util import (
    Entry,
    LegacyStorage,
    LegacyTensor,
    assert_refused,
    build_zip,
    data_pkl_name,
    good_raw,
    hn_with_value,
    legacy_file,
    legacy_hn,
    legacy_pickle_starts,
    memo_doubling,
    op_call,
    op_get,
    op_global,
    op_put,
    op_storage,
    op_str,
    op_tensor,
    run_limited,
    torch_bytes,
    zip_entries,
    zip_with_pickle,
)

import lib_hypernet
from lib_hypernet.library.description import describe_file

BOTH = (lib_hypernet.check_torch_file, lib_hypernet.load)
STORAGE0_NUMEL = 128  # good_raw()'s first weight, 16 x 8 floats: storage "0" of its zip


def _write(tmp_path: Path, data: bytes, name: str = "crafted.pt") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _refused(path: Path, *keywords: str) -> lib_hypernet.HypernetError:
    return assert_refused(path, *keywords, calls=BOTH)


def _unsafe(path: Path, global_name: str | None, *keywords: str) -> None:
    err = assert_refused(path, *keywords, calls=BOTH, error=lib_hypernet.UnsafeFileError)
    assert isinstance(err, lib_hypernet.UnsafeFileError) and err.global_name == global_name
    desc = describe_file(path)
    assert desc.safe is False and not desc.ok


def _torch_refuses(data: bytes, *words: str) -> None:
    """torch (the version installed here) refuses ``data`` with weights_only=True, saying one of ``words``."""
    with pytest.raises((pickle.UnpicklingError, RuntimeError)) as info:
        torch.load(io.BytesIO(data), weights_only=True)
    assert any(w in str(info.value) for w in words), str(info.value)[-500:]


class _Recorder(pickle.Unpickler):
    """Python's own unpickler, but every global resolves to a recorder: shows what a stream would call."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def find_class(self, module: str, name: str) -> Any:
        def record(*args: Any) -> Any:
            self.calls.append((f"{module}.{name}", args))
            return OrderedDict()  # something the rest of a torch.save pickle can fill

        return record

    def persistent_load(self, pid: Any) -> Any:
        return None  # a storage: irrelevant here


# ============================================================================ 1. the checker and torch read other bytes
@pytest.mark.parametrize("flag", [0x1, 0x20, 0x40, 0x2000], ids=["encrypted", "patched", "strong_encryption",
                                                                  "masked_directory"])
@pytest.mark.parametrize("member", ["data.pkl", "data/0"])
def test_zip_flag_bits(flag: int, member: str, tmp_path: Path) -> None:
    """Guard. A member with a flag some reader skips or decodes: a zipfile-based scanner cannot read it, torch may."""
    entries = zip_entries(torch_bytes(good_raw(), zip_format=True))
    entry = next(e for e in entries if e.name.endswith(b"/" + member.encode()))
    entry.flags |= flag
    path = _write(tmp_path, build_zip(entries))
    with zipfile.ZipFile(path) as archive:  # the readers disagree (or cannot read the member at all)
        python_reads = True
        try:
            archive.read(entry.name.decode())
        except (RuntimeError, NotImplementedError):
            python_reads = False
    torch_reads = True
    try:
        torch.load(path, weights_only=True)
    except RuntimeError:
        torch_reads = False
    assert not (python_reads and torch_reads)
    _refused(path, f"flags {entry.flags:#x}")


def _torchscript_zip(extra: dict[str, bytes]) -> bytes:
    entries = zip_entries(torch_bytes(good_raw(), zip_format=True))
    prefix = entries[0].name.split(b"/", 1)[0]
    return build_zip(entries + [Entry(prefix + b"/" + name.encode(), data) for name, data in extra.items()])


def test_torchscript_archive_is_refused_as_unsafe(tmp_path: Path) -> None:
    """Fails on 966791b (check_torch_file accepted it). A benign data.pkl plus a ``constants.pkl`` record: torch.load
    takes the file for a TorchScript archive and, before torch 2.6, passed it to torch.jit.load even with
    weights_only=True (CVE-2025-32434), so code in ``code/`` runs; a scanner of data.pkl sees nothing wrong."""
    data = _torchscript_zip({"constants.pkl": pickle.dumps((), protocol=2),
                             "code/__torch__.py": b"def forward(self):\n    return torch.ones(1)\n"})
    _torch_refuses(data, "TorchScript")  # torch recognises the archive (2.13 refuses; < 2.6 would jit.load it)
    _unsafe(_write(tmp_path, data), None, "TorchScript")


@pytest.mark.parametrize("name", ["extra.bin", "code/__torch__.py", "data/0/x", ".data/other", "DATA.pkl2"])
def test_records_torch_save_never_writes(name: str, tmp_path: Path) -> None:
    """Fails on 966791b (accepted). Only the records torch.save writes are accepted: what else a reader might
    interpret (archive formats keyed on record names) is not the checker's to guess."""
    _refused(_write(tmp_path, _torchscript_zip({name: b"x"})), "never writes")


def test_torch_save_records_still_load(fixtures_dir: Path, tmp_path: Path) -> None:
    """Positive control for the record list: current torch, the A1111 fixtures and our own writer all load."""
    path = _write(tmp_path, torch_bytes(good_raw(), zip_format=True))
    with zipfile.ZipFile(path) as archive:
        assert {n.split("/", 1)[1] for n in archive.namelist()} >= {".format_version", ".storage_alignment",
                                                                       ".data/serialization_id", "byteorder"}
    assert lib_hypernet.load(path).widths == [8]
    for fixture in sorted(fixtures_dir.glob("*.pt*")):
        assert lib_hypernet.check_torch_file(fixture) == "zip"


# ============================================================================ 2. the pickle parsed differently
@pytest.mark.parametrize(("opcodes", "python_reads"), [(b"I0x10\n", 16), (b"I01\n", True), (b"I1_0\n", 10),
                                                        (b"I 16\n", 16), (b"L0x10L\n", 16)],
                         ids=["int_hex", "int_01_is_true", "int_underscore", "int_space", "long_hex"])
@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_text_integers(opcodes: bytes, python_reads: Any, zip_format: bool, tmp_path: Path) -> None:
    """Guard. Python reads INT/LONG with int(text, 0) (hex, underscores, "01" = True), a scanner parsing decimal
    reads another number; torch's weights-only loader does not implement them, and neither do we."""
    value = pickle.loads(b"\x80\x02" + opcodes + b".")
    assert value == python_reads and type(value) is type(python_reads)
    data = hn_with_value(zip_format, lambda base: opcodes)
    if zip_format:
        _torch_refuses(data, "Unsupported operand")
    _refused(_write(tmp_path, data), "opcode")


@pytest.mark.parametrize("opcodes", [b"K\x05p900\n", b"K\x05\x94", b"K\x05q\x05g5\n"], ids=["PUT", "MEMOIZE", "GET"])
def test_text_memo_and_memoize(opcodes: bytes, tmp_path: Path) -> None:
    """Guard. PUT/GET take a decimal line and MEMOIZE (protocol 4) an implicit index: a scanner that tracks one
    kind of memo write and not the other resolves references to other values than Python does."""
    assert pickle.loads(b"\x80\x04K\x07\x94K\x05\x94h\x01h\x00\x86.") == (5, 7)  # MEMOIZE numbers by memo size
    _refused(_write(tmp_path, hn_with_value(True, lambda base: opcodes)), "opcode")


STACK_GLOBALS = {
    # picklescan read STACK_GLOBAL's names only from the two preceding string opcodes, not from the memo
    "names_from_memo": op_str("posix") + op_put(0) + op_str("system") + op_put(1) + b"\x8c\x01x" + op_get(0)
    + op_get(1) + b"\x93",
    "non_string_names": b"K\x01K\x02\x93",
    "allowed_name": op_str("collections") + op_str("OrderedDict") + b"\x93",
}


@pytest.mark.parametrize("name", sorted(STACK_GLOBALS))
@pytest.mark.parametrize("proto", [2, 4])
def test_stack_global(name: str, proto: int, tmp_path: Path) -> None:
    """Guard. STACK_GLOBAL takes its names from the stack, wherever they came from; the opcode is refused
    (torch.save's protocol 2 never writes it), whatever its arguments."""
    stream = bytes([0x80, proto]) + STACK_GLOBALS[name] + b")R."
    if name == "names_from_memo":  # the attack is real: Python resolves the memo'd names to posix.system
        recorder = _Recorder(stream)
        recorder.load()
        assert recorder.calls == [("posix.system", ())]
    _refused(_write(tmp_path, zip_with_pickle(stream)), "protocol other than 2" if proto != 2 else "opcode")


def _payload(marker: Path) -> bytes:
    return op_call("posix", "system", op_str(f"touch '{marker}'"))


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_payload_before_a_broken_opcode(zip_format: bool, tmp_path: Path) -> None:
    """Guard. A payload followed by garbage: a scanner that lists opcodes first (pickletools.genops) fails on the
    garbage and reports nothing, while Python's unpickler has run the payload by then.  We read in order and
    refuse at the global, as unsafe."""
    marker = tmp_path / "marker"
    data = torch_bytes(good_raw(optional_info="REPLACE_ME"), zip_format)
    pkl = zip_entries(data)[data_pkl_name(zip_entries(data))].data if zip_format else data
    marker_op = op_str("REPLACE_ME")
    broken = pkl[:pkl.index(marker_op)] + _payload(marker) + b"\xff" + pkl[pkl.index(marker_op) + len(marker_op):]
    if zip_format:
        entries = zip_entries(data)
        entries[data_pkl_name(entries)] = Entry(entries[data_pkl_name(entries)].name, broken)
        data = build_zip(entries)
        with pytest.raises(ValueError):
            list(pickletools.genops(broken))
        recorder = _Recorder(broken)
        with pytest.raises(pickle.UnpicklingError):
            recorder.load()
        assert ("posix.system", (f"touch '{marker}'",)) in recorder.calls  # the payload ran before the error
    else:
        data = broken
    _unsafe(_write(tmp_path, data), "posix.system", "posix.system")
    assert not marker.exists()


@pytest.mark.parametrize("which", [0, 1, 2, 4], ids=["magic", "protocol", "sys_info", "storage_keys"])
def test_payload_in_each_legacy_pickle(which: int, tmp_path: Path) -> None:
    """Guard. A legacy file is five pickles read in turn; a payload in any of them (not only the object) is found."""
    marker = tmp_path / "marker"
    data = torch_bytes(good_raw(), zip_format=False)
    starts = legacy_pickle_starts(data)
    evil = b"\x80\x02" + _payload(marker) + b"."
    path = _write(tmp_path, data[:starts[which]] + evil + data[starts[which + 1]:])
    _unsafe(path, "posix.system", "posix.system")
    assert not marker.exists()


# ============================================================================ 3. gadgets in "allowed" namespaces
def _gadgets(marker: Path) -> dict[str, bytes]:
    """Protocol-2 streams whose first global is the key; each would touch ``marker`` if unpickled by Python."""
    cmd = f"touch '{marker}'"
    evals = f"__import__('os').system({cmd!r})"
    inner = torch_bytes(TouchViaSystem(marker), zip_format=True)
    return {
        "operator.methodcaller": op_call("operator", "methodcaller", op_str("system"), op_str(cmd))
        + b"(" + op_call("importlib", "import_module", op_str("os")) + b"tR",
        "functools.partial": op_call("functools", "partial", op_global("os", "system"), op_str(cmd)) + b")R",
        "pkgutil.resolve_name": op_call("pkgutil", "resolve_name", op_str("os:system")) + b"(" + op_str(cmd) + b"tR",
        "importlib.import_module": op_call("importlib", "import_module", op_str("os")) + op_put(0)
        + op_call("builtins", "getattr", op_get(0), op_str("system")) + b"(" + op_str(cmd) + b"tR",
        "torch.storage._load_from_bytes": op_call(  # torch.load(weights_only=False) of bytes inside the file
            "torch.storage", "_load_from_bytes", op_call("_codecs", "encode", op_str(inner.decode("latin1")),
                                                         op_str("latin1"))),
        "numpy.f2py.crackfortran.myeval": op_call("numpy.f2py.crackfortran", "myeval", op_str(evals)),
        "__builtin__.eval": op_call("__builtin__", "eval", op_str(evals)),
    }


NAME_ONLY_GADGETS = [
    ("torch._dynamo.eval_frame", "OptimizedModule"),  # torch.* but not one of the few torch names allowed
    ("torch.serialization", "load"),
    ("numpy.core.multiarray", "_reconstruct"),  # allowed by A1111's loader, not needed by a hypernetwork
    ("torch._utils", "_rebuild_tensor_v2 "),  # allowed names with a byte more or less
    ("torch", "FloatStorage\r"),
    ("collections", "OrderedDict.fromkeys"),
    ("builtins", "set.__init__"),
]


@pytest.mark.parametrize("gadget", sorted(_gadgets(Path("m"))))
def test_gadget_in_an_allowed_namespace(gadget: str, tmp_path: Path) -> None:
    """Guard. Each payload is real (Python's pickle runs it and the marker appears); lib_hypernet refuses it as
    unsafe, naming the global, and nothing runs."""
    marker = tmp_path / "marker"
    stream = b"\x80\x02" + _gadgets(marker)[gadget] + b"."
    pickle.loads(stream)  # the payload: creates the marker file, nothing more
    assert marker.exists()
    marker.unlink()
    _unsafe(_write(tmp_path, zip_with_pickle(stream)), gadget, gadget)
    assert not marker.exists()


@pytest.mark.parametrize(("module", "name"), NAME_ONLY_GADGETS, ids=[repr(f"{m}.{n}") for m, n in NAME_ONLY_GADGETS])
def test_names_near_the_allow_list(module: str, name: str, tmp_path: Path) -> None:
    """Guard. The allow-list is exact (module, name) pairs: no module prefix, attribute path or stray byte passes."""
    stream = b"\x80\x02" + op_call(module, name) + b"."
    _unsafe(_write(tmp_path, zip_with_pickle(stream)), f"{module}.{name}", "global")


def test_build_shadowing_a_method_of_the_raw_dict(tmp_path: Path) -> None:
    """Fails on 966791b (check_torch_file accepted it; load() raised TypeError). BUILD on an OrderedDict sets
    instance attributes in torch (2.13 included): {"get": _codecs.encode} makes the decoder's
    raw.get(key, default) call encode()."""
    import _codecs

    raw = OrderedDict(good_raw())
    raw.get = _codecs.encode  # type: ignore[method-assign]
    path = tmp_path / "build_get.pt"
    torch.save(raw, path)
    assert torch.load(path, weights_only=True).get is _codecs.encode  # torch sets it
    _refused(path, "BUILD")


@pytest.mark.parametrize("attribute", ["keys", "items", "__class__"])
def test_build_on_a_state_dict(attribute: str, tmp_path: Path) -> None:
    """Fails on 966791b (check_torch_file accepted). Only _metadata, the one attribute torch.save writes, may be set."""
    raw = good_raw()
    state = raw[8][0]
    state.__dict__[attribute] = OrderedDict  # an allowed global, as the value torch would set
    path = tmp_path / "build_state.pt"
    torch.save(raw, path)
    _refused(path, "BUILD")


@pytest.mark.parametrize("target", ["tensor", "list", "storage"])
def test_build_on_other_objects(target: str, tmp_path: Path) -> None:
    """Guard. torch's BUILD on a tensor calls tensor.set_(*state) (a new storage, offset, size, stride); BUILD on
    anything but an OrderedDict is refused."""
    state = b"(" + op_storage("0", STORAGE0_NUMEL) + b"K\x00(J" + struct.pack("<i", 1 << 20) + b"t(K\x01tt"
    push = {"tensor": op_tensor("0", STORAGE0_NUMEL), "list": b"]", "storage": op_storage("0", STORAGE0_NUMEL)}
    _refused(_write(tmp_path, hn_with_value(True, lambda base: push[target] + state + b"b")), "BUILD")


# ============================================================================ 4. SETITEM(S) and APPEND(S) on other objects
TARGETS = {
    "list": b"]", "tuple": b")", "set": b"\x8f", "string": op_str("s"),
    "storage": op_storage("0", STORAGE0_NUMEL), "tensor": op_tensor("0", STORAGE0_NUMEL),
}


@pytest.mark.parametrize("opcode", ["SETITEM", "SETITEMS"])
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_setitem_on_non_dicts(target: str, opcode: str, tmp_path: Path) -> None:
    """Guard. torch before 2.10 applied SETITEM to whatever was on the stack: a tensor or storage was written to
    during loading (CVE-2026-24747); 2.13 refuses too (shown here)."""
    pair = b"K\x00K\x05"
    ops = TARGETS[target] + (pair + b"s" if opcode == "SETITEM" else b"(" + pair + b"u")
    data = hn_with_value(True, lambda base: ops)
    _torch_refuses(data, "Can only SETITEM", "Can only SETITEMS")
    _refused(_write(tmp_path, data), f"{opcode} on a")


@pytest.mark.parametrize("target", ["dict", "tensor", "storage"])
def test_append_on_non_lists(target: str, tmp_path: Path) -> None:
    """Guard. APPEND/APPENDS only on lists."""
    push = {"dict": b"}", "tensor": op_tensor("0", STORAGE0_NUMEL), "storage": op_storage("0", STORAGE0_NUMEL)}
    _refused(_write(tmp_path, hn_with_value(True, lambda base: push[target] + b"K\x00a")), "APPEND on a")


# ============================================================================ 5. storages that are not their records
def test_zip_record_longer_than_its_storage(tmp_path: Path) -> None:
    """Guard. torch before 2.10 did not compare a record with the pickle's numel (CVE-2026-24747); 2.13 does."""
    entries = zip_entries(torch_bytes(good_raw(), zip_format=True))
    record = next(e for e in entries if e.name.endswith(b"/data/0"))
    record.data += bytes(64)
    data = build_zip(entries)
    _torch_refuses(data, "does not match expected size")
    _refused(_write(tmp_path, data), "declares")


@pytest.mark.parametrize("delta", [-1, 1])
def test_legacy_block_numel_differs(delta: int, tmp_path: Path) -> None:
    """Guard. A legacy data block whose element count is not the pickle's."""
    obj, blocks = legacy_hn()
    numel, data = blocks["0"]
    blocks["0"] = (numel + delta, data)
    _refused(_write(tmp_path, legacy_file(obj, blocks)), "elements but the pickle declares")


def test_one_storage_with_two_dtypes(tmp_path: Path) -> None:
    """Guard. One storage key read as float32 in one place and float16 in another."""
    obj, blocks = legacy_hn()
    weight = obj[8][0]["linear.0.weight"]
    key, numel = weight.args[0].pid[2], weight.args[0].pid[4]
    obj[8][1]["linear.0.weight"] = LegacyTensor(LegacyStorage("HalfStorage", key, numel), 0, weight.args[2],
                                                weight.args[3])
    _refused(_write(tmp_path, legacy_file(obj, blocks)), "two different types")


# ============================================================================ 6. "billion laughs" through the memo
def _laughs(tmp_path: Path) -> dict[str, Path]:
    """Files whose metadata is a DAG of memo references, 2**60 leaves as a tree, fewer than 64 levels deep."""
    files = {
        "optional_info_list": hn_with_value(True, lambda base: memo_doubling(60, base, "list")),
        "layer_structure_list": hn_with_value(False, lambda base: memo_doubling(60, base, "list"), "layer_structure"),
        "unknown_key_list": hn_with_value(True, lambda base: memo_doubling(60, base, "list"), "notes"),
        "unknown_key_dict": hn_with_value(False, lambda base: memo_doubling(60, base, "dict"), "notes"),
        "unknown_key_tuple": hn_with_value(True, lambda base: memo_doubling(31, base, "tuple"), "notes"),
    }
    return {name: _write(tmp_path, data, name + ".pt") for name, data in files.items()}


def test_memo_dags_in_metadata_are_cheap_to_describe(tmp_path: Path) -> None:
    """Guard. Checking, loading, describing and JSON-encoding the description walk each DAG only once (or not at all):
    every file is refused or described within a second and 200 MB."""
    files = _laughs(tmp_path)
    assert all(p.stat().st_size < 50_000 for p in files.values())
    result = run_limited(
        f"""
        import time
        from lib_hypernet.library.description import describe_file
        out = {{}}
        for name, path in {dict((k, str(v)) for k, v in files.items())!r}.items():
            started = time.monotonic()
            try:
                lib_hypernet.check_torch_file(path)
                lib_hypernet.load(path)
                loaded = "loaded"
            except lib_hypernet.HypernetError as exc:
                loaded = exc.reason
            text = json.dumps(describe_file(path).to_json())
            out[name] = [loaded, len(text), time.monotonic() - started]
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({{"out": out, "growth_mb": peak - BASE_MB}}))
        """,
        address_space_mb=3072, timeout=300,
    )
    out = result["out"]
    assert "optional_info" in out["optional_info_list"][0] and "layer_structure" in out["layer_structure_list"][0]
    assert all(out[k][0] == "loaded" for k in ("unknown_key_list", "unknown_key_dict", "unknown_key_tuple")), out
    assert all(size < 100_000 and seconds < 5 for _, size, seconds in out.values()), out
    assert result["growth_mb"] < 200, result


MERSENNE61 = (1 << 61) - 1


def _hash_bombs() -> dict[str, bytes]:
    def tuple_key(base: int) -> bytes:
        return b"}" + memo_doubling(31, base, "tuple") + b"K\x01s"

    # 60,000 different ints with one hash, k * (2**61 - 1): building a dict or set of them takes 60,000**2 / 2 probes
    colliding = [b"\x8a\x0a" + (k * MERSENNE61).to_bytes(10, "little", signed=True) for k in range(1, 60_001)]
    return {
        # {T: 1} with T = (T30, T30), ...: hashing T walks 2**31 tuples (uncached), in the check and again in torch
        "tuple_dag_key": hn_with_value(True, tuple_key),
        "colliding_int_keys": hn_with_value(True, lambda base: b"}(" + b"".join(k + b"K\x00" for k in colliding) + b"u"),
        "colliding_set_items": hn_with_value(True, lambda base: op_call("builtins", "set",
                                                                         b"](" + b"".join(colliding) + b"e")),
    }


def test_hash_bombs_are_refused_quickly(tmp_path: Path) -> None:
    """Fails on 966791b (each file took minutes: the check, then torch, hash the same keys). Dict keys and set
    items must be strings or small integers."""
    assert len({hash(k * MERSENNE61) for k in range(1, 1000)}) == 1  # the collisions are real
    files = {name: str(_write(tmp_path, data, name + ".pt")) for name, data in _hash_bombs().items()}
    small = lib_hypernet.create("ok", sizes=[8], seed=0).state_dict()
    small["state"] = {i: {"step": i} for i in range(1000)}  # small int keys (an optimizer state's) still load
    torch.save(small, tmp_path / "int_keys.pt")
    files["int_keys"] = str(tmp_path / "int_keys.pt")
    result = run_limited(
        f"""
        import time
        out = {{}}
        for name, path in {files!r}.items():
            started = time.monotonic()
            try:
                lib_hypernet.check_torch_file(path)
                lib_hypernet.load(path)
                out[name] = ["loaded", time.monotonic() - started]
            except lib_hypernet.HypernetError as exc:
                out[name] = [exc.reason, time.monotonic() - started]
        print(json.dumps(out))
        """,
        address_space_mb=3072, timeout=60,
    )
    assert "tuple used as a dict key" in result["tuple_dag_key"][0], result
    assert "int used as a dict key or set item" in result["colliding_int_keys"][0], result
    assert "int used as a dict key or set item" in result["colliding_set_items"][0], result
    assert result["int_keys"][0] == "loaded", result
    assert all(seconds < 5 for _, seconds in result.values()), result


# ============================================================================ 7. the webui's routes
@pytest.fixture
def webui_with_hostile_files(tmp_path: Path) -> Any:
    import webui_util as wu
    from fastapi.testclient import TestClient

    wu.reset(tmp_path)
    folder = Path(wu.hn_dir())
    folder.mkdir(parents=True, exist_ok=True)
    raw = OrderedDict(good_raw())
    import _codecs

    raw.get = _codecs.encode  # type: ignore[method-assign]
    torch.save(raw, folder / "build_get.pt")
    (folder / "torchscript.pt").write_bytes(_torchscript_zip({"constants.pkl": pickle.dumps((), protocol=2)}))
    (folder / "laughs.pt").write_bytes(hn_with_value(True, lambda base: memo_doubling(60, base, "list"), "notes"))
    yield TestClient(wu.start(args=["--api"])), str(folder)
    wu.webui.unload()


def test_routes_list_and_convert_hostile_files(webui_with_hostile_files: Any) -> None:
    """Fails on 966791b (the TorchScript archive was listed as safe; loading build_get raised TypeError). The
    listing describes each file quickly; convert refuses the hostile ones with 400."""
    client, folder = webui_with_hostile_files
    started = time.monotonic()
    listing = client.get("/hypernet/v1/hypernetworks?refresh=true")
    assert listing.status_code == 200, listing.text
    assert time.monotonic() - started < 30
    text = json.dumps(listing.json())
    assert len(text) < 200_000
    entries = {e["name"]: e for e in listing.json()}
    assert entries["laughs"]["ok"] and entries["laughs"]["ignored_keys"] == ["notes"]
    assert entries["torchscript"]["safe"] is False
    assert "BUILD" in entries["build_get"]["error"]
    for name in ("build_get", "torchscript"):
        response = client.post("/hypernet/v1/convert", json={"name": name})
        assert response.status_code == 400, response.text
        assert not os.path.exists(os.path.join(folder, name + ".safetensors"))
