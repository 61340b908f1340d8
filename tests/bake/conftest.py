"""Tests of lib_hypernet.baking: hypernetworks baked into a LoRA file or a merged checkpoint, on A1111's real ldm
UNets at SD1.5 and SD2 sizes (needs ldm, as tests/engine does)."""

import ldm.modules.diffusionmodules.openaimodel  # noqa: F401  (installed by tools/setup-venv.sh; missing is an error)
