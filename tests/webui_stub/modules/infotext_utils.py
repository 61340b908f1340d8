"""Stand-in of ``modules/infotext_utils.py``: ``quote``/``unquote`` and a compatible-but-minimal
``parse_generation_parameters`` (prompt / negative prompt / ``key: value`` pairs, ``Size-1/-2``, the legacy
``Hypernet``/``Hypernet strength`` -> ``<hypernet:...>`` append of spec §3.5).
As in A1111, ``parse_generation_parameters`` itself does NOT fire ``infotext_pasted``: its callers do (the UI paste
button, ``/sdapi/v1/png-info``); :func:`paste_infotext` emulates those callers.
Styles, hires back-compat defaults and infotext-version fixes are not emulated.
"""
from __future__ import annotations

import json
import re
import sys

from modules import script_callbacks, shared

sys.modules.setdefault("modules.generation_parameters_copypaste", sys.modules[__name__])  # old alias, as A1111

re_param_code = r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)'
re_param = re.compile(re_param_code)
re_imagesize = re.compile(r"^(\d+)x(\d+)$")


def quote(text):
    """JSON-quote values containing ',', newline or ':'; others are returned unchanged (even non-strings)."""
    if "," not in str(text) and "\n" not in str(text) and ":" not in str(text):
        return text
    return json.dumps(text, ensure_ascii=False)


def unquote(text: str) -> str:
    if len(text) == 0 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        return json.loads(text)
    except Exception:
        return text


def parse_generation_parameters(x: str, skip_fields: list[str] | None = None) -> dict:
    """Parse an infotext into a dict (no callbacks)."""
    if skip_fields is None:
        skip_fields = shared.opts.infotext_skip_pasting
    res: dict = {}
    prompt, negative_prompt, done_with_prompt = "", "", False

    *lines, lastline = x.strip().split("\n")
    if len(re_param.findall(lastline)) < 3:
        lines.append(lastline)
        lastline = ""

    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            done_with_prompt = True
            line = line[16:].strip()
        if done_with_prompt:
            negative_prompt += ("" if negative_prompt == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line

    for k, v in re_param.findall(lastline):
        if v and v[0] == '"' and v[-1] == '"':
            v = unquote(v)
        m = re_imagesize.match(v)
        if m is not None:
            res[f"{k}-1"], res[f"{k}-2"] = m.group(1), m.group(2)
        else:
            res[k] = v

    res["Prompt"] = prompt
    res["Negative prompt"] = negative_prompt
    res.setdefault("Clip skip", "1")

    hypernet = res.get("Hypernet")
    if hypernet is not None:
        res["Prompt"] += f"""<hypernet:{hypernet}:{res.get("Hypernet strength", "1.0")}>"""

    res.setdefault("Hires prompt", "")
    res.setdefault("Hires negative prompt", "")
    res.setdefault("RNG", "GPU")
    res.setdefault("Schedule type", "Automatic")

    for key in skip_fields:
        res.pop(key, None)
    return res


def paste_infotext(x: str) -> dict:
    """What the paste button and ``/sdapi/v1/png-info`` do: parse, then ``infotext_pasted_callback(x, params)``."""
    params = parse_generation_parameters(x)
    script_callbacks.infotext_pasted_callback(x, params)
    return params
