"""`make run` approves the demo documents when the clinic has none (clinic/knowledge/demo.py):
a newcomer's "can I bring my dog?" is answered from them at once; every upload and approval
is in the audit log; a clinic's own documents, or an earlier start's, are left alone."""

from __future__ import annotations

import pytest

from clinic.inbox.audit import AuditLog
from clinic.knowledge.demo import DOCUMENTS, LANGUAGES, install_demo_documents, main
from clinic.knowledge.search import Searcher
from tests.knowledge_support import fresh_knowledge_base


@pytest.fixture
def kb(tmp_path):
    with fresh_knowledge_base(tmp_path) as knowledge:
        yield knowledge


def test_an_empty_clinic_gets_the_demo_documents_approved_and_audited(kb):
    count = len(DOCUMENTS) * len(LANGUAGES)
    assert install_demo_documents(kb.sessions) == count
    documents = kb.documents()
    assert len(documents) == count and all(d.approved is not None for d in documents)
    log = AuditLog(kb.sessions)
    assert len(log.entries(action="knowledge_uploaded", actor="system")) == count
    approvals = log.entries(action="knowledge_approved", actor="system")
    assert len(approvals) == count and all("demo document" in e.detail for e in approvals)
    assert log.verify().ok
    answer = Searcher(kb.sessions, encoder=None).answer("Can I bring my dog?", "en")
    assert answer.found and "Assistance dogs" in answer.quote


def test_a_clinic_with_documents_is_left_alone(kb):
    with kb.sessions.begin() as session:
        own = kb.upload(session, data=b"Visiting hours are 14:00 to 19:00.", name="own.txt", by="admin",
                        title="Our visiting rules")
    assert install_demo_documents(kb.sessions) == 0
    assert [d.title for d in kb.documents()] == ["Our visiting rules"] and own.state == "draft"


def test_a_second_start_adds_nothing_even_after_a_retirement(kb):
    install_demo_documents(kb.sessions)
    first = kb.documents()[0]
    with kb.sessions.begin() as session:
        kb.retire(session, first.id, "admin")
    assert install_demo_documents(kb.sessions) == 0
    assert len(kb.documents()) == len(DOCUMENTS) * len(LANGUAGES)


def test_the_command_says_what_it_did(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'clinic.db'}"
    assert main(["--database-url", url]) == 0
    assert "9 versions approved" in capsys.readouterr().out
    assert main(["--database-url", url]) == 0
    assert "nothing added" in capsys.readouterr().out
