"""The Stable Diffusion model families a hypernetwork is made for, and the one rule that tells them apart.

A hypernetwork has a module per attention width.  The text-context (cross-attention) width names the family:
768 is SD1, 1024 SD2, 2048 SDXL.  The hidden (self-attention) widths are shared between families, so a file
with those only fits SD1 and SDXL alike (``"SD1/SDXL"``).  Like the built-in Lora's ``SdVersion``, with the
widths each family has.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from typing import Any

SELF_ATTENTION_ONLY = "SD1/SDXL"
"""The version label of a file with self-attention widths only (shared by the families)."""


class SdVersion(Enum):
    """A model family: its text-context width, then its hidden (self-attention) widths."""

    SD1 = (768, (320, 640, 1280))
    SD2 = (1024, (320, 640, 1280))
    SDXL = (2048, (640, 1280))

    def __init__(self, context_width: int, hidden_widths: tuple[int, ...]) -> None:
        self.context_width = context_width
        self.hidden_widths = hidden_widths

    @property
    def label(self) -> str:
        return self.name

    @property
    def widths(self) -> tuple[int, ...]:
        """Every attention width of the family's UNet (the context width first)."""
        return (self.context_width, *self.hidden_widths)

    @classmethod
    def of_label(cls, label: str | None) -> SdVersion | None:
        return cls.__members__.get(label or "")

    @classmethod
    def of_context(cls, width: Any) -> SdVersion | None:
        """The family whose text context is ``width`` wide (None for any other value)."""
        return next((v for v in cls if isinstance(width, int) and v.context_width == width), None)


def context_families(widths: Iterable[int]) -> list[SdVersion]:
    """The families whose text-context width is among ``widths``, in :class:`SdVersion` order."""
    found = {v for w in widths if (v := SdVersion.of_context(w)) is not None}
    return [v for v in SdVersion if v in found]


def version_label(widths: Iterable[int]) -> str | None:
    """``"SD1"``/``"SD2"``/``"SDXL"`` from a hypernetwork's widths; several context widths give e.g. ``"SD1+SD2"``.

    ``"SD1/SDXL"`` (:data:`SELF_ATTENTION_ONLY`) for self-attention widths only; ``None`` when no width is a
    Stable Diffusion one.
    """
    widths = list(widths)
    families = context_families(widths)
    if families:
        return "+".join(v.label for v in families)
    hidden = {w for v in SdVersion for w in v.hidden_widths}
    return SELF_ATTENTION_ONLY if any(w in hidden for w in widths) else None


def context_family(widths: Iterable[int]) -> SdVersion | None:
    """The one family a hypernetwork's context width names (None for none or several)."""
    families = context_families(widths)
    return families[0] if len(families) == 1 else None


def of_model(sd_model: Any, unet: Any = None) -> SdVersion | None:
    """The family of a loaded model: its ``is_sdxl``/``is_sd2``/``is_sd1`` flag, else ``unet.context_dim``.

    Models that set no flag (a UNet known only by its width) still get their family from the context width.
    """
    for flag, version in (("is_sdxl", SdVersion.SDXL), ("is_sd2", SdVersion.SD2), ("is_sd1", SdVersion.SD1)):
        if getattr(sd_model, flag, False):
            return version
    return SdVersion.of_context(getattr(unet, "context_dim", None))


def fits(label: str | None, family: SdVersion | None) -> bool:
    """Whether a file of version ``label`` (as :func:`version_label` writes it) suits a model of ``family``.

    An unknown label (``None``, ``"Unknown"``) or model fits everything.
    """
    if family is None or not label or label == "Unknown":
        return True
    if label == SELF_ATTENTION_ONLY:
        return family in (SdVersion.SD1, SdVersion.SDXL)
    return family.label in label.split("+")
