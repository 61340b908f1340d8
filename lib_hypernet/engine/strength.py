"""How strongly a hypernetwork applies: one number, or separate self/cross strengths and a step range."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Union


class StrengthError(ValueError):
    """A strength that can never apply as written; ``kind`` says why (the prompt grammar reports it as the tag's kind).

    ``not_a_number``: a value is not a finite number; ``out_of_range``: ``start``/``stop`` outside 0..1;
    ``start_not_before_stop``: the step range ``[start, stop)`` is empty, so the hypernetwork would never apply.
    """

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Strength:
    """Strength for self-attention and cross-attention, active for a fraction of the sampling steps.

    The hypernetwork applies at sampling step ``i`` of ``n`` when
    ``start <= i / n < stop``.  ``Strength.uniform(0.8)`` is what a plain ``0.8`` means.
    Raises :class:`StrengthError` for values that can never apply (``start >= stop`` included).
    """

    self_attn: float = 1.0
    cross_attn: float = 1.0
    start: float = 0.0
    stop: float = 1.0

    def __post_init__(self) -> None:
        for name in ("self_attn", "cross_attn", "start", "stop"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise StrengthError(f"strength {name} must be a finite number, got {value!r}", "not_a_number")
        for name in ("start", "stop"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise StrengthError(
                    f"{name} is a fraction of the sampling steps between 0 and 1, got {getattr(self, name):g}",
                    "out_of_range",
                )
        if self.start >= self.stop:
            raise StrengthError(
                f"start ({self.start:g}) must be before stop ({self.stop:g}); otherwise it never applies",
                "start_not_before_stop",
            )

    @classmethod
    def uniform(cls, value: float) -> Strength:
        return cls(float(value), float(value))

    def for_kind(self, kind: str) -> float:
        """The strength for ``"self"`` or ``"cross"`` attention."""
        return self.self_attn if kind == "self" else self.cross_attn

    def active_at(self, step: int | None, total_steps: int | None) -> bool:
        """Whether sampling step ``step`` (0-based) of ``total_steps`` is inside ``[start, stop)``.

        Without step information (``None``) the position counts as step 0.
        """
        fraction = step / total_steps if step is not None and total_steps else 0.0
        return self.start <= fraction < self.stop

    @property
    def is_zero(self) -> bool:
        return self.self_attn == 0.0 and self.cross_attn == 0.0


StrengthLike = Union[float, int, Strength]


def as_strength(value: StrengthLike) -> Strength:
    if isinstance(value, Strength):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"a strength is a number or a Strength, got {type(value).__name__}")
    return Strength.uniform(float(value))
