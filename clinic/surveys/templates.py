"""Which languages the clinic's own templates are approved in (``content/templates.yml``,
or the file named by ``CLINIC_TEMPLATES_FILE``): read once, checked, kept in one place.

Meta approves a template per name *and* language; sending a version that does not exist
fails with 132001. The survey sender asks here before choosing the patient's language, and
falls back to the clinic's default language (recorded) when the version is missing.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple

from clinic.settings import PROJECT_ROOT
from clinic.yaml_files import load_yaml_file

DEFAULT_TEMPLATES_FILE = PROJECT_ROOT / "content" / "templates.yml"
TEMPLATES_FILE_ENV = "CLINIC_TEMPLATES_FILE"
_NAME = re.compile(r"^[a-z0-9_]+$")
_CODE = re.compile(r"^[A-Za-z]{2,3}(_[A-Za-z0-9]{2,4})?$")


class TemplateDataError(ValueError):
    """The templates file is malformed; the message names the entry."""


@dataclasses.dataclass(frozen=True)
class ApprovedTemplates:
    languages: Mapping[str, Tuple[str, ...]]  # template name -> WhatsApp codes approved

    def approved_in(self, name: str) -> Tuple[str, ...]:
        try:
            return self.languages[name]
        except KeyError:
            raise TemplateDataError(f"template {name!r} is not listed in the templates file") from None

    def require(self, names, default: str) -> None:
        """Every one of ``names`` listed and approved in ``default`` (the fallback must exist)."""
        for name in names:
            if default not in self.approved_in(name):
                raise TemplateDataError(f"template {name!r} must be approved in the default language {default}")


def load_approved(path: Optional[Path] = None, environ: Optional[Mapping[str, str]] = None) -> ApprovedTemplates:
    environ = os.environ if environ is None else environ
    path = Path(path or environ.get(TEMPLATES_FILE_ENV) or DEFAULT_TEMPLATES_FILE)
    raw = load_yaml_file(path, TemplateDataError, "templates file")
    entries = raw.get("templates") if isinstance(raw, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise TemplateDataError(f"{path}: expected a 'templates' mapping (name: [language codes])")
    languages: Dict[str, Tuple[str, ...]] = {}
    for name, codes in entries.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise TemplateDataError(f"{path}: template name {name!r}: only a-z, 0-9 and _")
        if isinstance(codes, str):
            codes = [codes]
        if not isinstance(codes, list) or not codes or not all(isinstance(c, str) and _CODE.match(c) for c in codes):
            raise TemplateDataError(f"{path}: template {name}: a list of WhatsApp language codes (en_US, ru, zh_CN)")
        if len(set(codes)) != len(codes):
            raise TemplateDataError(f"{path}: template {name}: a language is listed twice")
        languages[name] = tuple(codes)
    return ApprovedTemplates(languages)


@functools.lru_cache(maxsize=1)
def default_approved() -> ApprovedTemplates:
    """The project's approved templates, read once per process."""
    return load_approved()
