"""Pictures of the extension inside the webui, for the README, rendered without a webui.

The page is the test suite's stand-in of A1111 1.10.1's txt2img page (``tests/webui_stub/webui_ui.py``: gradio
3.41.2, the extension's real code, ``javascript/hypernet.js`` and ``style.css``), in Debian's chromium:

- docs/accordion.png: a prompt with two ``<hypernet:…>`` tags and the panel beside it showing them, one row per
  tag, with the report of the last generation;
- docs/cards.png: the Extra Networks "Hypernetworks" cards (previews, descriptions, a broken file) after a card
  click added its tag to the prompt;
- docs/xyz.png: the X/Y/Z plot's axis choices with the four Hypernet axes.  A grid of images needs a real
  model, so this shows the axes only; the stand-in's X/Y/Z script lists fewer built-in axes than A1111's.

Run: .venv/bin/python tools/screenshot_docs.py [--out DIR]  (needs chromium: tools/setup-browser.sh)
"""

from __future__ import annotations

import argparse
import base64
import importlib
import io
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for folder in (REPO, REPO / "tests" / "helpers"):
    sys.path.insert(0, str(folder))

import webui_util as wu  # noqa: E402  (puts the stand-in, tests/webui_stub, on sys.path)
from browser_util import CHROMIUM, WEBUI_HELPERS  # noqa: E402
from hn_testutil import HYPERNET_JS, WEBUI_STUB_DIR  # noqa: E402
from modules import scripts  # noqa: E402
from PIL import Image, ImageDraw, ImageFilter  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

webui = importlib.import_module("webui")
webui_ui = importlib.import_module("webui_ui")

PROMPT = "a lighthouse on a cliff at dusk, oil painting <hypernet:anime:0.8> <hypernet:painterly:0.6:self=0.3>"
FILES = {  # name: (seed, description, preview colours)
    "anime": (1, "Clean line art, flat colours", ((236, 112, 99), (93, 173, 226))),
    "painterly": (2, "Thick brush strokes, warm palette", ((244, 208, 63), (175, 96, 26))),
    "sub/ink": (3, "Black ink, high contrast", ((40, 40, 40), (220, 220, 210))),
    "sub/watercolor": (4, "Soft washes, paper texture", ((133, 193, 233), (210, 180, 222))),
}
XYZ_SCRIPT = WEBUI_STUB_DIR / "scripts" / "xyz_grid.py"
# A1111 1.10.1's card look (style.css: 16em x 24em, the preview filling the card, the name on a dark band), for
# the stand-in's cards, which carry A1111's classes but none of its CSS.
CARD_CSS = """
.extra-network-cards { display: flex; flex-wrap: wrap; gap: 0.5em; padding: 0.5em 0; }
.extra-network-cards .card { position: relative; width: 13em; height: 18em; border-radius: 0.2rem; overflow: hidden;
  cursor: pointer; background: #888; box-shadow: 0 0 5px rgba(128,128,128,0.5); font-size: 95%; }
.extra-network-cards .card .preview { position: absolute; width: 100%; height: 100%; object-fit: cover; }
.extra-network-cards .card .actions { position: absolute; bottom: 0; left: 0; right: 0; padding: 0.5em;
  background: rgba(0,0,0,0.5); box-shadow: 0 0 0.25em 0.25em rgba(0,0,0,0.5); color: white; }
.extra-network-cards .card .actions .name { display: block; font-size: 1.5em; font-weight: bold;
  line-break: anywhere; color: white !important; text-shadow: 0 0 2px black; }
.extra-network-cards .card .actions .description { display: block; max-height: 3em; overflow: hidden;
  color: white !important; text-shadow: 0 0 2px black; }
.extra-network-cards .card .button-row { position: absolute; top: 0.4em; right: 0.5em; }
.extra-network-cards .card .metadata-button::before { content: "i"; display: inline-block; width: 1.3em;
  height: 1.3em; border: 2px solid white; border-radius: 50%; text-align: center; line-height: 1.2em;
  font-weight: bold; color: white; }
.extra-network-cards .hidden { display: none; }
"""


