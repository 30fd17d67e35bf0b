"""Analytics of the answers from the clinic's documents (issue 17): answered / not found /
handed over per document title and language, in the report, the command's summary and the
inbox's analytics page. Real SQLite, the real search and demo documents; counts only."""

from __future__ import annotations

import datetime as dt

import pytest
import requests

from clinic.analytics.report import build_report, summary_lines
from clinic.db import create_schema, make_engine, make_session_factory
from clinic.knowledge.answers import NO_DOCUMENT, DocumentAnswers
from clinic.knowledge.demo import DIRECTORY
from clinic.knowledge.service import KnowledgeBase

T0 = dt.datetime(2030, 3, 4, 9, 0, tzinfo=dt.timezone.utc)
ALICE, BORIS, CHEN = "a" * 64, "b" * 64, "c" * 64  # pseudonymous contact keys


def approve_visiting_policy(sessions, language: str, title: str) -> None:
    kb = KnowledgeBase(sessions)
    name = f"visiting-policy.{language}.md"
    with kb.sessions.begin() as session:
        version = kb.upload(session, data=(DIRECTORY / name).read_bytes(), name=name, by="reviewer", title=title,
                            topic="visiting")
        kb.approve(session, version.id, "reviewer")


def ask_questions(sessions, clock) -> None:
    """Three answered (one then handed over), two not found near the policy or near nothing."""
    approve_visiting_policy(sessions, "en", "Visiting policy")
    approve_visiting_policy(sessions, "ru", "Правила посещения")
    answers = DocumentAnswers(sessions, clock=clock)
    assert answers.answer("Can I bring my dog?", "en", ALICE).found
    assert answers.handed_over(ALICE)
    assert answers.answer("Can I bring flowers?", "en", BORIS).found
    assert answers.answer("Можно ли курить на территории клиники?", "ru", CHEN).found
    assert not answers.answer("What's the weather like tomorrow?", "en", BORIS).found
    assert answers.handed_over(BORIS)  # the person asked for right after the not-found
    assert not answers.answer("Is the cafeteria open for visitors?", "en", CHEN).found


@pytest.fixture
def sessions(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'clinic.db'}")
    create_schema(engine)
    yield make_session_factory(engine)
    engine.dispose()


def test_report_counts_per_document_and_language(sessions):
    ask_questions(sessions, clock=lambda: T0)
    report = build_report(sessions, T0 - dt.timedelta(days=1), T0 + dt.timedelta(days=1))
    rows = {(d["title"], d["language"]): (d["answered"], d["not_found"], d["handed_over"]) for d in report.documents}
    # "cafeteria … visitors" came closest to the visiting policy (below the threshold): counted there.
    assert rows == {("Visiting policy", "en"): (2, 1, 1), ("Правила посещения", "ru"): (1, 0, 0),
                    (NO_DOCUMENT, "en"): (0, 1, 1)}
    assert "Answers from documents: 3 answered, 2 not found, 2 handed to a person right after" in summary_lines(report)
    # Outside the period nothing counts.
    later = build_report(sessions, T0 + dt.timedelta(days=1), T0 + dt.timedelta(days=2))
    assert later.documents == []


def test_a_contact_without_a_document_answer_has_nothing_to_mark(sessions):
    assert not DocumentAnswers(sessions, clock=lambda: T0).handed_over("d" * 64)


def test_inbox_analytics_page_shows_the_document_counts(tmp_path, monkeypatch):
    from clinic.inbox.testing import FakeRasa
    from tests.inbox_support import LiveClock, build_world, login, running_inbox

    monkeypatch.setenv("CLINIC_PSEUDONYM_KEY", "analytics-test-key")
    rasa = FakeRasa()
    rasa.start()
    try:
        world = build_world(tmp_path / "clinic.db", rasa, LiveClock())
        ask_questions(world.sessions, clock=lambda: dt.datetime.now(dt.timezone.utc))
        with running_inbox(world) as server:
            page = login(server, "sara").get(f"{server.url}/inbox/analytics?days=30", allow_redirects=False)
            assert page.status_code == 200
            table = page.text.split('id="document-answers"', 1)[1].split("</table>", 1)[0]
            assert "<tr><td>Visiting policy</td><td>en</td><td>2</td><td>1</td><td>1</td></tr>" in table
            assert "<tr><td>Правила посещения</td><td>ru</td><td>1</td><td>0</td><td>0</td></tr>" in table
            assert "3 answered, 2 not found, 2 handed to a person right after" in page.text
            # Counts only: no question appears anywhere on the page.
            assert "dog" not in page.text and "weather" not in page.text and "курить" not in page.text
    finally:
        rasa.stop()


def test_the_page_says_when_nothing_was_searched(tmp_path, monkeypatch):
    from clinic.inbox.testing import FakeRasa
    from tests.inbox_support import LiveClock, build_world, login, running_inbox

    monkeypatch.setenv("CLINIC_PSEUDONYM_KEY", "analytics-test-key")
    rasa = FakeRasa()
    rasa.start()
    try:
        world = build_world(tmp_path / "clinic.db", rasa, LiveClock())
        with running_inbox(world) as server:
            page = login(server, "adam").get(f"{server.url}/inbox/analytics?days=30", allow_redirects=False)
            assert "No questions were searched in the documents in the period." in page.text
            assert requests.codes.ok == page.status_code
    finally:
        rasa.stop()
