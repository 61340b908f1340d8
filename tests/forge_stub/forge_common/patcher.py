"""``ModelPatcher`` / ``UnetPatcher`` (Forge 2 ``backend/patcher/base.py:51-230``, ``backend/patcher/unet.py``;
reForge ``ldm_patched/modules/model_patcher.py``): what an extension that patches attention touches.

- ``clone()`` shares the model and **deep-copies** ``model_options`` (so a class-instance patch without
  ``__deepcopy__`` is copied, weights and all, on every clone);
- ``set_model_attn1_patch``/``attn2_patch`` append to ``transformer_options["patches"][name]``; replace
  patches go to ``transformer_options["patches_replace"][name][key]``;
- ``model_patches_to(x)`` replaces every patch that has a ``.to`` by ``patch.to(x)``; the host calls it with
  the load device, then with ``model_dtype()`` (``None`` in Forge 2);
- ``add_patches`` records LoRA weight patches; ``patch_weights()`` applies them to the shared model (like the
  hosts' LoRA loader does before sampling).
"""
from __future__ import annotations

import copy
from typing import Any

import torch


class ModelPatcher:
    clones_made = 0

    def __init__(self, model: torch.nn.Module, load_device: torch.device, offload_device: torch.device,
                 model_dtype: torch.dtype | None = None):
        self.model = model
        self.load_device = load_device
        self.offload_device = offload_device
        self.lora_patches: dict[Any, dict[str, list]] = {}
        self.object_patches: dict[str, Any] = {}
        self.model_options: dict[str, Any] = {"transformer_options": {}}
        self._model_dtype = model_dtype

    def _new(self) -> ModelPatcher:
        return type(self)(self.model, self.load_device, self.offload_device, self._model_dtype)

    def clone(self) -> ModelPatcher:
        ModelPatcher.clones_made += 1
        n = self._new()
        n.lora_patches = self.lora_patches.copy()
        n.object_patches = self.object_patches.copy()
        n.model_options = copy.deepcopy(self.model_options)
        return n

    def is_clone(self, other: Any) -> bool:
        return getattr(other, "model", None) is self.model

    def set_model_patch(self, patch: Any, name: str) -> None:
        to = self.model_options["transformer_options"]
        to.setdefault("patches", {})
        to["patches"][name] = [*to["patches"].get(name, []), patch]

    def set_model_patch_replace(self, patch: Any, name: str, block_name: str, number: int,
                                transformer_index: int | None = None) -> None:
        to = self.model_options["transformer_options"]
        replace = to.setdefault("patches_replace", {}).setdefault(name, {})
        key = (block_name, number) if transformer_index is None else (block_name, number, transformer_index)
        replace[key] = patch

    def set_model_attn1_patch(self, patch: Any) -> None:
        self.set_model_patch(patch, "attn1_patch")

    def set_model_attn2_patch(self, patch: Any) -> None:
        self.set_model_patch(patch, "attn2_patch")

    def set_model_attn1_replace(self, patch: Any, block_name: str, number: int, transformer_index: int | None = None) -> None:
        self.set_model_patch_replace(patch, "attn1", block_name, number, transformer_index)

    def set_model_attn2_replace(self, patch: Any, block_name: str, number: int, transformer_index: int | None = None) -> None:
        self.set_model_patch_replace(patch, "attn2", block_name, number, transformer_index)

    def set_model_attn1_output_patch(self, patch: Any) -> None:
        self.set_model_patch(patch, "attn1_output_patch")

    def set_model_attn2_output_patch(self, patch: Any) -> None:
        self.set_model_patch(patch, "attn2_output_patch")

    def model_patches_to(self, device: Any) -> None:
        to = self.model_options["transformer_options"]
        for patch_list in to.get("patches", {}).values():
            for i in range(len(patch_list)):
                if hasattr(patch_list[i], "to"):
                    patch_list[i] = patch_list[i].to(device)
        for patch_dict in to.get("patches_replace", {}).values():
            for k in patch_dict:
                if hasattr(patch_dict[k], "to"):
                    patch_dict[k] = patch_dict[k].to(device)

    def model_dtype(self) -> torch.dtype | None:
        return self._model_dtype

    def add_patches(self, *, filename: str, patches: dict[str, torch.Tensor], strength_patch: float = 1.0) -> set[str]:
        keys = {k for k, _ in self.model.named_parameters()}
        found = {k: [strength_patch, v] for k, v in patches.items() if k in keys}
        self.lora_patches[(filename, strength_patch)] = found
        return set(found)

    def forge_patch_model(self) -> None:
        """Apply the LoRA weight patches to the shared model (the host does it when loading it for sampling)."""
        params = dict(self.model.named_parameters())
        self._backup = {}
        for patches in self.lora_patches.values():
            for key, (strength, delta) in patches.items():
                param = params[key]
                self._backup.setdefault(key, param.detach().clone())
                with torch.no_grad():
                    param.add_(delta.to(param), alpha=strength)

    def forge_unpatch_model(self) -> None:
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for key, value in getattr(self, "_backup", {}).items():
                params[key].copy_(value)
        self._backup = {}


class UnetPatcher(ModelPatcher):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.controlnet_linked_list = None
        self.extra_preserved_memory_during_sampling = 0
        self.extra_model_patchers_during_sampling: list = []
        self.extra_concat_condition = None

    def clone(self) -> UnetPatcher:
        n = super().clone()
        assert isinstance(n, UnetPatcher)
        n.controlnet_linked_list = self.controlnet_linked_list
        n.extra_preserved_memory_during_sampling = self.extra_preserved_memory_during_sampling
        n.extra_model_patchers_during_sampling = self.extra_model_patchers_during_sampling.copy()
        n.extra_concat_condition = self.extra_concat_condition
        return n
