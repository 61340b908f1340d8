"""Every file write and check on hypernetworks: convert, repair, create, bake, verify, hash missing.

One write policy, :func:`check_target`, for every front end (the command line, the library
panel, the webui tab and cards, the HTTP API):

- a directory is never a target;
- an existing target is replaced only when asked (else :class:`~lib_hypernet.errors.HypernetExistsError`,
  whose message names no way of asking: each front end adds its own, "--force", "tick 'Overwrite'",
  ``"overwrite": true``);
- acting on a library folder, the target must resolve inside it (a sub-folder that is a symbolic
  link to another place is read, never written: :class:`~lib_hypernet.errors.OutsideFolderError`);
- every write is atomic (a temporary file beside the target, moved over it when complete).

A conversion is written to a temporary file beside the destination and moved over it only
after it re-loads with the source's metadata and bit-identical weights for every width,
so a failed or interrupted conversion never replaces anything.  When writing a ``.pt``,
a valid ``SRC.optim`` is re-written for the new file's hash (a re-saved file has a new
hash, so the old side file would no longer match), under the same policy as the file.

The batches (:func:`convert_all`, :func:`repair_all`, :func:`repair_files`) act on each file in turn
under the same policy and return one :class:`FileOutcome` per file: a refusal or a failure is that
file's outcome and never stops the others.
"""

from __future__ import annotations

import contextlib
import logging
import operator
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

import torch

from ..engine.reference import apply_hypernetworks
from ..errors import (
    HypernetError,
    HypernetExistsError,
    HypernetFileError,
    HypernetFormatError,
    InvalidNameError,
    OutsideFolderError,
    shorten,
)
from ..formats import SUFFIXES, format_of
from ..formats.fileio import atomic_write, resolves_inside
from ..formats.hashing import sha256
from ..formats.optim import OptimizerState, load_optimizer_state, optim_path, save_optimizer_state
from ..formats.safe_unpickle import a1111_zip_entries_rejected
from ..model.create import create as new_hypernetwork
from ..model.decode import all_finite
from ..model.hypernetwork import Hypernetwork, load
from .folder import HypernetFile, HypernetLibrary

if TYPE_CHECKING:
    from ..baking import BakeReport
    from ..engine.strength import StrengthLike

log = logging.getLogger(__name__)

FilesProgress = Callable[[int, int, str], None]
"""Called with (files done, files in all, the file now being worked on)."""

A1111_NAME_CHARS = "._- "
"""What A1111 keeps of a new hypernetwork's name besides letters and digits."""

PROBE_SEED = 1234
PROBE_SHAPE = (2, 5)  # batch, tokens; the width is appended


@dataclass(frozen=True)
class Conversion:
    """What :func:`convert_file` wrote."""

    path: str
    format: str
    sha256: str
    widths: list[int]
    optim_note: str  # what happened to the source's optimizer state ("" when it had none)
    optim_kept: bool = False  # an existing DST.optim was kept because overwriting was not asked for


