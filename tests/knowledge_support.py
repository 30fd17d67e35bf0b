"""A knowledge base on a fresh SQLite database, for the document-search tests."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from clinic.db import create_schema, make_engine, make_session_factory
from clinic.knowledge.service import KnowledgeBase


@contextmanager
def fresh_knowledge_base(folder: Path) -> Iterator[KnowledgeBase]:
    engine = make_engine(f"sqlite:///{folder / 'clinic.db'}")
    create_schema(engine)
    try:
        yield KnowledgeBase(make_session_factory(engine))
    finally:
        engine.dispose()
