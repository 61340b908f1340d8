"""Mutation fuzzer for lib_hypernet's file readers, driven by hypothesis.

Seeds (built fresh in a work folder): zip and legacy ``.pt`` hypernetworks (ours and an A1111 fixture),
``.pt.optim`` files (zip fixture and legacy), a ``.safetensors``, and zip/legacy files carrying a
payload that would create a marker file if it ever ran.  Each example applies one to four mutations
(byte flips, interesting integers, truncations, splices, zip-structure edits, pickle-opcode edits,
safetensors header edits) and asserts, for ``load()``, ``check_torch_file()``,
``load_optimizer_state()`` and ``a1111_zip_entries_rejected()``:

* only :class:`lib_hypernet.HypernetError` escapes (and never one caused by ``MemoryError``);
* what was accepted is what was checked (:func:`differential`): for every file ``check_torch_file()``
  accepts, ``torch.load(weights_only=True)`` of the same bytes returns the values the checker's scan
  describes, and every tensor holds exactly the bytes of the storage the checker matched (read back
  from the zip record or legacy block with the checker's own layout); for every file ``load()``
  accepts, each weight of the Hypernetwork equals, bit for bit, torch's tensor (``.pt``) or the bytes
  the ``.safetensors`` header points at, converted to float32 as the decoder does;
* the marker file never appears (nothing from a file is executed);
* the process's peak RSS stays within the budget above its start, and no example runs longer than
  the hang limit.

Run by ``tests/fuzz/test_fuzz.py`` (bounded, seeded) and by ``tools/fuzz.sh DURATION`` (long runs)::

    python tests/helpers/fuzzing.py --examples 300 --seed 1
    python tests/helpers/fuzzing.py --duration 15m --failures fuzz-failures

It prints one JSON summary line last and exits 1 when anything failed (reproducers are saved).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import re
import resource
import shutil
import signal
import struct
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = str(Path(__file__).resolve().parent)  # tests/helpers: sys.path[0] when run as a script, not when imported
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from hn_testutil import FIXTURES_DIR, REPO_ROOT  # noqa: E402

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402
from differential import differential  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import seed as hypothesis_seed  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import lib_hypernet  # noqa: E402
from lib_hypernet.formats.safe_unpickle import a1111_zip_entries_rejected  # noqa: E402

INTERESTING = [0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 0x10000000, (1 << 63) - 1,
               (1 << 64) - 1, 1 << 31, 1 << 40]
DANGEROUS_OPCODES = [
    b"cposix\nsystem\n", b"cbuiltins\neval\n", b"ctorch\nload\n", b"r\x00\x00\x00\x10", b"q\xff",
    b"j\xff\xff\xff\x7f", b"\x95" + struct.pack("<Q", (1 << 63) - 1), b"\x96" + struct.pack("<Q", 1 << 62),
    b"]" * 3000 + b"a" * 2999, b"(" * 2000, b")" + b"\x85" * 2000, b"b", b"R", b"Q", b"0", b"1", b"2",
    b"I" + b"9" * 5000 + b"\n", b"\x8a\xff" + b"\x7f" * 255, b"X\xff\xff\xff\xff", b"\x8c\x05abcde",
    b"ctorch\nSize\n(K\x01t\x85R}b", b"}q\x00h\x00h\x00s", b"]q\x00h\x00a",
]
NAME_EDITS = [b"DATA.PKL", b"data.pkl", b"Data.pkl", b"data/0", b"version", b"../x", b"\xff\xfe", b"a\\b"]


class HangError(BaseException):
    """Raised by the alarm; a BaseException so that no ``except Exception`` on the way swallows it."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise HangError("example ran past the hang limit")


# ---------------------------------------------------------------------------- seeds
def build_seeds(folder: Path, marker: Path) -> dict[str, bytes]:
    from hn_testutil import TouchViaSystem
    from hostile_util import good_raw, torch_bytes

    fixtures = FIXTURES_DIR
    hn = lib_hypernet.create("seed", sizes=[8, 16], activation_func="relu", is_layer_norm=True, seed=0)
    hn.save(folder / "legacy.pt")
    hn.save(folder / "seed.safetensors")
    lib_hypernet.save_optimizer_state(folder / "legacy.pt", {"state": {0: {"step": torch.tensor(3.0)}},
                                                            "param_groups": [{"lr": 0.1, "params": [0]}]})
    evil = good_raw(optional_info=TouchViaSystem(marker))
    seeds = {
        "zip.pt": torch_bytes(hn.state_dict(), zip_format=True),
        "legacy.pt": (folder / "legacy.pt").read_bytes(),
        "fixture.pt": (fixtures / "act_relu.pt").read_bytes(),
        "fixture.pt.optim": (fixtures / "optim_fresh_a.pt.optim").read_bytes(),
        "legacy.pt.optim": (folder / "legacy.pt.optim").read_bytes(),
        "seed.safetensors": (folder / "seed.safetensors").read_bytes(),
        "evil_zip.pt": torch_bytes(evil, zip_format=True),
        "evil_legacy.pt": torch_bytes(evil, zip_format=False),
    }
    return seeds


