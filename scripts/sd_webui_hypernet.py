"""sd-webui-hypernet's entry script: the webui runs this file; everything it does lives in ``lib_hypernet``.

The host adapter (:mod:`lib_hypernet.webui`) registers the settings and callbacks; the webui finds the
always-on script class below by scanning this module.
"""

from lib_hypernet.webui import register
from lib_hypernet.webui.a1111 import HypernetScript

__all__ = ["HypernetScript"]

register()