def preview(colours: tuple[tuple[int, int, int], tuple[int, int, int]], seed: int) -> Image.Image:
    """A small abstract picture (the cards need previews; no model makes real ones here)."""
    width, height = 256, 352
    top, bottom = colours
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for y in range(height):
        t = y / (height - 1)
        draw.line([(0, y), (width, y)], fill=tuple(round(a + (b - a) * t) for a, b in zip(top, bottom)))
    for i in range(7):
        angle = seed * 1.7 + i * 0.9
        x, y = width / 2 + math.cos(angle) * 80, height / 2.4 + math.sin(angle * 1.3) * 90
        r = 20 + 9 * ((seed + i) % 4)
        shade = tuple(min(255, c + 40) for c in (bottom if i % 2 else top))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=shade)
    return image.filter(ImageFilter.GaussianBlur(2))


def data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def write_files() -> dict[str, str]:
    """The hypernetworks with previews and descriptions, and a truncated one; returns the previews as data URLs."""
    previews = {}
    for name, (seed, description, colours) in FILES.items():
        folder, _, stem = name.rpartition("/")
        path = Path(wu.write_hn(stem, subdir=folder, seed=seed))
        image = preview(colours, seed)
        image.save(path.with_suffix(".png"))
        path.with_suffix(".txt").write_text(description, encoding="utf-8")
        previews[stem] = data_url(image)
    cut = Path(wu.write_hn("old-download", seed=5))
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    return previews


def clip_of(page: Any, *selectors: str, pad: int = 8) -> dict[str, float]:
    """The rectangle around every element of ``selectors`` (page coordinates)."""
    boxes = [page.locator(s).first.bounding_box() for s in selectors]
    x0, y0 = min(b["x"] for b in boxes), min(b["y"] for b in boxes)
    x1, y1 = max(b["x"] + b["width"] for b in boxes), max(b["y"] + b["height"] for b in boxes)
    return {"x": max(0, x0 - pad), "y": max(0, y0 - pad), "width": x1 - x0 + 2 * pad, "height": y1 - y0 + 2 * pad}


def wait_value(page: Any, selector: str, value: str) -> None:
    page.wait_for_function("([s, v]) => { const e = document.querySelector(s); return !!e && e.value === v; }",
                           arg=[selector, value])


def accordion(page: Any, url: str, out: Path) -> None:
    panel = "#script_txt2img_hypernetworks_panel"
    page.goto(url)
    page.wait_for_function("() => !!window.sdHypernet && !!document.querySelector('#txt2img_sd_hypernet_rows')")
    page.add_style_tag(path=str(REPO / "style.css"))
    page.click(f"{panel} .label-wrap")
    page.wait_for_function("() => document.querySelector('#txt2img_sd_hypernet_name_0 input').offsetParent !== null")
    page.fill("#txt2img_prompt textarea", PROMPT)
    labels = page.evaluate("() => JSON.parse(document.querySelector('#txt2img_sd_hypernet_config textarea').value)"
                           ".labels")
    wait_value(page, "#txt2img_sd_hypernet_name_0 input", labels["anime"])
    wait_value(page, "#txt2img_sd_hypernet_name_1 input", labels["painterly"])
    wait_value(page, "#txt2img_sd_hypernet_strength_1 input[type=number]", "0.6")
    page.click("#txt2img_sd_hypernet_advanced_1 .label-wrap")  # row 2's self=0.3
    wait_value(page, "#txt2img_sd_hypernet_self_1 input[type=number]", "0.3")
    page.mouse.click(5, 5)  # no focus ring
    page.screenshot(path=str(out / "accordion.png"), clip=clip_of(page, "#txt2img_prompt", panel), full_page=True)


def cards(page: Any, url: str, out: Path, previews: dict[str, str]) -> None:
    page.goto(url)
    page.wait_for_function("() => !!window.sdHypernet && !!document.querySelector('#txt2img_hypernetworks_cards')")
    page.add_style_tag(content=CARD_CSS)
    page.evaluate("() => { window.opts = {extra_networks_default_multiplier: 1}; }")  # the webui's settings object
    page.evaluate("(previews) => { for (const card of document.querySelectorAll('#txt2img_hypernetworks_cards .card')) {"
                  "  const img = card.querySelector('img.preview'), url = previews[card.dataset.name];"
                  "  if (img && url) img.src = url; } }", previews)
    page.locator("#txt2img_extra_tabs button", has_text="Hypernetworks").first.click()
    page.wait_for_function("() => document.querySelector('#txt2img_hypernetworks_cards').offsetParent !== null")
    page.fill("#txt2img_prompt textarea", "a lighthouse on a cliff at dusk, oil painting")
    page.locator("#txt2img_hypernetworks_cards .card[data-name='painterly']").click()
    wait_value(page, "#txt2img_prompt textarea", "a lighthouse on a cliff at dusk, oil painting <hypernet:painterly:1>")
    page.mouse.move(1, 1)
    page.screenshot(path=str(out / "cards.png"), clip=clip_of(page, "#txt2img_prompt", "#txt2img_hypernetworks_cards"),
                    full_page=True)


