"""A pickle interpreter that executes nothing: the safety check of ``torch.save`` pickles.

:func:`scan_pickle` walks the opcodes of one pickle and builds only inert values: Python
literals, lists, dicts, tuples and sets, and markers for the few globals a hypernetwork or an
optimizer state needs (:data:`ALLOWED_GLOBALS`).  It never calls a function from the file, not even
an allowed one, and it does not use :mod:`pickle`'s unpicklers at all, so nothing other code did to
``pickle.Unpickler`` (pytorch_lightning replaces it process-wide) changes what it accepts.

It accepts exactly the opcodes torch's weights-only loader implements (everything ``torch.save``
writes with protocol 2) and bounds everything an unpickler would allocate or recurse on:

* every length is checked against the bytes that are really there before anything is read;
* a memo index may not exceed the number of opcodes read so far (``torch.save`` numbers its memo
  0, 1, 2, …; a huge index makes C unpicklers allocate gigabytes);
* at most :data:`MAX_OPCODES` opcodes, integers of at most 16 bytes, hashable tuples at most
  :data:`MAX_TUPLE_DEPTH` deep (hashing a deeper one recurses in C), and the result at most
  :data:`MAX_NESTING` containers deep, without cycles;
* dict keys and set items are strings, bytes, bools, ``None`` or integers below 2**61 (no tuple whose hash
  walks a memo-shared tree, no keys crafted to share one hash), and BUILD only gives an OrderedDict its
  ``_metadata`` (any other attribute would shadow a method of the dict for whoever reads it);
* a tensor must lie inside its storage and have no more elements than it (no stride-0 bombs), and a
  storage reference is ``('storage', <torch.*Storage>, key, location, numel)`` (plus the legacy
  format's view metadata) with the same dtype and size wherever the key recurs.

The container check (:mod:`.safe_unpickle`) then matches the storages against the records in the
file, so that what torch will allocate is bounded by the file's size.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import HypernetFormatError, UnsafeFileError
from .fileview import Buffer

MAX_OPCODES = 1_000_000
MAX_TUPLE_DEPTH = 32
MAX_NESTING = 64
MAX_INT_BYTES = 16
MAX_NUMEL = 1 << 40
_MAX_GLOBAL_LINE = 256
# Dict keys and set items whose hash is cheap and, between different values, never equal: strings and bytes
# (hashed with a per-process random key), None and bools; ints only below 2**61 - 1 (Python hashes an int x
# of that size to x itself).
_PLAIN_KEY_TYPES = (str, bytes, bool, type(None))
_MAX_KEY_INT = (1 << 61) - 1

ELEMENT_SIZES: dict[str, int] = {
    "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2, "DoubleStorage": 8, "IntStorage": 4,
    "LongStorage": 8, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1, "BoolStorage": 1,
}
FLOAT_STORAGES = frozenset({"FloatStorage", "HalfStorage", "BFloat16Storage", "DoubleStorage"})

# (module, name) pairs a hypernetwork or optimizer-state file may reference.
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("collections", "OrderedDict"),
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch._utils", "_rebuild_parameter"),
        ("torch", "Size"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("__builtin__", "set"),
        ("_codecs", "encode"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "dtype"),
    }
    | {("torch", name) for name in ELEMENT_SIZES}
)

# Opcodes torch's weights-only unpickler implements (the only ones torch.save's protocol 2 needs).
_OPCODE_NAMES = {
    b"c": "GLOBAL", b"R": "REDUCE", b"b": "BUILD", b"a": "APPEND", b"e": "APPENDS", b"s": "SETITEM",
    b"u": "SETITEMS", b"(": "MARK", b"t": "TUPLE", b"\x85": "TUPLE1", b"\x86": "TUPLE2", b"\x87": "TUPLE3",
    b"N": "NONE", b"\x89": "NEWFALSE", b"\x88": "NEWTRUE", b")": "EMPTY_TUPLE", b"]": "EMPTY_LIST",
    b"}": "EMPTY_DICT", b"\x8f": "EMPTY_SET", b"J": "BININT", b"K": "BININT1", b"M": "BININT2",
    b"G": "BINFLOAT", b"X": "BINUNICODE", b"U": "SHORT_BINSTRING", b"Q": "BINPERSID", b"h": "BINGET",
    b"j": "LONG_BINGET", b"q": "BINPUT", b"r": "LONG_BINPUT", b"\x8a": "LONG1", b"\x80": "PROTO", b".": "STOP",
}


@dataclass(frozen=True)
class GlobalRef:
    """An allowed global, by name; never resolved to the real object."""

    module: str
    name: str


@dataclass(eq=False)
class StorageRef:
    """A ``('storage', …)`` persistent id: what torch will allocate for it, before reading it."""

    type_name: str
    key: str
    location: str
    numel: int
    view: tuple[str, int, int] | None = None

    @property
    def element_size(self) -> int:
        return ELEMENT_SIZES[self.type_name]

    @property
    def nbytes(self) -> int:
        return self.numel * self.element_size


@dataclass(eq=False)
class TensorRef:
    """A tensor the file rebuilds: its storage, offset, shape and strides (all checked)."""

    storage: StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


@dataclass(eq=False)
class Opaque:
    """The inert result of an allowed numpy global (a dtype or a scalar)."""

    kind: str


@dataclass
class ScanResult:
    """What one pickle holds: its value (inert), the globals it names, the storages it references."""

    value: Any
    end: int
    globals: list[tuple[str, str]] = field(default_factory=list)
    storages: dict[str, StorageRef] = field(default_factory=dict)
    tensors: list[TensorRef] = field(default_factory=list)


def _bad(path: str, message: str) -> HypernetFormatError:
    return HypernetFormatError(f"not a readable PyTorch file (corrupt or crafted pickle: {message})", path)


def list_globals(buf: Buffer, path: str, start: int = 0) -> tuple[list[tuple[str, str]], int]:
    """The globals a pickle names (in order) and where it ends, without checking them against any list."""
    scanner = _Scanner(buf, path, start, allowed=None, persistent_ids="any")
    result = scanner.run()
    return result.globals, result.end


def scan_pickle(
    buf: Buffer, path: str, start: int = 0, *, persistent_ids: str = "none",
    allowed: frozenset[tuple[str, str]] = ALLOWED_GLOBALS,
) -> ScanResult:
    """Check the pickle starting at ``start`` in ``buf``; raise :class:`UnsafeFileError` or
    :class:`HypernetFormatError`, else return its inert value and what it references.

    ``persistent_ids`` is ``"zip"`` (5-tuples), ``"legacy"`` (6-tuples with view metadata) or
    ``"none"`` (a pickle that may not reference storages).
    """
    result = _Scanner(buf, path, start, allowed=allowed, persistent_ids=persistent_ids).run()
    check_nesting(result.value, path)
    return result


class _Scanner:
    def __init__(self, buf: Buffer, path: str, start: int, *,
                 allowed: frozenset[tuple[str, str]] | None, persistent_ids: str) -> None:
        self.buf = buf
        self.end = len(buf)
        self.pos = start
        self.path = path
        self.allowed = allowed
        self.persistent_ids = persistent_ids
        self.tuple_depth: dict[int, int] = {}
        self.keep: list[Any] = []  # keeps every tuple alive, so ids in tuple_depth stay unique
        self.stack: list[Any] = []
        self.marks: list[list[Any]] = []
        self.result = ScanResult(None, start)
        # Legacy files: torch keeps root storages and views in ONE table keyed by name, and the first
        # object stored under a name wins; so a name may mean one thing only (view key -> (root, offset, size)).
        self.view_keys: dict[str, tuple[str, int, int]] = {}

    # ------------------------------------------------------------------ reading
    def read(self, n: int) -> bytes:
        if n > self.end - self.pos:
            raise _bad(self.path, f"a length of {n} bytes runs past the end of the data")
        data = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return data

    def line(self) -> str:
        limit = min(self.end, self.pos + _MAX_GLOBAL_LINE)
        chunk = bytes(self.buf[self.pos:limit])
        cut = chunk.find(b"\n")
        if cut < 0:
            raise _bad(self.path, "a GLOBAL name without an end of line")
        self.pos += cut + 1
        try:
            return chunk[:cut].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _bad(self.path, "a GLOBAL name that is not UTF-8") from exc

    # ------------------------------------------------------------------ the loop
    def run(self) -> ScanResult:
        memo: dict[int, Any] = {}
        ops = 0
        while True:
            if ops >= MAX_OPCODES:
                raise _bad(self.path, f"more than {MAX_OPCODES} opcodes, far more than any hypernetwork needs")
            ops += 1
            at = self.pos
            op = self.read(1) if self.pos < self.end else b""
            if not op:
                raise _bad(self.path, "it ends before its STOP opcode (a truncated file?)")
            name = _OPCODE_NAMES.get(op)
            if name is None:
                raise _bad(self.path, f"opcode {op!r} at byte {at}, which torch.save never writes and torch's "
                                      "weights-only loader refuses")
            try:
                if name == "STOP":
                    self.result.value = self.stack.pop()
                    self.result.end = self.pos
                    return self.result
                self.step(name, memo, ops)
            except IndexError as exc:
                raise _bad(self.path, f"{name} at byte {at} finds too few values on the stack") from exc
            except (TypeError, RecursionError, MemoryError) as exc:
                raise _bad(self.path, f"{name} at byte {at}: {type(exc).__name__}") from exc

    def step(self, name: str, memo: dict[int, Any], ops: int) -> None:
        read = self.read
        stack = self.stack
        if name == "PROTO":
            if read(1)[0] != 2:
                raise _bad(self.path, "a pickle protocol other than 2, the one torch.save writes")
        elif name == "MARK":
            self.marks.append(stack)
            self.stack = []
        elif name in ("NONE", "NEWTRUE", "NEWFALSE"):
            stack.append({"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[name])
        elif name == "BININT":
            stack.append(struct.unpack("<i", read(4))[0])
        elif name == "BININT1":
            stack.append(read(1)[0])
        elif name == "BININT2":
            stack.append(struct.unpack("<H", read(2))[0])
        elif name == "LONG1":
            n = read(1)[0]
            if n > MAX_INT_BYTES:
                raise _bad(self.path, f"an integer of {n} bytes (hypernetworks need at most {MAX_INT_BYTES})")
            stack.append(int.from_bytes(read(n), "little", signed=True))
        elif name == "BINFLOAT":
            stack.append(struct.unpack(">d", read(8))[0])
        elif name == "BINUNICODE":
            n = struct.unpack("<I", read(4))[0]
            try:
                stack.append(read(n).decode("utf-8", "surrogatepass"))
            except UnicodeDecodeError as exc:
                raise _bad(self.path, "a string that is not UTF-8") from exc
        elif name == "SHORT_BINSTRING":
            n = read(1)[0]
            try:
                stack.append(read(n).decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise _bad(self.path, "a string that is not UTF-8") from exc
        elif name == "EMPTY_TUPLE":
            stack.append(self.new_tuple(()))
        elif name == "EMPTY_LIST":
            stack.append([])
        elif name == "EMPTY_DICT":
            stack.append({})
        elif name == "EMPTY_SET":
            stack.append(set())
        elif name == "TUPLE":
            items = tuple(self.pop_mark())
            self.stack.append(self.new_tuple(items))
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            if len(stack) < n:
                raise IndexError
            items = tuple(stack[-n:])
            del stack[-n:]
            stack.append(self.new_tuple(items))
        elif name in ("BINPUT", "LONG_BINPUT"):
            index = read(1)[0] if name == "BINPUT" else struct.unpack("<I", read(4))[0]
            if index > ops:
                raise _bad(self.path, f"memo index {index} beyond the {ops} opcodes read so far (a memory bomb?)")
            memo[index] = stack[-1]
        elif name in ("BINGET", "LONG_BINGET"):
            index = read(1)[0] if name == "BINGET" else struct.unpack("<I", read(4))[0]
            if index not in memo:
                raise _bad(self.path, f"memo index {index} used before it is set")
            stack.append(memo[index])
        elif name == "APPEND":
            item = stack.pop()
            self.target(list, name).append(item)
        elif name == "APPENDS":
            appended = self.pop_mark()  # before target(): the list is below the mark
            self.target(list, name).extend(appended)
        elif name == "SETITEM":
            value, key = stack.pop(), stack.pop()
            self.target(dict, name)[self.hashable(key)] = value
        elif name == "SETITEMS":
            pairs = self.pop_mark()
            if len(pairs) % 2:
                raise _bad(self.path, "SETITEMS with an odd number of values")
            target = self.target(dict, name)
            for i in range(0, len(pairs), 2):
                target[self.hashable(pairs[i])] = pairs[i + 1]
        elif name == "GLOBAL":
            module, attr = self.line(), self.line()
            self.result.globals.append((module, attr))
            if self.allowed is not None and (module, attr) not in self.allowed:
                raise UnsafeFileError(
                    f"refused to load: the file references the Python global '{module}.{attr}', which a "
                    "hypernetwork never needs (it could run code). Nothing from the file was executed. "
                    "Only use this file if you trust its source, and convert it to .safetensors in a sandbox.",
                    self.path,
                    global_name=f"{module}.{attr}",
                )
            stack.append(GlobalRef(module, attr))
        elif name == "REDUCE":
            args = stack.pop()
            func = stack[-1]
            if not isinstance(func, GlobalRef) or not isinstance(args, tuple):
                raise _bad(self.path, "REDUCE of something that is not an allowed global")
            if self.allowed is None:  # listing globals only: what it builds does not matter
                stack[-1] = OrderedDict() if (func.module, func.name) == ("collections", "OrderedDict") else Opaque("?")
            else:
                stack[-1] = self.reduce(func, args)
        elif name == "BUILD":
            state = stack.pop()
            inst = stack[-1]
            if self.allowed is None:
                return
            if type(inst) is OrderedDict and isinstance(state, dict) and set(state) <= {"_metadata"}:
                # torch sets the state as instance attributes; a state dict's _metadata is the only one torch.save
                # writes.  Any other would shadow a method for whoever reads the dict: {"get": _codecs.encode}
                # makes raw.get(key, default) call encode(key, default).
                self.keep.append(state)
            elif isinstance(inst, Opaque) and inst.kind == "numpy.dtype" and isinstance(state, tuple):
                pass
            else:
                raise _bad(self.path, f"BUILD on a {type(inst).__name__}"
                                      + (f" setting {_short(sorted(map(str, state)))}" if type(inst) is OrderedDict
                                         and isinstance(state, dict) else "")
                                      + " (torch.save writes it only to give an OrderedDict its _metadata)")
        elif name == "BINPERSID":
            stack.append(self.persistent(stack.pop()))
        else:  # pragma: no cover - _OPCODE_NAMES and this chain list the same opcodes
            raise AssertionError(name)

    # ------------------------------------------------------------------ helpers
    def pop_mark(self) -> list[Any]:
        if not self.marks:
            raise IndexError
        items = self.stack
        self.stack = self.marks.pop()
        return items

    def target(self, kind: type, name: str) -> Any:
        obj = self.stack[-1]
        if self.allowed is None and isinstance(obj, Opaque):
            return kind()
        if not isinstance(obj, kind):
            raise _bad(self.path, f"{name} on a {type(obj).__name__}")
        return obj

    def new_tuple(self, items: tuple[Any, ...]) -> tuple[Any, ...]:
        depth = 1 + max((self.tuple_depth.get(id(x), 0) for x in items if isinstance(x, (tuple, frozenset))),
                        default=0)
        if depth > MAX_TUPLE_DEPTH:
            raise _bad(self.path, f"tuples nested more than {MAX_TUPLE_DEPTH} deep")
        self.keep.append(items)
        self.tuple_depth[id(items)] = depth
        return items

    def hashable(self, key: Any) -> Any:
        """``key``, if it may be a dict key or set item: hashing it costs little, and no two such keys that differ
        can share a hash (a dict of n colliding keys takes n² steps to build, here and again in torch)."""
        if type(key) in _PLAIN_KEY_TYPES or isinstance(key, GlobalRef):
            return key
        if type(key) is int and -_MAX_KEY_INT < key < _MAX_KEY_INT:
            return key
        # Not hashable (list, dict, set); a tuple or frozenset (Python hashes a tuple by walking all of it, uncached,
        # so a tuple of memo-shared tuples 30 deep takes minutes; tuples of ints can be made to collide); a float
        # or an int beyond 61 bits (hashes reduced modulo 2**61 - 1: endless collisions); a numpy scalar (torch
        # builds a real one, hashed by value).  torch.save writes string and small-int keys for a hypernetwork or
        # an optimizer state.
        what = type(key).__name__ if not isinstance(key, Opaque) else key.kind
        raise _bad(self.path, f"a {what} used as a dict key or set item (only strings and small integers are)")

    def persistent(self, pid: Any) -> StorageRef:
        if self.persistent_ids == "any":
            return StorageRef("ByteStorage", "?", "?", 0)
        if self.persistent_ids == "none":
            raise _bad(self.path, "a storage reference where none belongs")
        length = 5 if self.persistent_ids == "zip" else 6
        if not (isinstance(pid, tuple) and len(pid) == length and pid[0] == "storage"):
            raise _bad(self.path, f"persistent id {_short(pid)} is not a storage reference torch.save writes")
        storage_type, key, location, numel = pid[1:5]
        if not (isinstance(storage_type, GlobalRef) and storage_type.module == "torch"
                and storage_type.name in ELEMENT_SIZES):
            raise _bad(self.path, f"storage type {_short(storage_type)} is not a torch storage class")
        if not (isinstance(key, str) and 0 < len(key) <= 64 and key.isascii() and key.isalnum()):
            raise _bad(self.path, f"storage key {_short(key)} is not a short alphanumeric name")
        if not (isinstance(location, str) and len(location) <= 64):
            raise _bad(self.path, f"storage location {_short(location)} is not a device name")
        if not (type(numel) is int and 0 <= numel <= MAX_NUMEL):
            raise _bad(self.path, f"storage size {_short(numel)} is not a plausible element count")
        view = None
        if length == 6 and pid[5] is not None:
            view = pid[5]
            if not (isinstance(view, tuple) and len(view) == 3 and isinstance(view[0], str)
                    and all(type(v) is int and v >= 0 for v in view[1:])):
                raise _bad(self.path, f"storage view {_short(view)} is malformed")
            if view[1] + view[2] > numel:
                raise _bad(self.path, "a storage view outside its storage")
        self.check_names(key, view)
        ref = StorageRef(storage_type.name, key, location, numel, view)
        known = self.result.storages.get(key)
        if known is None:
            self.result.storages[key] = ref
            return ref
        if (known.type_name, known.numel) != (ref.type_name, ref.numel):
            raise _bad(self.path, f"storage {key} is referenced with two different types or sizes")
        return known if view == known.view else ref

    def check_names(self, root: str, view: tuple[str, int, int] | None) -> None:
        """Refuse a name that torch's legacy loader would resolve to another object than the one checked."""
        if root in self.view_keys:
            raise _bad(self.path, f"storage {root} is also the name of a view (torch would load the view's data)")
        if view is None:
            return
        view_key, offset, size = view
        if view_key in self.result.storages or view_key == root:
            raise _bad(self.path, f"view {view_key} has the name of a storage (torch would load that storage)")
        known = self.view_keys.setdefault(view_key, (root, offset, size))
        if known != (root, offset, size):
            raise _bad(self.path, f"view {view_key} is used with two different storages, offsets or sizes "
                                  "(torch would load the first one for both)")

    def reduce(self, func: GlobalRef, args: tuple[Any, ...]) -> Any:
        target = (func.module, func.name)
        if target == ("collections", "OrderedDict"):
            if args == ():
                return OrderedDict()
            raise _bad(self.path, "OrderedDict built from arguments (torch.save never does that)")
        if target == ("torch._utils", "_rebuild_tensor_v2"):
            return self.tensor(args)
        if target == ("torch._utils", "_rebuild_parameter"):
            if len(args) == 3 and isinstance(args[0], TensorRef) and isinstance(args[1], bool):
                return args[0]
            raise _bad(self.path, "a malformed parameter")
        if target == ("torch", "Size"):
            if len(args) == 1 and isinstance(args[0], tuple) and all(type(x) is int and x >= 0 for x in args[0]):
                return args[0]
            raise _bad(self.path, "a malformed torch.Size")
        if target in (("builtins", "set"), ("__builtin__", "set"), ("builtins", "frozenset")):
            if args == ():
                items: list[Any] = []
            elif len(args) == 1 and isinstance(args[0], list):
                items = [self.hashable(x) for x in args[0]]
            else:
                raise _bad(self.path, "a malformed set")
            return set(items) if func.name == "set" else frozenset(items)
        if target == ("_codecs", "encode"):
            if len(args) == 2 and isinstance(args[0], str) and args[1] in ("latin1", "latin-1"):
                try:
                    return args[0].encode("latin1")
                except UnicodeEncodeError as exc:
                    raise _bad(self.path, "bytes that are not latin-1") from exc
            raise _bad(self.path, "a malformed _codecs.encode call")
        if func.name == "dtype":
            if len(args) == 3 and isinstance(args[0], str) and len(args[0]) <= 8:
                return Opaque("numpy.dtype")
            raise _bad(self.path, "a malformed numpy dtype")
        if func.name == "scalar":
            if len(args) == 2 and isinstance(args[0], Opaque) and isinstance(args[1], bytes) and len(args[1]) <= 16:
                return Opaque("numpy scalar")
            raise _bad(self.path, "a malformed numpy scalar")
        raise _bad(self.path, f"{func.module}.{func.name} called (it is a type, never called by torch.save)")

    def tensor(self, args: tuple[Any, ...]) -> TensorRef:
        if len(args) not in (6, 7):
            raise _bad(self.path, f"a tensor rebuilt from {len(args)} arguments")
        storage, offset, size, stride, requires_grad, hooks = args[:6]
        ok = (
            isinstance(storage, StorageRef) and type(offset) is int and offset >= 0
            and isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride) <= 64
            and all(type(x) is int and 0 <= x <= MAX_NUMEL for x in size + stride)
            and isinstance(requires_grad, bool) and isinstance(hooks, OrderedDict) and not hooks
            # torch.save writes no metadata for a plain tensor; {"neg": True} would load negated weights
            and (len(args) == 6 or args[6] is None or args[6] == {})
        )
        if not ok:
            raise _bad(self.path, "a malformed tensor (storage, offset, shape, strides)")
        numel = 1
        for dim in size:
            numel *= dim
        limit = storage.view[2] if storage.view is not None else storage.numel
        if numel:
            last = offset + sum((d - 1) * s for d, s in zip(size, stride))
            if numel > limit or last >= limit:
                raise _bad(self.path, f"a tensor of shape {size} that does not fit its storage of {limit} elements")
        tensor = TensorRef(storage, offset, size, stride)
        self.result.tensors.append(tensor)
        return tensor