# --------------------------------------------------------------------- the write policy
def check_target(path: str | os.PathLike[str], *, overwrite: bool, inside: str | None = None) -> str:
    """The one write policy (see the module docstring); returns ``path`` as a string.

    ``inside`` is the folder the target must resolve into (acting on a library); ``None`` for a
    path the user named explicitly (the command line, the examples).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise HypernetFileError("is a directory; move it away first", path)
    if inside is not None and not resolves_inside(path, inside):
        raise OutsideFolderError(
            f"resolves to {os.path.realpath(path)}, outside the hypernetwork folder {inside} "
            "(through a symbolic link); writing there is refused", path
        )
    if os.path.lexists(path) and not overwrite:
        raise HypernetExistsError("already exists", path)
    return path


def library_folder(library: HypernetLibrary) -> str:
    """The folder every write on ``library`` must resolve into."""
    if not library.root:
        raise HypernetFileError("there is no hypernetwork folder to write in")
    return library.root


def write_file(
    path: str | os.PathLike[str], write: Callable[[BinaryIO], object], *, overwrite: bool, inside: str | None = None
) -> str:
    """``write(file)`` into ``path`` under the write policy (atomically); returns the path."""
    path = check_target(path, overwrite=overwrite, inside=inside)
    atomic_write(path, write)
    return path


def save(hn: Hypernetwork, path: str | os.PathLike[str], *, overwrite: bool, inside: str | None = None) -> str:
    """``hn.save(path)`` under the write policy; returns the path."""
    path = check_target(path, overwrite=overwrite, inside=inside)
    hn.save(path)
    return path


# --------------------------------------------------------------------- convert and repair
def probe_outputs(hn: Hypernetwork, seed: int = PROBE_SEED) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """``(k, v)`` of ``hn`` at strength 1 on a seeded normal context, for every width."""
    generator = torch.Generator().manual_seed(seed)
    outputs = {}
    with torch.inference_mode(), warnings.catch_warnings():
        # A1111's softmax-family activations are built without dim (torch warns on every call).
        warnings.filterwarnings("ignore", message="Implicit dimension choice", category=UserWarning)
        for width in hn.widths:
            context = torch.randn(*PROBE_SHAPE, width, generator=generator)
            outputs[width] = apply_hypernetworks(context, [(hn, 1.0)])
    return outputs


def convert_file(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    inside: str | None = None,
    loaded: Hypernetwork | None = None,
    source_sha256: str | None = None,
) -> Conversion:
    """Convert ``src`` to ``dst`` (format from the suffix) and verify it; see the module docstring.

    ``dst`` and its ``.optim`` follow :func:`check_target` (``overwrite``, ``inside``).  ``loaded`` is
    ``src`` already loaded and ``source_sha256`` its hash (each saves a re-read).
    """
    src, dst = os.fspath(src), os.fspath(dst)
    src_format, dst_format = format_of(src), format_of(dst)
    check_target(dst, overwrite=overwrite, inside=inside)
    folder = os.path.dirname(os.path.abspath(dst))
    if not os.path.isdir(folder):
        raise HypernetFileError(f"the folder {folder} does not exist", dst)
    hn = loaded if loaded is not None else load(src)
    src_sha256 = source_sha256 or sha256(src)
    optim_state = load_optimizer_state(src, pt_sha256=src_sha256) if os.path.exists(optim_path(src)) else None
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(dst)}.", suffix=f".tmp{os.path.splitext(dst)[1]}")
    except OSError as exc:
        raise HypernetFileError(f"cannot write in its folder: {exc.strerror or exc}", dst) from exc
    os.close(fd)
    try:
        try:
            hn.save(tmp, source_sha256=src_sha256 if src_format == "pt" and dst_format == "safetensors" else None)
        except HypernetFileError as exc:  # about our temporary file: name the destination instead
            raise HypernetFileError(exc.reason, dst) from exc
        _check_same(hn, load(tmp), src, dst)
        os.replace(tmp, dst)
    finally:
        with contextlib.suppress(OSError):
            os.remove(tmp)
    note, kept = _carry_optim(optim_state, src, dst, dst_format, overwrite, inside)
    return Conversion(dst, dst_format, sha256(dst), hn.widths, note, kept)


def _carry_optim(
    state: OptimizerState | None, src: str, dst: str, dst_format: str, overwrite: bool, inside: str | None
) -> tuple[str, bool]:
    """Write ``DST.optim`` from SRC's valid optimizer state; returns a note for the report and whether
    an existing ``DST.optim`` was kept (overwriting not asked for)."""
    if state is None:
        return "", False
    if not state.ok:
        return f"{os.path.basename(optim_path(src))} is {state.status}, not carried over", False
    if dst_format != "pt":
        return f"the optimizer state stays in {os.path.basename(optim_path(src))} (training uses .pt)", False
    same_file = os.path.abspath(src) == os.path.abspath(dst)
    try:
        check_target(optim_path(dst), overwrite=overwrite or same_file, inside=inside)
    except HypernetExistsError:
        return f"{optim_path(dst)} exists, so the optimizer state was not carried over", True
    except HypernetFileError as exc:
        return f"the optimizer state was not carried over: {exc}", False
    assert state.state_dict is not None
    save_optimizer_state(dst, state.state_dict, state.optimizer_name)
    return f"wrote {os.path.basename(optim_path(dst))} for it ({state.optimizer_name} state, re-hashed)", False


def converted_path(path: str | os.PathLike[str], to: str) -> str:
    """Where converting ``path`` to the format ``to`` (``"pt"``, ``"safetensors"``) writes by default: beside it,
    the same stem with the other suffix."""
    return f"{os.path.splitext(os.fspath(path))[0]}.{to}"


def convert(library: HypernetLibrary, file: HypernetFile, *, overwrite: bool = False) -> Conversion:
    """Write ``<stem>.safetensors`` beside the library's ``.pt`` ``file`` (verified bit-identical)."""
    if file.format != "pt":
        raise HypernetError(f"{file.name} is already a .safetensors file", file.path)
    return _convert_in(library, file, converted_path(file.path, "safetensors"), overwrite)


