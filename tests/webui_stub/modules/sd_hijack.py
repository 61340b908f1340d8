"""Stand-in of ``modules/sd_hijack.py``: class-level attention patching and ``model_hijack``.

At import, like A1111: the original ldm ``CrossAttention.forward`` is saved, and
``ldm.modules.attention.MemoryEfficientCrossAttention`` / ``ATTENTION_MODES['softmax-xformers']`` are aliased to
``CrossAttention``. Text-encoder wrapping (embeddings, CLIP hijack) is not emulated.
"""
from __future__ import annotations

import ldm.modules.attention

from modules import errors, script_callbacks, sd_hijack_optimizations, shared
from modules.hypernetworks import hypernetwork

attention_CrossAttention_forward = ldm.modules.attention.CrossAttention.forward
"""The pristine ldm forward (A1111 keeps it under this name too)."""

ldm.modules.attention.MemoryEfficientCrossAttention = ldm.modules.attention.CrossAttention
ldm.modules.attention.BasicTransformerBlock.ATTENTION_MODES["softmax-xformers"] = ldm.modules.attention.CrossAttention

optimizers: list[sd_hijack_optimizations.SdOptimization] = []
current_optimizer: sd_hijack_optimizations.SdOptimization | None = None


def list_optimizers() -> None:
    """Collect optimizers from ``on_list_optimizers`` callbacks, keep available ones, sort by priority (desc)."""
    found = [x for x in script_callbacks.list_optimizers_callback() if x.is_available()]
    optimizers.clear()
    optimizers.extend(sorted(found, key=lambda x: x.priority, reverse=True))


def apply_optimizations(option: str | None = None) -> str:
    """Select and apply an optimizer from ``option`` or ``opts.cross_attention_optimization``; returns its name."""
    global current_optimizer
    undo_optimizations()
    if not optimizers:
        current_optimizer = None
        return ""
    if current_optimizer is not None:
        current_optimizer.undo()
        current_optimizer = None

    selection = option or shared.opts.cross_attention_optimization
    if selection == "Automatic":
        match = next((x for x in optimizers if x.cmd_opt and getattr(shared.cmd_opts, x.cmd_opt, False)), optimizers[0])
    else:
        match = next((x for x in optimizers if x.title() == selection), None)
    if selection == "None" or (selection == "Automatic" and shared.cmd_opts.disable_opt_split_attention):
        match = None
    elif match is None:
        match = optimizers[0]

    if match is None:
        print("Disabling attention optimization")
        return ""
    print(f"Applying attention optimization: {match.name}... done.")
    match.apply()
    current_optimizer = match
    return match.name


def undo_optimizations() -> None:
    """Back to the unoptimized forward (``hypernetwork.attention_CrossAttention_forward``), as A1111."""
    sd_hijack_optimizations._set_forward(hypernetwork.attention_CrossAttention_forward)


def restore_ldm_forward() -> None:
    """Stand-in only: put the pristine ldm forward back (used by the harness' ``unload``)."""
    global current_optimizer
    current_optimizer = None
    sd_hijack_optimizations._set_forward(attention_CrossAttention_forward)


class StableDiffusionModelHijack:
    fixes = None
    layers = None
    circular_enabled = False
    clip = None
    optimization_method = None

    def __init__(self):
        self.extra_generation_params: dict = {}
        self.comments: list[str] = []
        self.hijack_calls = 0
        self.undo_calls = 0

    def apply_optimizations(self, option: str | None = None) -> None:
        try:
            self.optimization_method = apply_optimizations(option)
        except Exception as e:
            errors.display(e, "applying cross attention optimization")
            undo_optimizations()

    def hijack(self, m) -> None:
        """Apply the current cross-attention optimization (class level) and index the model's layers."""
        self.hijack_calls += 1
        self.apply_optimizations()
        self.clip = getattr(m, "cond_stage_model", None)
        self.layers = list(m.modules())

    def undo_hijack(self, m) -> None:
        self.undo_calls += 1
        undo_optimizations()
        self.apply_circular(False)
        self.layers = None
        self.clip = None

    def redo_hijack(self, m) -> None:
        self.undo_hijack(m)
        self.hijack(m)

    def apply_circular(self, enable: bool) -> None:
        if self.circular_enabled == enable:
            return
        self.circular_enabled = enable
        import torch
        for layer in self.layers or []:
            if type(layer) is torch.nn.Conv2d:
                layer.padding_mode = "circular" if enable else "zeros"

    def clear_comments(self) -> None:
        self.comments = []
        self.extra_generation_params = {}

    def get_prompt_lengths(self, text: str):
        return "-", "-"


model_hijack = StableDiffusionModelHijack()


def reset() -> None:
    """Stand-in only: forget optimizers and hijack state; restore the pristine ldm forward."""
    global model_hijack
    optimizers.clear()
    restore_ldm_forward()
    model_hijack.__init__()
    model_hijack.layers = None
    model_hijack.clip = None
    model_hijack.circular_enabled = False
    model_hijack.optimization_method = None
