"""Generate the map of the code (every folder and file with the first sentence of what it says about itself).

    python tools/dev_map.py            print it
    python tools/dev_map.py --write    rewrite the block between the dev-map markers in docs/development.md
    python tools/dev_map.py --check    exit 1 when that block is not what the tree says (tests/test_docs.py runs this)

The text comes from each module's docstring (a package's ``__init__.py`` describes its folder), a script's
first comment, or one line of DESCRIBED_ELSEWHERE for the top-level folders; the map is never written by hand, and
a test fails when it is stale.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "docs" / "development.md"  # the file holding the map (its "Code map" section)
START, END = "<!-- dev-map:start (tools/dev_map.py --write) -->", "<!-- dev-map:end -->"
TOP_LEVEL = ["install.py", "scripts", "lib_hypernet", "javascript", "style.css", "tests", "benchmarks", "tools", "docs"]
DESCRIBED_ELSEWHERE = {
    "docs": "pictures and reference pages the README links",
    "tests": "pytest; one folder per layer of lib_hypernet (tests/README.md), stand-ins of the webuis, fixtures",
    "benchmarks": "speed and memory figures, printed as ratios measured side by side",
    "tools": "set-up, tests, the panel, fuzzing, the live check of a running webui, the docs' pictures, this map",
    "scripts": "the entry script the webui runs: registers and delegates to lib_hypernet.webui",
    "javascript": "hypernet.js: the tag grammar's twin, the panel beside the prompt, the card toggle",
}
WIDTH = 26
LINE = 118


def first_sentence(text: str) -> str:
    text = " ".join(text.split())
    match = re.match(r"(.+?\.)(\s|$)", text)
    sentence = (match.group(1) if match else text).rstrip(".")
    sentence = re.sub(r":(?:mod|class|func|meth|data):`~?\.?([^`]+)`", r"\1", sentence).replace("``", "")
    return sentence if len(sentence) <= LINE - WIDTH else sentence[: LINE - WIDTH - 1] + "…"


def describe(path: Path) -> str:
    if path.is_dir():
        if path.name in DESCRIBED_ELSEWHERE and path.parent == ROOT:
            return DESCRIBED_ELSEWHERE[path.name]
        init = path / "__init__.py"
        return describe(init) if init.exists() else ""
    if path.suffix == ".py":
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        return first_sentence(doc) if doc else ""
    lines = path.read_text(encoding="utf-8").splitlines()
    comment = [re.sub(r"^\s*(//|#|/\*)\s?", "", line) for line in lines[:4] if re.match(r"^\s*(//|#(?!!)|/\*)", line)]
    return first_sentence(" ".join(comment).replace("*/", "")) if comment else ""


def entry(name: str, text: str, depth: int) -> str:
    label = "  " * depth + name
    return f"{label:<{WIDTH}}{text}".rstrip() if len(label) < WIDTH else f"{label}  {text}".rstrip()


def code_map() -> str:
    lines = []
    for name in TOP_LEVEL:
        path = ROOT / name
        if not path.exists():
            continue
        lines.append(entry(name + ("/" if path.is_dir() else ""), describe(path), 0))
        if name != "lib_hypernet":
            continue
        for child in sorted(path.iterdir(), key=lambda p: (p.is_dir(), p.name)):
            if (child.name.startswith("__") and child.name != "__main__.py") or child.name == "__pycache__":
                continue
            if child.is_dir():
                lines.append(entry(child.name + "/", describe(child), 1))
                for module in sorted(child.glob("*.py")):
                    if module.name != "__init__.py":
                        lines.append(entry(module.name, describe(module), 2))
            elif child.suffix == ".py":
                lines.append(entry(child.name, describe(child), 1))
    return "```\n" + "\n".join(lines) + "\n```"


def with_map(text: str) -> str:
    """``text`` with the block between the markers replaced by the current map."""
    if START not in text or END not in text:
        raise SystemExit(f"{TARGET.relative_to(ROOT)} has no {START} … {END} block")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{code_map()}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    name = TARGET.relative_to(ROOT).as_posix()
    group.add_argument("--write", action="store_true", help=f"rewrite {name}'s block")
    group.add_argument("--check", action="store_true", help=f"exit 1 when {name}'s block is stale")
    args = parser.parse_args(argv)
    if args.write or args.check:
        text = TARGET.read_text(encoding="utf-8")
        wanted = with_map(text)
        if args.check:
            if wanted != text:
                print(f"{name}'s code map is stale: run python tools/dev_map.py --write", file=sys.stderr)
                return 1
            return 0
        TARGET.write_text(wanted, encoding="utf-8")
        return 0
    print(code_map())
    return 0


if __name__ == "__main__":
    sys.exit(main())
