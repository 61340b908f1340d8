"""lib_hypernet.prompt (grammar, writer, edit) on the case table shared with javascript/hypernet.js (tests/js/, run here too)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from hn_testutil import TESTS_DIR

from lib_hypernet.prompt import edit as pt
from lib_hypernet.prompt.grammar import TAG_ERROR_KINDS, TagError, names_in_prompt, parse_items
from lib_hypernet.prompt.writer import format_number, format_tag

CASES = json.loads((TESTS_DIR / "fixtures" / "tag_cases.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", CASES["find"], ids=lambda c: repr(c["prompt"])[:60])
def test_find_tags(case: dict) -> None:
    assert [t.to_json() for t in pt.find_tags(case["prompt"])] == case["tags"]


@pytest.mark.parametrize("case", CASES["find"], ids=lambda c: repr(c["prompt"])[:60])
def test_find_tags_agrees_with_the_webui_grammar(case: dict) -> None:
    """Same tags as lib_hypernet.prompt.grammar finds, valid exactly when parse_items (what the webui applies) accepts them."""
    tags = pt.find_tags(case["prompt"])
    assert [t.text[len("<hypernet:"):-1].split(":")[0] for t in tags] == names_in_prompt(case["prompt"])
    for tag in tags:
        try:
            request = parse_items(tag.text[len("<hypernet:"):-1].split(":"), 1.0)
        except TagError as exc:
            assert not tag.valid and tag.error and tag.error_kind == exc.kind
            continue
        assert tag.valid
        strength = 1.0 if tag.strength is None else tag.strength
        assert request.strength.self_attn == (strength if tag.self_attn is None else tag.self_attn)
        assert request.strength.cross_attn == (strength if tag.cross_attn is None else tag.cross_attn)
        assert request.strength.start == (tag.step_start or 0.0)
        assert request.strength.stop == (1.0 if tag.step_stop is None else tag.step_stop)


def _apply(case: dict) -> str:
    op, prompt = case["op"], case["prompt"]
    if op == "set":
        return pt.set_argument(prompt, case["index"], case["key"], case["value"])
    if op == "rename":
        return pt.rename_tag(prompt, case["index"], case["name"])
    if op == "remove":
        return pt.remove_tag(prompt, case["index"])
    if op == "remove_named":
        return pt.remove_tags_named(prompt, case["name"])
    if op == "add":
        return pt.add_tag(prompt, case["name"], case["strength"])
    if op == "toggle":
        return pt.toggle_tag(prompt, case["name"], case["strength"])
    raise AssertionError(f"unknown op {op}")


@pytest.mark.parametrize("case", CASES["edit"], ids=lambda c: f"{c['op']}:{c['prompt'][:40]!r}")
def test_edits(case: dict) -> None:
    assert _apply(case) == case["expect"]


def test_edited_tags_mean_what_was_set() -> None:
    prompt = pt.set_argument("a <hypernet:x:0.8>", 0, "self", 0.35000000000000003)
    prompt = pt.set_argument(prompt, 0, "stop", 0.6000000000000001)
    (tag,) = pt.find_tags(prompt)
    assert prompt == "a <hypernet:x:0.8:self=0.35:stop=0.6>"
    request = parse_items(tag.text[len("<hypernet:"):-1].split(":"))
    assert (request.strength.self_attn, request.strength.cross_attn, request.strength.stop) == (0.35, 0.8, 0.6)


def test_format_number() -> None:
    for value, text in CASES["format_number"]:
        assert format_number(value) == text, value


@pytest.mark.parametrize("case", CASES["format_tag"], ids=lambda c: repr(c[:2]))
def test_format_tag(case: list) -> None:
    """The one tag writer: A1111's number form, and a name that would not parse back is refused (kind bad_name)."""
    name, strength, expect = case
    if expect is None:
        with pytest.raises(TagError) as caught:
            format_tag(name, strength)
        assert caught.value.kind == "bad_name"
        return
    assert format_tag(name, strength) == expect
    assert names_in_prompt(expect) == [name]  # it parses back


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(IndexError, match="has 1 <hypernet:…> tag"):
        pt.remove_tag("<hypernet:x:1>", 1)
    with pytest.raises(ValueError, match="cannot be written"):
        pt.add_tag("a", "a:b", 1)
    with pytest.raises(ValueError, match="cannot be written"):
        pt.rename_tag("<hypernet:x>", 0, "")
    with pytest.raises(ValueError, match="unknown argument"):
        pt.set_argument("<hypernet:x>", 0, "weight", 1)


def test_the_case_table_covers_the_grammar() -> None:
    prompts = " ".join(c["prompt"] for c in CASES["find"])
    for needle in ("(v2)", "my style", "sub/dir/", ":-0.5", "<hypernet:noweight>", "self=", "cross=", "start=", "stop=",
                   "m=", "strength="):
        assert needle in prompts, needle
    assert any(not t["valid"] for c in CASES["find"] for t in c["tags"])
    assert any(len({t["name"] for t in c["tags"]}) < len(c["tags"]) for c in CASES["find"]), "the same name twice"
    kinds = {t["error_kind"] for c in CASES["find"] for t in c["tags"]}
    assert kinds == {None, *TAG_ERROR_KINDS} - {"bad_name"}, "every kind of skipped tag"
    assert any(not c.isascii() for c in prompts), "Unicode digits"
    assert "start=0.5:stop=0.5" in prompts and "start=1>" in prompts, "start == stop"
    assert any(expect is None and ":" in name for name, _, expect in CASES["format_tag"]), "a name with ':'"


def test_javascript_agrees(tmp_path: Path) -> None:
    """node's built-in test runner on tests/js/ (the same case table through javascript/hypernet.js)."""
    node = shutil.which("node")
    assert node, "node (v18+) is needed for the JavaScript tests"
    result = subprocess.run([node, "--test", str(TESTS_DIR / "js")], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout
