"""One description of a hypernetwork file, shared by the CLI ``info``, the HTTP API and the UI.

:func:`describe_file` never raises for a bad file: what went wrong goes into ``error``
(and ``safe`` is ``False`` when the file was refused as unsafe).  ``a1111_loadable`` is
decided only after the file validated.  Warnings that depend on the loaded model (another
base model, no matching width) come from :meth:`FileDescription.warnings_for`, since the
description itself is cached per file and the model changes.

:meth:`FileDescription.to_json` gives plain JSON (string keys only: the webui renders routes
with orjson, which refuses int keys; no NaN: the cards' popup and browsers refuse it).  The
checkpoint-mismatch rule and the labels of checkpoints and files live here too, so that the
messages, the warnings, the CLI and the panel say them the same way.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch

from ..errors import HypernetError, HypernetFileError, UnsafeFileError
from ..formats import format_of
from ..formats.hashing import SHORTHASH_LENGTH, legacy_hash_is_meaningful, legacy_model_hash, same_checkpoint, sha256
from ..formats.optim import load_optimizer_state, optim_path
from ..formats.safe_unpickle import a1111_zip_entries_rejected, check_torch_file
from ..model.family import SdVersion, version_label
from ..model.hypernetwork import Hypernetwork, load
from ..model.module import layer_widths

SCHEMA_VERSION = 1

REPAIR_WARNING = "A1111 cannot load this .pt: repair it (rewrites it in the legacy .pt format; weights bit-identical)"
"""The one wording for a ``.pt`` A1111 1.10.1 refuses: "repair" (rewriting it as a ``.pt``), never "convert"."""

STATUS_OK = "ok"
STATUS_REPAIR = "A1111 cannot load — repair"
STATUS_BROKEN = "broken"
STATUS_PENDING = "not read yet"

V = TypeVar("V")


def by_width(per_width: dict[str, V]) -> list[tuple[str, V]]:
    """``(width, value)`` pairs in numeric width order (``320, 640, 768, 1280``).

    The per-width dicts have string keys (JSON), which the persisted caches sort as strings
    (``1280, 320, …``); every display goes through here instead of trusting the dict's order.
    """
    def key(item: tuple[str, V]) -> tuple[int, int, str]:
        width = item[0]
        return (0, int(width), width) if width.isdigit() else (1, 0, width)

    return sorted(per_width.items(), key=key)


@dataclass(frozen=True)
class ModelFacts:
    """What the host knows about the loaded model (for the model-dependent warnings)."""

    checkpoint_hash: str | None = None  # A1111's short hash of the checkpoint (10 hex), or its sha256
    checkpoint_name: str | None = None
    widths: tuple[int, ...] = ()  # the model's attention widths (see SdVersion.widths)

    @classmethod
    def for_family(cls, family: SdVersion | None, checkpoint_hash: str | None = None,
                   checkpoint_name: str | None = None) -> ModelFacts:
        return cls(checkpoint_hash, checkpoint_name, family.widths if family is not None else ())


# --------------------------------------------------------------------- labels and the checkpoint rule
def checkpoint_label(name: str | None, short: str | None) -> str:
    """``name [short]`` for a checkpoint (``name`` or ``[short]`` when only one is known; empty for neither)."""
    if name and short:
        return f"{name} [{short}]"
    return name or (f"[{short}]" if short else "")


BROKEN = "⚠ broken"
"""Ends the label of a file that cannot be loaded (truncated, corrupt, refused), as the tab says "error"."""


def file_label(name: str, shorthash: str | None, sd_version: str | None, broken: bool = False) -> str:
    """A file in a dropdown: ``name [0123456789 · SD1]`` (the parts that are known), ``… ⚠ broken`` when it
    cannot be loaded."""
    extra = " · ".join(x for x in (shorthash, sd_version) if x)
    label = f"{name} [{extra}]" if extra else name
    return f"{label} {BROKEN}" if broken else label


def checkpoint_mismatch(trained_hash: str | None, model_hash: str | None) -> bool:
    """Whether a file trained on ``trained_hash`` meets another checkpoint, ``model_hash``.

    Either may be A1111's short hash or a full sha256 (and a file's may carry stray blanks or capitals), so
    both are stripped and lower-cased and one being a prefix of the other is the same checkpoint.  An
    unknown side is no mismatch.
    """
    return same_checkpoint(trained_hash, model_hash) is False


def mismatch_warning(trained_hash: str | None, trained_name: str | None,
                     model_hash: str | None, model_name: str | None) -> str | None:
    """The words for :func:`checkpoint_mismatch` (None when the checkpoints agree or one is unknown)."""
    if not checkpoint_mismatch(trained_hash, model_hash):
        return None
    return (f"trained on another checkpoint: {checkpoint_label(trained_name, trained_hash)}; "
            f"the loaded model is {checkpoint_label(model_name or '?', model_hash)}")


@dataclass
class FileDescription:
    """Everything known about one hypernetwork file; ``error`` says what failed (``ok`` is False then)."""

    path: str
    name: str = ""  # the library name (used in tags); the file stem outside a library
    relpath: str = ""
    format: str | None = None
    container: str | None = None  # .pt: "zip" or "legacy"
    size: int | None = None
    mtime_ns: int | None = None
    safe: bool | None = None  # None: could not be decided (unreadable file)
    safe_detail: str = ""
    a1111_loadable: bool | None = None  # None: not a .pt, or not validated
    a1111_rejected_entries: list[str] = field(default_factory=list)
    internal_name: str | None = None  # the file's own 'name' key
    sd_version: str | None = None
    widths: list[int] = field(default_factory=list)
    layer_structure: list[float] = field(default_factory=list)
    module_widths: dict[str, list[int]] = field(default_factory=dict)
    modules: dict[str, list[str]] = field(default_factory=dict)
    param_count: int | None = None
    activation_func: str | None = None
    is_layer_norm: bool | None = None
    activate_output: bool | None = None
    use_dropout: bool | None = None
    dropout_structure: list[float] = field(default_factory=list)
    last_layer_dropout: bool | None = None
    weight_initialization: str | None = None
    step: int | None = None
    sd_checkpoint: str | None = None
    sd_checkpoint_name: str | None = None
    optional_info: str | None = None
    ignored_keys: list[str] = field(default_factory=list)
    source_sha256: str | None = None
    sha256: str | None = None
    shorthash: str | None = None
    legacy_hash: str | None = None
    legacy_hash_meaningful: bool | None = None
    optim: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    ok: bool = False

    # ------------------------------------------------------------------ output
    def to_json(self, model: ModelFacts | None = None) -> dict[str, Any]:
        """Plain JSON data (string keys, lists, finite numbers, strings, booleans, ``None``).

        The one converter to JSON: ``json.dumps(..., allow_nan=False)`` and orjson take it as it is (a NaN or
        infinity becomes ``None``).  With ``model``, ``warnings`` also holds the model-dependent ones.
        """
        data = dataclasses.asdict(self)
        data["warnings"] = self.warnings_for(model)
        return _plain(data)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileDescription:
        """The inverse of :meth:`to_json` (unknown keys are ignored; raises ``TypeError`` on a bad shape)."""
        if not isinstance(data, dict) or not isinstance(data.get("path"), str):
            raise TypeError("not a file description")
        names = {f.name for f in dataclasses.fields(cls)}
        desc = cls(**{k: v for k, v in data.items() if k in names})
        if isinstance(desc.modules, dict) and isinstance(desc.module_widths, dict):
            desc.modules, desc.module_widths = dict(by_width(desc.modules)), dict(by_width(desc.module_widths))
        return desc

    def label(self) -> str:
        """This file in a dropdown (:func:`file_label`): ``name [0123456789 · SD1]``, ``… ⚠ broken``."""
        return file_label(self.name, self.shorthash, self.sd_version, broken=bool(self.error))

    @property
    def problem(self) -> str | None:
        """Why the file cannot be used: :attr:`error` without the file's path in front (the reader already
        knows the file); ``None`` when there is no error."""
        if not self.error:
            return None
        return self.error[len(self.path) + 2:] if self.error.startswith(f"{self.path}: ") else self.error

    @property
    def status(self) -> str:
        """What is wrong with the file, in one phrase: ``ok``, ``A1111 cannot load — repair`` (a ``.pt`` A1111
        1.10.1 refuses; the extension loads it) or ``broken — <why>`` (nothing loads it)."""
        if self.error:
            return f"{STATUS_BROKEN} — {self.problem}"
        if not self.ok:
            return STATUS_PENDING
        return STATUS_REPAIR if self.a1111_loadable is False else STATUS_OK

    def copy(self, **changes: Any) -> FileDescription:
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ warnings
    def warnings_for(self, model: ModelFacts | None) -> list[str]:
        """The file's own warnings plus those about ``model`` (another base model, no matching width)."""
        found = list(self.warnings)
        if model is None or not self.ok:
            return found
        mismatch = mismatch_warning(self.sd_checkpoint, self.sd_checkpoint_name,
                                    model.checkpoint_hash, model.checkpoint_name)
        if mismatch:
            found.append(mismatch)
        if model.widths and self.widths and not set(self.widths) & set(model.widths):
            found.append(
                f"no width matches the loaded model: the file has {'/'.join(map(str, self.widths))}, "
                f"the model {'/'.join(map(str, model.widths))}"
            )
        return found

    @property
    def tag_name(self) -> str:
        return self.name or os.path.splitext(os.path.basename(self.path))[0]


