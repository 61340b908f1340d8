"""Run by the webui at launch (webui convention). Everything we need ships with the webui:
torch and safetensors. Nothing to install; this file exists so the convention is explicit."""

import launch

for package in ("torch", "safetensors"):
    if not launch.is_installed(package):
        launch.run_pip(f"install {package}", f"{package} for sd-webui-hypernet")
