"""Synthetic documents the demo portal shows behind a redeemed link. Everything here is
invented for the demo (no real patient, no real values); a clinic's real portal shows its
own documents and verifies links with ``POST /api/v1/portal/tokens/verify``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from typing import List, Optional, Tuple

from sqlalchemy.orm import sessionmaker

from clinic.notifications.model import DOCUMENT_KINDS


@dataclasses.dataclass(frozen=True)
class DemoDocument:
    title: str
    lines: List[Tuple[str, str]]  # (label, value)
    note: str


def patient_facts(sessions: sessionmaker, patient_id: str) -> Optional[Tuple[str, dt.date]]:
    """(name, date of birth) of a patient, for the second factor and the heading."""
    from clinic.scheduling.tables import PatientRow

    with sessions() as session:
        row = session.get(PatientRow, patient_id)
        return (row.name, row.birth_date) if row is not None else None


def _seeded(document_id: str, low: float, high: float, salt: str) -> float:
    digest = hashlib.sha256(f"{document_id}:{salt}".encode()).digest()
    return round(low + (high - low) * digest[0] / 255, 1)


def demo_document(purpose: str, subtype: Optional[str], document_id: str, patient_name: str) -> DemoDocument:
    note = "Synthetic demo document: not a real patient, not real values."
    if purpose == "results":
        return DemoDocument("Laboratory results", [
            ("Patient", patient_name),
            ("Haemoglobin", f"{_seeded(document_id, 120, 160, 'hb'):.0f} g/L (120–160)"),
            ("White cell count", f"{_seeded(document_id, 4, 10, 'wbc')} x10^9/L (4.0–10.0)"),
            ("Fasting glucose", f"{_seeded(document_id, 4.0, 6.0, 'glu')} mmol/L (3.9–5.5)"),
            ("Comment", "Your doctor has reviewed these results."),
        ], note)
    label = DOCUMENT_KINDS.get(subtype or "", "document")
    body = {
        "sick_note": [("Unfit for work", "3 days from the date of issue"), ("Issued by", "Riverside Family Clinic")],
        "referral_letter": [("Referred to", "Outpatient clinic (synthetic)"), ("Priority", "Routine")],
        "records_copy": [("Pages", "12"), ("Period", "last 24 months")],
        "prescription": [("Collect at", "reception"), ("Valid for", "28 days")],
    }.get(subtype or "", [("Status", "available")])
    return DemoDocument(label.capitalize(), [("Patient", patient_name), *body], note)
