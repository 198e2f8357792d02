"""File helpers shared by the checkpoint reader and the lab's data loaders."""

from __future__ import annotations

import hashlib
import os
from typing import Union


def sha256_file(file: Union[str, os.PathLike]) -> str:
  """The hex SHA256 digest of a file's bytes, read in 1 MiB chunks."""
  h = hashlib.sha256()
  with open(file, 'rb') as f:
    for chunk in iter(lambda: f.read(1 << 20), b''):
      h.update(chunk)
  return h.hexdigest()
