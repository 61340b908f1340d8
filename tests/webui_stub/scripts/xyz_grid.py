"""Stand-in of A1111 1.10.1's ``scripts/xyz_grid.py``: what extensions touch and how cells are run.

``AxisOption`` (same constructor), ``axis_options`` (a few built-in axes, "Nothing" first), the float/int
range syntax (``0-1(+0.25)`` through ``np.arange``, ``0-1[5]`` through ``np.linspace``), csv values, the
``confirm`` pass on the original ``p``, and the cells: each a shallow ``copy(p)`` with ``styles`` copied,
then ``x_opt.apply``, ``y_opt.apply``, ``z_opt.apply`` and ``process_images``.  ``ui()`` snapshots the
axis list like the real one (options added later are missing from it).  No grid image is drawn:
:func:`run_grid` returns the cells' ``Processed`` objects with the copies that made them.
"""
from __future__ import annotations

import csv
import re
from copy import copy
from io import StringIO
from itertools import chain

import modules.scripts as scripts
import numpy as np
from modules.processing import process_images


def apply_field(field):
    def fun(p, x, xs):
        setattr(p, field, x)

    return fun


def apply_prompt(p, x, xs):
    if xs[0] not in p.prompt and xs[0] not in p.negative_prompt:
        raise RuntimeError(f"Prompt S/R did not find {xs[0]} in prompt or negative prompt.")
    p.prompt = p.prompt.replace(xs[0], x)
    p.negative_prompt = p.negative_prompt.replace(xs[0], x)


def format_value_add_label(p, opt, x):
    if type(x) is float:
        x = round(x, 8)
    return f"{opt.label}: {x}"


def format_value(p, opt, x):
    if type(x) is float:
        x = round(x, 8)
    return x


def do_nothing(p, x, xs):
    pass


def format_nothing(p, opt, x):
    return ""


class AxisOption:
    def __init__(self, label, type, apply, format_value=format_value_add_label, confirm=None, cost=0.0, choices=None,
                 prepare=None):
        self.label = label
        self.type = type
        self.apply = apply
        self.format_value = format_value
        self.confirm = confirm
        self.cost = cost
        self.prepare = prepare
        self.choices = choices


class AxisOptionImg2Img(AxisOption):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.is_img2img = True


class AxisOptionTxt2Img(AxisOption):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.is_img2img = False


axis_options = [
    AxisOption("Nothing", str, do_nothing, format_value=format_nothing),
    AxisOption("Seed", int, apply_field("seed")),
    AxisOption("Steps", int, apply_field("steps")),
    AxisOption("CFG Scale", float, apply_field("cfg_scale")),
    AxisOption("Prompt S/R", str, apply_prompt, format_value=format_value),
    AxisOptionTxt2Img("Hires steps", int, apply_field("hr_second_pass_steps")),
    AxisOptionImg2Img("Image CFG Scale", float, apply_field("image_cfg_scale")),
]

re_range = re.compile(r"\s*([+-]?\s*\d+)\s*-\s*([+-]?\s*\d+)(?:\s*\(([+-]\d+)\s*\))?\s*")
re_range_float = re.compile(r"\s*([+-]?\s*\d+(?:.\d*)?)\s*-\s*([+-]?\s*\d+(?:.\d*)?)(?:\s*\(([+-]\d+(?:.\d*)?)\s*\))?\s*")
re_range_count = re.compile(r"\s*([+-]?\s*\d+)\s*-\s*([+-]?\s*\d+)(?:\s*\[(\d+)\s*\])?\s*")
re_range_count_float = re.compile(r"\s*([+-]?\s*\d+(?:.\d*)?)\s*-\s*([+-]?\s*\d+(?:.\d*)?)(?:\s*\[(\d+(?:.\d*)?)\s*\])?\s*")


def csv_string_to_list_strip(data_str):
    return list(map(str.strip, chain.from_iterable(csv.reader(StringIO(data_str), skipinitialspace=True))))


def process_axis(p, opt, vals, vals_dropdown=None, csv_mode=False):
    """The real script's nested ``process_axis`` (values → typed list, then ``confirm``)."""
    if opt.label == "Nothing":
        return [0]
    if opt.choices is not None and not csv_mode and vals_dropdown is not None:
        valslist = vals_dropdown
    elif opt.prepare is not None:
        valslist = opt.prepare(vals)
    else:
        valslist = csv_string_to_list_strip(vals)
    if opt.type is int:
        ext = []
        for val in valslist:
            if val.strip() == "":
                continue
            m, mc = re_range.fullmatch(val), re_range_count.fullmatch(val)
            if m is not None:
                ext += list(range(int(m.group(1)), int(m.group(2)) + 1, int(m.group(3)) if m.group(3) is not None else 1))
            elif mc is not None:
                ext += [int(x) for x in np.linspace(start=int(mc.group(1)), stop=int(mc.group(2)),
                                                    num=int(mc.group(3)) if mc.group(3) is not None else 1).tolist()]
            else:
                ext.append(val)
        valslist = ext
    elif opt.type is float:
        ext = []
        for val in valslist:
            if val.strip() == "":
                continue
            m, mc = re_range_float.fullmatch(val), re_range_count_float.fullmatch(val)
            if m is not None:
                start, end = float(m.group(1)), float(m.group(2))
                step = float(m.group(3)) if m.group(3) is not None else 1
                ext += np.arange(start, end + step, step).tolist()
            elif mc is not None:
                ext += np.linspace(start=float(mc.group(1)), stop=float(mc.group(2)),
                                   num=int(mc.group(3)) if mc.group(3) is not None else 1).tolist()
            else:
                ext.append(val)
        valslist = ext
    valslist = [opt.type(x) for x in valslist]
    if opt.confirm:
        opt.confirm(p, valslist)
    return valslist


def run_grid(p, x_opt, xs, y_opt=None, ys=(0,), z_opt=None, zs=(0,)):
    """Run every cell like the real ``draw_xyz_grid``/``cell``; returns ``[(pc, processed), ...]`` (x fastest)."""
    y_opt = y_opt or axis_options[0]
    z_opt = z_opt or axis_options[0]
    results = []
    for z in zs:
        for y in ys:
            for x in xs:
                pc = copy(p)
                pc.styles = pc.styles[:]
                x_opt.apply(pc, x, xs)
                y_opt.apply(pc, y, ys)
                z_opt.apply(pc, z, zs)
                results.append((pc, process_images(pc)))
    return results


class Script(scripts.Script):
    def title(self):
        return "X/Y/Z plot"

    def ui(self, is_img2img):
        self.current_axis_options = [x for x in axis_options if type(x) is AxisOption or x.is_img2img == is_img2img]
        return []

    def run(self, p, *args):
        return None
