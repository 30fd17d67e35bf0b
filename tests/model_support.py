"""Helpers for tests that run Rasa's own commands on the real project."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MODEL_PATH = PROJECT_ROOT / "models" / "assistant.tar.gz"


def rasa(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run ``rasa ARGS`` in the project root with the project's environment."""
    env = {
        **os.environ,
        "RASA_TELEMETRY_ENABLED": "false",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
        "PYTHONWARNINGS": "ignore::DeprecationWarning",
    }
    return subprocess.run(
        [sys.executable, "-m", "rasa", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def train_model() -> Path:
    """Train (or keep, when nothing changed) models/assistant.tar.gz."""
    result = rasa(
        "train", "--domain", "domain", "--data", "data", "--config", "config.yml",
        "--fixed-model-name", "assistant", "--out", "models",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert MODEL_PATH.exists()
    return MODEL_PATH


def story_trackers_of(agent) -> list:
    """The trackers `rasa test core` builds from tests/stories, for ``agent``'s domain (the
    lean-turn tests compare the patched and Rasa's own code on every one of them)."""
    from rasa.core.test import _create_data_generator

    generator = _create_data_generator("tests/stories", agent, use_conversation_test_files=False)
    trackers = generator.generate_story_trackers()
    assert len(trackers) > 150
    return trackers
