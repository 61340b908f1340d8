"""sd-webui-hypernet's entry script: the webui runs this file; everything it does lives in ``lib_hypernet``.

The host adapter (:mod:`lib_hypernet.webui`: A1111, Forge 2 or reForge, detected) registers the settings and
callbacks; the webui finds the host's always-on script class below by scanning this module.
"""

from lib_hypernet.webui import register, script_class

HypernetScript = script_class()

__all__ = ["HypernetScript"]

register()
