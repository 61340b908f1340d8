"""Stand-in of ``modules/shared.py`` (+ the parts of ``shared_options.py`` an extension interacts with).

``options_templates`` and ``opts`` are long-lived objects that :func:`reset` refills in place, so
``from modules.shared import opts`` keeps working across harness resets; ``opts.data_labels`` IS
``options_templates`` until ``opts.reorder()`` (called by the harness' UI creation), as in A1111.
"""
from __future__ import annotations

import os
import time

from modules import options, paths, shared_cmd_options, shared_items
from modules.options import OptionHTML, OptionInfo, options_section  # noqa: F401  (re-exports, as in A1111)

cmd_opts = shared_cmd_options.cmd_opts
parser = shared_cmd_options.parser

demo = None
device = None
xformers_available = False
hypernetworks: dict[str, str] = {}
loaded_hypernetworks: list = []
sd_model = None
settings_components: dict | None = None
tab_names: list[str] = []
sd_upscalers: list = []
face_restorers: list = []
batch_cond_uncond = True
parallel_processing_allowed = True
latent_upscale_default_mode = "Latent"
latent_upscale_modes = {
    "Latent": {"mode": "bilinear", "antialias": False},
    "Latent (nearest)": {"mode": "nearest", "antialias": False},
}
reload_hypernetworks = shared_items.reload_hypernetworks
list_checkpoint_tiles = shared_items.list_checkpoint_tiles
refresh_checkpoints = shared_items.refresh_checkpoints
config_filename = ""


class State:
    """Minimal ``shared_state.State``: flags read by processing and the job bookkeeping fields."""

    def __init__(self):
        self.skipped = False
        self.interrupted = False
        self.stopping_generation = False
        self.job = ""
        self.job_no = 0
        self.job_count = 0
        self.processing_has_refined_job_count = False
        self.job_timestamp = "0"
        self.sampling_step = 0
        self.sampling_steps = 0
        self.current_latent = None
        self.textinfo = None
        self.server_command = None

    def interrupt(self) -> None:
        self.interrupted = True

    def skip(self) -> None:
        self.skipped = True

    def nextjob(self) -> None:
        self.job_no += 1
        self.sampling_step = 0

    def begin(self, job: str = "(unknown)") -> None:
        self.__init__()
        self.job = job
        self.job_count = -1
        self.job_timestamp = time.strftime("%Y%m%d%H%M%S")

    def end(self) -> None:
        self.job = ""
        self.job_count = 0


class PromptStyles:
    """No styles: identity transforms (processing calls these)."""

    def apply_styles_to_prompt(self, prompt: str, styles) -> str:
        return prompt

    def apply_negative_styles_to_prompt(self, prompt: str, styles) -> str:
        return prompt


class TotalTQDM:
    def updateTotal(self, new_total: int) -> None:
        pass

    def clear(self) -> None:
        pass


state = State()
prompt_styles = PromptStyles()
total_tqdm = TotalTQDM()


def builtin_options() -> dict[str, OptionInfo]:
    """The built-in options the extension interacts with (values/sections as in A1111 1.10.1 shared_options.py)."""
    t: dict[str, OptionInfo] = {}
    t.update(options_section(("system", "System", "system"), {
        "print_hypernet_extra": OptionInfo(False, "Print extra hypernetwork information to console."),
    }))
    t.update(options_section(("training", "Training", "training"), {
        "save_optimizer_state": OptionInfo(False, "Saves Optimizer state as separate *.optim file."),
        "training_xattention_optimizations": OptionInfo(False, "Use cross attention optimizations while training"),
    }))
    t.update(options_section(("sd", "Stable Diffusion", "sd"), {
        "sd_model_checkpoint": OptionInfo(None, "Stable Diffusion checkpoint", infotext="Model hash"),
        "sd_checkpoints_limit": OptionInfo(1, "Maximum number of checkpoints loaded at the same time"),
        "CLIP_stop_at_last_layers": OptionInfo(1, "Clip skip", infotext="Clip skip"),
        "upcast_attn": OptionInfo(False, "Upcast cross attention layer to float32"),
    }))
    t.update(options_section(("vae", "VAE", "sd"), {
        "sd_vae": OptionInfo("Automatic", "SD VAE", infotext="VAE"),
        "sd_vae_overrides_per_model_preferences": OptionInfo(True, "Selected VAE overrides per-model preferences"),
    }))
    t.update(options_section(("optimizations", "Optimizations", "sd"), {
        "cross_attention_optimization": OptionInfo("Automatic", "Cross attention optimization"),
        "persistent_cond_cache": OptionInfo(True, "Persistent cond cache"),
    }))
    t.update(options_section(("extra_networks", "Extra Networks", "sd"), {
        "extra_networks_show_hidden_directories": OptionInfo(True, "Show hidden directories"),
        "extra_networks_hidden_models": OptionInfo("When searched", "Show cards for models in hidden directories"),
        "extra_networks_default_multiplier": OptionInfo(1.0, "Default multiplier for extra networks"),
        "extra_networks_card_width": OptionInfo(0, "Card width for Extra Networks"),
        "extra_networks_card_height": OptionInfo(0, "Card height for Extra Networks"),
        "extra_networks_card_text_scale": OptionInfo(1.0, "Card text scale"),
        "extra_networks_card_show_desc": OptionInfo(True, "Show description on card"),
        "extra_networks_card_description_is_html": OptionInfo(False, "Treat card description as HTML"),
        "extra_networks_card_order_field": OptionInfo("Path", "Default order field for Extra Networks cards"),
        "extra_networks_card_order": OptionInfo("Ascending", "Default order for Extra Networks cards"),
        "extra_networks_tree_view_default_enabled": OptionInfo(False, "Enables the Extra Networks directory tree view"),
        "extra_networks_add_text_separator": OptionInfo(" ", "Extra networks separator"),
        "ui_extra_networks_tab_reorder": OptionInfo("", "Extra networks tab order"),
        "textual_inversion_print_at_load": OptionInfo(False, "Print a list of Textual Inversion embeddings when loading model"),
        "textual_inversion_add_hashes_to_infotext": OptionInfo(True, "Add Textual Inversion hashes to infotext"),
        "sd_hypernetwork": OptionInfo("None", "Add hypernetwork to prompt", refresh=shared_items.reload_hypernetworks),
    }))
    t.update(options_section(("infotext", "Infotext", "ui"), {
        "add_model_hash_to_info": OptionInfo(True, "Add model hash to infotext"),
        "add_model_name_to_info": OptionInfo(True, "Add model name to infotext"),
        "add_user_name_to_info": OptionInfo(False, "Add user name to infotext when authenticated"),
        "add_version_to_infotext": OptionInfo(True, "Add program version to infotext"),
        "infotext_skip_pasting": OptionInfo([], "Disregard fields from pasted infotext"),
        "infotext_styles": OptionInfo("Apply if any", "Infer styles from prompts of pasted infotext"),
        "enable_pnginfo": OptionInfo(True, "Write infotext to metadata of the generated image"),
    }))
    t.update(options_section(("saving-images", "Saving images/grids", "saving"), {
        "samples_save": OptionInfo(True, "Always save all generated images"),
        "samples_format": OptionInfo("png", "File format for images"),
    }))
    t.update(options_section(("sampler-params", "Sampler parameters", "sd"), {
        "eta_noise_seed_delta": OptionInfo(0, "Eta noise seed delta", infotext="ENSD"),
    }))
    t.update(options_section((None, "Hidden options"), {
        "disabled_extensions": OptionInfo([], "Disable these extensions"),
        "disable_all_extensions": OptionInfo("none", "Disable all extensions (preserves the list of disabled extensions)"),
        "sd_checkpoint_hash": OptionInfo("", "SHA256 hash of the current checkpoint"),
    }))
    return t


options_templates: dict[str, OptionInfo] = builtin_options()
restricted_opts: set[str] = set()
opts = options.Options(options_templates, restricted_opts)


def reset() -> None:
    """Fresh built-in options (same dict/Options objects), no model, no hypernetworks, new State."""
    global hypernetworks, loaded_hypernetworks, sd_model, demo, config_filename, settings_components
    options_templates.clear()
    options_templates.update(builtin_options())
    opts.data_labels = options_templates
    opts.data = {k: v.default for k, v in options_templates.items() if not v.do_not_save}
    hypernetworks = {}
    loaded_hypernetworks = []
    sd_model = None
    demo = None
    settings_components = None
    state.__init__()
    config_filename = os.path.join(paths.data_path, "config.json")