def repair_file(path: str | os.PathLike[str], *, overwrite: bool = False) -> Conversion:
    """Re-write the ``.pt`` at ``path`` in place in the legacy format every A1111 loads.

    The weights stay bit-identical but the file's hash changes, so it is a replacement like any
    other: without ``overwrite`` it raises :class:`HypernetExistsError`.  Its ``.optim`` is re-hashed.
    """
    path = _check_repair(path, overwrite)
    return convert_file(path, path, overwrite=True)


def repair(library: HypernetLibrary, file: HypernetFile, *, overwrite: bool = False) -> Conversion:
    """:func:`repair_file` on the library's ``file`` (written only inside the library's folder)."""
    _check_repair(file.path, overwrite)
    return _convert_in(library, file, file.path, True)


def _check_repair(path: str | os.PathLike[str], overwrite: bool) -> str:
    """Refuse to repair what is no ``.pt``, or without ``overwrite`` (before anything is loaded)."""
    path = os.fspath(path)
    if format_of(path) != "pt":
        raise HypernetError(f"{os.path.basename(path)} is a .safetensors file; only a .pt can be repaired", path)
    if not overwrite:
        raise HypernetExistsError("repairing rewrites it in place (weights bit-identical, the file's hash changes)", path)
    return path


def _convert_in(library: HypernetLibrary, file: HypernetFile, target: str, overwrite: bool) -> Conversion:
    folder = library_folder(library)
    check_target(target, overwrite=overwrite, inside=folder)  # refuse before loading anything
    try:
        loaded = library.get(file)
    except HypernetError:
        raise
    except Exception as exc:  # defence in depth: one bad file gives our error, never a crash of the caller
        log.warning("hypernetworks: cannot load %s", file.path, exc_info=True)
        raise HypernetError(f"cannot load: {shorten(f'{type(exc).__name__}: {exc}', 500)}", file.path) from exc
    return convert_file(file.path, target, overwrite=overwrite, inside=folder, loaded=loaded,
                        source_sha256=library.sha256(file))


# --------------------------------------------------------------------- create
def sanitize_name(name: str) -> str:
    """Keep only letters, digits and ``._- `` (A1111's create rule).

    Refuses (:class:`InvalidNameError`) a name with a folder in it (``../x``), one starting with
    a dot (the webui skips hidden files) and one that is empty once reduced.
    """
    if any(sep in name for sep in ("/", "\\", os.sep, os.altsep or "/")):
        raise InvalidNameError(f"the name {name!r} contains a path separator; give a plain name",
                               name=name, rule="separator")
    if name.startswith("."):
        raise InvalidNameError(f"the name {name!r} starts with '.', which makes a hidden file the webui skips",
                               name=name, rule="hidden")
    clean = "".join(ch for ch in name if ch.isalnum() or ch in A1111_NAME_CHARS)
    if not clean.strip():
        raise InvalidNameError(f"the name {name!r} is empty once reduced to letters, digits and '._- '",
                               name=name, rule="empty")
    return clean


