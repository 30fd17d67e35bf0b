"""The fictional clinic's demo documents (content/knowledge/), written for this project:
a patient guide (PDF), a page on preparing for examinations (HTML, with its address) and a
visiting policy (Markdown), each in English, Russian and Chinese.

``python -m clinic.knowledge.demo`` (``make run`` does it) approves them into the clinic
database when it has no document yet, so a newcomer's "can I bring my dog?" is answered from
them at once; each upload and approval is in the audit log, by ``system``. A database with
documents — the clinic's own, or these from an earlier start, even retired — is left alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import List, Optional, Sequence

from sqlalchemy.orm import Session, sessionmaker

from clinic.clock import utcnow
from clinic.inbox import audit
from clinic.inbox.model import SYSTEM
from clinic.knowledge.service import KnowledgeBase, VersionView
from clinic.settings import PROJECT_ROOT

DIRECTORY = PROJECT_ROOT / "content" / "knowledge"
SITE = "https://www.riverside-clinic.example"


@dataclasses.dataclass(frozen=True)
class DemoDocument:
    key: str
    topic: str
    file: str  # with {lang}
    titles: dict
    url: Optional[str] = None  # with {lang}


DOCUMENTS = (
    DemoDocument("patient-guide", "patient_guide", "patient-guide.{lang}.pdf",
                 {"en": "Patient guide 2026", "ru": "Памятка пациента 2026", "zh": "患者指南2026"}),
    DemoDocument("examinations", "examinations", "preparing-for-examinations.{lang}.html",
                 {"en": "Preparing for your examination", "ru": "Подготовка к обследованию",
                  "zh": "检查前的准备"}, url=SITE + "/{lang}/preparing-for-examinations"),
    DemoDocument("visiting-policy", "visiting", "visiting-policy.{lang}.md",
                 {"en": "Visiting policy", "ru": "Правила посещения", "zh": "探视规定"}),
)
LANGUAGES = ("en", "ru", "zh")


def upload_all(kb: KnowledgeBase, session: Session, by: str = "system") -> List[VersionView]:
    """Upload every demo document as a draft (nothing is approved here)."""
    versions = []
    for document in DOCUMENTS:
        for language in LANGUAGES:
            name = document.file.format(lang=language)
            versions.append(kb.upload(session, data=(DIRECTORY / name).read_bytes(), name=name, by=by,
                                      title=document.titles[language], topic=document.topic,
                                      url=document.url.format(lang=language) if document.url else None))
    return versions


def load_approved(kb: KnowledgeBase, by: str = "system") -> List[VersionView]:
    """Upload and approve every demo document (the demo and the evaluation)."""
    with kb.sessions.begin() as session:
        return [kb.approve(session, v.id, by) for v in upload_all(kb, session, by)]


def install_demo_documents(session_factory: sessionmaker) -> int:
    """Upload and approve the demo documents if the clinic has no document yet, with their
    audit rows in the same transaction; returns how many versions were approved (0: left alone)."""
    kb = KnowledgeBase(session_factory)
    if kb.documents():
        return 0

    def run() -> int:
        with audit.transaction(session_factory) as session:
            approved = []
            for version in upload_all(kb, session, by=SYSTEM.username):
                audit.append(session, SYSTEM, "knowledge_uploaded", at=utcnow(),
                             detail=f"document {version.document_id} version {version.id} kind={version.kind} "
                                    f"passages={version.passages} phi_flagged={version.phi_passages}")
                approved.append(kb.approve(session, version.id, SYSTEM.username, "demo document"))
                audit.append(session, SYSTEM, "knowledge_approved", at=utcnow(),
                             detail=f"document {version.document_id} version {version.id} note: demo document")
            return len(approved)

    return audit.retrying(run)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description="Approve the demo documents (content/knowledge/) when the clinic has no document yet.")
    parser.add_argument("--database-url", default=None,
                        help="default: CLINIC_DATABASE_URL or the SQLite file under var/")
    args = parser.parse_args(argv)

    from clinic.db import create_schema, make_engine, make_session_factory

    engine = make_engine(args.database_url)
    try:
        create_schema(engine)
        approved = install_demo_documents(make_session_factory(engine))
    finally:
        engine.dispose()
    print(f"demo documents: {approved} versions approved" if approved
          else "demo documents: the clinic already has documents; nothing added")
    return 0


if __name__ == "__main__":
    sys.exit(main())
