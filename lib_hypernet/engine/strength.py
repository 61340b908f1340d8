"""How strongly a hypernetwork applies: one number, or separate self/cross strengths and a step range."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Union


@dataclass(frozen=True)
class Strength:
    """Strength for self-attention and cross-attention, active for a fraction of the sampling steps.

    The hypernetwork applies at sampling step ``i`` of ``n`` when
    ``start <= i / n < stop``.  ``Strength.uniform(0.8)`` is what a plain ``0.8`` means.
    """

    self_attn: float = 1.0
    cross_attn: float = 1.0
    start: float = 0.0
    stop: float = 1.0

    def __post_init__(self) -> None:
        for name in ("self_attn", "cross_attn", "start", "stop"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"strength {name} must be a finite number, got {value!r}")
        if not 0.0 <= self.start <= 1.0 or not 0.0 <= self.stop <= 1.0:
            raise ValueError(f"start and stop are fractions of the sampling steps (0..1), got {self.start}, {self.stop}")

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
