"""Minimal stand-in of AUTOMATIC1111 stable-diffusion-webui 1.10.1's ``modules`` package (tests only).

``harness`` holds the test harness' state (``webui.py``), kept here so it is shared even if ``webui.py`` is
imported twice under different names.
"""

harness: dict = {}
