"""Stand-in of ``modules/scripts.py``: ``Script`` with its hooks, ``ScriptRunner`` calling them on always-on scripts,
and ``load_scripts`` executing ``<extension>/scripts/*.py`` the way A1111 does (callbacks cleared first; while a
file runs, ``sys.path = [extension_dir] + sys.path`` and ``basedir()`` is the extension dir; both restored).

Not emulated: ``modules/processing_scripts``, metadata.ini ordering, postprocessing scripts.  The webui's own
``scripts/`` are loaded only when listed in ``builtin_script_files`` (the harness puts the X/Y/Z stand-in there).
``ui()`` is called only when a test builds the UI (``webui_ui.build``: ``prepare_ui``, ``setup_ui_for_section``,
component callbacks as in A1111); otherwise the harness lays out ``script_args`` itself.
"""
from __future__ import annotations

import inspect
import os
import string
import sys
from collections import namedtuple

from modules import errors, paths, script_callbacks, script_loading

AlwaysVisible = object()


class OnComponent:
    """What ``on_before_component`` / ``on_after_component`` callbacks receive."""

    def __init__(self, component):
        self.component = component


class MaskBlendArgs:
    def __init__(self, current_latent, nmask, init_latent, mask, blended_latent, denoiser=None, sigma=None):
        self.current_latent, self.nmask, self.init_latent = current_latent, nmask, init_latent
        self.mask, self.blended_latent, self.denoiser, self.sigma = mask, blended_latent, denoiser, sigma
        self.is_final_blend = denoiser is None


class PostSampleArgs:
    def __init__(self, samples):
        self.samples = samples


class PostprocessImageArgs:
    def __init__(self, image):
        self.image = image


class PostProcessMaskOverlayArgs:
    def __init__(self, index, mask_for_overlay, overlay_image):
        self.index, self.mask_for_overlay, self.overlay_image = index, mask_for_overlay, overlay_image


class PostprocessBatchListArgs:
    def __init__(self, images):
        self.images = images


class Script:
    name = None
    section = None
    filename = None
    args_from = None
    args_to = None
    alwayson = False
    is_txt2img = False
    is_img2img = False
    tabname = None
    group = None
    create_group = True
    infotext_fields = None
    paste_field_names = None
    api_info = None
    on_before_component_elem_id = None
    on_after_component_elem_id = None
    setup_for_ui_only = False
    controls = None

    def title(self):
        raise NotImplementedError()

    def ui(self, is_img2img):
        pass

    def show(self, is_img2img):
        return True

    def run(self, p, *args):
        pass

    def setup(self, p, *args):
        pass

    def before_process(self, p, *args):
        pass

    def process(self, p, *args):
        pass

    def before_process_batch(self, p, *args, **kwargs):
        pass

    def after_extra_networks_activate(self, p, *args, **kwargs):
        pass

    def process_before_every_sampling(self, p, *args, **kwargs):
        pass

    def process_batch(self, p, *args, **kwargs):
        pass

    def postprocess_batch(self, p, *args, **kwargs):
        pass

    def postprocess_batch_list(self, p, pp, *args, **kwargs):
        pass

    def on_mask_blend(self, p, mba, *args):
        pass

    def post_sample(self, p, ps, *args):
        pass

    def postprocess_image(self, p, pp, *args):
        pass

    def postprocess_maskoverlay(self, p, ppmo, *args):
        pass

    def postprocess_image_after_composite(self, p, pp, *args):
        pass

    def postprocess(self, p, processed, *args):
        pass

    def before_component(self, component, **kwargs):
        pass

    def after_component(self, component, **kwargs):
        pass

    def on_before_component(self, callback, *, elem_id):
        if self.on_before_component_elem_id is None:
            self.on_before_component_elem_id = []
        self.on_before_component_elem_id.append((elem_id, callback))

    def on_after_component(self, callback, *, elem_id):
        if self.on_after_component_elem_id is None:
            self.on_after_component_elem_id = []
        self.on_after_component_elem_id.append((elem_id, callback))

    def describe(self):
        return ""

    def elem_id(self, item_id):
        """``script_{tab}_{title}_{item_id}`` like A1111 1.10.1 (e.g. ``script_txt2img_hypernetworks_panel``).

        The tab is left out for a script shown in one tab only (its ids cannot clash); the title keeps only
        ``[a-z0-9_]`` after whitespace became ``_`` (so "X/Y/Z plot" is ``xyz_plot``)."""
        in_both_tabs = self.show(True) == self.show(False)
        tab = ("img2img_" if self.is_img2img else "txt2img_") if in_both_tabs else ""
        spaced = "".join("_" if c.isspace() else c for c in self.title().lower())
        title = "".join(c for c in spaced if c == "_" or c in string.ascii_lowercase or c in string.digits)
        return f"script_{tab}{title}_{item_id}"

    def before_hr(self, p, *args):
        pass


