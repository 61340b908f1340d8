"""Stand-in of ``modules/extra_networks_hypernet.py`` (spec §4.4), including its quirks:
the ``sd_hypernetwork`` auto-add iterates ``p.all_prompts`` (TypeError with the model-load dummy p),
``float(items[1])`` (ValueError on bad multipliers, keeping the previous networks), default multiplier 1.0.
Every call is recorded in ``activations`` so tests can tell whether the built-in network ran.
"""
from __future__ import annotations

from modules import extra_networks, shared
from modules.hypernetworks import hypernetwork

activations: list[dict] = []
"""One entry per ExtraNetworkHypernet.activate call: {'p', 'items'} (items as given, before the auto-add)."""


class ExtraNetworkHypernet(extra_networks.ExtraNetwork):
    builtin = True

    def __init__(self):
        super().__init__("hypernet")

    def activate(self, p, params_list):
        activations.append({"p": p, "items": [list(x.items) for x in params_list]})
        additional = shared.opts.sd_hypernetwork
        mentioned = any(x for x in params_list if x.items[0] == additional)
        if additional != "None" and additional in shared.hypernetworks and not mentioned:
            multiplier = shared.opts.extra_networks_default_multiplier
            p.all_prompts = [f"{prompt}<hypernet:{additional}:{multiplier}>" for prompt in p.all_prompts]
            params_list.append(extra_networks.ExtraNetworkParams(items=[additional, multiplier]))

        names, multipliers = [], []
        for params in params_list:
            assert params.items
            names.append(params.items[0])
            multipliers.append(float(params.items[1]) if len(params.items) > 1 else 1.0)
        hypernetwork.load_hypernetworks(names, multipliers)

    def deactivate(self, p):
        pass
