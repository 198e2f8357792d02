"""Every code example of the README and the documentation pages runs.

Each page's fenced ```python blocks run in the order they appear, in one
fresh namespace per page, as a reader pasting them one after the other into
one interpreter would run them; ```pycon blocks run there too, as doctests,
so their printed output is checked. ```bash and ```text blocks are not run,
nor MyST directives (```{toctree}, ```{include}, ...), which are not code.
A failure points at the page and line of the Markdown source.
"""

from __future__ import annotations

import doctest
import pathlib
import re
from typing import NamedTuple

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

#: Languages a fence may name: run (python, pycon) or shown (the rest).
RUN = ('python', 'pycon')
SHOWN = ('bash', 'text')

#: Pages whose examples take longer than the quick suite allows; they run
#: with the slow suite. Page -> why.
SLOW = {
    'docs/checkpoints.md': 'three orbax runs with a save each epoch (~20 s)',
    'docs/forecasters.md': 'loads four shipped checkpoints and builds'
                           " NiNo's neural graph (~9 s)",
}

_FENCE = re.compile(r'^(?P<indent>[ \t]*)(?P<fence>```+)(?P<info>.*)$')


class Block(NamedTuple):
  language: str
  line: int  # 1-based line of the block's first line of code
  source: str


def pages() -> list[pathlib.Path]:
  """README.md and every Markdown page under docs/ (build output excluded)."""
  docs = ROOT / 'docs'
  found = [p for p in sorted(docs.rglob('*.md'))
           if '_build' not in p.relative_to(docs).parts]
  return [ROOT / 'README.md', *found]


def blocks(path: pathlib.Path) -> list[Block]:
  """The fenced code blocks of a Markdown file, in order, dedented."""
  lines = path.read_text(encoding='utf-8').splitlines()
  found = []
  i = 0
  while i < len(lines):
    opening = _FENCE.match(lines[i])
    if not opening:
      i += 1
      continue
    indent, fence = opening['indent'], opening['fence']
    language = opening['info'].strip().split(' ')[0]
    body = []
    i += 1
    while i < len(lines) and not (
        lines[i].startswith(indent + fence)
        and not lines[i].strip().strip('`')):
      line = lines[i]
      body.append(line[len(indent):] if line.startswith(indent) else line)
      i += 1
    found.append(Block(language, i - len(body) + 1, '\n'.join(body) + '\n'))
    i += 1
  return found


def _page_id(path: pathlib.Path) -> str:
  return str(path.relative_to(ROOT))


def _runnable_pages():
  params = []
  for path in pages():
    if not any(b.language in RUN for b in blocks(path)):
      continue
    page = _page_id(path)
    marks = [pytest.mark.slow] if page in SLOW else []
    params.append(pytest.param(path, id=page, marks=marks))
  return params


def _run_pycon(block: Block, path: pathlib.Path, namespace: dict) -> None:
  test = doctest.DocTestParser().get_doctest(
      block.source, namespace, name=f'{_page_id(path)}:{block.line}',
      filename=str(path), lineno=block.line - 1)
  runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
  report = []
  runner.run(test, out=report.append, clear_globs=False)
  namespace.update(test.globs)  # the DocTest ran in a copy of the namespace
  assert not runner.failures, ''.join(report)


@pytest.mark.parametrize('path', _runnable_pages())
def test_page_examples_run_in_order(path, tmp_path, monkeypatch):
  # Files an example writes go to a fresh directory.
  monkeypatch.chdir(tmp_path)
  namespace = {'__name__': '__main__'}
  for block in blocks(path):
    if block.language == 'python':
      # Padded so that a traceback gives the line in the Markdown file.
      source = '\n' * (block.line - 1) + block.source
      exec(compile(source, str(path), 'exec'), namespace)  # pylint: disable=exec-used
    elif block.language == 'pycon':
      _run_pycon(block, path, namespace)


@pytest.mark.parametrize('path', pages(), ids=_page_id)
def test_every_code_block_names_a_known_language(path):
  for block in blocks(path):
    if block.language.startswith('{'):  # a MyST directive
      continue
    assert block.language in RUN + SHOWN, (
        f'{_page_id(path)}:{block.line - 1}: a ```{block.language} block;'
        f' name one of {RUN + SHOWN} (a block meant to run is ```python)')


def test_blocks_are_found_with_their_language_and_line(tmp_path):
  page = tmp_path / 'page.md'
  page.write_text('text\n\n```python\nx = 1\n```\n\n- item\n\n'
                  '  ```bash\n  echo hi\n  ```\n')
  assert blocks(page) == [Block('python', 4, 'x = 1\n'),
                          Block('bash', 10, 'echo hi\n')]


def test_a_failing_block_reports_its_markdown_line(tmp_path):
  page = tmp_path / 'page.md'
  page.write_text('# t\n\n```python\nx = 1\nraise ValueError(x)\n```\n')
  (block,) = blocks(page)
  source = '\n' * (block.line - 1) + block.source
  with pytest.raises(ValueError) as error:
    exec(compile(source, str(page), 'exec'), {})  # pylint: disable=exec-used
  assert error.traceback[-1].lineno + 1 == 5
