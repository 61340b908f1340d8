"""What an active stack actually changed: layers per attention kind and width, per hypernetwork."""

from __future__ import annotations

from dataclasses import dataclass, field

from .strength import Strength


@dataclass(frozen=True)
class EntryReport:
    """For one stack entry: how many attention layers it changed, by ``(kind, width)``.

    ``kind`` is ``"self"`` (K/V input is the hidden state) or ``"cross"`` (the text context).
    """

    index: int
    name: str | None
    strength: Strength
    layers: dict[tuple[str, int], int] = field(default_factory=dict)

    @property
    def self_layers(self) -> int:
        return sum(n for (kind, _), n in self.layers.items() if kind == "self")

    @property
    def cross_layers(self) -> int:
        return sum(n for (kind, _), n in self.layers.items() if kind == "cross")

    @property
    def matched_nothing(self) -> bool:
        return not self.layers

    @property
    def self_attention_only(self) -> bool:
        return self.self_layers > 0 and self.cross_layers == 0

    def describe(self) -> str:
        """E.g. ``cross 768×16, self 320×10 640×10 1280×12``."""
        parts = []
        for kind in ("cross", "self"):
            widths = sorted((w, n) for (k, w), n in self.layers.items() if k == kind)
            if widths:
                parts.append(f"{kind} " + " ".join(f"{w}×{n}" for w, n in widths))
        return ", ".join(parts) if parts else "no attention layer"