def _children(obj: Any) -> Iterator[Any]:
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield key
            yield value
    elif isinstance(obj, (list, tuple, set, frozenset)):
        yield from obj


_CONTAINERS = (dict, list, tuple, set, frozenset)


def nesting_ok(root: Any, limit: int = MAX_NESTING) -> bool:
    """Whether ``root`` nests containers at most ``limit`` levels deep and contains no cycle.

    Iterative (never recurses), and linear in the number of containers: a container reached twice
    (a memo reference) is measured once.
    """
    if not isinstance(root, _CONTAINERS):
        return True
    height: dict[int, int] = {}  # container id -> levels below it
    on_path = {id(root)}
    stack: list[list[Any]] = [[root, _children(root), 0]]
    while stack:
        frame = stack[-1]
        descended = False
        for child in frame[1]:
            if not isinstance(child, _CONTAINERS):
                continue
            cid = id(child)
            if cid in on_path:
                return False
            known = height.get(cid)
            if known is not None:
                if len(stack) + 1 + known > limit:
                    return False
                frame[2] = max(frame[2], known + 1)
                continue
            if len(stack) >= limit:
                return False
            stack.append([child, _children(child), 0])
            on_path.add(cid)
            descended = True
            break
        if descended:
            continue
        obj, _, below = stack.pop()
        on_path.discard(id(obj))
        height[id(obj)] = below
        if stack:
            stack[-1][2] = max(stack[-1][2], below + 1)
    return True