# --------------------------------------------------------------------- building
def describe_file(
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    relpath: str | None = None,
    digest: str | HypernetError | None = None,
    hash_file: bool = True,
    loaded: Hypernetwork | None = None,
) -> FileDescription:
    """Describe one file; never raises for a bad file (see the module docstring).

    ``digest`` is the file's sha256 when already known (or the error hashing it gave);
    with ``hash_file`` false and no ``digest``, no hash is computed (except to check a
    ``.optim`` beside it).  ``loaded`` is the file already loaded (saves a re-read).
    """
    path = os.fspath(path)
    stem = os.path.splitext(os.path.basename(path))[0]
    desc = FileDescription(path=path, name=name or stem, relpath=relpath or os.path.basename(path))
    try:
        st = os.stat(path)
    except OSError:
        desc.error = str(HypernetFileError("file not found", path))
        return desc
    if not os.path.isfile(path):
        desc.error = str(HypernetFileError("not a regular file", path))
        return desc
    desc.size, desc.mtime_ns = st.st_size, st.st_mtime_ns
    if digest is None and hash_file:
        try:
            digest = sha256(path)
        except HypernetError as exc:
            digest = exc
    if isinstance(digest, HypernetError):
        desc.error = str(digest)
        return desc
    if digest is not None:
        _set_hashes(desc, digest)
    try:
        desc.format = format_of(path)
    except HypernetError as exc:
        desc.error = str(exc)
        return desc
    if not _check_container(desc):
        return desc
    try:
        hn = loaded if loaded is not None else load(path)
    except HypernetError as exc:
        desc.error = str(exc)
        if isinstance(exc, UnsafeFileError):
            desc.safe, desc.safe_detail = False, exc.reason
        desc.a1111_loadable = None
        return desc
    _set_metadata(desc, hn)
    if desc.format == "pt" and desc.container is not None:
        desc.a1111_rejected_entries = a1111_zip_entries_rejected(path)
        desc.a1111_loadable = not desc.a1111_rejected_entries
        if not desc.a1111_loadable:
            desc.warnings.append(REPAIR_WARNING)
    desc.optim = _optim_verdict(desc)
    desc.ok = True
    return desc