current_basedir: str = paths.script_path


def basedir() -> str:
    """The extension dir of the script file being executed (the webui root otherwise)."""
    return current_basedir


ScriptFile = namedtuple("ScriptFile", ["basedir", "filename", "path"])
ScriptClassData = namedtuple("ScriptClassData", ["script_class", "path", "basedir", "module"])
scripts_data: list[ScriptClassData] = []
builtin_script_files: list[str] = []
"""The webui's own ``scripts/*.py`` to load before the extensions' (stand-in files, e.g. ``xyz_grid.py``)."""
postprocessing_scripts_data: list = []
extension_dirs: list[str] = []
"""The extension directories given to the last ``load_scripts`` call (reused when called without arguments)."""


def list_scripts(scriptdirname: str, extension: str, *, include_extensions: bool = True) -> list[ScriptFile]:
    """Files ``<ext>/<scriptdirname>/*<extension>`` of every extension dir, in dir order then sorted names."""
    res = []
    for ext_dir in extension_dirs if include_extensions else []:
        folder = os.path.join(ext_dir, scriptdirname)
        if not os.path.isdir(folder):
            continue
        for filename in sorted(os.listdir(folder)):
            path = os.path.join(folder, filename)
            if os.path.isfile(path) and os.path.splitext(filename)[1].lower() == extension:
                res.append(ScriptFile(ext_dir, filename, path))
    return res


def list_files_with_name(filename: str) -> list[str]:
    return [os.path.join(d, filename) for d in [paths.script_path, *extension_dirs] if os.path.isfile(os.path.join(d, filename))]


def load_scripts(extension_dirs_: list[str] | None = None) -> None:
    """Clear callbacks and script data, execute every extension's ``scripts/*.py``, collect Script subclasses."""
    global current_basedir, scripts_txt2img, scripts_img2img, scripts_current
    if extension_dirs_ is not None:
        extension_dirs[:] = [os.path.abspath(d) for d in extension_dirs_]
    scripts_data.clear()
    postprocessing_scripts_data.clear()
    script_callbacks.clear_callbacks()

    syspath = sys.path
    builtin = [ScriptFile(paths.script_path, os.path.basename(f), f) for f in builtin_script_files]
    for scriptfile in builtin + list_scripts("scripts", ".py"):
        try:
            if scriptfile.basedir != paths.script_path:
                sys.path = [scriptfile.basedir, *sys.path]
            current_basedir = scriptfile.basedir
            module = script_loading.load_module(scriptfile.path)
            for obj in module.__dict__.values():
                if inspect.isclass(obj) and issubclass(obj, Script):
                    scripts_data.append(ScriptClassData(obj, scriptfile.path, scriptfile.basedir, module))
        except Exception:
            errors.report(f"Error loading script: {scriptfile.filename}", exc_info=True)
        finally:
            sys.path = syspath
            current_basedir = paths.script_path

    scripts_txt2img = ScriptRunner()
    scripts_img2img = ScriptRunner()
    scripts_current = None