def xyz_page(names: list[str]) -> Any:
    """The X/Y/Z plot's first rows as A1111 1.10.1's xyz_grid.py lays them out, on the stand-in's axis list."""
    import gradio as gr

    module = next(d.module for d in scripts.scripts_data if Path(d.path).name == "xyz_grid.py")
    labels = [o.label for o in module.axis_options if type(o) is module.AxisOption or not o.is_img2img]
    with gr.Blocks(analytics_enabled=False) as demo, gr.Column(elem_id="xyz"):
        gr.Dropdown(label="Script", choices=["None", "X/Y/Z plot"], value="X/Y/Z plot", interactive=True)
        with gr.Row():
            gr.Dropdown(label="X type", choices=labels, value="Hypernet", elem_id="xyz_x_type", interactive=True)
            gr.Dropdown(label="X values", choices=[*names, "None"], value=["anime", "painterly", "None"],
                        multiselect=True, interactive=True)
        with gr.Row():
            gr.Dropdown(label="Y type", choices=labels, value="Hypernet strength", elem_id="xyz_y_type", interactive=True)
            gr.Textbox(label="Y values", value="0.25-1 (+0.25)", interactive=True)
        with gr.Row():
            gr.Dropdown(label="Z type", choices=labels, value="Nothing", elem_id="xyz_z_type", interactive=True)
            gr.Textbox(label="Z values", value="", interactive=True)
        gr.HTML("<div style='height: 420px'></div>")  # room below: the axis list opens downwards
    return demo


def xyz(page: Any, url: str, out: Path) -> None:
    page.goto(url)
    page.wait_for_function("() => !!document.querySelector('#xyz_z_type input')")
    page.click("#xyz_z_type input")
    page.wait_for_function("() => document.querySelectorAll('#xyz_z_type ul li').length > 4")
    page.evaluate("() => { const list = document.querySelector('#xyz_z_type ul'); list.scrollTop = list.scrollHeight; }")
    page.locator("#xyz_z_type ul li", has_text="Hypernet cross strength").hover()
    page.screenshot(path=str(out / "xyz.png"), clip=clip_of(page, "#xyz_x_type", "#xyz_z_type ul", "#xyz_z_type",
                                                            "#xyz .form"), full_page=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs", help="where the PNGs go (default: docs/)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        webui.reset(tmp)
        demos = []
        try:
            scripts.builtin_script_files.append(str(XYZ_SCRIPT))
            previews = write_files()
            wu.start()
            extension = wu.extension()
            extension.facts.stop()
            extension.facts.compute_missing(background=False)  # labels with short hash and SD version
            wu.gen(PROMPT)  # the panel's report of the last generation
            demos.append(webui_ui.build(extra_networks=True))
            demos.append(xyz_page(sorted(extension.library.files)))
            urls = [demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, show_api=False)[1]
                    for demo in demos]
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                try:
                    script = WEBUI_HELPERS + "\n" + HYPERNET_JS.read_text(encoding="utf-8")
                    for shoot in (lambda page: accordion(page, urls[0], args.out),
                                  lambda page: cards(page, urls[0], args.out, previews),
                                  lambda page: xyz(page, urls[1], args.out)):
                        page = browser.new_page(viewport={"width": 960, "height": 1400})
                        page.set_default_timeout(60_000)
                        page.add_init_script(script)
                        shoot(page)
                        page.close()
                finally:
                    browser.close()
            for name in ("accordion.png", "cards.png", "xyz.png"):
                print(f"wrote {args.out / name}")
        finally:
            for demo in demos:
                demo.close()
            webui.unload()
    return 0


if __name__ == "__main__":
    sys.exit(main())
