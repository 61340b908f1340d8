"""Run by the webui at launch (webui convention). Deliberately does nothing.

Everything lib_hypernet needs ships with the webui: torch (the webui's own build, which an
extension must never replace) and safetensors.  So nothing is installed, and this file imports
nothing (not even ``launch``).
"""