def create_path(name: str, out: str = ".", file_format: str = "pt") -> str:
    """Where :func:`create_file` writes ``name``: ``out/NAME.FORMAT`` with the name sanitized (:func:`sanitize_name`)."""
    return os.path.join(out, f"{sanitize_name(name)}.{file_format}")


def create_file(
    name: str,
    out: str = ".",
    file_format: str = "pt",
    overwrite: bool = False,
    *,
    inside: str | None = None,
    **options: Any,
) -> tuple[str, Hypernetwork]:
    """Create a hypernetwork with A1111's options (see :func:`lib_hypernet.create`) and save it as
    ``out/NAME.FORMAT`` (``out`` is created if needed); returns the path and the hypernetwork."""
    path = create_path(name, out, file_format)
    check_target(path, overwrite=overwrite, inside=inside)
    hn = new_hypernetwork(sanitize_name(name), **options)
    if out:
        try:
            os.makedirs(out, exist_ok=True)
        except OSError as exc:
            raise HypernetFileError(f"cannot create the folder: {exc.strerror or exc}", out) from exc
    return save(hn, path, overwrite=overwrite, inside=inside), hn


def create(
    library: HypernetLibrary, name: str, *, file_format: str = "pt", overwrite: bool = False, **options: Any
) -> tuple[str, Hypernetwork]:
    """:func:`create_file` in the library's folder."""
    folder = library_folder(library)
    return create_file(name, out=folder, file_format=file_format, overwrite=overwrite, inside=folder, **options)


# --------------------------------------------------------------------- checks
@dataclass(frozen=True)
class Verification:
    """What :func:`verify_file` found."""

    failure: str | None  # why the file fails (None: it loads, runs and gives finite outputs of the right shape)
    notes: list[str]  # what does not fail it but is worth a warning
    a1111_rejected: list[str]  # the zip entries A1111 1.10.1 refuses in this .pt (repairing it fixes that)


def verify_file(path: str, digest: str | HypernetError | None = None) -> Verification:
    """Load ``path``, run it once per width on a seeded context and check everything is finite;
    also check its ``.optim`` and whether A1111 loads it.  ``digest`` is its sha256 (or the error
    hashing it gave)."""
    if isinstance(digest, HypernetError):
        return Verification(digest.reason, [], [])
    try:
        hn = load(path)
    except HypernetError as exc:
        return Verification(exc.reason, [], [])
    failure = _run_failure(hn)
    if failure is not None:
        return Verification(failure, [], [])
    notes = []
    if os.path.exists(optim_path(path)):
        state = load_optimizer_state(path, pt_sha256=digest if isinstance(digest, str) else None)
        if not state.ok:
            notes.append(f".optim is {state.status}: {state.reason} (inference does not need it)")
    rejected = a1111_zip_entries_rejected(path) if hn.file_format == "pt" else []
    return Verification(None, notes, rejected)


def _run_failure(hn: Hypernetwork) -> str | None:
    """Why ``hn`` does not run (non-finite weights or outputs, a failing forward pass), or None."""
    for width in hn.widths:
        for branch, module in zip("kv", hn.layers[width]):
            for name, param in module.named_parameters():
                if not all_finite(param):
                    return f"width {width} ({branch}) {name} contains NaN or infinite values"
    try:
        outputs = probe_outputs(hn)
    except RuntimeError as exc:
        return f"the forward pass fails: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    for width, pair in outputs.items():
        for branch, tensor in zip("kv", pair):
            if tuple(tensor.shape) != (*PROBE_SHAPE, width):
                return f"width {width} ({branch}): output shape {tuple(tensor.shape)} != input shape"
            if not all_finite(tensor):
                return f"width {width} ({branch}): the output contains NaN or infinite values"
    return None


def hash_missing(library: HypernetLibrary, progress: FilesProgress | None = None) -> tuple[int, list[str]]:
    """Hash every file of ``library`` whose sha256 is not cached; returns (how many were hashed, errors)."""
    todo = [f for f in library.files.values() if library.hash_cache.get(f.path) is None]

    def hash_one(file: HypernetFile) -> str | None:
        try:
            library.sha256(file)
        except HypernetError as exc:
            return str(exc)
        return None

    errors = [error for error in _each(todo, hash_one, progress) if error is not None]
    return len(todo) - len(errors), errors


