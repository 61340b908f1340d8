"""One tag grammar and one tag writer (issue 14): numbers, names, ASCII digits, the step range, and no other
place in the code that spells ``<hypernet:`` to build a tag."""

from __future__ import annotations

import ast
import re

import pytest
from hn_testutil import HYPERNET_JS, REPO_ROOT

from lib_hypernet.engine.strength import Strength
from lib_hypernet.prompt import edit
from lib_hypernet.prompt.grammar import TagError, parse_items, parse_number
from lib_hypernet.prompt.writer import format_tag


def test_format_tag_writes_numbers_as_the_ui_does() -> None:
    assert format_tag("x", 0.1 + 0.2) == "<hypernet:x:0.3>"
    assert format_tag("x", Strength(0.1 + 0.2, 0.8, 0.1 + 0.1, 0.6000000000000001)) == (
        "<hypernet:x:0.8:self=0.3:start=0.2:stop=0.6>")
    assert format_tag("x", 0.1 + 0.2) == edit.add_tag("", "x", 0.1 + 0.2)  # the panel's add writes the same


@pytest.mark.parametrize("name", ["a:b", "a>b", "a<b", "", " x", "x "])
def test_format_tag_refuses_a_name_that_would_not_parse_back(name: str) -> None:
    with pytest.raises(TagError) as caught:
        format_tag(name, 1)
    assert caught.value.kind == "bad_name"
    with pytest.raises(TagError, match="cannot be written"):
        edit.add_tag("a cat", name, 1)


@pytest.mark.parametrize("text", ["\uff10.5", "\u0661", "1\uff15", "\uff11e2"])
def test_unicode_digits_are_not_numbers(text: str) -> None:
    """Python's float() and \\d read full-width digits, JavaScript's \\d does not: both sides refuse them."""
    assert parse_number(text) is None
    for items in (["x", text], ["x", f"self={text}"], ["x", f"stop={text}"]):
        with pytest.raises(TagError) as caught:
            parse_items(items)
        assert caught.value.kind == "not_a_number"
    (tag,) = edit.find_tags(f"<hypernet:x:{text}>")
    assert not tag.valid and tag.error_kind == "not_a_number"


@pytest.mark.parametrize("start, stop", [(0.5, 0.5), (1.0, 1.0), (0.0, 0.0), (0.7, 0.3)])
def test_a_step_range_that_never_applies_is_refused(start: float, stop: float) -> None:
    with pytest.raises(ValueError, match="must be before stop") as caught:
        Strength(1.0, 1.0, start, stop)
    assert caught.value.kind == "start_not_before_stop"  # type: ignore[attr-defined]
    with pytest.raises(TagError) as tag_error:
        parse_items(["x", f"start={start}", f"stop={stop}"])
    assert tag_error.value.kind == "start_not_before_stop"


@pytest.mark.parametrize("start, stop", [(-0.1, 1.0), (0.0, 1.5)])
def test_a_step_range_outside_0_1_is_refused(start: float, stop: float) -> None:
    with pytest.raises(ValueError, match="between 0 and 1") as caught:
        Strength(1.0, 1.0, start, stop)
    assert caught.value.kind == "out_of_range"  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------- nobody else writes tags
_TAG_START = "<hypernet:"
# After "<hypernet:" in prose comes an example ("…", "name", "NAME"); a literal that ends there, or goes on
# with a placeholder or a quote ("{", "%s", "'", '"'), builds a tag from data.
_PROSE_AFTER = re.compile(r"[…A-Za-z]")


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def tag_building_literals(source: str) -> list[tuple[int, str]]:
    """``(line, literal)`` for each string literal (not a docstring) that builds a ``<hypernet:…>`` tag by hand."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str) or id(node) in docstrings:
            continue
        for match in re.finditer(re.escape(_TAG_START), node.value):
            following = node.value[match.end():match.end() + 1]
            if not _PROSE_AFTER.match(following):
                found.append((node.lineno, node.value))
                break
    return found


def test_the_checker_finds_hand_written_tags() -> None:
    hand_written = [
        'tag = f"<hypernet:{name}:{strength:g}>"',
        'ok = "<hypernet:" in text',
        'js = "box.value += \'<hypernet:\' + name"',
        'log.info("<hypernet:%s> is %s", a, b)',
        'tag = "<hypernet:{}>".format(name)',
    ]
    for line in hand_written:
        assert tag_building_literals(line), line
    prose = '"""Writes <hypernet:name:0.8>."""\nraise ValueError("write a <hypernet:…> tag, e.g. <hypernet:NAME:1>")\n'
    assert tag_building_literals(prose) == []


def test_only_the_prompt_package_and_hypernet_js_write_tags() -> None:
    package = REPO_ROOT / "lib_hypernet"
    offenders = []
    for path in sorted(package.rglob("*.py")):
        if path.parent == package / "prompt":
            continue
        for line, literal in tag_building_literals(path.read_text(encoding="utf-8")):
            offenders.append(f"{path.relative_to(REPO_ROOT)}:{line}: {literal!r}")
    for path in sorted((REPO_ROOT / "javascript").rglob("*.js")):
        if path.name != "hypernet.js" and _TAG_START in path.read_text(encoding="utf-8"):
            offenders.append(f"{path.relative_to(REPO_ROOT)}: use sdHypernet (javascript/hypernet.js)")
    assert offenders == [], "write tags with lib_hypernet.prompt.writer / sdHypernet.formatTag:\n" + "\n".join(offenders)


def test_hypernet_js_is_the_only_twin() -> None:
    """The browser's tag regex and number pattern are grammar.py's (ASCII digits)."""
    from lib_hypernet.prompt import grammar

    script = HYPERNET_JS.read_text(encoding="utf-8")
    js_tag = re.search(r"var TAG_RE = /(.+)/g;", script)
    js_number = re.search(r"var NUMBER_RE = /\^(.+)\$/;", script)
    assert js_tag and js_number
    assert js_tag.group(1).replace("\\", "") == grammar.TAG_RE.pattern.replace("\\", "")
    assert js_number.group(1) == grammar._NUMBER_RE.pattern
    assert grammar._NUMBER_RE.flags & re.ASCII

