"""The extension's settings (one table, :data:`OPTIONS`, registered as one "Hypernetworks" section) and the
folders the webui configures."""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from typing import Any

import gradio as gr
import torch
from modules import paths, shared

from ..library.source import BakeFolders

DEFAULT_STRENGTH_CHOICES = ("Extra networks default multiplier", "1.0 (like A1111's built-in hypernetworks)")
PRECISION_CHOICES: dict[str, torch.dtype | None] = {
    "Automatic": None, "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
}


SECTION = ("hypernet", "Hypernetworks", "sd")
"""Section id, label and category: under "Stable Diffusion", beside the built-in "Extra Networks" section
(A1111 1.10.1's ``shared_options.py`` registers the categories ``saving``, ``sd``, ``ui``, ``system``,
``postprocessing`` and ``training``)."""


@dataclass(frozen=True)
class Option:
    """One setting: what :func:`register_settings` gives ``shared.OptionInfo``, and the default :func:`opt` falls back to."""

    default: Any
    label: str
    component: Any = None  # a gradio component class; None: the webui's own choice (a checkbox for a bool)
    component_args: dict[str, Any] | None = None
    help: str = ""  # shown under the label (see help_text)
    needs_reload: bool = False  # read when the UI is built: takes effect after "Reload UI"


MEMORY_LIMIT_OPTION = "hypernet_memory_limit"
ROWS_OPTION = "hypernet_panel_rows"
SHOW_ALL_OPTION = "hypernet_cards_show_all"

OPTIONS: dict[str, Option] = {
    "hypernet_default_strength": Option(
        DEFAULT_STRENGTH_CHOICES[0], "Strength of <hypernet:name> written without a number", gr.Radio,
        {"choices": list(DEFAULT_STRENGTH_CHOICES)},
    ),
    MEMORY_LIMIT_OPTION: Option(
        3, "Hypernetworks kept loaded in memory", gr.Number, {"precision": 0},
        help="a file that changed on disk is always reloaded",
    ),
    "hypernet_infotext_hashes": Option(
        True, 'Write "Hypernet hashes" into generation parameters',
        help="lets pasted parameters find a renamed file again",
    ),
    "hypernet_warnings": Option(
        True, "Explain hypernetwork problems in the generation info",
        help="missing or broken files, bad tags, a hypernetwork that changed nothing, another base model",
    ),
    "hypernet_precision": Option(
        "Automatic", "Hypernetwork compute precision", gr.Radio, {"choices": list(PRECISION_CHOICES)},
        help="Automatic = like A1111: the webui's autocast, else float32",
    ),
    ROWS_OPTION: Option(
        3, "Rows in the Hypernetworks panel beside the prompt", gr.Slider, {"minimum": 1, "maximum": 8, "step": 1},
        help="the panel edits the prompt's <hypernet:…> tags", needs_reload=True,
    ),
    SHOW_ALL_OPTION: Option(
        False, "Show hypernetwork cards made for another model family",
        help="otherwise SD1 cards are hidden while an SDXL model is loaded, and so on (from the files' widths)",
    ),
}
"""Every setting of the extension, in the order the settings page shows them; registered once, in :data:`SECTION`."""


def help_text(text: str) -> str:
    """``text`` ready for ``OptionInfo.info()``: A1111 inserts a setting's help as HTML (``innerHTML``), where a
    literal ``<hypernet:…>`` would be taken for a tag and vanish.  Labels need no escaping: gradio shows them as text.
    """
    return html.escape(text, quote=False)


def _option_info(option: Option) -> Any:
    info = shared.OptionInfo(option.default, option.label, option.component, option.component_args)
    if option.help:
        info = info.info(help_text(option.help))
    if option.needs_reload:
        info = info.needs_reload_ui()
    return info


def register_settings() -> None:
    """Add the settings section (at script load, not in ``on_ui_settings``, so it exists in API-only mode too)."""
    shared.options_templates.update(shared.options_section(
        SECTION, {key: _option_info(option) for key, option in OPTIONS.items()}
    ))


_FROM_TABLE: Any = object()


def opt(key: str, default: Any = _FROM_TABLE) -> Any:
    """A setting's value.  The extension's own (:data:`OPTIONS`) default from the table; the webui's own
    settings (``sd_hypernetwork``, ``extra_networks_default_multiplier``) need ``default``."""
    if key in OPTIONS:
        if default is not _FROM_TABLE:
            raise ValueError(f"{key}'s default is in settings.OPTIONS; pass none")
        default = OPTIONS[key].default
    elif default is _FROM_TABLE:
        raise KeyError(f"{key} is not a setting of this extension; pass its default")
    return getattr(shared.opts, key, default)


def uses_webui_multiplier() -> bool:
    """Whether a tag without a number takes the webui's "Extra networks default multiplier" (else 1.0)."""
    return bool(opt("hypernet_default_strength") == DEFAULT_STRENGTH_CHOICES[0])


def default_strength() -> float:
    """The strength of a tag written without a number."""
    if uses_webui_multiplier():
        return float(opt("extra_networks_default_multiplier", 1.0))
    return 1.0


def compute_dtype() -> torch.dtype | None:
    return PRECISION_CHOICES.get(opt("hypernet_precision"))


def hypernetwork_dir() -> str:
    folder = getattr(shared.cmd_opts, "hypernetwork_dir", None)
    return folder or os.path.join(paths.models_path, "hypernetworks")


def bake_folders() -> BakeFolders:
    """The webui's checkpoint folder (``--ckpt-dir``) and LoRA folder (``--lora-dir``, added by its Lora
    extension): a bake reads checkpoints from the first, writes a LoRA into the second, a merge into the first."""
    checkpoints = getattr(shared.cmd_opts, "ckpt_dir", None) or os.path.join(paths.models_path, "Stable-diffusion")
    lora = getattr(shared.cmd_opts, "lora_dir", None) or os.path.join(paths.models_path, "Lora")
    return BakeFolders(checkpoints=checkpoints, lora=lora, merged=checkpoints)


def cache_dir() -> str:
    """Where the hash and description caches live (the webui's cache folder)."""
    return os.environ.get("SD_WEBUI_CACHE_DIR") or os.path.join(paths.data_path, "cache")
