"""What the inbox itself says to a patient, in the patient's language: content/inbox.yml.

Today one thing: who has joined when a staff member takes the conversation over
("Nina from our nurse team has joined the chat…"). It is sent while the assistant is
paused, through the inbox's own reply gateway, so it can't be a domain response; the texts
live in content/ beside the other per-language data, one line per language.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import Dict, Mapping, Optional

from clinic.language.catalogue import Catalogue, default_catalogue
from clinic.settings import PROJECT_ROOT
from clinic.yaml_files import load_yaml_file

DEFAULT_FILE = PROJECT_ROOT / "content" / "inbox.yml"
FILE_ENV = "INBOX_PATIENT_TEXTS_FILE"
MESSAGES = ("staff_joined", "staff_joined_team")


class PatientTextsError(ValueError):
    """content/inbox.yml is malformed; the message names the entry."""


@dataclasses.dataclass(frozen=True)
class PatientTexts:
    messages: Mapping[str, Mapping[str, str]]  # key -> language -> text
    teams: Mapping[str, Mapping[str, str]]     # team -> language -> words
    default_language: str

    def staff_joined(self, language: Optional[str], first_name: Optional[str], team: str) -> str:
        """"Nina from our nurse team has joined the chat…", or "Someone from our nurse
        team…" without a first name, in ``language`` (else the default language)."""
        team_words = self._pick(self.teams.get(team) or {}, language) or team
        if first_name:
            return self._pick(self.messages["staff_joined"], language).format(name=first_name, team=team_words)
        return self._pick(self.messages["staff_joined_team"], language).format(team=team_words)

    def _pick(self, by_language: Mapping[str, str], language: Optional[str]) -> str:
        return by_language.get(language or "") or by_language.get(self.default_language) or ""


def load_patient_texts(path: Optional[Path] = None, catalogue: Optional[Catalogue] = None,
                       environ: Optional[Mapping[str, str]] = None) -> PatientTexts:
    environ = os.environ if environ is None else environ
    catalogue = catalogue or default_catalogue()
    path = Path(path or environ.get(FILE_ENV) or DEFAULT_FILE)
    raw = load_yaml_file(path, PatientTextsError, "inbox texts file")
    messages = _table(raw, "messages", path)
    teams = _table(raw, "teams", path)
    for key in MESSAGES:
        # The default language is the fallback for every other one: it must be there.
        if not messages.get(key, {}).get(catalogue.default):
            raise PatientTextsError(f"{path}: messages.{key} needs a text in '{catalogue.default}'")
    for key, by_language in messages.items():
        for language, text in by_language.items():
            try:
                text.format(name="x", team="y")
            except (KeyError, IndexError, ValueError) as exc:
                raise PatientTextsError(f"{path}: messages.{key}.{language}: only {{name}} and {{team}} "
                                        f"may be filled in ({exc})") from None
    return PatientTexts(messages, teams, catalogue.default)


@functools.lru_cache(maxsize=1)
def default_patient_texts() -> PatientTexts:
    return load_patient_texts()


def _table(raw: object, name: str, path: Path) -> Dict[str, Dict[str, str]]:
    table = raw.get(name) if isinstance(raw, dict) else None
    if not isinstance(table, dict):
        raise PatientTextsError(f"{path}: expected a '{name}' mapping")
    result: Dict[str, Dict[str, str]] = {}
    for key, by_language in table.items():
        if not isinstance(by_language, dict):
            raise PatientTextsError(f"{path}: {name}.{key} must map language codes to texts")
        result[str(key)] = {str(code): str(text).strip() for code, text in by_language.items() if text}
    return result
