"""The fictional clinic's demo documents (content/knowledge/), written for this project:
a patient guide (PDF), a page on preparing for examinations (HTML, with its address) and a
visiting policy (Markdown), each in English, Russian and Chinese."""

from __future__ import annotations

import dataclasses
from typing import List, Optional

from sqlalchemy.orm import Session

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
