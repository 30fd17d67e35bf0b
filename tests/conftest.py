"""Shared fixtures: real SQLite databases in temporary folders, trackers, dispatchers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
import yaml
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.services import Services, build_services, use_services
from tests.pg_support import postgres_url  # noqa: F401  (session fixture: a real PostgreSQL)
from tests.redis_support import redis_server  # noqa: F401  (session fixture: a real Redis)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEST_PSEUDONYM_KEY = "test-pseudonym-key-not-a-secret"

# Rasa and TensorFlow must never try to reach the internet from tests.
os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")


@pytest.fixture
def services(tmp_path, monkeypatch) -> Services:
    """Clinic services bound to a fresh SQLite file, installed for the actions."""
    monkeypatch.setenv("CLINIC_PSEUDONYM_KEY", TEST_PSEUDONYM_KEY)
    built = build_services(f"sqlite:///{tmp_path / 'clinic.db'}")
    use_services(built)
    yield built
    use_services(None)


@pytest.fixture
def dispatcher() -> CollectingDispatcher:
    return CollectingDispatcher()


@pytest.fixture(scope="session")
def domain() -> Dict[str, Any]:
    """The merged domain as the action server receives it (responses, slots, ...)."""
    merged: Dict[str, Any] = {"responses": {}, "slots": {}, "intents": [], "entities": []}
    for path in sorted((PROJECT_ROOT / "domain").glob("*.yml")):
        part = yaml.safe_load(path.read_text()) or {}
        merged["responses"].update(part.get("responses") or {})
        merged["slots"].update(part.get("slots") or {})
        merged["intents"] += part.get("intents") or []
        merged["entities"] += part.get("entities") or []
        if "session_config" in part:
            merged["session_config"] = part["session_config"]
    return merged


def user_event(
    intent: str,
    text: str = "",
    entities: Optional[List[dict]] = None,
    response_key: Optional[str] = None,
    confidence: float = 0.95,
) -> Dict[str, Any]:
    parse: Dict[str, Any] = {
        "intent": {"name": intent, "confidence": confidence},
        "entities": entities or [],
        "text": text,
    }
    if response_key:
        parse["response_selector"] = {
            "faq": {"response": {"intent_response_key": response_key, "confidence": confidence}}
        }
    return {"event": "user", "text": text, "parse_data": parse, "input_channel": "rest"}


def make_tracker(
    events: List[Dict[str, Any]],
    slots: Optional[Dict[str, Any]] = None,
    sender_id: str = "+15550001111",
) -> Tracker:
    """A tracker whose latest message is the last user event in ``events``."""
    latest = next((e["parse_data"] for e in reversed(events) if e["event"] == "user"), {})
    return Tracker(
        sender_id=sender_id,
        slots=slots or {},
        latest_message=latest,
        events=events,
        paused=False,
        followup_action=None,
        active_loop={},
        latest_action_name="action_listen",
    )


SESSION_START = {"event": "session_started"}


@pytest.fixture(scope="session")
def trained_model():
    """models/assistant.tar.gz, trained first if data, domain or config changed."""
    from tests.model_support import train_model

    return train_model()


@pytest.fixture(scope="module")
def model(request):
    """The model the end-to-end tests serve: CLINIC_TEST_MODEL (a model trained elsewhere,
    e.g. a temporary --out while the shared one is being retrained), else the project's,
    trained first if needed."""
    override = os.environ.get("CLINIC_TEST_MODEL")
    return Path(override) if override else request.getfixturevalue("trained_model")