def tensor_elements(root: Any) -> int:
    """How many tensor elements a walk of ``root`` meets, counting a tensor once per place it appears.

    Linear in the number of containers (a container reached twice through a memo reference is
    summed once and its total reused), so a "billion laughs" structure costs nothing to measure;
    ``root`` must already have passed :func:`check_nesting` (bounded depth, no cycle).
    """
    totals: dict[int, int] = {}

    def walk(obj: Any) -> int:
        if isinstance(obj, TensorRef):
            numel = 1
            for dim in obj.size:
                numel *= dim
            return numel
        if not isinstance(obj, _CONTAINERS):
            return 0
        known = totals.get(id(obj))
        if known is None:
            known = totals[id(obj)] = sum(walk(child) for child in _children(obj))
        return known

    return walk(root)


def check_nesting(value: Any, path: str | None, limit: int = MAX_NESTING) -> None:
    """Raise :class:`HypernetFormatError` when ``value`` nests deeper than ``limit`` or contains itself."""
    if not nesting_ok(value, limit):
        raise HypernetFormatError(
            f"values nested more than {limit} deep (or containing themselves); a hypernetwork needs a handful", path
        )


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value) if not isinstance(value, _CONTAINERS) else f"<{type(value).__name__} of {len(value)}>"
    return text if len(text) <= limit else text[:limit] + "…"
