"""Everything a host UI (the webui glue in ``scripts/``) needs, as plain Python: tags → stack,
user-facing messages, infotext hashes and paste-back, and the data behind the HTTP API.

Nothing here knows the webui; the glue passes in prompts, tag items, settings and
the model's facts, and shows what comes back.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from . import infotext
from .description import CONTEXT_WIDTHS, ModelFacts
from .engine.report import EntryReport
from .errors import HypernetError, HypernetFileError, HypernetNotFoundError
from .hashing import legacy_hash_is_meaningful, legacy_model_hash
from .hypernetwork import Hypernetwork
from .library import HypernetFile, HypernetLibrary
from .strength import Strength
from .tags import HypernetRequest, TagError, format_tag, parse_items, rename_in_prompt

log = logging.getLogger(__name__)



@dataclass
class Prepared:
    """The outcome of turning a prompt's tags into a stack."""

    stack: list[tuple[Hypernetwork, Strength]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # one per stack entry
    files: list[HypernetFile] = field(default_factory=list)  # one per stack entry
    messages: list[str] = field(default_factory=list)
    hashes: list[tuple[str, str]] = field(default_factory=list)  # (name, shorthash) for the infotext


def family_of_widths(widths: Sequence[int]) -> str | None:
    """'SD1'/'SD2'/'SDXL' from a hypernetwork's text-context width, if it has exactly one."""
    families = {CONTEXT_WIDTHS[w] for w in widths if w in CONTEXT_WIDTHS}
    return families.pop() if len(families) == 1 else None


class HypernetService:
    """Stateless glue logic over a :class:`HypernetLibrary` (which holds the caches)."""

    def __init__(self, library: HypernetLibrary) -> None:
        self.library = library
        self._choice_notes: dict[str, str] = {}  # paste-back: why a file was chosen among several

    # ------------------------------------------------------------------ generation
    def prepare(
        self,
        tags: Sequence[Sequence[Any]],
        *,
        default_multiplier: float = 1.0,
        with_hashes: bool = True,
    ) -> Prepared:
        """Parse, find and load each tag (``tags`` = the items of each ``<hypernet:…>``, in prompt order).

        A bad tag, a missing name or a file that fails to load becomes a message and is
        skipped; everything else is applied.  Each tag succeeds or fails on its own: an
        unexpected error of any kind (not only :class:`HypernetError`) is logged with its
        traceback and becomes that tag's message, and the other tags and their messages stay.
        """
        result = Prepared()
        for items in tags:
            try:
                request = parse_items(items, default_multiplier)
            except TagError as exc:
                result.messages.append(f"Hypernet tag skipped: {exc}")
                continue
            except Exception as exc:  # a bug in parsing must not drop the other tags
                log.exception("hypernetworks: cannot parse the tag %s", _shorten(repr(list(items))))
                result.messages.append(f"Hypernet tag skipped: {_shorten(repr(list(items)))}: {_describe(exc)}")
                continue
            self._add_isolated(request, result, with_hashes)
        return result

    def _add_isolated(self, request: HypernetRequest, result: Prepared, with_hashes: bool) -> None:
        """:meth:`_add`, leaving ``result`` as it was (plus one message) when it fails unexpectedly."""
        marks = (len(result.stack), len(result.names), len(result.files), len(result.hashes))
        try:
            self._add(request, result, with_hashes)
        except Exception as exc:
            log.exception("hypernetworks: %s failed", request.text)
            del result.stack[marks[0]:], result.names[marks[1]:], result.files[marks[2]:], result.hashes[marks[3]:]
            result.messages.append(f"Hypernet {request.name} failed to load: {_describe(exc)}")

    def _add(self, request: HypernetRequest, result: Prepared, with_hashes: bool) -> None:
        try:
            file = self.library.find(request.name)
        except HypernetNotFoundError as exc:
            result.messages.append(f"Hypernet not found: {exc}")
            return
        try:
            hn = self.library.get(file)
        except HypernetError as exc:
            result.messages.append(f"Hypernet {request.name} failed to load: {exc}")
            return
        result.stack.append((hn, request.strength))
        result.names.append(request.name)
        result.files.append(file)
        if with_hashes:
            try:
                result.hashes.append((request.name, self.library.shorthash(file)))
            except HypernetError as exc:
                result.messages.append(f"Hypernet {request.name}: cannot hash for the infotext: {exc}")

    def base_model_messages(
        self, prepared: Prepared, checkpoint_hash: str | None, checkpoint_name: str | None
    ) -> list[str]:
        """A note per hypernetwork whose recorded training checkpoint differs from the loaded one."""
        messages: list[str] = []
        if not checkpoint_hash:
            return messages
        for name, (hn, _) in zip(prepared.names, prepared.stack):
            trained = (hn.sd_checkpoint or "").strip().lower()
            if not trained or checkpoint_hash.lower().startswith(trained) or trained.startswith(checkpoint_hash.lower()):
                continue
            label = f"{hn.sd_checkpoint_name} [{hn.sd_checkpoint}]" if hn.sd_checkpoint_name else f"[{hn.sd_checkpoint}]"
            messages.append(
                f"Hypernet {name} was trained on {label}; the current model is {checkpoint_name or '?'} [{checkpoint_hash}]"
            )
        return messages

    @staticmethod
    def zero_strength_messages(prepared: Prepared) -> list[str]:
        """A note per stack entry at strength 0 (self and cross): it changes nothing, so it is not applied."""
        return [f"Hypernet {name} is at strength 0" for name, (_, strength) in zip(prepared.names, prepared.stack)
                if strength.is_zero]

    @staticmethod
    def applied_indices(prepared: Prepared, reports: Sequence[EntryReport]) -> list[int]:
        """The stack entries that changed at least one attention layer: the ones the image depends on.

        A zero strength, no matching width or a step range that never started all leave an entry without layers.
        """
        return [r.index for r in reports if r.index < len(prepared.stack) and not r.matched_nothing]

    @staticmethod
    def report_messages(prepared: Prepared, reports: Sequence[EntryReport], model_family: str | None) -> list[str]:
        """Notes for hypernetworks that changed no attention layer, or self-attention only."""
        messages = []
        for report in reports:
            if report.index >= len(prepared.stack):
                continue
            hn, strength = prepared.stack[report.index]
            name = prepared.names[report.index]
            if strength.is_zero:
                continue
            family = family_of_widths(hn.widths)
            made_for = f" (an {family} hypernetwork)" if family else ""
            on_model = f" on this {model_family} model" if model_family else ""
            widths = "/".join(str(w) for w in hn.widths)
            if report.matched_nothing:
                messages.append(
                    f"Hypernet {name} matched no attention layer{on_model}: it has modules for widths {widths}{made_for}"
                )
            elif report.self_attention_only and strength.cross_attn != 0:
                messages.append(
                    f"Hypernet {name} changed self-attention only{on_model}: its widths {widths}{made_for} "
                    "include no width of this model's text context"
                )
        return messages

    # ------------------------------------------------------------------ infotext
    def restore_pasted(self, params: dict[str, Any]) -> dict[str, str]:
        """Fix tags in pasted parameters: legacy keys become one tag; renamed files are found by hash.

        Mutates ``params`` (``Prompt`` and the hires/negative prompts) and returns the renames.
        """
        recorded = infotext.parse_hashes(params.get(infotext.KEY, "") or "")
        legacy_name = params.get(infotext.LEGACY_NAME_KEY)
        prompt = str(params.get("Prompt", "") or "")
        if legacy_name:
            legacy_name = str(legacy_name).strip()
            if f"<hypernet:{legacy_name}:" not in prompt and f"<hypernet:{legacy_name}>" not in prompt:
                strength = params.get(infotext.LEGACY_STRENGTH_KEY) or "1.0"
                prompt = f"{prompt} <hypernet:{legacy_name}:{strength}>".strip()
            prompt = infotext.dedupe_legacy_tag(prompt, legacy_name)
            params["Prompt"] = prompt
            legacy_hash = params.get(infotext.LEGACY_HASH_KEY)
            if legacy_hash and legacy_name not in recorded:
                recorded[legacy_name] = str(legacy_hash).strip().lower()
        if not recorded:
            return {}
        self._choice_notes = {}
        renames: dict[str, str] = {}
        for key in ("Prompt", "Negative prompt", "Hires prompt", "Hires negative prompt"):
            text = params.get(key)
            if not isinstance(text, str) or "<hypernet:" not in text:
                continue
            found = infotext.resolve_renames(text, recorded, self._exists, self._hash_of, self._find_by_hash)
            if found:
                params[key] = rename_in_prompt(text, found)
                renames.update(found)
        for old, new in renames.items():
            log.warning("hypernetworks: pasted tag %s now points to %s (it has the recorded hash %s)%s",
                        old, new, recorded.get(old), self._choice_notes.get(new, ""))
        return renames

    def _exists(self, name: str) -> bool:
        try:
            self.library.find(name)
        except HypernetNotFoundError:
            return False
        return True

    def _hash_of(self, name: str) -> str | None:
        try:
            return self.library.sha256(self.library.find(name))
        except HypernetError:
            return None

    def _find_by_hash(self, wanted: str) -> str | None:
        """The name of the file with hash ``wanted``.

        A file whose own sha256 matches wins over a converted ``.safetensors`` whose recorded
        source hash matches (the renamed original is what the infotext was made with); among
        equals, the first by name.  When several match, the choice is noted for the log.
        """
        found = self.library.find_by_hash(wanted)
        if not found and len(wanted) == 8:  # 2022 infotext: A1111's legacy model hash
            found = [
                f for f in self.library.files.values()
                if legacy_hash_is_meaningful(f.path) and legacy_model_hash(f.path) == wanted
            ]
        if not found:
            return None
        own = [f for f in found if (self.library.hash_cache.get(f.path) or "").startswith(wanted)]
        chosen = (own or found)[0]
        if len(found) > 1:
            others = ", ".join(f.name for f in found if f is not chosen)
            why = "its own hash matches" if own else "its recorded source hash matches"
            self._choice_notes[chosen.name] = f"; chose it over {others} ({why})"
        return chosen.name

    # ------------------------------------------------------------------ API
    def list(self, *, refresh: bool = False, model: ModelFacts | None = None) -> list[dict[str, Any]]:
        """The :class:`~lib_hypernet.description.FileDescription` of every file, as plain JSON (never raises)."""
        if refresh or not self.library.refreshed:
            self.library.refresh()
        return [self.library.describe(f, with_hash=True).to_json(model) for f in list(self.library.files.values())]

    def info(self, name: str, *, model: ModelFacts | None = None) -> dict[str, Any]:
        """The description of one hypernetwork plus its ``tag`` (raises :class:`HypernetNotFoundError`)."""
        file = self.library.find(name)
        summary = self.library.describe(file, with_hash=True).to_json(model)
        summary["tag"] = format_tag(file.name, 1.0)
        return summary

    def convert(self, name: str, *, overwrite: bool = False) -> dict[str, Any]:
        """Write ``<stem>.safetensors`` beside a ``.pt``; outputs are checked bit-identical before returning.

        ``name`` may be the plain name of a ``.pt`` that was converted already (the plain name
        then belongs to the ``.safetensors``): that says the target exists and to pass ``overwrite``.
        A target that is a directory, a bad source file, or a target outside the hypernetwork
        folder (through a symlink) raises :class:`HypernetError`.
        """
        from .convert import convert_file  # only a conversion needs it (start-up stays light)

        file = self.library.find(name)
        if file.format != "pt":
            source = self.library.converted_source(file)
            if source is None:
                raise HypernetError(f"{file.name} is already a .safetensors file", file.path)
            file = source
        target = os.path.splitext(file.path)[0] + ".safetensors"
        if os.path.isdir(target):
            raise HypernetFileError("is a directory; move it away or rename the .pt first", target)
        self.library.check_writable(target)
        if os.path.lexists(target) and not overwrite:
            raise HypernetFileError(f"{os.path.basename(target)} already exists; pass overwrite to replace it", target)
        try:
            loaded = self.library.get(file)
        except HypernetError:
            raise
        except Exception as exc:  # defence in depth: one bad file gives our error, never a 500
            log.warning("hypernetworks: cannot load %s", file.path, exc_info=True)
            raise HypernetError(f"cannot load: {_describe(exc)}", file.path) from exc
        convert_file(file.path, target, overwrite=overwrite, overwrite_hint="pass overwrite to replace it",
                     loaded=loaded, source_sha256=self.library.sha256(file))
        self.library.refresh()
        converted = next(f for f in self.library.files.values() if f.path == os.path.abspath(target))
        return self.library.summary(converted)



def _shorten(text: str, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters (user input echoed in messages and logs)."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def _describe(exc: BaseException) -> str:
    """A one-line description of an unexpected exception for a message under the image."""
    text = str(exc) if isinstance(exc, HypernetError) else f"{type(exc).__name__}: {exc}"
    return _shorten(text, 500)
