"""Writing the files an import or `overnight init` makes: all of them, or none.

They are files a person reads and keeps, written once: an existing file is never
overwritten (the whole import is refused before anything is written, naming it).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from overnight.errors import ConfigError


def write_new(files: dict[Path, str], what: str) -> None:
    """Write every file, or none: refused when one of them exists already."""
    for path in files:
        if path.exists() or path.is_symlink():
            raise ConfigError(
                f"{path}: already exists; {what} writes only new files (move it aside, or run it "
                "in an empty folder)"
            )
    written: list[Path] = []
    try:
        for path, text in files.items():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            written.append(path)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
    except OSError as e:
        for path in written:
            try:
                path.unlink()
            except OSError:
                pass
        raise ConfigError(
            f"{e.filename or 'a file'}: cannot be written ({e.strerror}); nothing was written"
        ) from None


def as_step_name(text: str, taken: set[str], fallback: str, limit: int = 40) -> str:
    """`text` as a valid step name (batch.NAME_PATTERN: lowercase letters, digits, '.', '_',
    '-'), `fallback` when nothing of it is left, unique among `taken` (which it joins)."""
    name = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")[:limit].rstrip("-._") or fallback
    unique, n = name, 2
    while unique in taken:
        unique = f"{name}-{n}"
        n += 1
    taken.add(unique)
    return unique


def py_str(text: str) -> str:
    """A Python string literal for `text`, in double quotes as the README writes them."""
    return json.dumps(text, ensure_ascii=False)


def toml_str(text: str) -> str:
    """A TOML basic string for `text` (JSON's escapes are TOML's)."""
    return json.dumps(text, ensure_ascii=False)