# ---------------------------------------------------------------------------- mutators
def m_flip(data: bytes, r: random.Random, seeds: dict[str, bytes]) -> bytes:
    out = bytearray(data)
    for _ in range(r.randint(1, 8)):
        if out:
            out[r.randrange(len(out))] ^= r.randint(1, 255)
    return bytes(out)


def m_interesting(data: bytes, r: random.Random, seeds: dict[str, bytes]) -> bytes:
    width = r.choice([1, 2, 4, 8])
    value = r.choice(INTERESTING) & ((1 << (8 * width)) - 1)
    if len(data) < width:
        return data
    at = r.randrange(len(data) - width + 1)
    return data[:at] + value.to_bytes(width, "little") + data[at + width:]


def m_truncate(data: bytes, r: random.Random, seeds: dict[str, bytes]) -> bytes:
    return data[: r.randrange(len(data))] if data else data


def m_splice(data: bytes, r: random.Random, seeds: dict[str, bytes]) -> bytes:
    if not data:
        return data
    kind = r.randrange(3)
    a = r.randrange(len(data))
    b = min(len(data), a + r.randint(1, 512))
    if kind == 0:
        return data[:a] + data[b:]
    if kind == 1:
        return data[:a] + data[a:b] * r.randint(2, 4) + data[b:]
    other = seeds[r.choice(sorted(seeds))]
    c = r.randrange(len(other))
    return data[:a] + other[c:c + r.randint(1, 2048)] + data[a:]


def _zip_offsets(data: bytes) -> list[int]:
    return [m.start() for m in re.finditer(b"PK\x01\x02", data)]


def m_zip(data: bytes, r: random.Random, seeds: dict[str, bytes]) -> bytes:
    """Edit a central-directory or local-header field, or the end record."""
    centrals = _zip_offsets(data)
    locals_ = [m.start() for m in re.finditer(b"PK\x03\x04", data)]
    eocd = data.rfind(b"PK\x05\x06")
    out = bytearray(data)
    kind = r.randrange(8)
    if kind == 0 and centrals:  # compression method
        struct.pack_into("<H", out, r.choice(centrals) + 10, r.choice([8, 12, 14, 99, 0xFFFF]))
    elif kind == 1 and centrals:  # sizes
        at = r.choice(centrals)
        struct.pack_into("<I", out, at + r.choice([20, 24]), r.choice(INTERESTING) & 0xFFFFFFFF)
    elif kind == 2 and centrals:  # local header offset
        at = r.choice(centrals)
        (old,) = struct.unpack_from("<I", out, at + 42)
        struct.pack_into("<I", out, at + 42, max(0, old + r.randint(-64, 64)) & 0xFFFFFFFF)
    elif kind == 3 and centrals:  # name edits (case, duplicates, bad bytes)
        at = r.choice(centrals)
        (nlen,) = struct.unpack_from("<H", out, at + 28)
        name = bytes(out[at + 46:at + 46 + nlen])
        slash = name.find(b"/")
        new = (name[:slash + 1] + r.choice(NAME_EDITS))[:nlen].ljust(nlen, b"l") if slash >= 0 else name.upper()
        out[at + 46:at + 46 + nlen] = new
    elif kind == 4 and eocd >= 0 and len(out) >= eocd + 22:  # end record fields
        field = r.choice([8, 10, 12, 16, 20])
        fmt = "<H" if field in (8, 10, 20) else "<I"
        struct.pack_into(fmt, out, eocd + field, r.choice(INTERESTING) & (0xFFFF if fmt == "<H" else 0xFFFFFFFF))
    elif kind == 5 and centrals and eocd > 0:  # a second central directory before the end record
        first = centrals[0]
        out[eocd:eocd] = out[first:eocd]
    elif kind == 6 and locals_:  # local header method/flags/sizes
        at = r.choice(locals_)
        struct.pack_into("<H", out, at + r.choice([6, 8]), r.choice(INTERESTING) & 0xFFFF)
    elif kind == 7 and centrals:  # flags (encryption, descriptors)
        struct.pack_into("<H", out, r.choice(centrals) + 8, r.choice([1, 8, 0x800, 0x809, 0x40, 0xFFFF]))
    return bytes(out)


