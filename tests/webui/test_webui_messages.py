"""The webui extension inside the A1111 stand-in: bad tags and files never break a generation nor leave old
hypernetworks applied (A1111 bug §8.8), and problems are explained in the generation's comments."""

from __future__ import annotations

import logging
import os

import webui_util as wu
from modules import errors, extra_networks_hypernet, shared

FILES = (("x", {"seed": 1}), ("y", {"seed": 2}))  # the folder's app fixture (conftest.py) starts on them


def _has(res, *needles):
    return any(all(n in c for n in needles) for c in wu.comments(res))


def test_bad_strength_applies_nothing_and_explains(app):
    none = wu.gen()
    old = wu.gen("<hypernet:x:0.8>a cat")
    assert not wu.same(old, none)
    bad = wu.gen("<hypernet:x:abc>a cat")
    assert len(bad.images) == 1
    assert wu.same(bad, none)  # the previous generation's hypernetwork is not kept
    assert _has(bad, "<hypernet:x:abc>", "number")
    assert errors.records == []
    assert extra_networks_hypernet.activations == []


def test_unknown_argument_is_skipped(app):
    none = wu.gen()
    wu.gen("<hypernet:x:0.8>a cat")
    res = wu.gen("<hypernet:x:0.5:foo=1>a cat")
    assert wu.same(res, none)
    assert _has(res, "unknown argument", "foo")
    # empty and non-finite strengths, a reversed step range, a missing name
    for tag in ("<hypernet:x:>", "<hypernet:x:nan>", "<hypernet:x:0.5:start=0.8:stop=0.2>", "<hypernet::0.5>"):
        res = wu.gen(tag + "a cat")
        assert wu.same(res, none), tag
        assert _has(res, "Hypernet tag skipped"), tag


def test_missing_name_keeps_the_rest_of_the_stack(app):
    only_x = wu.gen("<hypernet:x:0.8>a cat")
    res = wu.gen("<hypernet:nope:0.5><hypernet:x:0.8>a cat")
    assert wu.same(res, only_x)
    assert _has(res, "nope", "not found")


def test_corrupt_file_is_explained_and_the_rest_applies(app):
    with open(os.path.join(wu.hn_dir(), "bad.pt"), "wb") as f:
        f.write(os.urandom(3000))
    only_x = wu.gen("<hypernet:x:0.8>a cat")
    res = wu.gen("<hypernet:bad:0.5><hypernet:x:0.8>a cat")
    assert wu.same(res, only_x)
    assert _has(res, "bad", "failed to load")
    assert errors.records == []


def test_malicious_file_is_refused(app, tmp_path):
    marker = str(tmp_path / "pwned")
    wu.write_malicious(os.path.join(wu.hn_dir(), "evil.pt"), marker)
    only_x = wu.gen("<hypernet:x:0.8>a cat")
    res = wu.gen("<hypernet:evil:0.5><hypernet:x:0.8>a cat")
    assert wu.same(res, only_x)
    assert _has(res, "evil", "failed to load")
    assert not os.path.exists(marker)


def test_warnings_setting_off_only_logs(app, caplog):
    shared.opts.set("hypernet_warnings", False)
    none = wu.gen()
    with caplog.at_level(logging.WARNING):
        res = wu.gen("<hypernet:nope:0.5><hypernet:x:abc>a cat")
    assert wu.comments(res) == []
    assert wu.same(res, none)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "nope" in logged and "not found" in logged
    assert "<hypernet:x:abc>" in logged


def test_hypernetwork_that_matches_no_layer(app):
    wu.write_hn("w16", sizes=[16], seed=5)
    none = wu.gen()
    res = wu.gen("<hypernet:w16:0.8>a cat")
    assert wu.same(res, none)
    assert _has(res, "w16", "matched no attention layer")


def test_self_attention_only_hypernetwork(app):
    wu.write_hn("selfonly", sizes=[32, 64], seed=6)
    res = wu.gen("<hypernet:selfonly:0.8>a cat")
    assert not wu.same(res, wu.gen())
    assert _has(res, "selfonly", "self-attention only")
    # asking for self-attention only is not worth a message
    assert not _has(wu.gen("<hypernet:selfonly:0.8:cross=0>a cat"), "self-attention only")


def test_other_base_model_is_mentioned(app):
    hn = wu.make_hn("other", seed=7)
    hn.sd_checkpoint, hn.sd_checkpoint_name = "0123456789", "some-other-model"
    wu.write_hn("other", hn=hn)
    res = wu.gen("<hypernet:other:0.8>a cat")
    assert not wu.same(res, wu.gen())  # still applied
    assert _has(res, "other", "some-other-model", "0123456789", "stub-sd1-tiny")
    # trained on the loaded checkpoint: no message
    hn.sd_checkpoint = shared.sd_model.sd_checkpoint_info.shorthash
    wu.write_hn("same", hn=hn)
    assert not _has(wu.gen("<hypernet:same:0.8>a cat"), "trained on")


def test_messages_reach_the_result_without_first_pass_tags(app):
    """No tag in the first-pass prompt: the webui never calls deactivate, the extension's script reports."""
    wu.write_hn("selfonly", sizes=[32, 64], seed=6)
    hr_only = wu.gen("a cat", enable_hr=True, hr_scale=1.5, hr_prompt="<hypernet:selfonly:0.8>a cat")
    assert _has(hr_only, "selfonly", "self-attention only")
    shared.opts.set("sd_hypernetwork", "selfonly")
    assert _has(wu.gen(), "selfonly", "self-attention only")
    assert wu.hooks_left() == []
