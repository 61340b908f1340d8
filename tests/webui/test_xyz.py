"""X/Y/Z plot axes on the stand-in's xyz_grid (the real script's AxisOption, range syntax and copy(p) cells)."""

from __future__ import annotations

import contextlib
import importlib
from pathlib import Path

import pytest
import webui_util as wu  # puts the stand-in (tests/webui_stub) on sys.path
from modules import errors, processing, scripts

from lib_hypernet.webui import xyz

webui = importlib.import_module("webui")
XYZ_SCRIPT = str(Path(wu.STUB_DIR) / "scripts" / "xyz_grid.py")
FILES = (("anime", {"seed": 1}), ("style (v2)", {"seed": 2}))


@contextlib.contextmanager
def running(tmp_path, *, with_xyz: bool = True):
    webui.reset(tmp_path)
    try:
        if with_xyz:
            scripts.builtin_script_files.append(XYZ_SCRIPT)
        for name, kwargs in FILES:
            wu.write_hn(name, **kwargs)
        yield wu.start()
    finally:
        webui.unload()


@pytest.fixture
def app(tmp_path):
    with running(tmp_path) as app:
        yield app


def _module():
    module = xyz.find_xyz_module()
    assert module is not None
    return module


def _axis(label: str):
    return next(o for o in _module().axis_options if o.label == label)


def _p(prompt: str, **kwargs):
    p = processing.StableDiffusionProcessingTxt2Img(prompt=prompt, steps=2, seed=1, **kwargs)
    p.scripts = scripts.scripts_txt2img
    p.script_args = scripts.scripts_txt2img.layout_args({})
    return p


def test_axes_are_appended_once_after_the_builtin_ones(app):
    labels = [o.label for o in _module().axis_options]
    assert labels[-4:] == ["Hypernet", "Hypernet strength", "Hypernet self strength", "Hypernet cross strength"]
    assert labels[0] == "Nothing" and labels.index("Hypernet") == len(labels) - 4
    assert xyz.register_axes() is True
    assert [o.label for o in _module().axis_options] == labels  # no second copy
    webui.reload_ui()  # the script module is executed again: a new list, our axes once
    assert [o.label for o in _module().axis_options] == labels
    assert errors.records == []


def test_axes_exist_for_txt2img_and_img2img(app):
    for is_img2img in (False, True):
        script = _module().Script()
        script.ui(is_img2img)
        assert {"Hypernet", "Hypernet strength"} <= {o.label for o in script.current_axis_options}


def test_the_hypernet_axis_lists_files_and_none(app):
    assert _axis("Hypernet").choices() == ["None", "anime", "style (v2)"]
    with pytest.raises(RuntimeError, match=r"Hypernet axis.*nope"):
        _module().process_axis(_p("a"), _axis("Hypernet"), "anime, nope")


def test_strength_axis_edits_each_cell_by_assignment_and_rounds(app):
    module = _module()
    p = _p("a cat <hypernet:anime:0.8>", hr_prompt="")
    xs = module.process_axis(p, _axis("Hypernet strength"), "0.1-0.25(+0.1)")
    assert [repr(x) for x in xs] == ["0.1", "0.2", "0.30000000000000004"]  # np.arange, as in A1111
    results = module.run_grid(p, _axis("Hypernet strength"), xs)
    assert [pc.prompt for pc, _ in results] == ["a cat <hypernet:anime:0.1>", "a cat <hypernet:anime:0.2>",
                                                  "a cat <hypernet:anime:0.3>"]
    assert p.prompt == "a cat <hypernet:anime:0.8>"  # the original p is untouched
    # images only: the stand-in's unet_calls record is a list the shallow copies share
    none, strong = processing.process_images(_p("a cat")), results[2][1]
    assert wu.max_diff(strong, none) > 0
    assert wu.max_diff(strong, processing.process_images(_p("a cat <hypernet:anime:0.3>"))) == 0


def test_name_and_self_axes_together(app):
    module = _module()
    p = _p("a cat <hypernet:anime:0.8>")
    names = module.process_axis(p, _axis("Hypernet"), "None, anime, style (v2)")
    selfs = module.process_axis(p, _axis("Hypernet self strength"), "0, 0.8")
    results = module.run_grid(p, _axis("Hypernet"), names, _axis("Hypernet self strength"), selfs)
    assert [pc.prompt for pc, _ in results] == [
        "a cat", "a cat <hypernet:anime:0.8:self=0>", "a cat <hypernet:style (v2):0.8:self=0>",
        "a cat", "a cat <hypernet:anime:0.8>", "a cat <hypernet:style (v2):0.8>",
    ]


def test_hypernet_axis_adds_a_tag_and_cross_axis_follows(app):
    module = _module()
    p = _p("a cat")
    results = module.run_grid(p, _axis("Hypernet"), ["anime"], _axis("Hypernet cross strength"), [0.5])
    assert [pc.prompt for pc, _ in results] == ["a cat <hypernet:anime:cross=0.5>"]


def test_hires_prompt_with_a_tag_is_edited_too(app):
    p = _p("a <hypernet:anime:1>", hr_prompt="b <hypernet:anime:1>")
    _axis("Hypernet strength").apply(p, 0.25, [0.25])
    assert (p.prompt, p.hr_prompt) == ("a <hypernet:anime:0.25>", "b <hypernet:anime:0.25>")


def test_a_strength_axis_without_a_tag_fails_clearly(app):
    p = _p("a cat")
    with pytest.raises(RuntimeError, match="Hypernet strength axis: the prompt has no <hypernet:…> tag to vary"):
        _axis("Hypernet strength").apply(p, 0.5, [0.5])


def test_without_the_xyz_script_nothing_breaks(tmp_path):
    with running(tmp_path, with_xyz=False):
        assert xyz.find_xyz_module() is None
        assert xyz.register_axes() is False
        assert errors.records == []
        assert len(wu.gen("a cat <hypernet:anime:0.5>").images) == 1
