"""Sphinx configuration for tornpool's documentation site.

Build it with ``bash scripts/dev.sh docs`` (warnings are errors), or by hand::

    .venv/bin/python -m sphinx -W --keep-going -b html docs docs/_build/html

The guides are the Markdown files beside this one (read by MyST); the API
reference (``api/*.rst``) is generated from tornpool's reST docstrings by
autodoc.  ``tests/test_docs_build.py`` builds the site into a temporary
directory in the default test run, so a warning fails CI.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# autodoc imports tornpool from this checkout, installed or not.
sys.path.insert(0, ROOT)

import tornpool  # noqa: E402

project = "tornpool"
author = "tornpool contributors"
copyright = "tornpool contributors"
release = tornpool.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "**/.ipynb_checkpoints", "bench/data"]

# -- MyST (the Markdown guides) ------------------------------------------------
# Anchors for ## and ### headings, so links like pool.md#the-contract resolve.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

# -- autodoc -------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_default_options = {"members": True, "show-inheritance": True}
# The C codec is optional: document whichever twin imports.
autodoc_mock_imports: list[str] = []

# Names in signatures and docstrings that point outside this site.  Without
# network access (the build runs in CI and offline) intersphinx has no
# inventories, so nothing is fetched: references to the standard library and
# to Tornado stay plain text instead of failing the build.
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
nitpicky = False

# -- HTML ----------------------------------------------------------------------
html_theme = "furo"
html_title = f"tornpool {release}"
html_static_path: list[str] = []
html_show_sourcelink = False
