"""Stand-in of ``modules/extra_networks.py`` (spec §4.1-4.3): params, registry, activate/deactivate, parsing."""
from __future__ import annotations

import logging
import re
from collections import defaultdict

from modules import errors

extra_network_registry: dict = {}
extra_network_aliases: dict = {}


def initialize() -> None:
    extra_network_registry.clear()
    extra_network_aliases.clear()


def register_extra_network(extra_network) -> None:
    """Register under ``extra_network.name``; the last registration of a name wins."""
    extra_network_registry[extra_network.name] = extra_network


def register_extra_network_alias(extra_network, alias: str) -> None:
    extra_network_aliases[alias] = extra_network


def register_default_extra_networks() -> None:
    """Register the (stand-in) built-in ``ExtraNetworkHypernet`` under 'hypernet'."""
    from modules.extra_networks_hypernet import ExtraNetworkHypernet
    register_extra_network(ExtraNetworkHypernet())


class ExtraNetworkParams:
    """``items`` = the ':'-split arguments; strings with exactly one '=' (split maxsplit=2) go to ``named``."""

    def __init__(self, items=None):
        self.items = items or []
        self.positional = []
        self.named = {}
        for item in self.items:
            parts = item.split("=", 2) if isinstance(item, str) else [item]
            if len(parts) == 2:
                self.named[parts[0]] = parts[1]
            else:
                self.positional.append(item)

    def __eq__(self, other) -> bool:
        return self.items == other.items

    def __repr__(self) -> str:
        return f"ExtraNetworkParams(items={self.items!r})"


class ExtraNetwork:
    def __init__(self, name: str):
        self.name = name

    def activate(self, p, params_list) -> None:
        """Called on every run, with [] when not mentioned; each call overrides the previous one."""
        raise NotImplementedError

    def deactivate(self, p) -> None:
        raise NotImplementedError


def lookup_extra_networks(extra_network_data: dict) -> dict:
    """Map registered ExtraNetwork objects (registry first, then aliases) to their merged params lists."""
    res: dict = {}
    for name, args in list(extra_network_data.items()):
        network = extra_network_registry.get(name)
        if network is None:
            network = extra_network_aliases.get(name)
        if network is None:
            logging.info(f"Skipping unknown extra network: {name}")
            continue
        res.setdefault(network, []).extend(args)
    return res


def activate(p, extra_network_data: dict) -> None:
    """Activate mentioned networks (in order), then every other registered one with [], then notify scripts."""
    activated = []
    for network, args in lookup_extra_networks(extra_network_data).items():
        try:
            network.activate(p, args)
            activated.append(network)
        except Exception as e:
            errors.display(e, f"activating extra network {network.name} with arguments {args}")

    for name, network in extra_network_registry.items():
        if network in activated:
            continue
        try:
            network.activate(p, [])
        except Exception as e:
            errors.display(e, f"activating extra network {name}")

    if p.scripts is not None:
        p.scripts.after_extra_networks_activate(p, batch_number=p.iteration, prompts=p.prompts, seeds=p.seeds,
                                                subseeds=p.subseeds, extra_network_data=extra_network_data)


def deactivate(p, extra_network_data: dict) -> None:
    """Deactivate mentioned networks, then all other registered ones."""
    data = lookup_extra_networks(extra_network_data)
    for network in data:
        try:
            network.deactivate(p)
        except Exception as e:
            errors.display(e, f"deactivating extra network {network.name}")
    for name, network in extra_network_registry.items():
        if network in data:
            continue
        try:
            network.deactivate(p)
        except Exception as e:
            errors.display(e, f"deactivating unmentioned extra network {name}")


re_extra_net = re.compile(r"<(\w+):([^>]+)>")


def parse_prompt(prompt: str) -> tuple[str, defaultdict]:
    """Strip every ``<name:args>`` tag; returns (stripped prompt, {name: [ExtraNetworkParams, ...]})."""
    res: defaultdict = defaultdict(list)

    def found(m: re.Match) -> str:
        res[m.group(1)].append(ExtraNetworkParams(items=m.group(2).split(":")))
        return ""

    return re_extra_net.sub(found, prompt), res


def parse_prompts(prompts: list[str]) -> tuple[list[str], defaultdict | None]:
    """Strip tags from every prompt; the extra-network data of the FIRST prompt is used for the batch."""
    stripped, extra_data = [], None
    for prompt in prompts:
        text, data = parse_prompt(prompt)
        if extra_data is None:
            extra_data = data
        stripped.append(text)
    return stripped, extra_data


def get_user_metadata(filename: str | None, lister=None) -> dict:
    """Read the ``<basename>.json`` sidecar next to ``filename`` ({} when absent or unreadable)."""
    import json
    import os
    if filename is None:
        return {}
    metadata_filename = os.path.splitext(filename)[0] + ".json"
    try:
        if os.path.isfile(metadata_filename):
            with open(metadata_filename, encoding="utf8") as f:
                return json.load(f)
    except Exception as e:
        errors.display(e, f"reading extra network user metadata from {metadata_filename}")
    return {}
