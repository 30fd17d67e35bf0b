"""Reading the project's YAML data files (content/, templates) with one kind of error.

Each loader raises its own error type for a missing or malformed file, so the message says
which file and what is wrong, and callers catch one exception per kind of data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Type

import yaml


def load_yaml_file(path: Path, error: Type[Exception], what: str) -> Any:
    """The file's YAML (an empty file reads as ``{}``); ``error`` when missing or invalid."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise error(f"{what} not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML ({exc})") from exc
