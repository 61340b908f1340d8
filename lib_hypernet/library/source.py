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
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import HypernetError, HypernetNotFoundError
from ..prompt.grammar import PREFIX, TAG_RE, HypernetRequest, parse_items
from . import actions
from .actions import FileOutcome, FilesProgress
from .description import FileDescription, ModelFacts
from .folder import HypernetFile, HypernetLibrary

if TYPE_CHECKING:
    from ..baking import BakeReport

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class BakeFolders:
    """Where a bake reads checkpoints and writes its results (the webui's model folders, or the user's choice)."""

    checkpoints: str
    lora: str  # a LoRA file goes here (the webui's Lora folder)
    merged: str  # a merged checkpoint goes here (the webui's checkpoint folder)


CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt")


@dataclass(frozen=True)
class SendTarget:
    """A host action that puts a tag somewhere, e.g. the txt2img prompt: a button running ``js(tag)``."""

    label: str
    js: str  # a JavaScript function of one argument (the tag text); it returns []


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
        bake_folders: BakeFolders | None = None,
    ) -> None:
        self.library = library
        self._refresh = refresh
        self._model_facts = model_facts
        self._save_caches = save_caches
        self.send_targets = tuple(send_targets)
        self.title = title
        self.bake_folders = bake_folders

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

    def describe(self, name: str, *, with_hash: bool = True) -> FileDescription | None:
        """The selected file's description, hashing it if needed (one file: cheap) unless ``with_hash`` is false."""
        self.ensure_scanned()
        file = self.library.files.get(name)
        if file is None:
            return None
        desc = self.library.describe(file, with_hash=with_hash)
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

    # ------------------------------------------------------------------ writing (all in :mod:`.actions`)
    def hash_missing(self, progress: FilesProgress | None = None) -> tuple[int, list[str]]:
        """Hash every file whose sha256 is not cached; returns (how many were hashed, errors)."""
        self.ensure_scanned()
        try:
            return actions.hash_missing(self.library, progress)
        finally:
            self.save_caches()

    def _file(self, name: str | None) -> HypernetFile:
        if not name:
            raise HypernetNotFoundError("select a file first")
        self.ensure_scanned()
        file = self.library.files.get(name)
        if file is None or not os.path.exists(file.path):
            raise HypernetNotFoundError(f"{name} is no longer in the folder; press Refresh", name=name)
        return file

    def convert(self, name: str | None, *, overwrite: bool = False) -> str:
        """Write ``<stem>.safetensors`` beside a ``.pt`` (verified bit-identical); returns the new file's name."""
        file = self._file(name)
        return self._wrote(lambda: actions.convert(self.library, file, overwrite=overwrite).path)

    def repair(self, name: str | None, *, overwrite: bool = False) -> str:
        """Re-write a ``.pt`` in place in the legacy format every A1111 loads (its hash changes: ``overwrite``
        must be given, else :class:`~lib_hypernet.errors.HypernetExistsError`)."""
        file = self._file(name)
        return self._wrote(lambda: actions.repair(self.library, file, overwrite=overwrite).path)

    def repair_all(self, *, overwrite: bool = False, progress: FilesProgress | None = None) -> list[FileOutcome]:
        """:func:`~.actions.repair_all` on the folder, then a rescan (the host's) and the caches saved."""
        self.ensure_scanned()
        return self._rescan_after(lambda: actions.repair_all(self.library, overwrite=overwrite, progress=progress))

    def convert_all(self, *, to: str = "safetensors", overwrite: bool = False,
                    progress: FilesProgress | None = None) -> list[FileOutcome]:
        """:func:`~.actions.convert_all` on the folder, then a rescan (the host's) and the caches saved."""
        self.ensure_scanned()
        return self._rescan_after(lambda: actions.convert_all(self.library, to=to, overwrite=overwrite, progress=progress))

    def create(self, name: str, *, file_format: str = "pt", overwrite: bool = False, **options: Any) -> str:
        """Create a hypernetwork in the folder with A1111's options and name rules; returns its name."""
        return self._wrote(lambda: actions.create(self.library, name, file_format=file_format, overwrite=overwrite,
                                                  **options)[0])

    # ------------------------------------------------------------------ bake
    def checkpoints(self) -> list[str]:
        """The checkpoint files a bake can use, relative to the checkpoint folder (sub-folders included)."""
        if self.bake_folders is None or not os.path.isdir(self.bake_folders.checkpoints):
            return []
        root = self.bake_folders.checkpoints
        found = []
        for folder, _, names in os.walk(root):
            found += [os.path.relpath(os.path.join(folder, n), root) for n in names
                      if n.lower().endswith(CHECKPOINT_SUFFIXES) and not n.startswith(".")]
        return sorted(found, key=str.casefold)

    def bake(self, tags: str, checkpoint: str, *, mode: str, name: str, overwrite: bool = False,
             progress: Callable[[int, int, str], None] | None = None) -> BakeReport:
        """Bake the hypernetworks of ``tags`` (``<hypernet:…>`` tags, applied in order, strengths as in a prompt) for
        ``checkpoint`` (a name from :meth:`checkpoints`) into ``name``.safetensors in the LoRA or checkpoint folder."""
        if self.bake_folders is None:
            raise HypernetError("baking needs a checkpoint folder (the webui's, or --checkpoints DIR)")
        stack = []
        for request in self._requests(tags):
            stack.append((self.library.get(self.library.find(request.name)), request.strength))
        if checkpoint not in self.checkpoints():
            raise HypernetNotFoundError(f"no checkpoint {checkpoint!r} in {self.bake_folders.checkpoints}; press Refresh")
        if not name.strip():
            raise HypernetError("give the file to write a name")
        folder = self.bake_folders.lora if mode == "lora" else self.bake_folders.merged
        output = os.path.join(folder, actions.sanitize_name(name.strip()) + ".safetensors")
        return actions.bake(stack, os.path.join(self.bake_folders.checkpoints, checkpoint), output, mode=mode,
                            overwrite=overwrite, inside=folder, progress=progress)

    @staticmethod
    def _requests(tags: str) -> list[HypernetRequest]:
        found = [parse_items(match.group(0)[len(PREFIX):-1].split(":")) for match in TAG_RE.finditer(tags)]
        if not found:
            raise HypernetError("write the hypernetworks to bake as tags, e.g. <hypernet:name:0.8> (several stack)")
        return found

    def _wrote(self, write: Callable[[], str]) -> str:
        """Run ``write`` (which returns the path written) and rescan; returns the written file's name."""
        return self._name_of(self._rescan_after(write))

    def _rescan_after(self, write: Callable[[], T]) -> T:
        """Run ``write``, then rescan and save the caches (also after a failure: a refused write may have hashed
        the source)."""
        try:
            return write()
        finally:
            self.refresh()
            self.save_caches()

    def _name_of(self, path: str) -> str:
        path = os.path.abspath(path)
        for file in self.library.files.values():
            if file.path == path:
                return file.name
        return os.path.splitext(os.path.basename(path))[0]
