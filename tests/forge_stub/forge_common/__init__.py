"""Code Forge 2 and reForge share (both take it from ComfyUI): the attention blocks with their patch
lists, the model patcher, ToMe and the sampling call.  Each host's package re-exports it under the
module path the real host uses (``backend.nn.unet``, ``ldm_patched.ldm.modules.attention``, …)."""
