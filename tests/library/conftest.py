"""tests/library: the hypernetwork folder and what it knows of each file (lib_hypernet.library): descriptions,
the persisted hash and description caches, actions (convert, repair, create) and their write policy.

A core folder (tests/README.md): requirements.txt, torch and pytest only; the root conftest's fixtures.
"""