def _pickle_region(data: bytes) -> tuple[int, int] | None:
    """Where the pickle torch reads lies in ``data``: data.pkl of a zip, else the legacy pickles."""
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                info = next(i for i in archive.infolist() if i.filename.endswith("/data.pkl"))
                if info.compress_type != 0:
                    return None
                (nlen, elen) = struct.unpack_from("<HH", data, info.header_offset + 26)
                start = info.header_offset + 30 + nlen + elen
                return start, start + info.compress_size
        except Exception:  # zipfile raises many kinds on mutated zips; then edit bytes blindly
            return None
    return 0, min(len(data), 4096)


def _opcode_starts(pkl: bytes) -> list[int]:
    import pickletools

    starts = []
    try:
        for _op, _arg, pos in pickletools.genops(pkl):
            starts.append(pos)
    except Exception:  # a mutated pickle may stop anywhere: keep what was found
        pass
    return starts or [0]


def _refresh_zip(data: bytes, start: int, end: int, new_pkl: bytes) -> bytes:
    """Put ``new_pkl`` in place of data.pkl, keeping the zip consistent (sizes, CRC, offsets)."""
    from hostile_util import build_zip, zip_entries

    try:
        entries = zip_entries(data)
    except Exception:  # as above
        return data[:start] + new_pkl + data[end:]
    for entry in entries:
        if entry.name.endswith(b"/data.pkl"):
            entry.data = new_pkl
    return build_zip(entries)


def m_pickle(data: bytes, r: random.Random, seeds: dict[str, bytes]) -> bytes:
    region = _pickle_region(data)
    if region is None:
        return m_flip(data, r, seeds)
    start, end = region
    pkl = data[start:end]
    starts = _opcode_starts(pkl)
    at = r.choice(starts)
    following = [s for s in starts if s > at]
    nxt = following[0] if following else len(pkl)
    kind = r.randrange(5)
    if kind == 0:  # delete an opcode
        new = pkl[:at] + pkl[nxt:]
    elif kind == 1:  # duplicate an opcode
        new = pkl[:nxt] + pkl[at:nxt] + pkl[nxt:]
    elif kind == 2:  # insert a dangerous sequence
        new = pkl[:at] + r.choice(DANGEROUS_OPCODES) + pkl[at:]
    elif kind == 3:  # overwrite an argument with an interesting value
        arg = bytearray(pkl[at + 1:nxt])
        if arg:
            width = min(len(arg), r.choice([1, 2, 4, 8]))
            value = r.choice(INTERESTING) & ((1 << (8 * width)) - 1)
            arg[:width] = value.to_bytes(width, "little")
        new = pkl[:at + 1] + bytes(arg) + pkl[nxt:]
    else:  # replace an opcode byte
        new = pkl[:at] + bytes([r.choice(b"cRbaesuQhjqr()tN]}\x80\x95\x96\x8a\x8c\x93\x81")]) + pkl[at + 1:]
    if data[:4] == b"PK\x03\x04":
        return _refresh_zip(data, start, end, new)
    return data[:start] + new + data[end:]


def m_safetensors(data: bytes, r: random.Random, seeds: dict[str, bytes]) -> bytes:
    if len(data) < 8:
        return data
    (n,) = struct.unpack("<Q", data[:8])
    try:
        header = json.loads(data[8:8 + n])
        assert isinstance(header, dict)
    except (ValueError, AssertionError):
        return m_flip(data, r, seeds)
    body = data[8 + n:]
    keys = [k for k in header if k != "__metadata__"]
    kind = r.randrange(9)
    text: str | None = None
    if kind == 0 and keys:  # key aliases
        key = r.choice(keys)
        new = r.choice([key + "\n", key + " ", "0" + key, key.replace("8", "\u0668"), key.upper(), key + ".x",
                        key.replace(".0.", ".00."), key.replace("k", "v", 1)])
        header = {new if k == key else k: v for k, v in header.items()}
    elif kind == 1 and keys:  # dtype
        header[r.choice(keys)]["dtype"] = r.choice(["F8_E4M3", "I64", "BOOL", "F16", "F64", "X", 5])
    elif kind == 2 and keys:  # shape
        header[r.choice(keys)]["shape"] = r.choice([[], [0], [-1], [1 << 40], [10**30], "x", [3, 3, 3]])
    elif kind == 3 and keys:  # offsets
        info = header[r.choice(keys)]
        info["data_offsets"] = [r.choice([0, 1, len(body), 1 << 40]), r.choice([0, 4, len(body), 1 << 63])]
    elif kind == 4:  # metadata values
        meta = header.setdefault("__metadata__", {})
        field = r.choice(["step", "layer_structure", "dropout_structure", "optional_info", "name", "format_version",
                          "activation_func", "format"])
        meta[field] = r.choice(["1" + "0" * 5000, "1" + "0" * 400, "[1, 1e400, 1]", "[" * 5000 + "]" * 5000,
                                '{"a": 1, "a": 2}', "null", "[1, 2, 1]", "NaN", "\"relu\"", "2", "[]"])
    elif kind == 5 and keys:  # duplicate key in the JSON text
        text = json.dumps(header)
        key = json.dumps(r.choice(keys))
        at = text.index(key)
        close = text.index("}", at) + 1
        text = text[:close] + ", " + text[at:close] + text[close:]
    elif kind == 6:  # header length
        return struct.pack("<Q", r.choice([0, 1, n - 1, n + 1, len(data), 1 << 40, (1 << 64) - 1])) + data[8:]
    elif kind == 7:  # deep JSON
        text = json.dumps(header)[:-1] + ', "deep": ' + "[" * 3000 + "]" * 3000 + "}"
    else:  # drop a tensor
        if keys:
            header.pop(r.choice(keys))
    raw = (text if text is not None else json.dumps(header)).encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw + body


