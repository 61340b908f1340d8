"""Stand-in of ``modules/shared_items.py``: the refresh helpers referenced by options."""
from __future__ import annotations


def reload_hypernetworks() -> None:
    """``shared.hypernetworks = list_hypernetworks(cmd_opts.hypernetwork_dir)`` (a NEW dict, like A1111)."""
    from modules import shared
    from modules.hypernetworks import hypernetwork
    shared.hypernetworks = hypernetwork.list_hypernetworks(shared.cmd_opts.hypernetwork_dir)


def list_checkpoint_tiles(use_short: bool = False) -> list[str]:
    from modules import sd_models
    return [x.short_title if use_short else x.title for x in sd_models.checkpoints_list.values()]


def refresh_checkpoints() -> None:
    pass


def cross_attention_optimizations() -> list[str]:
    from modules import sd_hijack
    return ["Automatic"] + [x.title() for x in sd_hijack.optimizers] + ["None"]
