"""Manual check: the panel beside the prompt (lib_hypernet.ui.accordion) on gradio 4.40 (Forge 2), in Chromium.

Not part of CI (it needs a second environment). With a venv holding gradio 4::

    python -m venv /tmp/g4 && /tmp/g4/bin/pip install gradio==4.40.0 "huggingface_hub<0.26" fastapi==0.112.4 "httpx<0.28"
    /tmp/g4/bin/python tools/check_panel_gradio4.py [--browser]

torch and playwright come from this repository's .venv (appended to sys.path after gradio 4's packages).
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import gradio as gr  # noqa: E402

sys.path.append(os.path.join(ROOT, ".venv", "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}", "site-packages"))
from lib_hypernet.ui import accordion as acc  # noqa: E402

P = "#txt2img_sd_hypernet"
HELPERS = ("function gradioApp(){ return document.getElementsByTagName('gradio-app')[0] || document; }\n"
           "function updateInput(t){ t.dispatchEvent(new Event('input', {bubbles: true})); }\n")


class Source:
    def choices(self):
        return [("anime", "anime [0123456789 · SD1]"), ("style (v2)", "style (v2) [abcdef0123 · SDXL]")]

    def aliases(self):
        return {}

    def default_strength(self):
        return 1.0

    def refresh(self):
        pass

    def report_html(self):
        return "<div class='sd-hypernet-report'>none</div>"


def build():
    with open(os.path.join(ROOT, "javascript", "hypernet.js"), encoding="utf-8") as f:
        script = f.read()
    with gr.Blocks(head=f"<script>{HELPERS}{script}</script>") as demo:
        prompt = gr.Textbox(label="Prompt", elem_id="txt2img_prompt")
        with gr.Accordion("Hypernetworks", open=True):
            rows = acc.build_rows(Source(), rows=2, elem_id="txt2img_sd_hypernet")
        info = gr.Textbox(visible=False)
        acc.connect_prompt(rows, prompt)
        acc.connect_report(rows, info)
    return demo


def wait_value(page, selector, value):
    page.wait_for_function("([s, v]) => document.querySelector(s).value === v", arg=[selector, value])


def browse(demo):
    import gradio.networking
    from playwright.sync_api import sync_playwright

    gradio.networking.url_ok = lambda url: True  # gradio 4's localhost probe fails behind proxy settings
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            page = browser.new_page()
            page.set_default_timeout(60000)
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            page.wait_for_function("() => !!window.sdHypernet && !!document.querySelector('#txt2img_prompt textarea')")
            page.fill("#txt2img_prompt textarea", "a cat <hypernet:anime:0.8> <hypernet:gone>")
            wait_value(page, f"{P}_name_0 input", "anime [0123456789 · SD1]")
            wait_value(page, f"{P}_strength_0 input[type=number]", "0.8")
            page.wait_for_function("(s) => document.querySelector(s).innerText.includes('gone: not in')", arg=f"{P}_status")
            page.fill(f"{P}_strength_0 input[type=number]", "0.45")
            wait_value(page, "#txt2img_prompt textarea", "a cat <hypernet:anime:0.45> <hypernet:gone>")
            browser.close()
        print("gradio", gr.__version__, "browser sync OK; page errors:", errors)
    finally:
        demo.close()


if __name__ == "__main__":
    demo = build()
    print("gradio", gr.__version__, "built:", len(demo.config["dependencies"]), "event listeners")
    if "--browser" in sys.argv:
        browse(demo)
