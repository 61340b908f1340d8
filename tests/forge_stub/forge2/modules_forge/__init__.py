"""Stand-in marker of Forge 2's ``modules_forge`` package (its presence, with ``backend``, says: Forge 2)."""
