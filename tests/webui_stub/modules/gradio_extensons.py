"""Stand-in of ``modules/gradio_extensons.py`` (A1111 1.10.1; the file name's typo is A1111's).

A1111 patches gradio for the whole process: every component's ``__init__`` pops ``tooltip=``, calls
``scripts.scripts_current.before_component`` / ``after_component`` (which run the scripts'
``on_before_component`` / ``on_after_component`` callbacks) and adds ``gradio-<name>`` classes.  Here the
patch is scoped (:func:`patched`), so tests that build plain gradio UIs in the same process are unaffected.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import gradio as gr

from modules import script_callbacks, scripts


def add_classes_to_gradio_component(comp) -> None:
    comp.elem_classes = [f"gradio-{comp.get_block_name()}", *(comp.elem_classes or [])]
    if getattr(comp, "multiselect", False):
        comp.elem_classes.append("multiselect")


def _component_init(original):
    def init(self, *args, **kwargs):
        self.webui_tooltip = kwargs.pop("tooltip", None)
        if scripts.scripts_current is not None:
            scripts.scripts_current.before_component(self, **kwargs)
        script_callbacks.before_component_callback(self, **kwargs)
        res = original(self, *args, **kwargs)
        add_classes_to_gradio_component(self)
        script_callbacks.after_component_callback(self, **kwargs)
        if scripts.scripts_current is not None:
            scripts.scripts_current.after_component(self, **kwargs)
        return res

    return init


def _block_context_init(original):
    def init(self, *args, **kwargs):
        if scripts.scripts_current is not None:
            scripts.scripts_current.before_component(self, **kwargs)
        script_callbacks.before_component_callback(self, **kwargs)
        res = original(self, *args, **kwargs)
        add_classes_to_gradio_component(self)
        script_callbacks.after_component_callback(self, **kwargs)
        if scripts.scripts_current is not None:
            scripts.scripts_current.after_component(self, **kwargs)
        return res

    return init


@contextlib.contextmanager
def patched() -> Iterator[None]:
    """A1111's gradio patches while the block runs (the webui keeps them for the whole process)."""
    component = gr.components.IOComponent
    context = gr.blocks.BlockContext
    originals = (component.__init__, context.__init__)
    component.__init__ = _component_init(originals[0])
    context.__init__ = _block_context_init(originals[1])
    try:
        yield
    finally:
        component.__init__, context.__init__ = originals
