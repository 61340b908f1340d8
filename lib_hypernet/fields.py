"""The metadata keys of an A1111 hypernetwork file, in the order A1111 writes them."""

from __future__ import annotations

# File keys (and :class:`~lib_hypernet.Hypernetwork` attribute names); both formats store exactly these.
METADATA_FIELDS = (
    "step", "name", "layer_structure", "activation_func", "is_layer_norm", "weight_initialization",
    "sd_checkpoint", "sd_checkpoint_name", "activate_output", "use_dropout", "dropout_structure",
    "last_layer_dropout", "optional_info",
)

__all__ = ["METADATA_FIELDS"]
