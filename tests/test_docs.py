"""The README and docs/ stay true to the tree: the code map is current, every relative link and anchor resolves,
pictures exist and stay small, the library reference names every public name, and the README stays short."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from hn_testutil import REPO_ROOT

import lib_hypernet

DOCS = sorted((REPO_ROOT / "docs").glob("*.md"))
PAGES = [REPO_ROOT / "README.md", *DOCS]
README_MAX_LINES = 320  # issue 16: "a README that reads in five minutes" (the user guide in about 300 lines)
PICTURE_MAX_BYTES = 300_000

FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _prose(text: str) -> str:
    """``text`` without fenced code blocks and code spans (a link written there is an example, not a link)."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def github_anchor(heading: str) -> str:
    """The id GitHub gives a heading: markup dropped, lower case, punctuation removed, spaces as hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = text.replace("`", "").replace("*", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    for line in FENCE.sub("", path.read_text(encoding="utf-8")).splitlines():
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            base = github_anchor(match.group(1))
            anchor, n = base, 0
            while anchor in found:  # GitHub numbers repeated headings: x, x-1, x-2
                n += 1
                anchor = f"{base}-{n}"
            found.add(anchor)
    return found


def links(path: Path) -> list[str]:
    return LINK.findall(_prose(path.read_text(encoding="utf-8")))


def test_anchor_rules_match_githubs() -> None:
    assert github_anchor("X/Y/Z plot") == "xyz-plot"
    assert github_anchor("Forge 2 / reForge patch route") == "forge-2--reforge-patch-route"
    assert github_anchor("The `.safetensors` hypernetwork format") == "the-safetensors-hypernetwork-format"
    assert github_anchor("Does A1111's own Train tab still work with the extension?") == (
        "does-a1111s-own-train-tab-still-work-with-the-extension")


def test_the_code_map_is_current() -> None:
    """docs/development.md's code map is what ``tools/dev_map.py`` makes of the tree (run ``--write`` to update)."""
    result = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "dev_map.py"), "--check"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    broken = []
    for target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: …
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (page.parent / file_part).resolve() if file_part else page
        if not resolved.exists():
            broken.append(f"{target}: no file {resolved}")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading with the anchor #{anchor} in {resolved.name}")
    assert not broken, "\n".join(broken)


def test_pictures_exist_and_stay_small() -> None:
    pictures = {(page.parent / t).resolve() for page in PAGES for t in links(page) if t.endswith(".png")}
    assert {p.name for p in pictures} >= {"accordion.png", "cards.png", "xyz.png"}  # the README shows these
    too_big = [f"{p.name}: {p.stat().st_size} bytes" for p in pictures if p.stat().st_size > PICTURE_MAX_BYTES]
    assert not too_big, too_big


def test_the_library_reference_names_every_public_name() -> None:
    text = (REPO_ROOT / "docs" / "library.md").read_text(encoding="utf-8")
    public = [name for name in lib_hypernet.__all__ if name != "__version__"]
    assert len(public) == 23
    assert [name for name in public if f"`{name}" not in text] == []


def test_the_readme_stays_short() -> None:
    lines = (REPO_ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move reference material into docs/"
