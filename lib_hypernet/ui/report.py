"""What the last generation did with its hypernetworks, as the panel beside the prompt shows it.

Host-free: the webui glue records the names it applied and the messages it wrote into the infotext
(:mod:`lib_hypernet.service` words them); this module sorts them into kinds and renders plain HTML.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

# (kind, label, what a message of that kind contains), first match wins
KINDS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("off", "switched off", ("Hypernetworks off:",)),
    ("unsafe", "refused as unsafe", ("refused",)),
    ("not_found", "not found", ("Hypernet not found:",)),
    ("matched_nothing", "matched nothing — not applied", ("matched no attention layer",)),
    ("strength_zero", "strength 0 — not applied", ("is at strength 0",)),
    ("self_only", "self-attention only", ("changed self-attention only",)),
    ("base_model", "another base model", ("was trained on",)),
    ("bad_tag", "tag skipped", ("Hypernet tag skipped:",)),
    ("failed", "failed to load", ("failed to load",)),
)


def kind_of(message: str) -> tuple[str, str]:
    """``(kind, label)`` of one message (``("other", "note")`` when it is none of :data:`KINDS`)."""
    for kind, label, needles in KINDS:
        if any(needle in message for needle in needles):
            return kind, label
    return "other", "note"


@dataclass
class GenerationReport:
    """The hypernetworks one generation applied, and what went wrong (filled while it runs)."""

    applied: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    finished: bool = False

    def add_applied(self, names: list[str]) -> None:
        for name in names:
            if name not in self.applied:
                self.applied.append(name)

    def add_messages(self, messages: list[str]) -> None:
        for message in messages:
            if message not in self.messages:
                self.messages.append(message)

    def to_html(self) -> str:
        """A short list: "applied: a, b", then one line per problem, each with its kind."""
        if not self.applied and not self.messages:
            return "<div class='sd-hypernet-report sd-hypernet-report-empty'>No hypernetwork in the last generation.</div>"
        lines = []
        if self.applied:
            names = ", ".join(html.escape(n) for n in self.applied)
            lines.append(f"<li class='sd-hypernet-applied'>applied: {names}</li>")
        for message in self.messages:
            kind, label = kind_of(message)
            lines.append(f"<li class='sd-hypernet-{kind}'><b>{html.escape(label)}</b>: {html.escape(message)}</li>")
        return "<div class='sd-hypernet-report'>Last generation:<ul class='sd-hypernet-list'>" + "".join(lines) + "</ul></div>"