# --------------------------------------------------------------------- batches
WRITTEN, FINE, EXISTS, FAILED = "written", "fine", "exists", "failed"
"""A batch's outcome for one file: written; nothing to do; not written because its target exists and
overwriting was not asked for; failed."""


@dataclass(frozen=True)
class FileOutcome:
    """What a batch action did with one file."""

    path: str  # the file acted on
    status: str  # WRITTEN, FINE, EXISTS or FAILED (see above)
    target: str | None = None  # the file written (or that would have been)
    conversion: Conversion | None = None  # what was written
    message: str = ""  # why it was not written or failed (the error's text, naming the file)


def attempt(path: str, target: str, act: Callable[[], Conversion]) -> FileOutcome:
    """One write of a batch (``act``): a refusal or failure becomes its outcome instead of ending the batch."""
    try:
        done = act()
    except HypernetExistsError as exc:
        return FileOutcome(path, EXISTS, target, message=str(exc))
    except HypernetError as exc:
        return FileOutcome(path, FAILED, target, message=str(exc))
    except OSError as exc:
        return FileOutcome(path, FAILED, target, message=f"{exc.filename or path}: {exc.strerror or exc}")
    return FileOutcome(path, WRITTEN, target, done)


def convert_all(
    folder: str | os.PathLike[str] | HypernetLibrary, *, to: str = "safetensors", overwrite: bool = False,
    progress: FilesProgress | None = None,
) -> list[FileOutcome]:
    """Convert every file of ``folder`` (recursively, as the library lists it) that is not a ``to`` file
    (``"safetensors"`` or ``"pt"``) into ``<stem>.<to>`` beside it, each verified bit-identical and written
    only inside the folder; one outcome per file, in name order (a failure does not stop the others)."""
    if f".{to}" not in SUFFIXES:
        raise HypernetFormatError(f"unknown format {to!r}; use pt or safetensors")
    library = _refreshed(folder)

    def convert_one(file: HypernetFile) -> FileOutcome:
        target = converted_path(file.path, to)
        return attempt(file.path, target, lambda: _convert_in(library, file, target, overwrite))

    return _each([f for f in library.files.values() if f.format != to], convert_one, progress)


def repair_all(
    folder: str | os.PathLike[str] | HypernetLibrary, *, overwrite: bool = False, progress: FilesProgress | None = None
) -> list[FileOutcome]:
    """:func:`repair` every ``.pt`` of ``folder`` (recursively) that A1111 cannot load; the others are FINE.
    Without ``overwrite`` nothing is written: a file that could be repaired is EXISTS (it would be replaced),
    one that cannot be loaded FAILED."""
    library = _refreshed(folder)

    def repair_one(file: HypernetFile) -> FileOutcome:
        return _repair_outcome(file.path, overwrite, lambda: library.get(file),
                               lambda: repair(library, file, overwrite=overwrite))

    return _each([f for f in library.files.values() if f.format == "pt"], repair_one, progress)


def repair_files(
    paths: Sequence[str], *, overwrite: bool = False, progress: FilesProgress | None = None
) -> list[FileOutcome]:
    """:func:`repair_all` for files named one by one (no folder rule: the user chose each path)."""

    def repair_one(path: str) -> FileOutcome:
        return _repair_outcome(path, overwrite, lambda: load(path), lambda: repair_file(path, overwrite=overwrite))

    return _each(list(paths), repair_one, progress, name=os.path.basename)


def _repair_outcome(
    path: str, overwrite: bool, load_it: Callable[[], Hypernetwork], repair_it: Callable[[], Conversion]
) -> FileOutcome:
    try:
        _check_repair(path, overwrite=True)  # a .pt
        if not os.path.isfile(path):
            raise HypernetFileError("file not found" if not os.path.lexists(path) else "not a regular file", path)
        if not a1111_zip_entries_rejected(path):
            load_it()  # A1111 loads it; a file broken in another way (NaN, bad activation) is no "fine" one
            return FileOutcome(path, FINE)
        if not overwrite:
            load_it()  # only a file that can be repaired waits for the go-ahead; a broken one fails now
    except HypernetError as exc:
        return FileOutcome(path, FAILED, message=str(exc))
    return attempt(path, path, repair_it)


