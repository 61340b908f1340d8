"""Stand-in of ``modules/cmd_args.py``: the subset of A1111's command-line options an extension touches."""
from __future__ import annotations

import argparse
import os

from modules import paths


def make_parser() -> argparse.ArgumentParser:
    """A fresh parser whose path defaults follow the current :mod:`modules.paths` data dir."""
    p = argparse.ArgumentParser()
    models = paths.models_path
    p.add_argument("--data-dir", type=str, default=paths.data_path)
    p.add_argument("--models-dir", type=str, default=None)
    p.add_argument("--ckpt-dir", type=str, default=None)
    p.add_argument("--vae-dir", type=str, default=None)
    p.add_argument("--embeddings-dir", type=str, default=os.path.join(paths.data_path, "embeddings"))
    p.add_argument("--hypernetwork-dir", type=str, default=os.path.join(models, "hypernetworks"))
    p.add_argument("--ui-settings-file", type=str, default=os.path.join(paths.data_path, "config.json"))
    p.add_argument("--api", action="store_true")
    p.add_argument("--api-auth", type=str, default=None)
    p.add_argument("--cors-allow-origins", type=str, default=None)
    p.add_argument("--cors-allow-origins-regex", type=str, default=None)
    p.add_argument("--gradio-auth", type=str, default=None)
    p.add_argument("--gradio-auth-path", type=str, default=None)
    p.add_argument("--nowebui", action="store_true")
    p.add_argument("--no-hashing", action="store_true")
    p.add_argument("--disable-safe-unpickle", action="store_true")
    p.add_argument("--medvram", action="store_true")
    p.add_argument("--medvram-sdxl", action="store_true")
    p.add_argument("--lowvram", action="store_true")
    p.add_argument("--no-half", action="store_true")
    p.add_argument("--no-half-vae", action="store_true")
    p.add_argument("--upcast-sampling", action="store_true")
    p.add_argument("--precision", type=str, choices=["full", "half", "autocast"], default="autocast")
    p.add_argument("--xformers", action="store_true")
    p.add_argument("--force-enable-xformers", action="store_true")
    p.add_argument("--opt-split-attention", action="store_true")
    p.add_argument("--opt-sub-quad-attention", action="store_true")
    p.add_argument("--opt-split-attention-invokeai", action="store_true")
    p.add_argument("--opt-split-attention-v1", action="store_true")
    p.add_argument("--opt-sdp-attention", action="store_true")
    p.add_argument("--opt-sdp-no-mem-attention", action="store_true")
    p.add_argument("--disable-opt-split-attention", action="store_true")
    p.add_argument("--freeze-settings", action="store_true")
    p.add_argument("--hide-ui-dir-config", action="store_true")
    p.add_argument("--skip-load-model-at-start", action="store_true")
    p.add_argument("--no-prompt-history", action="store_true", default=True)
    p.add_argument("--disable-all-extensions", action="store_true")
    p.add_argument("--disable-extra-extensions", action="store_true")
    p.add_argument("--do-not-download-clip", action="store_true")
    p.add_argument("--listen", action="store_true")
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--subpath", type=str, default=None)
    return p
