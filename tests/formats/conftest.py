"""tests/formats: bytes on disk (lib_hypernet.formats): .pt (zip and legacy) and .safetensors reading and
writing, hostile files (pickle, zip, safetensors), safe loading, A1111 compatibility, atomic saves, .optim side
files, hashes, byte-identical output.

A core folder (tests/README.md): requirements.txt, torch and pytest only; the root conftest's fixtures.
"""
