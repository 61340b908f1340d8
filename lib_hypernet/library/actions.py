"""Every file write and check on hypernetworks: convert, repair, create, verify, hash missing.

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
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

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
from ..formats import format_of
from ..formats.fileio import atomic_write, resolves_inside
from ..formats.hashing import sha256
from ..formats.optim import OptimizerState, load_optimizer_state, optim_path, save_optimizer_state
from ..formats.safe_unpickle import a1111_zip_entries_rejected
from ..model.create import create as new_hypernetwork
from ..model.decode import all_finite
from ..model.hypernetwork import Hypernetwork, load
from .folder import HypernetFile, HypernetLibrary

log = logging.getLogger(__name__)

FilesProgress = Callable[[int, int, str], None]
"""Called with (files done, files in all, the file now being hashed)."""

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


def convert(library: HypernetLibrary, file: HypernetFile, *, overwrite: bool = False) -> Conversion:
    """Write ``<stem>.safetensors`` beside the library's ``.pt`` ``file`` (verified bit-identical)."""
    if file.format != "pt":
        raise HypernetError(f"{file.name} is already a .safetensors file", file.path)
    return _convert_in(library, file, os.path.splitext(file.path)[0] + ".safetensors", overwrite)


def repair(library: HypernetLibrary, file: HypernetFile, *, overwrite: bool = False) -> Conversion:
    """Re-write the library's ``.pt`` ``file`` in place in the legacy format every A1111 loads.

    The weights stay bit-identical but the file's hash changes, so it is a replacement like any
    other: without ``overwrite`` it raises :class:`HypernetExistsError`.
    """
    if file.format != "pt":
        raise HypernetError(f"{file.name} is a .safetensors file; only a .pt can be repaired", file.path)
    if not overwrite:
        raise HypernetExistsError(
            f"repairing rewrites {file.relpath} in place (weights bit-identical, the file's hash changes)", file.path
        )
    return _convert_in(library, file, file.path, True)


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
    clean = sanitize_name(name)
    path = os.path.join(out, f"{clean}.{file_format}")
    check_target(path, overwrite=overwrite, inside=inside)
    hn = new_hypernetwork(clean, **options)
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
    errors: list[str] = []
    for i, file in enumerate(todo):
        if progress is not None:
            progress(i, len(todo), file.name)
        try:
            library.sha256(file)
        except HypernetError as exc:
            errors.append(str(exc))
    if progress is not None:
        progress(len(todo), len(todo), "")
    return len(todo) - len(errors), errors


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


# --------------------------------------------------------------------- batch: every file of a library
ALREADY_FINE = "A1111 loads it already"
"""The detail of a ``.pt`` :func:`repair_all` skips because there is nothing to repair."""


@dataclass(frozen=True)
class BatchResult:
    """What a batch action did with one file."""

    name: str
    action: str  # "repaired", "converted", "skipped", "failed"
    detail: str


def repair_all(
    library: HypernetLibrary, *, overwrite: bool = False, progress: FilesProgress | None = None
) -> list[BatchResult]:
    """:func:`repair` every ``.pt`` of ``library`` that A1111 cannot load; one result per ``.pt``.

    A ``.pt`` A1111 already loads is "skipped"; one that does not load at all is "failed".  Repairing
    replaces files in place (their hashes change), so without ``overwrite`` each one that needs it is
    "skipped" and nothing is written.  A valid ``.optim`` is re-written for the new hash (:func:`convert_file`).
    """
    def one(file: HypernetFile) -> BatchResult:
        desc = library.describe(file)
        if desc.error:
            return BatchResult(file.name, "failed", desc.problem or desc.error)
        if desc.a1111_loadable is not False:
            return BatchResult(file.name, "skipped", ALREADY_FINE)
        if not overwrite:
            return BatchResult(file.name, "skipped", "repairing rewrites it in place (its hash changes); "
                                                     "overwriting was not asked for")
        done = repair(library, file, overwrite=True)
        return BatchResult(file.name, "repaired", _written_note(done))

    return _each(library, "pt", one, progress)


def convert_all(
    library: HypernetLibrary, *, to: str = "safetensors", overwrite: bool = False,
    progress: FilesProgress | None = None,
) -> list[BatchResult]:
    """Convert every file of ``library`` that is not yet in format ``to`` (``"safetensors"`` or ``"pt"``) into a
    file beside it (verified bit-identical); one result per such file.

    An existing target is replaced only with ``overwrite`` (else "skipped"); a file that does not load is "failed".
    """
    if to not in ("safetensors", "pt"):
        raise HypernetError(f"cannot convert to {to!r}: the formats are 'safetensors' and 'pt'")
    source = "pt" if to == "safetensors" else "safetensors"

    def one(file: HypernetFile) -> BatchResult:
        target = os.path.splitext(file.path)[0] + "." + to
        if os.path.lexists(target) and not overwrite:
            return BatchResult(file.name, "skipped", f"{os.path.relpath(target, library.root or '.')} exists "
                                                     "(overwriting was not asked for)")
        desc = library.describe(file)
        if desc.error:
            return BatchResult(file.name, "failed", desc.problem or desc.error)
        done = _convert_in(library, file, target, overwrite)
        return BatchResult(file.name, "converted", _written_note(done))

    return _each(library, source, one, progress)


def _each(
    library: HypernetLibrary, file_format: str, one: Callable[[HypernetFile], BatchResult],
    progress: FilesProgress | None,
) -> list[BatchResult]:
    """``one(file)`` for every ``file_format`` file of the library, in name order; an error is that file's
    "failed" result (one bad file never stops the batch).  Rescans the folder afterwards."""
    library_folder(library)
    if not library.refreshed:
        library.refresh()
    todo = [f for f in library.files.values() if f.format == file_format]
    results: list[BatchResult] = []
    for i, file in enumerate(todo):
        if progress is not None:
            progress(i, len(todo), file.name)
        try:
            results.append(one(file))
        except HypernetError as exc:
            results.append(BatchResult(file.name, "failed", exc.reason if exc.path == file.path else str(exc)))
        except Exception as exc:  # defence in depth, as in _convert_in
            log.warning("hypernetworks: batch action failed on %s", file.path, exc_info=True)
            results.append(BatchResult(file.name, "failed", shorten(f"{type(exc).__name__}: {exc}", 500)))
    if progress is not None:
        progress(len(todo), len(todo), "")
    if any(r.action in ("repaired", "converted") for r in results):
        library.refresh()
    return results


def _written_note(done: Conversion) -> str:
    """What a batch result says about a written file: its name, and the ``.optim`` note when there is one."""
    return os.path.basename(done.path) + (f"; {done.optim_note}" if done.optim_note else "")


def batch_summary(results: list[BatchResult], done: str) -> str:
    """One line for a batch whose writes are ``done`` ("repaired" or "converted"):
    ``repaired 33 of 37; 4 were fine; 0 failed`` (files skipped for another reason are counted as "skipped")."""
    fine = sum(1 for r in results if r.action == "skipped" and r.detail == ALREADY_FINE)
    skipped = sum(1 for r in results if r.action == "skipped") - fine
    parts = [f"{done} {sum(1 for r in results if r.action == done)} of {len(results)}"]
    if fine:
        parts.append(f"{fine} {'was' if fine == 1 else 'were'} fine")
    if skipped:
        parts.append(f"{skipped} skipped")
    parts.append(f"{sum(1 for r in results if r.action == 'failed')} failed")
    return "; ".join(parts)