MUTATORS: dict[str, Callable[[bytes, random.Random, dict[str, bytes]], bytes]] = {
    "flip": m_flip, "interesting": m_interesting, "truncate": m_truncate, "splice": m_splice,
    "zip": m_zip, "pickle": m_pickle, "safetensors": m_safetensors,
}


# ---------------------------------------------------------------------------- the property
class Fuzzer:
    def __init__(self, work: Path, failures: Path, rss_budget_mb: float, hang_s: float) -> None:
        signal.signal(signal.SIGALRM, _on_alarm)
        self.work = work
        self.failures = failures
        self.marker = work / "MARKER_payload_ran"
        self.seeds = build_seeds(work, self.marker)
        self.rss_budget_mb = rss_budget_mb
        self.hang_s = hang_s
        self.examples = 0
        self.max_example_s = 0.0
        self.problems: list[dict[str, Any]] = []
        self.outcomes: dict[str, int] = {"loaded": 0, "refused": 0, "compared": 0}
        self.case = work / "case"
        self.case.mkdir(exist_ok=True)
        self.pt_for_optim = self.case / "host.pt"
        shutil.copy(work / "legacy.pt", self.pt_for_optim)
        for name, data in self.seeds.items():  # warm-up: every seed is valid and every code path imported
            self.run_one(name, data, record=False)
        self.base_rss_mb = _rss_mb()

    def run_one(self, seed_name: str, data: bytes, record: bool = True) -> None:
        suffix = ".pt.optim" if seed_name.endswith(".optim") else Path(seed_name).suffix
        path = self.case / ("host" + suffix if suffix == ".pt.optim" else "case" + suffix)
        path.write_bytes(data)
        started = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, self.hang_s)
        try:
            problem = self._exercise(path, suffix)
        except HangError:
            problem = "hang"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        elapsed = time.monotonic() - started
        if self.marker.exists():
            problem = (problem or "") + " payload executed (marker file created)"
            self.marker.unlink()
        if record:
            self.examples += 1
            self.max_example_s = max(self.max_example_s, elapsed)
            growth = _rss_mb() - self.base_rss_mb
            if growth > self.rss_budget_mb + len(data) / 2**20:
                problem = (problem or "") + f" peak RSS grew {growth:.0f} MB"
                self.base_rss_mb = _rss_mb()  # report each new excursion once
        if problem:
            self._save(seed_name, data, problem)
            raise AssertionError(f"{seed_name}: {problem}")

    def _exercise(self, path: Path, suffix: str) -> str | None:
        calls: list[tuple[str, Callable[[], Any]]] = []
        if suffix == ".pt.optim":
            calls.append(("check_torch_file", lambda: lib_hypernet.check_torch_file(path)))
            calls.append(("load_optimizer_state", lambda: _never_raises(
                lib_hypernet.load_optimizer_state(self.pt_for_optim, pt_sha256="0" * 64))))
        else:
            calls.append(("load", lambda: lib_hypernet.load(path)))
            if suffix == ".pt":
                calls.append(("check_torch_file", lambda: lib_hypernet.check_torch_file(path)))
                calls.append(("a1111_zip_entries_rejected", lambda: _never_raises(
                    a1111_zip_entries_rejected(path))))
        accepted: dict[str, Any] = {}
        for name, call in calls:
            try:
                accepted[name] = call()
                self.outcomes["loaded"] += 1
            except lib_hypernet.HypernetError as exc:
                self.outcomes["refused"] += 1
                cause = _memory_error_in(exc)
                if cause:
                    return f"{name}: HypernetError caused by MemoryError ({exc})"
            except HangError:
                raise
            except BaseException as exc:  # anything else escaping is the bug we hunt
                return f"{name}: {type(exc).__name__}: {str(exc)[:300]}"
        if "check_torch_file" in accepted or "load" in accepted:
            self.outcomes["compared"] += 1
            try:
                return differential(path, accepted.get("load"), checked="check_torch_file" in accepted)
            except Exception as exc:  # the oracle itself failed on an accepted file: report it, never hide it
                return f"differential check crashed: {type(exc).__name__}: {str(exc)[:300]}"
        return None

    def _save(self, seed_name: str, data: bytes, problem: str) -> None:
        self.failures.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(data).hexdigest()[:16]
        name = f"{digest}-{seed_name}"
        if len(self.problems) < 50:
            (self.failures / name).write_bytes(data)
        self.problems.append({"file": str(self.failures / name), "seed": seed_name, "problem": problem.strip()})