def _set_hashes(desc: FileDescription, digest: str) -> None:
    desc.sha256, desc.shorthash = digest, digest[:SHORTHASH_LENGTH]
    try:
        desc.legacy_hash = legacy_model_hash(desc.path)
        desc.legacy_hash_meaningful = legacy_hash_is_meaningful(desc.path)
    except (HypernetError, OSError):
        desc.legacy_hash = desc.legacy_hash_meaningful = None


def _check_container(desc: FileDescription) -> bool:
    """Safety of the container (``.pt``: the pickle allow-list); False when loading is pointless."""
    if desc.format == "safetensors":
        desc.safe, desc.safe_detail = True, "safetensors files hold only tensors and strings, never code"
        return True
    try:
        desc.container = check_torch_file(desc.path)
    except UnsafeFileError as exc:
        desc.safe, desc.safe_detail, desc.error = False, exc.reason, str(exc)
        return False
    except HypernetError as exc:
        desc.safe, desc.safe_detail, desc.error = None, exc.reason, str(exc)
        return False
    desc.safe = True
    desc.safe_detail = "only allow-listed pickle globals (tensors and plain data); nothing was executed"
    return True


def _set_metadata(desc: FileDescription, hn: Hypernetwork) -> None:
    desc.internal_name = hn.name
    desc.widths = list(hn.widths)
    desc.sd_version = version_label(hn.widths)
    desc.layer_structure = [_number(x) for x in hn.layer_structure]
    desc.module_widths = {str(w): layer_widths(w, hn.layer_structure) for w in hn.widths}
    desc.modules = {str(w): [_describe_layer(layer) for layer in hn.layers[w][0].linear] for w in hn.widths}
    desc.param_count = hn.param_count
    desc.activation_func = hn.activation_func
    desc.is_layer_norm = bool(hn.is_layer_norm)
    desc.activate_output = bool(hn.activate_output)
    desc.use_dropout = bool(hn.use_dropout)
    desc.dropout_structure = [_number(x) for x in (hn.dropout_structure or [])]
    desc.last_layer_dropout = bool(hn.last_layer_dropout)
    desc.weight_initialization = None if hn.weight_initialization is None else str(hn.weight_initialization)
    desc.step = None if hn.step is None else int(hn.step)
    desc.sd_checkpoint = hn.sd_checkpoint
    desc.sd_checkpoint_name = hn.sd_checkpoint_name
    desc.optional_info = hn.optional_info
    desc.ignored_keys = [str(k) for k in hn.ignored_keys]
    desc.source_sha256 = hn.source_sha256


