"""gradio 3.41.2 (A1111 1.10.1, reForge) vs 4.40 (Forge 2): the few differences our UI code meets.

Keep this small and additive: each helper hides one difference (see ``shared/spec/ui.md`` §5).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gradio as gr

GRADIO_MAJOR = int(gr.__version__.split(".")[0])


def js(code: str | None) -> dict[str, Any]:
    """The event keyword for a JavaScript function: ``_js=`` on gradio 3, ``js=`` on gradio 4."""
    if code is None:
        return {}
    return {"_js": code} if GRADIO_MAJOR < 4 else {"js": code}


def update(**changes: Any) -> Any:
    """``gr.update`` (gradio 4 removed ``gr.X.update``)."""
    return gr.update(**changes)


def box(**kwargs: Any) -> Any:
    """A framed group of components: ``gr.Group`` (``gr.Box`` is deprecated in 3.41 and gone in 4)."""
    return gr.Group(**kwargs)


def dropdown_choices(pairs: Sequence[tuple[str, str]]) -> list[Any]:
    """Dropdown choices from ``(label, value)`` pairs: gradio 4 shows labels; gradio 3 takes values only."""
    if GRADIO_MAJOR < 4:
        return [value for _, value in pairs]
    return [(label, value) for label, value in pairs]


def dropdown_kwargs() -> dict[str, Any]:
    """Keywords every dropdown whose value may be set before its choices needs (gradio 4 warns otherwise)."""
    return {"allow_custom_value": True} if GRADIO_MAJOR >= 4 else {}


def queue(blocks: Any, concurrency: int = 1, api_open: bool = False) -> Any:
    """Enable the queue (needed for progress bars): ``concurrency_count`` on 3, ``default_concurrency_limit`` on 4."""
    if GRADIO_MAJOR < 4:
        return blocks.queue(concurrency_count=concurrency, api_open=api_open)
    return blocks.queue(default_concurrency_limit=concurrency, api_open=api_open)


def offline_theme() -> Any:
    """A theme with system fonts only (no web-font fetches: the page works offline)."""
    return gr.themes.Default(font=["sans-serif"], font_mono=["monospace"])


def table_value(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """A ``gr.Dataframe`` value both versions accept, also for zero rows: ``{"headers": …, "data": …}``."""
    return {"headers": list(headers), "data": [list(r) for r in rows]}
