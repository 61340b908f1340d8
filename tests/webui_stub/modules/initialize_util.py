"""Stand-in of ``modules/initialize_util.py``: the settings onchange hooks installed at startup."""
from __future__ import annotations


def configure_opts_onchange() -> None:
    """Like A1111: checkpoint -> reload_model_weights, VAE -> reload_vae_weights,
    cross-attention optimization -> ``model_hijack.redo_hijack(shared.sd_model)`` (no model_loaded callbacks)."""
    from modules import sd_hijack, sd_models, sd_vae, shared
    from modules.call_queue import wrap_queued_call

    reload_vae = wrap_queued_call(lambda: sd_vae.reload_vae_weights())
    shared.opts.onchange("sd_model_checkpoint", wrap_queued_call(lambda: sd_models.reload_model_weights()), call=False)
    shared.opts.onchange("sd_vae", reload_vae, call=False)
    shared.opts.onchange("sd_vae_overrides_per_model_preferences", reload_vae, call=False)
    redo_hijack = wrap_queued_call(lambda: sd_hijack.model_hijack.redo_hijack(shared.sd_model))
    shared.opts.onchange("cross_attention_optimization", redo_hijack, call=False)