def _refreshed(folder: str | os.PathLike[str] | HypernetLibrary) -> HypernetLibrary:
    """``folder``'s library with a fresh listing (a batch acts on what is there now)."""
    if not isinstance(folder, HypernetLibrary):
        if not os.path.isdir(folder):
            raise HypernetFileError("not a folder" if os.path.exists(folder) else "folder not found", os.fspath(folder))
        folder = HypernetLibrary(folder)
    library_folder(folder)
    folder.refresh()
    return folder


T = TypeVar("T")
R = TypeVar("R")


def _each(items: Sequence[T], act: Callable[[T], R], progress: FilesProgress | None,
          name: Callable[[T], str] = operator.attrgetter("name")) -> list[R]:
    """``act`` on every item in turn, reporting (done, all, the item's name) before each and at the end."""
    results = []
    for i, item in enumerate(items):
        if progress is not None:
            progress(i, len(items), name(item))
        results.append(act(item))
    if progress is not None:
        progress(len(items), len(items), "")
    return results


def _check_same(original: Hypernetwork, copy: Hypernetwork, src: str, dst: str) -> None:
    """Same widths, metadata and every tensor equal (dtype and bits): the modules then compute the same.

    Compared as weights rather than outputs: a matmul's last bits may depend on memory alignment,
    so two loads of one file need not produce bit-equal outputs, while their weights always are.
    """
    if copy.widths != original.widths:
        raise HypernetFormatError(f"verification failed: widths {copy.widths} != {original.widths} of {src}", dst)
    differing = [k for k, v in original.metadata().items() if copy.metadata()[k] != v]
    if differing:
        raise HypernetFormatError(f"verification failed: metadata {differing} differs from {src}", dst)
    for width in original.widths:
        for branch, a, b in zip("kv", original.layers[width], copy.layers[width]):
            sa, sb = a.state_dict(), b.state_dict()
            if sa.keys() != sb.keys() or not all(sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]) for k in sa):
                raise HypernetFormatError(f"verification failed: width {width} ({branch}) weights differ from {src}", dst)


# ---------------------------------------------------------------------------- bake
def bake(
    sources: Sequence[tuple[Hypernetwork | str | os.PathLike[str], StrengthLike]],
    checkpoint: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    mode: str = "lora",
    overwrite: bool = False,
    inside: str | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> BakeReport:
    """Bake ``sources`` for ``checkpoint`` into ``output`` (:func:`lib_hypernet.baking.bake`) under the write policy:
    ``inside`` is the folder the output must resolve into (the webui's LoRA or checkpoint folder)."""
    from ..baking import bake as run_bake  # torch-heavy; only a bake needs it

    target = check_target(output, overwrite=overwrite, inside=inside)
    return run_bake(sources, checkpoint, target, mode=mode, progress=progress)


def batch_summary(verb: str, outcomes: Sequence[FileOutcome], *, not_written: str = "not written (they exist)",
                  fine: bool = False) -> str:
    """``repaired 33 of 37 files; 4 were fine; 0 failed`` (``fine``: always say how many needed nothing), and how
    many were not written because their target exists (``not_written`` words that, each front end its way)."""
    count = {status: sum(o.status == status for o in outcomes) for status in (WRITTEN, FINE, EXISTS, FAILED)}
    parts = [f"{verb} {count[WRITTEN]} of {len(outcomes)} file{'s' if len(outcomes) != 1 else ''}"]
    if count[FINE] or fine:
        parts.append(f"{count[FINE]} {'was' if count[FINE] == 1 else 'were'} fine")
    if count[EXISTS]:
        parts.append(f"{count[EXISTS]} {not_written}")
    parts.append(f"{count[FAILED]} failed")
    return "; ".join(parts)
