"""Portal link tokens (clinic/portal/tokens.py) on real SQLite: expiry, single use (also
under concurrency), forgery, wrong patient, second-factor lockout, and nothing in clear
in the database or the access log."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import text

from clinic.db import create_schema, make_engine, make_session_factory
from clinic.portal import tokens as tk
from clinic.portal.tokens import PortalTokens, TokenError, portal_link

KEY = b"k" * 32
NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)


class Clock:
    def __init__(self):
        self.now = NOW

    def __call__(self):
        return self.now


@pytest.fixture
def portal(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'clinic.db'}")
    create_schema(engine)
    clock = Clock()
    tokens = PortalTokens(make_session_factory(engine), KEY, dt.timedelta(hours=24), clock=clock)
    tokens.clock = clock
    return tokens


def reason(call) -> str:
    with pytest.raises(TokenError) as error:
        call()
    return error.value.reason


def test_a_token_opens_its_document_once(portal):
    issued = portal.issue("pat_1", "lab-42", "results", source="evt-1")
    assert len(issued.token) == tk.TOKEN_LENGTH and issued.expires_at == NOW + dt.timedelta(hours=24)
    # Opening (e.g. a link preview) does not use it up.
    assert portal.check(issued.token).document_id == "lab-42"
    assert portal.check(issued.token).patient_id == "pat_1"
    grant = portal.redeem(issued.token, patient_id="pat_1")
    assert (grant.patient_id, grant.document_id, grant.purpose, grant.used_at) == ("pat_1", "lab-42", "results", NOW)
    assert reason(lambda: portal.redeem(issued.token)) == tk.USED
    assert reason(lambda: portal.check(issued.token)) == tk.USED


def test_the_link_holds_only_the_token():
    link = portal_link("https://portal.example/", "abc")
    assert link == "https://portal.example/t/abc"


def test_expiry(portal):
    issued = portal.issue("pat_1", "doc-1", "document")
    portal.clock.now = NOW + dt.timedelta(hours=23, minutes=59)
    assert portal.check(issued.token)
    portal.clock.now = NOW + dt.timedelta(hours=24)
    assert reason(lambda: portal.check(issued.token)) == tk.EXPIRED
    assert reason(lambda: portal.redeem(issued.token)) == tk.EXPIRED
    short = portal.issue("pat_1", "doc-2", "document", lifetime=dt.timedelta(minutes=5))
    portal.clock.now += dt.timedelta(minutes=6)
    assert reason(lambda: portal.redeem(short.token)) == tk.EXPIRED


def test_forged_tampered_and_foreign_tokens_are_refused(portal, tmp_path):
    issued = portal.issue("pat_1", "doc-1", "document")
    flipped = issued.token[:10] + ("A" if issued.token[10] != "A" else "B") + issued.token[11:]
    for bad in (flipped, "x" * tk.TOKEN_LENGTH, "", "short", issued.token + "x", "../../etc/passwd",
                issued.token[:-1]):
        assert reason(lambda bad=bad: portal.check(bad)) == tk.FORGED, bad
    # Signed with another deployment's key: forged here too.
    other = PortalTokens(portal._sessions, b"o" * 32)
    foreign = other.issue("pat_1", "doc-1", "document")
    assert reason(lambda: portal.check(foreign.token)) == tk.FORGED
    # Correctly signed but not in this database (e.g. purged): unknown.
    with portal._sessions() as session, session.begin():
        session.execute(text("DELETE FROM portal_tokens WHERE id = :id"), {"id": issued.token_id})
    assert reason(lambda: portal.check(issued.token)) == tk.UNKNOWN


def test_wrong_patient(portal):
    issued = portal.issue("pat_1", "doc-1", "document")
    assert reason(lambda: portal.check(issued.token, patient_id="pat_2")) == tk.WRONG_PATIENT
    assert reason(lambda: portal.redeem(issued.token, patient_id="pat_2")) == tk.WRONG_PATIENT
    assert portal.redeem(issued.token, patient_id="pat_1").patient_id == "pat_1"  # not used up by the refusal


def test_concurrent_redemptions_exactly_one_wins(portal):
    for _round in range(5):
        issued = portal.issue("pat_1", "doc-1", "document")
        barrier = threading.Barrier(8)
        outcomes = []

        def redeem(barrier=barrier, issued=issued, outcomes=outcomes):
            barrier.wait()
            try:
                portal.redeem(issued.token)
                outcomes.append("ok")
            except TokenError as error:
                outcomes.append(error.reason)

        threads = [threading.Thread(target=redeem) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["ok"] + [tk.USED] * 7


def test_wrong_second_factor_locks_the_token(portal):
    issued = portal.issue("pat_1", "doc-1", "document")
    for _ in range(tk.MAX_FAILED_CHECKS - 1):
        assert portal.second_factor_failed(issued.token_id) is False
    assert portal.check(issued.token)
    assert portal.second_factor_failed(issued.token_id) is True
    assert reason(lambda: portal.redeem(issued.token)) == tk.LOCKED


def test_nothing_in_clear_in_the_database_or_the_log(portal):
    issued = portal.issue("pat_1", "doc-1", "results")
    portal.check(issued.token)
    portal.redeem(issued.token)
    reason(lambda: portal.redeem(issued.token))
    reason(lambda: portal.check("y" * tk.TOKEN_LENGTH))
    with portal._sessions() as session:
        dump = " ".join(str(v) for table in ("portal_tokens", "portal_access_log")
                        for row in session.execute(text(f"SELECT * FROM {table}")) for v in row)
    assert issued.token not in dump and "y" * 20 not in dump
    outcomes = [entry["outcome"] for entry in reversed(portal.access_log())]
    assert outcomes == ["opened", "redeemed", "used", "forged"]
    refs = [entry["token_ref"] for entry in portal.access_log()]
    assert refs[0].startswith("h:") and issued.token_id in refs


def test_issue_needs_a_binding(portal):
    with pytest.raises(ValueError):
        portal.issue("", "doc-1", "results")
    with pytest.raises(ValueError):
        portal.issue("pat_1", "doc-1", "anything")
    with pytest.raises(ValueError):
        PortalTokens(portal._sessions, b"short")
