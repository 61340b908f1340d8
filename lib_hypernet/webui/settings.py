"""The extension's settings (a "Hypernetworks" section) and the folders the webui configures."""

from __future__ import annotations

import html
import os
from typing import Any

import gradio as gr
import torch
from modules import paths, shared

DEFAULT_STRENGTH_CHOICES = ("Extra networks default multiplier", "1.0 (like A1111's built-in hypernetworks)")
PRECISION_CHOICES: dict[str, torch.dtype | None] = {
    "Automatic": None, "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
}


SECTION = ("hypernet", "Hypernetworks", "sd")
"""Section id, label and category: under "Stable Diffusion", beside the built-in "Extra Networks" section
(A1111 1.10.1's ``shared_options.py`` registers the categories ``saving``, ``sd``, ``ui``, ``system``,
``postprocessing`` and ``training``)."""


def help_text(text: str) -> str:
    """``text`` ready for ``OptionInfo.info()``: A1111 inserts a setting's help as HTML (``innerHTML``), where a
    literal ``<hypernet:…>`` would be taken for a tag and vanish.  Labels need no escaping: gradio shows them as text.
    """
    return html.escape(text, quote=False)


def register_settings() -> None:
    """Add the settings section (at script load, not in ``on_ui_settings``, so it exists in API-only mode too)."""
    shared.options_templates.update(shared.options_section(SECTION, {
        "hypernet_default_strength": shared.OptionInfo(
            DEFAULT_STRENGTH_CHOICES[0], "Strength of <hypernet:name> written without a number", gr.Radio,
            {"choices": list(DEFAULT_STRENGTH_CHOICES)},
        ),
        "hypernet_memory_limit": shared.OptionInfo(
            3, "Hypernetworks kept loaded in memory", gr.Number, {"precision": 0},
        ).info(help_text("a file that changed on disk is always reloaded")),
        "hypernet_infotext_hashes": shared.OptionInfo(
            True, 'Write "Hypernet hashes" into generation parameters',
        ).info(help_text("lets pasted parameters find a renamed file again")),
        "hypernet_warnings": shared.OptionInfo(
            True, "Explain hypernetwork problems in the generation info",
        ).info(help_text("missing or broken files, bad tags, a hypernetwork that changed nothing, another base model")),
        "hypernet_precision": shared.OptionInfo(
            "Automatic", "Hypernetwork compute precision", gr.Radio, {"choices": list(PRECISION_CHOICES)},
        ).info(help_text("Automatic = like A1111: the webui's autocast, else float32")),
    }))


def opt(key: str, default: Any) -> Any:
    return getattr(shared.opts, key, default)


def default_strength() -> float:
    """The strength of a tag written without a number."""
    if opt("hypernet_default_strength", DEFAULT_STRENGTH_CHOICES[0]) == DEFAULT_STRENGTH_CHOICES[0]:
        return float(opt("extra_networks_default_multiplier", 1.0))
    return 1.0


def compute_dtype() -> torch.dtype | None:
    return PRECISION_CHOICES.get(opt("hypernet_precision", "Automatic"))


def hypernetwork_dir() -> str:
    folder = getattr(shared.cmd_opts, "hypernetwork_dir", None)
    return folder or os.path.join(paths.models_path, "hypernetworks")


def hash_cache_path() -> str:
    folder = os.environ.get("SD_WEBUI_CACHE_DIR") or os.path.join(paths.data_path, "cache")
    return os.path.join(folder, "sd-webui-hypernet-hashes.json")


def description_cache_path() -> str:
    """The file descriptions (summaries) cache, beside the hash cache."""
    return os.path.join(os.path.dirname(hash_cache_path()), "sd-webui-hypernet-summaries.json")
