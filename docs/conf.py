"""Sphinx configuration for influxhtm's documentation (built with warnings as errors)."""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

project = "influxhtm"
author = "influxhtm developers"
copyright = "2026, influxhtm developers"
from influxhtm import __version__ as release  # noqa: E402

version = release
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode"]
autodoc_member_order = "bysource"
autodoc_typehints = "none"
autodoc_default_options = {"members": True, "undoc-members": False}
nitpicky = False
suppress_warnings = ["ref.python"]
html_theme = "alabaster"
exclude_patterns = ["_build"]
