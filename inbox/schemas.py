"""Bodies of the inbox JSON API (pydantic v1: Rasa 3.6 pins it)."""

from __future__ import annotations

import datetime as dt
from typing import Dict, List, Optional

from pydantic import BaseModel, Field, conint, constr

from clinic.inbox.model import Priority, Role, TicketState
from clinic.inbox.service import NOTE_MAX, REPLY_MAX, TicketView

TeamName = constr(regex=r"^(nurse|billing|reception)$")


class Problem(BaseModel):
    detail: str


class Me(BaseModel):
    id: int
    username: str
    display_name: str
    role: Role
    teams: List[str]
    csrf_token: str = Field(..., description="send it back in the X-CSRF-Token header of POST/PUT calls")


class SlaOut(BaseModel):
    waiting_seconds: Optional[int]
    first_response_seconds: Optional[int]
    first_response_running: bool
    resolution_seconds: Optional[int]
    resolution_running: bool
    overdue: bool


class TicketOut(BaseModel):
    id: int
    conversation_id: str = Field(..., description="the conversation's pseudonym (never a phone number)")
    team: str
    priority: Priority
    state: TicketState
    reason: str
    red_flag_category: Optional[str]
    assignee_id: Optional[int]
    assignee: Optional[str]
    created_at: dt.datetime
    opened_at: dt.datetime
    waiting_since: Optional[dt.datetime]
    claimed_at: Optional[dt.datetime]
    first_response_at: Optional[dt.datetime]
    resolved_at: Optional[dt.datetime]
    resolution_reason: Optional[str]
    overdue_at: Optional[dt.datetime]
    reopen_count: int
    bot_paused: bool
    sla: SlaOut
    language: str = Field(..., description="the conversation's language (en, ru, zh…; the clinic's "
                                           "default when not known): templates are sent in it")
    patient_label: str = Field(..., description="what staff call the patient, e.g. \"Patient 4F2K\": "
                                                "derived from the pseudonym, the same for every ticket "
                                                "of the conversation")

    @classmethod
    def of(cls, view: TicketView) -> "TicketOut":
        data = {k: getattr(view, k) for k in cls.__fields__ if k != "sla"}
        return cls(**data, sla=SlaOut(**view.sla.__dict__))


class ActionOut(BaseModel):
    ticket: TicketOut
    warning: Optional[str] = Field(None, description="e.g. the assistant could not be paused yet")


class TimelineOut(BaseModel):
    at: dt.datetime
    sender: str = Field(..., description="patient | bot | staff | note (internal) | notice (sent to the "
                                         "patient by the inbox itself, e.g. who has joined)")
    text: str = Field(..., description="as the patient saw it: a tapped button's title, not its payload")
    author: Optional[str]
    delivery: Optional[str]
    delivery_detail: Optional[str]
    buttons: List[str] = Field([], description="the titles of a bot message's buttons")
    tapped: bool = Field(False, description="the patient tapped a button; `text` is its title")


class PatientOut(BaseModel):
    label: str
    name: Optional[str] = Field(None, description="from the clinic's patient record, when the contact has one")
    birth_date: Optional[dt.date]
    earlier_tickets: int = Field(..., description="tickets of this conversation opened before this one")
    username: Optional[str] = Field(None, description="the patient's WhatsApp username, when they have one")


class TicketDetail(BaseModel):
    ticket: TicketOut
    timeline: List[TimelineOut]
    transcript_error: Optional[str]
    patient: Optional[PatientOut]


class Queues(BaseModel):
    mine: List[TicketOut]
    teams: Dict[str, List[TicketOut]]


class TextIn(BaseModel):
    text: constr(strip_whitespace=True, min_length=1, max_length=REPLY_MAX)


class TemplateOut(BaseModel):
    name: str
    language: str = Field(..., description="WhatsApp language code of `body`: the clinic's default language "
                                           "(the first listed if the template has no version in it)")
    label: str
    body: str = Field(..., description="the approved text; {{1}}, {{2}}… are filled from `values`")
    params: List[str] = Field(..., description="what each value is, in order")
    translations: Dict[str, str] = Field(..., description="WhatsApp language code → the approved text "
                                                          "in it, for every language the template has")


class TicketTemplateOut(BaseModel):
    name: str
    label: str
    params: List[str]
    language: str = Field(..., description="the WhatsApp language code it would be sent in")
    body: str = Field(..., description="the approved text in that language")
    wanted: str = Field(..., description="the WhatsApp language code of the patient's language")
    fallback: bool = Field(..., description="no version in the patient's language: sent in the clinic's "
                                            "default language instead (recorded on the ticket)")


class TemplateIn(BaseModel):
    name: constr(regex=r"^[a-z0-9_]{1,512}$")
    values: List[constr(strip_whitespace=True, min_length=1, max_length=200)] = Field(default_factory=list,
                                                                                    max_items=20)


class NoteIn(BaseModel):
    text: constr(strip_whitespace=True, min_length=1, max_length=NOTE_MAX)


class TransferIn(BaseModel):
    team: TeamName


# Row ids in paths and forms: anything outside the database's integer range is a 422, not
# an overflow deep in the driver (found by the schemathesis run).
RowId = conint(ge=1, le=2**31 - 1)


class AssignIn(BaseModel):
    staff_id: conint(ge=1, le=2**31 - 1)


class ResolveIn(BaseModel):
    reason: constr(regex=r"^[a-z_]{1,40}$") = Field(..., description="answered, appointment_booked, referred, "
                                                    "callback_done, no_response, not_needed, duplicate")


class MessageOut(BaseModel):
    id: int
    kind: str
    author: str
    created_at: dt.datetime
    delivery: Optional[str]
    delivery_detail: Optional[str]


class TaskIn(BaseModel):
    note: constr(strip_whitespace=True, max_length=NOTE_MAX) = ""
    due_at: Optional[dt.datetime] = None


class TaskOut(BaseModel):
    id: int
    conversation_id: str
    ticket_id: Optional[int]
    team: str
    note: str
    due_at: Optional[dt.datetime]
    state: str
    created_by: str
    created_at: dt.datetime
    done_at: Optional[dt.datetime]


class UserIn(BaseModel):
    username: constr(regex=r"^[a-z0-9][a-z0-9._-]{1,63}$")
    display_name: constr(strip_whitespace=True, min_length=1, max_length=100)
    password: constr(min_length=12, max_length=256)
    role: Role
    teams: List[TeamName] = []


class UserOut(BaseModel):
    id: int
    username: str
    display_name: str
    role: Role
    teams: List[str]
    disabled: bool
    totp_confirmed: bool
    last_login_at: Optional[dt.datetime]


class NewUserOut(UserOut):
    totp_secret: str = Field(..., description="shown once; the user also sees it at first login")
    provisioning_uri: str


class AuditOut(BaseModel):
    id: int
    at: dt.datetime
    actor: str
    action: str
    conversation_id: Optional[str]
    ticket_id: Optional[int]
    detail: str
    client: Optional[str]


class ChainOut(BaseModel):
    ok: bool
    rows: int
    first_bad_id: Optional[int]
    problem: str


class SettingsIn(BaseModel):
    overdue_minutes: Optional[conint(ge=1, le=1440)] = None
    idle_timeout_minutes: Optional[conint(ge=1, le=480)] = None


class SettingsOut(BaseModel):
    overdue_minutes: int
    idle_timeout_minutes: int
