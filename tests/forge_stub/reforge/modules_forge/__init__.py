"""Stand-in marker of reForge's ``modules_forge`` package (its presence, with ``ldm_patched``, says: reForge)."""
