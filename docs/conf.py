"""Sphinx configuration of the optax_nowcast documentation.

Build (from the repository root, after ``pip install '.[docs]'``)::

  sphinx-build -W --keep-going -b html docs docs/_build/html
"""

import os
import pathlib
import re
import sys

# The package from this checkout, whether or not it is installed.
sys.path.insert(0, os.path.abspath('..'))

import optax_nowcast  # pylint: disable=g-import-not-at-top,wrong-import-position

project = 'optax_nowcast'
author = 'The optax_nowcast authors'
copyright = '2026, The optax_nowcast authors'  # pylint: disable=redefined-builtin
release = optax_nowcast.__version__
version = release

extensions = [
    'sphinx.ext.autodoc',
    'sphinx.ext.napoleon',
    'sphinx.ext.mathjax',
    'sphinx.ext.viewcode',
    'myst_parser',
]

source_suffix = {'.rst': 'restructuredtext', '.md': 'markdown'}
root_doc = 'index'
exclude_patterns = ['_build', 'Thumbs.db', '.DS_Store']

# Docstrings: Google style (Args, Returns, Attributes, Example), as optax.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
autodoc_member_order = 'bysource'
autodoc_typehints = 'signature'
autodoc_default_options = {'show-inheritance': False}

# Markdown pages (MyST): `#` headings get anchors down to level 3, so a
# page can link to [a section](page.md#a-section) as on GitHub.
myst_heading_anchors = 3

html_theme = 'sphinx_book_theme'
html_title = f'optax_nowcast {release}'
html_theme_options = {
    'show_toc_level': 2,
    'navigation_with_keys': False,
}
pygments_style = 'sphinx'


# -- Links to files of the repository outside docs/ --------------------------
#
# The pages link to results and scripts the way GitHub shows them,
# [`results/x.md`](../results/x.md). Sphinx would take a link to a .md file
# for a link to a page and warn that there is none; such a link becomes a
# `path:` link instead, which MyST turns into a download of the file (and
# warns about if the file is missing).

_DOCS = pathlib.Path(__file__).resolve().parent
_RELATIVE_LINK = re.compile(r'(?<!!)(\[[^\]]*\])\((\.\./[^)\s#]+)\)')


def _link_repository_files(app, docname, source):
  del app  # unused
  here = (_DOCS / docname).parent

  def rewrite(match):
    target = (here / match.group(2)).resolve()
    if target.is_file() and _DOCS not in target.parents:
      return f'{match.group(1)}(path:{match.group(2)})'
    return match.group(0)

  source[0] = _RELATIVE_LINK.sub(rewrite, source[0])


def setup(app):
  app.connect('source-read', _link_repository_files)
