"""tests/cli: the ``hypernet`` command line (lib_hypernet.cli): every command's output, exit codes, progress.

A core folder (tests/README.md): requirements.txt, torch and pytest only; the root conftest's fixtures.
"""