def _never_raises(value: Any) -> Any:
    return value


def _memory_error_in(exc: BaseException) -> bool:
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 20:
        if isinstance(current, MemoryError):
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_test(fuzzer: Fuzzer, max_examples: int, shrink: bool) -> Callable[[], None]:
    names = sorted(fuzzer.seeds)
    phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if shrink else [])

    @settings(max_examples=max_examples, deadline=None, database=None, phases=phases,
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(
        seed_name=st.sampled_from(names),
        mutations=st.lists(st.tuples(st.sampled_from(sorted(MUTATORS)), st.integers(0, 2**32 - 1)),
                           min_size=1, max_size=4),
    )
    def fuzz_example(seed_name: str, mutations: list[tuple[str, int]]) -> None:
        data = fuzzer.seeds[seed_name]
        for mutator, number in mutations:
            try:
                data = MUTATORS[mutator](data, random.Random(number), fuzzer.seeds)
            except (struct.error, ValueError, IndexError, RecursionError):
                pass  # the mutation did not fit this file (e.g. a header field past its end)
        fuzzer.run_one(seed_name, data)

    return fuzz_example


def _parse_duration(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smh]?)", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use e.g. 90s, 15m, 1h)")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=300, help="examples per round (default 300)")
    parser.add_argument("--duration", type=_parse_duration, default=None,
                        help="keep running rounds with new seeds for this long (e.g. 15m)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the first round")
    parser.add_argument("--failures", type=Path, default=Path(tempfile.gettempdir()) / "sd-webui-hypernet-fuzz")
    parser.add_argument("--rss-budget-mb", type=float, default=200.0)
    parser.add_argument("--hang-s", type=float, default=60.0)
    parser.add_argument("--progress", action="store_true", help="print a line per round")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    import logging

    logging.disable(logging.WARNING)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hypernet-fuzz-") as tmp:
        fuzzer = Fuzzer(Path(tmp), args.failures, args.rss_budget_mb, args.hang_s)
        round_seed = args.seed
        rounds = 0
        while True:
            test = hypothesis_seed(round_seed)(make_test(fuzzer, args.examples, shrink=args.duration is None))
            try:
                test()
            except AssertionError:
                pass  # recorded (with its reproducer) by Fuzzer.run_one
            except Exception as exc:  # a hypothesis-level error is a failure of the run too
                fuzzer.problems.append({"file": None, "seed": None, "problem": f"{type(exc).__name__}: {exc}"})
            rounds += 1
            elapsed = time.monotonic() - started
            if args.progress:
                print(f"round {rounds}: {fuzzer.examples} examples, {fuzzer.examples / elapsed:.1f}/s, "
                      f"{len(fuzzer.problems)} failures", flush=True)
            if args.duration is None or elapsed >= args.duration:
                break
            round_seed += 1
        elapsed = time.monotonic() - started
        summary = {
            "examples": fuzzer.examples,
            "rounds": rounds,
            "seconds": round(elapsed, 1),
            "examples_per_s": round(fuzzer.examples / elapsed, 1) if elapsed else None,
            "max_example_s": round(fuzzer.max_example_s, 3),
            "rss_growth_mb": round(_rss_mb() - fuzzer.base_rss_mb, 1),
            "outcomes": fuzzer.outcomes,
            "failures": fuzzer.problems,
        }
    print(json.dumps(summary))
    return 1 if fuzzer.problems else 0


if __name__ == "__main__":
    sys.exit(main())
