"""The gradio user interface: the library panel (webui tab and standalone page) and the rows beside the prompt.

Its modules import gradio; never the webui's ``modules`` (hosts pass a
:class:`~lib_hypernet.library.source.LibrarySource`).  This package file imports nothing, so that importing one
module (e.g. :mod:`.compat`) loads only what that module needs: import :mod:`.library_panel`, :mod:`.accordion`,
:mod:`.standalone` directly.  ``import lib_hypernet`` does not import this package.
"""
