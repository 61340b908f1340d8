"""The webui extension inside the A1111 stand-in: registration and the ``<hypernet:…>`` prompt syntax.

The stand-in's text encoder hashes the tag-stripped prompt, so compared prompts always strip to the same
text: tags go first (``<hypernet:x:0.8>a cat`` strips to ``a cat``).
"""

from __future__ import annotations

import torch
import webui_util as wu
from modules import extra_networks, extra_networks_hypernet, shared

from lib_hypernet.webui import a1111

X = "<hypernet:x:{}>"


FILES = (("x", {"seed": 1}), ("y", {"seed": 2}), ("z", {"seed": 3}))  # the folder's app fixture (conftest.py)


def test_stripped_prompts_are_equal():
    for prompt in ("<hypernet:x:0>a cat", "<hypernet:a:0.5><hypernet:b:0.5>a cat", "a cat"):
        assert extra_networks.parse_prompt(prompt)[0] == wu.PROMPT


def test_registration_replaces_the_builtin_also_after_reload_ui(app):
    network = extra_networks.extra_network_registry["hypernet"]
    assert isinstance(network, a1111.ExtraNetworkHypernet)
    assert not getattr(network, "builtin", False)
    assert wu.attention_widths() == list(wu.SD1_TINY_WIDTHS)

    before = wu.gen("<hypernet:x:0.8>a cat")
    none = wu.gen()
    assert not wu.same(before, none)

    wu.webui.reload_ui()
    network = extra_networks.extra_network_registry["hypernet"]
    assert isinstance(network, a1111.ExtraNetworkHypernet)  # the class the re-executed script registered
    assert not getattr(network, "builtin", False)
    after = wu.gen("<hypernet:x:0.8>a cat")
    assert wu.same(after, before)
    assert wu.same(wu.gen(), none)
    assert extra_networks_hypernet.activations == []  # the built-in network never ran


def test_plain_strengths(app):
    none = wu.gen()
    strong = wu.gen("<hypernet:x:0.8>a cat")
    assert not wu.same(strong, none)
    assert wu.same(wu.gen("<hypernet:x:0>a cat"), none)
    assert wu.same(wu.gen("<hypernet:x:0.8>a cat"), strong)  # reproducible
    assert not wu.same(wu.gen("<hypernet:x:0.5>a cat"), strong)
    assert wu.comments(strong) == []
    assert extra_networks_hypernet.activations == []


def test_default_strength_settings(app):
    shared.opts.set("extra_networks_default_multiplier", 0.5)
    plain = wu.gen("<hypernet:x>a cat")
    assert wu.same(plain, wu.gen("<hypernet:x:0.5>a cat"))
    assert not wu.same(plain, wu.gen("<hypernet:x:1>a cat"))

    shared.opts.set("hypernet_default_strength", wu.webui_settings.DEFAULT_STRENGTH_CHOICES[1])  # "1.0 (like A1111's …)"
    assert wu.same(wu.gen("<hypernet:x>a cat"), wu.gen("<hypernet:x:1>a cat"))


def test_named_arguments(app):
    none = wu.gen()
    plain = wu.gen("<hypernet:x:0.8>a cat")
    assert wu.same(wu.gen("<hypernet:x:0.8:self=0:cross=0>a cat"), none)
    assert wu.same(wu.gen("<hypernet:x:self=0:cross=0>a cat"), none)
    assert wu.same(wu.gen("<hypernet:x:0.8:start=0:stop=1>a cat"), plain)
    assert wu.same(wu.gen("<hypernet:x:self=0.8:cross=0.8>a cat"), plain)
    assert wu.same(wu.gen("<hypernet:x:m=0.8>a cat"), plain)

    self_only = wu.gen("<hypernet:x:0.8:cross=0>a cat")
    cross_only = wu.gen("<hypernet:x:0.8:self=0>a cat")
    for result in (self_only, cross_only):
        assert not wu.same(result, none)
        assert not wu.same(result, plain)
        assert wu.comments(result) == []
    assert not wu.same(self_only, cross_only)

    # stop=0.5 of 2 steps: step 0 hooked, step 1 not; start=0.5: the other way round
    first_half = wu.gen("<hypernet:x:0.8:stop=0.5>a cat")
    second_half = wu.gen("<hypernet:x:0.8:start=0.5>a cat")
    assert torch.equal(first_half.unet_outputs[0], plain.unet_outputs[0])
    assert torch.equal(second_half.unet_outputs[0], none.unet_outputs[0])
    assert not torch.equal(second_half.unet_outputs[1], none.unet_outputs[1])
    assert not wu.same(first_half, plain)
    assert not wu.same(second_half, plain)
    assert not wu.same(first_half, none)


def test_stacking_in_order(app):
    none = wu.gen()
    a = wu.gen("<hypernet:x:0.5>a cat")
    b = wu.gen("<hypernet:y:0.5>a cat")
    ab = wu.gen("<hypernet:x:0.5><hypernet:y:0.5>a cat")
    ba = wu.gen("<hypernet:y:0.5><hypernet:x:0.5>a cat")
    for single in (none, a, b):
        assert not wu.same(ab, single)
    assert not torch.equal(ab.unet_outputs[0], ba.unet_outputs[0])  # relu networks do not commute
    assert wu.same(wu.gen("<hypernet:x:0.5><hypernet:y:0.5>a cat"), ab)
    assert wu.comments(ab) == []
    # the stack as the engine applies it, on the same UNet (between generations nothing is hooked)
    hn_x = wu.lib_hypernet.load(f"{wu.hn_dir()}/x.pt")
    hn_y = wu.lib_hypernet.load(f"{wu.hn_dir()}/y.pt")
    handle = wu.lib_hypernet.install(wu.unet())
    with handle.activated([(hn_x, 0.5), (hn_y, 0.5)]):
        direct_ab = wu.unet_probe()
    with handle.activated([(hn_y, 0.5), (hn_x, 0.5)]):
        direct_ba = wu.unet_probe()
    assert not torch.equal(direct_ab, direct_ba)
    assert wu.hooks_left() == []


def test_same_name_twice_gets_independent_strengths(app):
    import shutil

    shutil.copyfile(f"{wu.hn_dir()}/x.pt", f"{wu.hn_dir()}/x_copy.pt")
    twice = wu.gen("<hypernet:x:0.3><hypernet:x:0.5>a cat")
    assert wu.comments(twice) == []
    assert wu.same(twice, wu.gen("<hypernet:x:0.3><hypernet:x_copy:0.5>a cat"))
    assert not wu.same(twice, wu.gen("<hypernet:x:0.5><hypernet:x:0.5>a cat"))
    assert not wu.same(twice, wu.gen("<hypernet:x:0.3><hypernet:x:0.3>a cat"))
    assert not wu.same(twice, wu.gen("<hypernet:x:0.8>a cat"))
    assert not wu.same(twice, wu.gen())
