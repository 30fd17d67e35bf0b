"""The catalogue in the patient's language: service names, preparation texts and site
names for ru / zh, from content/services.yml (keyed by the backend's stable ids).

The database (or an EHR) keeps the English text; it is the fallback for any id or language
the file does not cover, so a new service is shown in English rather than not at all.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import yaml

from clinic.i18n import LANGUAGES, language_code
from clinic.scheduling.model import Location, Service
from clinic.settings import PROJECT_ROOT

logger = logging.getLogger(__name__)

CATALOGUE_FILE = PROJECT_ROOT / "content" / "services.yml"


@functools.lru_cache(maxsize=4)
def _load(path: Path = CATALOGUE_FILE) -> Dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        # Without translations every text is the database's English: degraded, not broken.
        logger.warning("%s is missing: the catalogue is shown in English", path)
        return {}
    return data if isinstance(data, dict) else {}


def _text(section: str, item_id: str, language: Optional[str], field: str) -> Optional[str]:
    language = language_code(language)
    if language == "en":
        return None
    entry = ((_load().get(section) or {}).get(item_id) or {}).get(language) or {}
    value = entry.get(field)
    return " ".join(str(value).split()) if value else None


def service_name(service: Service, language: Optional[str] = "en") -> str:
    return _text("services", service.id, language, "name") or service.name


def service_preparation(service: Service, language: Optional[str] = "en") -> str:
    return _text("services", service.id, language, "preparation") or service.preparation


def location_name(location: Location, language: Optional[str] = "en") -> str:
    return _text("locations", location.id, language, "name") or location.name


def with_translated_synonyms(services: Sequence[Service]) -> list:
    """The catalogue with every language's names and synonyms added to ``synonyms``, so a
    service typed in Russian or Chinese is matched like one typed in English (whatever the
    ``language`` slot says: patients mix languages)."""
    catalogue = (_load().get("services") or {})
    widened = []
    for service in services:
        extra = []
        for language in LANGUAGES:
            entry = (catalogue.get(service.id) or {}).get(language) or {}
            extra += [entry["name"]] if entry.get("name") else []
            extra += [str(word) for word in entry.get("synonyms") or ()]
        widened.append(dataclasses.replace(service, synonyms=(*service.synonyms, *extra))
                       if extra else service)
    return widened
