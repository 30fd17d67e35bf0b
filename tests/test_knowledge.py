"""The clinic's documents (issue 17): ingestion, the review workflow and the search, on a
real SQLite database with the real extractors, tokenizers and PHI guard."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfWriter

from clinic.knowledge.demo import DIRECTORY
from clinic.knowledge.ingest import IngestError, extract
from clinic.knowledge.search import Searcher, trim
from clinic.knowledge.service import ReviewError
from tests.knowledge_support import fresh_knowledge_base

POLICY_V1 = b"""# Visiting policy

## Animals

Animals are not allowed inside the clinic. Assistance dogs, such as guide dogs, are welcome everywhere.

## Visiting hours

Visitors are welcome every day from 14:00 to 19:00. Quiet time is from 12:00 to 14:00.
"""
POLICY_V2 = POLICY_V1.replace(b"14:00 to 19:00", b"15:00 to 20:00")
RU = "# Правила\n\nЖивотных в клинику приводить нельзя. Собак-поводырей мы рады видеть во всех помещениях.\n".encode()


@pytest.fixture
def kb(tmp_path):
    with fresh_knowledge_base(tmp_path) as knowledge:
        yield knowledge


def _upload(kb, data=POLICY_V1, name="visiting.md", **kw):
    with kb.sessions.begin() as session:
        return kb.upload(session, data=data, name=name, by="reviewer", **kw)


def _approve(kb, version_id):
    with kb.sessions.begin() as session:
        return kb.approve(session, version_id, "reviewer")


def test_only_approved_versions_answer_and_a_new_version_replaces_the_old_only_when_approved(kb):
    searcher = Searcher(kb.sessions)
    draft = _upload(kb, title="Visiting policy")
    assert draft.state == "draft" and draft.passages == 2 and draft.languages == "en"
    assert not searcher.answer("What are the visiting hours?", "en").found  # a draft is never offered

    _approve(kb, draft.id)
    answer = searcher.answer("What are the visiting hours?", "en")
    assert answer.found and "14:00 to 19:00" in answer.quote
    assert answer.source == "From: Visiting policy, Visiting hours"

    second = _upload(kb, POLICY_V2, document_id=draft.document_id)
    assert second.number == 2
    assert "14:00 to 19:00" in searcher.answer("What are the visiting hours?", "en").quote  # v1 until v2 approved
    _approve(kb, second.id)
    assert "15:00 to 20:00" in searcher.answer("What are the visiting hours?", "en").quote
    assert kb.version(draft.id).state == "superseded"


def test_retiring_stops_answers_at_once_even_in_a_searcher_built_before(kb):
    version = _upload(kb, title="Visiting policy")
    _approve(kb, version.id)
    searcher = Searcher(kb.sessions)
    assert searcher.answer("Can I bring my dog?", "en").found
    with kb.sessions.begin() as session:
        kb.retire(session, version.document_id, "reviewer")
    answer = searcher.answer("Can I bring my dog?", "en")
    assert not answer.found and answer.reason == "no_documents"
    with pytest.raises(ReviewError):
        _upload(kb, POLICY_V2, document_id=version.document_id)


def test_a_passage_in_another_language_is_never_offered(kb):
    _approve(kb, _upload(kb, RU, name="rules.md", title="Правила посещения").id)
    searcher = Searcher(kb.sessions)
    russian = searcher.answer("Можно ли прийти с собакой-поводырём?", "ru")
    assert russian.found and russian.passage.language == "ru" and russian.source.startswith("Источник: ")
    assert not searcher.answer("Можно ли прийти с собакой-поводырём?", "en").found
    assert not searcher.answer("Can I bring a guide dog?", "en").found


def test_unrelated_questions_get_not_found_rather_than_a_loose_passage(kb):
    _approve(kb, _upload(kb, title="Visiting policy").id)
    searcher = Searcher(kb.sessions)
    for question in ("Do you sell bitcoin?", "Can I bring my cat to the dentist at 14:00 on Sunday?", "hello"):
        assert not searcher.answer(question, "en").found, question


def test_rejection_needs_a_note_and_only_drafts_are_reviewed(kb):
    version = _upload(kb, title="Visiting policy")
    with pytest.raises(ReviewError), kb.sessions.begin() as session:
        kb.reject(session, version.id, "reviewer", "  ")
    with kb.sessions.begin() as session:
        rejected = kb.reject(session, version.id, "reviewer", "Old opening hours")
    assert rejected.state == "rejected" and rejected.note == "Old opening hours"
    with pytest.raises(ReviewError):
        _approve(kb, version.id)
    assert not Searcher(kb.sessions).answer("Can I bring my dog?", "en").found


def test_a_passage_the_phi_guard_flags_blocks_approval(kb):
    text = b"# Letter\n\nYour HbA1c 7.2% was high, so you have diabetes. Please take 500 mg twice daily.\n"
    version = _upload(kb, text, name="letter.md", title="Letter")
    assert version.phi_passages == 1
    with pytest.raises(ReviewError, match="PHI guard"):
        _approve(kb, version.id)


def test_scanned_pdf_is_refused_with_a_clear_message():
    writer = PdfWriter()
    for _ in range(3):
        writer.add_blank_page(width=595, height=842)  # pages without a text layer, as a scan's are
    buffer = io.BytesIO()
    writer.write(buffer)
    with pytest.raises(IngestError, match="no text layer"):
        extract(buffer.getvalue(), "pdf")


def test_demo_pdf_passages_keep_their_page_and_chinese_punctuation():
    passages = extract((DIRECTORY / "patient-guide.zh.pdf").read_bytes(), "pdf")
    home = next(p for p in passages if "上门出诊" in p.text)
    assert home.locator == "page 1"
    assert home.text == "对于因年龄或残疾无法出门的患者，我们提供上门出诊服务。需要上门出诊的，请在当天10:00之前打电话预约。"
    english = extract((DIRECTORY / "patient-guide.en.pdf").read_bytes(), "pdf")
    assert any(p.locator == "page 3" and p.text.startswith("Free Wi-Fi is available") for p in english)


def test_html_page_loses_menus_and_footers_and_keeps_headings():
    passages = extract((DIRECTORY / "preparing-for-examinations.en.html").read_bytes(), "html")
    assert not any("Cookie settings" in p.text or "Home" == p.text for p in passages)
    mri = next(p for p in passages if p.text.startswith("An MRI examination takes"))
    assert mri.locator == "MRI"


def test_trim_keeps_the_answering_sentences_as_written():
    text = "Blood samples are taken in the morning. Bring your card. The lab is on floor 2. Parking is free."
    assert trim(text, {"lab", "floor"}) == "The lab is on floor 2."
