"""The data source a library panel is built on: a :class:`HypernetLibrary` plus what the host adds.

The standalone page uses it as is; the webui passes its hypernetwork folder, the loaded
model's facts and "send to txt2img/img2img" JavaScript.  Nothing here imports gradio,
so every action is plain Python (and tested as such).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import HypernetError, HypernetFileError
from .actions import convert_file
from .description import FileDescription, ModelFacts
from .folder import HypernetFile, HypernetLibrary

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int, str], None]
"""Called with (files done, files in all, the file now being hashed)."""


@dataclass(frozen=True)
class SendTarget:
    """A host action that puts a tag somewhere, e.g. the txt2img prompt: a button running ``js(tag)``."""

    label: str
    js: str  # a JavaScript function of one argument (the tag text); it returns []


class ActionError(Exception):
    """A panel action that could not be done; the message says why and what to do."""


class LibrarySource:
    """What :func:`lib_hypernet.ui.build_library_panel` shows and acts on.

    ``refresh`` replaces the plain folder rescan (the webui first re-reads its settings);
    ``model_facts`` returns the loaded model's facts (or ``None``); ``save_caches`` persists
    the hash and description caches after work that filled them; ``send_targets`` are the
    host's "send to …" buttons (none in the standalone page).
    """

    def __init__(
        self,
        library: HypernetLibrary,
        *,
        refresh: Callable[[], None] | None = None,
        model_facts: Callable[[], ModelFacts | None] | None = None,
        save_caches: Callable[[], None] | None = None,
        send_targets: Sequence[SendTarget] = (),
        title: str = "Hypernetworks",
    ) -> None:
        self.library = library
        self._refresh = refresh
        self._model_facts = model_facts
        self._save_caches = save_caches
        self.send_targets = tuple(send_targets)
        self.title = title

    # ------------------------------------------------------------------ reading
    def refresh(self) -> None:
        if self._refresh is not None:
            self._refresh()
        else:
            self.library.refresh()

    def ensure_scanned(self) -> None:
        if not self.library.refreshed:
            self.refresh()

    def descriptions(self) -> list[FileDescription]:
        """Every file's description, from the caches where valid (loads only new or changed files)."""
        self.ensure_scanned()
        found = self.library.describe_all()
        self.save_caches()
        return found

    def describe(self, name: str) -> FileDescription | None:
        """The selected file's description, hashing it if needed (one file: cheap)."""
        self.ensure_scanned()
        file = self.library.files.get(name)
        if file is None:
            return None
        desc = self.library.describe(file, with_hash=True)
        self.save_caches()
        return desc

    def model(self) -> ModelFacts | None:
        if self._model_facts is None:
            return None
        try:
            return self._model_facts()
        except Exception:  # the host's model state is not ours to break on
            log.warning("hypernetworks: cannot read the loaded model's facts", exc_info=True)
            return None

    def save_caches(self) -> None:
        if self._save_caches is not None:
            try:
                self._save_caches()
            except (OSError, HypernetError) as exc:
                log.warning("hypernetworks: cannot save the caches: %s", exc)

    # ------------------------------------------------------------------ writing
    def hash_missing(self, progress: ProgressCallback | None = None) -> tuple[int, list[str]]:
        """Hash every file whose sha256 is not cached; returns (how many were hashed, errors)."""
        self.ensure_scanned()
        todo = [f for f in self.library.files.values() if self.library.hash_cache.get(f.path) is None]
        errors: list[str] = []
        for i, file in enumerate(todo):
            if progress is not None:
                progress(i, len(todo), file.name)
            try:
                self.library.sha256(file)
            except HypernetError as exc:
                errors.append(str(exc))
        if progress is not None:
            progress(len(todo), len(todo), "")
        self.save_caches()
        return len(todo) - len(errors), errors

    def _file(self, name: str | None) -> HypernetFile:
        if not name:
            raise ActionError("select a file first")
        self.ensure_scanned()
        file = self.library.files.get(name)
        if file is None or not os.path.exists(file.path):
            raise ActionError(f"{name} is no longer in the folder; press Refresh")
        return file

    def convert(self, name: str | None, *, overwrite: bool = False) -> str:
        """Write ``<stem>.safetensors`` beside a ``.pt`` (verified bit-identical); returns the new file's name."""
        file = self._file(name)
        if file.format != "pt":
            raise ActionError(f"{file.name} is already a .safetensors file")
        target = os.path.splitext(file.path)[0] + ".safetensors"
        self._convert(file, target, overwrite, "tick 'Overwrite' to replace it")
        return self._name_of(target)

    def repair(self, name: str | None, *, overwrite: bool = False) -> str:
        """Re-write a ``.pt`` in place in the legacy format every A1111 loads (asks first: its hash changes)."""
        file = self._file(name)
        if file.format != "pt":
            raise ActionError(f"{file.name} is a .safetensors file; only a .pt can be repaired")
        if not overwrite:
            raise ActionError(
                f"repairing rewrites {file.relpath} in place (weights bit-identical, the file's hash changes): "
                "tick 'Overwrite' to confirm"
            )
        self._convert(file, file.path, True, "")
        return self._name_of(file.path)

    def _convert(self, file: HypernetFile, target: str, overwrite: bool, hint: str) -> None:
        try:
            convert_file(file.path, target, overwrite=overwrite, overwrite_hint=hint,
                         loaded=self.library.get(file), source_sha256=self.library.sha256(file))
        finally:
            self.refresh()
            self.save_caches()

    def create(self, name: str, *, file_format: str = "pt", overwrite: bool = False, **options: Any) -> str:
        """Create a hypernetwork in the folder with A1111's options (the CLI's name rules); returns its name."""
        from ..cli import commands as cli  # the name rules and checks of ``hypernet create``

        if not self.library.root:
            raise ActionError("no hypernetwork folder is set")
        try:
            path, _ = cli.create_file(name, out=self.library.root, file_format=file_format, force=overwrite, **options)
        except cli.UsageError as exc:
            raise ActionError(str(exc)) from exc
        except HypernetFileError as exc:
            if "already exists" in exc.reason:
                raise ActionError(f"{exc.path} already exists: tick 'Overwrite' to replace it") from exc
            raise
        self.refresh()
        self.save_caches()
        return self._name_of(path)

    def _name_of(self, path: str) -> str:
        path = os.path.abspath(path)
        for file in self.library.files.values():
            if file.path == path:
                return file.name
        return os.path.splitext(os.path.basename(path))[0]