def _optim_verdict(desc: FileDescription) -> dict[str, Any]:
    """The ``.optim`` side file's verdict (hashes the file only when a ``.optim`` exists)."""
    if desc.sha256 is None and os.path.exists(optim_path(desc.path)):
        try:
            _set_hashes(desc, sha256(desc.path))
        except HypernetError:
            pass
    state = load_optimizer_state(desc.path, pt_sha256=desc.sha256)
    return {
        "status": state.status,
        "reason": state.reason,
        "optimizer_name": state.optimizer_name if state.ok else None,
        "stored_hash": state.stored_hash,
        "expected_hash": state.expected_hash,
    }


def optim_stamp(path: str) -> list[int] | None:
    """``[size, mtime_ns]`` of the ``.optim`` beside ``path`` (part of a cached description's validity)."""
    try:
        st = os.stat(optim_path(path))
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def _number(x: Any) -> int | float:
    """A number for JSON (the structures hold ints and floats; anything else becomes a float)."""
    return x if isinstance(x, (int, float)) and not isinstance(x, bool) else float(x)


def _plain(value: Any) -> Any:
    """``value`` as plain JSON data: string keys, lists, finite numbers (a NaN or infinity becomes None), strings."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    return str(value)


def _describe_layer(layer: torch.nn.Module) -> str:
    if isinstance(layer, torch.nn.Linear):
        return f"Linear({layer.in_features}, {layer.out_features})"
    if isinstance(layer, torch.nn.LayerNorm):
        return f"LayerNorm({', '.join(str(d) for d in layer.normalized_shape)})"
    if isinstance(layer, torch.nn.Dropout):
        return f"Dropout(p={layer.p:g})"
    return type(layer).__name__