class ScriptRunner:
    def __init__(self):
        self.scripts: list[Script] = []
        self.selectable_scripts: list[Script] = []
        self.alwayson_scripts: list[Script] = []
        self.titles: list[str] = []
        self.title_map: dict[str, Script] = {}
        self.infotext_fields: list = []
        self.paste_field_names: list = []
        self.inputs: list = [None]
        self.on_before_component_elem_id: dict = {}
        self.on_after_component_elem_id: dict = {}

    def initialize_scripts(self, is_img2img: bool) -> None:
        """Instantiate every collected Script class; AlwaysVisible ones go to ``alwayson_scripts``."""
        self.scripts.clear()
        self.alwayson_scripts.clear()
        self.selectable_scripts.clear()
        for data in scripts_data:
            try:
                script = data.script_class()
            except Exception:
                errors.report(f"Error # failed to initialize Script {data.module}: ", exc_info=True)
                continue
            script.filename = data.path
            script.is_txt2img = not is_img2img
            script.is_img2img = is_img2img
            script.tabname = "img2img" if is_img2img else "txt2img"
            visibility = script.show(script.is_img2img)
            if visibility == AlwaysVisible:
                self.scripts.append(script)
                self.alwayson_scripts.append(script)
                script.alwayson = True
            elif visibility:
                self.scripts.append(script)
                self.selectable_scripts.append(script)
        self.apply_on_before_component_callbacks()
        self.layout_args({})

    def apply_on_before_component_callbacks(self) -> None:
        """Collect the scripts' ``on_before/after_component`` registrations by elem_id (then clear them)."""
        for script in self.scripts:
            on_before = script.on_before_component_elem_id or []
            on_after = script.on_after_component_elem_id or []
            for elem_id, callback in on_before:
                self.on_before_component_elem_id.setdefault(elem_id, []).append((callback, script))
            for elem_id, callback in on_after:
                self.on_after_component_elem_id.setdefault(elem_id, []).append((callback, script))
            on_before.clear()
            on_after.clear()

    def before_component(self, component, **kwargs) -> None:
        for callback, script in self.on_before_component_elem_id.get(kwargs.get("elem_id"), []):
            try:
                callback(OnComponent(component=component))
            except Exception:
                errors.report(f"Error running on_before_component: {script.filename}", exc_info=True)
        for script in self.ordered_scripts("before_component"):
            try:
                script.before_component(component, **kwargs)
            except Exception:
                errors.report(f"Error running before_component: {script.filename}", exc_info=True)

    def after_component(self, component, **kwargs) -> None:
        for callback, script in self.on_after_component_elem_id.get(component.elem_id, []):
            try:
                callback(OnComponent(component=component))
            except Exception:
                errors.report(f"Error running on_after_component: {script.filename}", exc_info=True)
        for script in self.ordered_scripts("after_component"):
            try:
                script.after_component(component, **kwargs)
            except Exception:
                errors.report(f"Error running after_component: {script.filename}", exc_info=True)

    # ---- the UI build (A1111: create_script_ui, setup_ui_for_section, prepare_ui; gradio is imported lazily)
    def prepare_ui(self) -> None:
        self.inputs = [None]

    def create_script_ui(self, script) -> None:
        script.args_from = len(self.inputs)
        script.args_to = len(self.inputs)
        try:
            controls = script.ui(script.is_img2img)
            script.controls = controls
            if controls is None:
                return
            script.name = script.title().lower()
            for control in controls:
                control.custom_script_source = os.path.basename(script.filename)
            if script.infotext_fields is not None:
                self.infotext_fields += script.infotext_fields
            if script.paste_field_names is not None:
                self.paste_field_names += script.paste_field_names
            self.inputs += controls
            script.args_to = len(self.inputs)
        except Exception:
            errors.report(f"Error creating UI for {script.name}: ", exc_info=True)

    def setup_ui_for_section(self, section, scriptlist=None) -> None:
        import gradio as gr

        if scriptlist is None:
            scriptlist = self.alwayson_scripts
        for script in scriptlist:
            if script.alwayson and script.section != section:
                continue
            if script.create_group:
                with gr.Group(visible=script.alwayson) as group:
                    self.create_script_ui(script)
                script.group = group
            else:
                self.create_script_ui(script)

    def layout_args(self, values: dict[str, list]) -> list:
        """Stand-in for the UI: give every script ``args_from/args_to`` into ``[selected_index, *args...]``;
        ``values`` maps a script class name to its argument list. Returns the full ``script_args`` list."""
        inputs: list = [0]
        for script in self.scripts:
            script.args_from = len(inputs)
            inputs.extend(values.get(type(script).__name__, []))
            script.args_to = len(inputs)
        self.inputs = inputs
        return list(inputs)

    def ordered_scripts(self, method_name: str) -> list[Script]:
        """Always-on scripts that override ``method_name`` (before/after_component: all scripts)."""
        pool = self.scripts if method_name in ("before_component", "after_component") else self.alwayson_scripts
        return [s for s in pool if getattr(type(s), method_name, None) is not getattr(Script, method_name, None)]

    def _call(self, method_name: str, p, *pre, **kwargs) -> None:
        for script in self.ordered_scripts(method_name):
            try:
                script_args = p.script_args[script.args_from:script.args_to]
                getattr(script, method_name)(p, *pre, *script_args, **kwargs)
            except Exception:
                errors.report(f"Error running {method_name}: {script.filename}", exc_info=True)

    def run(self, p, *args):
        script_index = args[0] if args else 0
        if script_index == 0 or script_index is None:
            return None
        script = self.selectable_scripts[script_index - 1]
        return script.run(p, *args[script.args_from:script.args_to])

    def setup_scrips(self, p, *, is_ui: bool = True) -> None:
        for script in self.ordered_scripts("setup"):
            if not is_ui and script.setup_for_ui_only:
                continue
            try:
                script.setup(p, *p.script_args[script.args_from:script.args_to])
            except Exception:
                errors.report(f"Error running setup: {script.filename}", exc_info=True)

    setup_scripts = setup_scrips

    def before_process(self, p) -> None:
        self._call("before_process", p)

    def process(self, p) -> None:
        self._call("process", p)

    def before_process_batch(self, p, **kwargs) -> None:
        self._call("before_process_batch", p, **kwargs)

    def after_extra_networks_activate(self, p, **kwargs) -> None:
        self._call("after_extra_networks_activate", p, **kwargs)

    def process_batch(self, p, **kwargs) -> None:
        self._call("process_batch", p, **kwargs)

    def process_before_every_sampling(self, p, **kwargs) -> None:
        self._call("process_before_every_sampling", p, **kwargs)

    def before_hr(self, p) -> None:
        self._call("before_hr", p)

    def post_sample(self, p, ps: PostSampleArgs) -> None:
        self._call("post_sample", p, ps)

    def postprocess_batch(self, p, images, **kwargs) -> None:
        self._call("postprocess_batch", p, images=images, **kwargs)

    def postprocess_batch_list(self, p, pp: PostprocessBatchListArgs, **kwargs) -> None:
        self._call("postprocess_batch_list", p, pp, **kwargs)

    def postprocess_image(self, p, pp: PostprocessImageArgs) -> None:
        self._call("postprocess_image", p, pp)

    def postprocess(self, p, processed) -> None:
        self._call("postprocess", p, processed)

    def on_mask_blend(self, p, mba: MaskBlendArgs) -> None:
        self._call("on_mask_blend", p, mba)

    def script(self, title: str):
        return self.title_map.get(title.lower())


scripts_txt2img = ScriptRunner()
scripts_img2img = ScriptRunner()
scripts_current = None


def reset() -> None:
    """Stand-in only: no scripts, no extension dirs."""
    global scripts_txt2img, scripts_img2img, scripts_current, current_basedir
    scripts_data.clear()
    extension_dirs.clear()
    builtin_script_files.clear()
    scripts_txt2img = ScriptRunner()
    scripts_img2img = ScriptRunner()
    scripts_current = None
    current_basedir = paths.script_path
