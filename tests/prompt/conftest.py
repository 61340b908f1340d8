"""tests/prompt: the tag grammar, writer and editor (lib_hypernet.prompt) on the case table shared with
javascript/hypernet.js (tests/fixtures/tag_cases.json; the node tests in tests/js run here too).

A core folder (tests/README.md): requirements.txt, torch and pytest only; the root conftest's fixtures.
"""
