"""tests/model: the Hypernetwork object (lib_hypernet.model): create, the A1111 golden fixtures loaded and
run, round trips through both formats.

A core folder (tests/README.md): requirements.txt, torch and pytest only; the root conftest's fixtures.
"""
