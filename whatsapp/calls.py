"""The Cloud API's Calling protocol: the call actions the business sends to
``POST /{phone_number_id}/calls`` and the ``calls`` webhook field (issue 19, item 1).

Shapes as Meta documents them (and as david-lev/pywa implements them, ``pywa/api.py`` and
``pywa/types/calls.py``):

- business-initiated: ``connect`` with the business's SDP offer, to ``to`` (a wa_id) or
  ``recipient`` (a BSUID) → ``{"calls": [{"id": "wacid…"}]}``; the user's answer SDP arrives
  as a ``connect`` webhook (``direction: BUSINESS_INITIATED``, ``session.sdp_type: answer``),
  and ``RINGING`` / ``ACCEPTED`` / ``REJECTED`` as ``statuses[]`` of ``type: call``;
- user-initiated: a ``connect`` webhook with the user's SDP offer; the business answers with
  ``pre_accept`` and ``accept`` (each with its SDP answer) or ``reject``;
- either side ends with ``terminate``; Meta then sends a ``terminate`` webhook with
  ``status`` (``COMPLETED`` / ``FAILED``) and, for a call that was picked up, ``start_time``,
  ``end_time`` and ``duration`` (seconds).

The permission a user gives the business to call them is asked with an interactive
``call_permission_request`` message and answered by an interactive ``call_permission_reply``
on the ``messages`` field (:func:`parse_permission_reply`).

Nothing here sends or stores anything: the gateway (the one process that talks to Meta)
does, and no SDP is ever logged (it carries network addresses).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from whatsapp.outbound import MessageShapeError, OutboundMessage

__all__ = [
    "ACCEPT", "ACTIONS", "BUSINESS_INITIATED", "CALLS_FIELD", "CONNECT", "CallActionError",
    "CallBatch", "CallEvent", "CallPermissionReply", "CallPermissionRequest", "CallStatus", "PRE_ACCEPT", "REJECT",
    "SDP_MAX_CHARS", "SessionDescription", "TERMINATE", "USER_INITIATED", "action_payload",
    "connect_payload", "parse_call_webhook", "parse_permission_reply", "permission_request",
]

CALLS_FIELD = "calls"
CONNECT, PRE_ACCEPT, ACCEPT, REJECT, TERMINATE = "connect", "pre_accept", "accept", "reject", "terminate"
ACTIONS = (CONNECT, PRE_ACCEPT, ACCEPT, REJECT, TERMINATE)
# Actions on a call Meta already named (by call_id); connect creates one.
CALL_ID_ACTIONS = (PRE_ACCEPT, ACCEPT, REJECT, TERMINATE)
# Actions that carry the business's SDP: the offer (connect) or the answer.
SDP_ACTIONS = {CONNECT: "offer", PRE_ACCEPT: "answer", ACCEPT: "answer"}
BUSINESS_INITIATED, USER_INITIATED = "BUSINESS_INITIATED", "USER_INITIATED"
EVENTS = ("connect", "terminate")
TERMINATE_STATUSES = ("COMPLETED", "FAILED")
CALL_STATUSES = ("RINGING", "ACCEPTED", "REJECTED")
# A browser's full (non-trickle) audio SDP is a few kilobytes; this bounds what is stored.
SDP_MAX_CHARS = 64 * 1024
# "An arbitrary string… Maximum 512 characters" (CallRequestPayload.biz_opaque_callback_data).
OPAQUE_MAX_CHARS = 512


class CallActionError(ValueError):
    """A call action Meta would refuse; the message names the field, never the SDP."""


@dataclass(frozen=True)
class SessionDescription:
    """``{"sdp_type": "offer"|"answer", "sdp": "<RFC 8866 SDP>"}``."""

    sdp_type: str
    sdp: str

    def __post_init__(self) -> None:
        if self.sdp_type not in ("offer", "answer"):
            raise CallActionError("session.sdp_type must be offer or answer")
        if not isinstance(self.sdp, str) or not self.sdp.startswith("v=0"):
            raise CallActionError("session.sdp must be an SDP (RFC 8866) starting with v=0")
        if len(self.sdp) > SDP_MAX_CHARS:
            raise CallActionError(f"session.sdp is longer than {SDP_MAX_CHARS} characters")

    def to_dict(self) -> Dict[str, str]:
        return {"sdp_type": self.sdp_type, "sdp": self.sdp}


def connect_payload(to: str, offer_sdp: str, biz_opaque_callback_data: Optional[str] = None,
                    *, recipient_is_bsuid: bool = False) -> Dict[str, Any]:
    """A business-initiated call to ``to`` (a wa_id, or a BSUID with ``recipient_is_bsuid``)."""
    if not isinstance(to, str) or not to.strip():
        raise CallActionError("to must be a non-empty string")
    payload: Dict[str, Any] = {"messaging_product": "whatsapp",
                               ("recipient" if recipient_is_bsuid else "to"): to,
                               "action": CONNECT,
                               "session": SessionDescription("offer", offer_sdp).to_dict()}
    return _with_opaque(payload, biz_opaque_callback_data)


def action_payload(call_id: str, action: str, answer_sdp: Optional[str] = None,
                   biz_opaque_callback_data: Optional[str] = None) -> Dict[str, Any]:
    """``pre_accept`` / ``accept`` (each with the business's SDP answer), ``reject`` or
    ``terminate`` on the call Meta named ``call_id``."""
    if action not in CALL_ID_ACTIONS:
        raise CallActionError(f"action must be one of {', '.join(CALL_ID_ACTIONS)}")
    if not isinstance(call_id, str) or not call_id.strip():
        raise CallActionError("call_id must be a non-empty string")
    payload: Dict[str, Any] = {"messaging_product": "whatsapp", "call_id": call_id, "action": action}
    if action in SDP_ACTIONS:
        if answer_sdp is None:
            raise CallActionError(f"{action} needs the business's SDP answer")
        payload["session"] = SessionDescription("answer", answer_sdp).to_dict()
    elif answer_sdp is not None:
        raise CallActionError(f"{action} carries no session")
    if action == ACCEPT:
        return _with_opaque(payload, biz_opaque_callback_data)
    return payload


def _with_opaque(payload: Dict[str, Any], opaque: Optional[str]) -> Dict[str, Any]:
    if opaque is not None:
        if not isinstance(opaque, str) or len(opaque) > OPAQUE_MAX_CHARS:
            raise CallActionError(f"biz_opaque_callback_data must be a string of at most {OPAQUE_MAX_CHARS} characters")
        payload["biz_opaque_callback_data"] = opaque
    return payload


def permission_request(body_text: str) -> Dict[str, Any]:
    """The interactive object of a call-permission request (free-form, inside the 24-hour
    window): WhatsApp shows the text with *Allow* / *Don't allow* for the user."""
    if not isinstance(body_text, str) or not body_text.strip() or len(body_text) > 1024:
        raise CallActionError("a call-permission request needs a body text of 1-1024 characters")
    return {"type": "call_permission_request", "action": {"name": "call_permission_request"},
            "body": {"text": body_text}}


@dataclass(frozen=True)
class CallPermissionRequest(OutboundMessage):
    """The call-permission request as a message of the outbox (``type: interactive``)."""

    body: str
    _type = "interactive"

    def __post_init__(self) -> None:
        try:
            permission_request(self.body)
        except CallActionError as error:
            raise MessageShapeError(str(error)) from None

    def _content(self) -> Dict[str, Any]:
        return permission_request(self.body)


# ── the number's calling settings (POST /{phone_number_id}/settings) ──────────────────────

DAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")
ICON_VISIBILITIES = ("DEFAULT", "DISABLE_ALL")
MAX_WINDOWS_PER_DAY = 2  # "Maximum of 2 entries allowed per day of week"


def calling_settings_payload(enabled: bool, call_icon_visibility: str, timezone_id: str,
                             weekly_hours: List[tuple[int, str, str]]) -> Dict[str, Any]:
    """``{"calling": {status, call_icon_visibility, call_hours{…}}}``. ``weekly_hours``:
    (weekday 0 = Monday, "HHMM" open, "HHMM" close); at most two per day, open before close,
    none overlapping, as Meta requires."""
    if call_icon_visibility not in ICON_VISIBILITIES:
        raise CallActionError(f"call_icon_visibility must be one of {', '.join(ICON_VISIBILITIES)}")
    if not timezone_id:
        raise CallActionError("call_hours.timezone_id is required")
    by_day: Dict[int, List[tuple[str, str]]] = {}
    for day, opens, closes in weekly_hours:
        if day not in range(7) or not (len(opens) == len(closes) == 4 and opens.isdigit() and closes.isdigit()):
            raise CallActionError("weekly_operating_hours: a day 0-6 and HHMM times")
        if opens >= closes:
            raise CallActionError("weekly_operating_hours: open_time must be before close_time")
        by_day.setdefault(day, []).append((opens, closes))
    for windows in by_day.values():
        windows.sort()
        if len(windows) > MAX_WINDOWS_PER_DAY:
            raise CallActionError(f"weekly_operating_hours: at most {MAX_WINDOWS_PER_DAY} entries per day")
        if any(later[0] < earlier[1] for earlier, later in zip(windows, windows[1:], strict=False)):
            raise CallActionError("weekly_operating_hours: entries overlap")
    return {"calling": {
        "status": "ENABLED" if enabled else "DISABLED",
        "call_icon_visibility": call_icon_visibility,
        "call_hours": {"status": "ENABLED", "timezone_id": timezone_id, "weekly_operating_hours": [
            {"day_of_week": DAYS[day], "open_time": opens, "close_time": closes}
            for day in sorted(by_day) for opens, closes in by_day[day]]},
    }}


# ── the `calls` webhook field ───────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class CallEvent:
    """One item of ``value.calls[]``: a ``connect`` (with the other side's SDP) or a
    ``terminate`` (with the outcome and, for a call picked up, its times and duration)."""

    call_id: str
    event: str  # connect | terminate
    direction: str  # BUSINESS_INITIATED | USER_INITIATED
    from_: Optional[str]
    to: Optional[str]
    timestamp: Optional[int]
    session: Optional[SessionDescription] = None
    status: Optional[str] = None  # terminate: COMPLETED | FAILED
    start_time: Optional[int] = None
    end_time: Optional[int] = None
    duration: Optional[int] = None
    biz_opaque_callback_data: Optional[str] = None
    error_codes: List[int] = field(default_factory=list)

    @property
    def user_wa_id(self) -> Optional[str]:
        """The WhatsApp user's number: the caller of a user-initiated call, else the callee."""
        return self.from_ if self.direction == USER_INITIATED else self.to


@dataclass(frozen=True)
class CallStatus:
    """``value.statuses[]`` of ``type: call``: a business-initiated call ringing, accepted or
    rejected by the user."""

    call_id: str
    status: str  # RINGING | ACCEPTED | REJECTED
    timestamp: Optional[int]
    recipient_id: Optional[str]
    biz_opaque_callback_data: Optional[str] = None


@dataclass
class CallBatch:
    events: List[CallEvent] = field(default_factory=list)
    statuses: List[CallStatus] = field(default_factory=list)
    # wa_id → BSUID (contacts[].user_id), when Meta sends one.
    user_ids: Dict[str, str] = field(default_factory=dict)
    problems: List[str] = field(default_factory=list)  # field names and kinds, never values

    def __bool__(self) -> bool:
        return bool(self.events or self.statuses)


def parse_call_webhook(payload: object) -> CallBatch:
    """Every change of field ``calls`` in a webhook body (other fields are ignored: the
    messages parser, whatsapp/inbound.py, reads them). An item with the wrong shape is
    skipped with a problem naming the field, never sinking the others."""
    batch = CallBatch()
    if not isinstance(payload, dict):
        return batch
    for entry in _list(payload.get("entry")):
        if not isinstance(entry, dict):
            continue
        for change in _list(entry.get("changes")):
            if not isinstance(change, dict) or change.get("field") != CALLS_FIELD:
                continue
            value = change.get("value")
            if not isinstance(value, dict):
                batch.problems.append("calls change without a value object")
                continue
            for contact in _list(value.get("contacts")):
                if isinstance(contact, dict) and isinstance(contact.get("wa_id"), str) \
                        and isinstance(contact.get("user_id"), str):
                    batch.user_ids[contact["wa_id"]] = contact["user_id"]
            errors = [e.get("code") for e in _list(value.get("errors")) if isinstance(e, dict)]
            codes = [c for c in errors if isinstance(c, int)]
            for index, item in enumerate(_list(value.get("calls"))):
                try:
                    batch.events.append(_event(item, codes))
                except (_Malformed, CallActionError) as problem:
                    batch.problems.append(f"calls[{index}]: {problem}")
            for index, item in enumerate(_list(value.get("statuses"))):
                try:
                    status = _status(item)
                except _Malformed as problem:
                    batch.problems.append(f"statuses[{index}]: {problem}")
                    continue
                if status is not None:
                    batch.statuses.append(status)
    return batch


class _Malformed(Exception):
    pass


def _list(value: object) -> List[Any]:
    return value if isinstance(value, list) else []


def _str(item: Dict[str, Any], name: str, required: bool = False) -> Optional[str]:
    value = item.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise _Malformed(f"{name} is not a string")
    return value


def _int(item: Dict[str, Any], name: str) -> Optional[int]:
    """Meta sends times as strings of seconds ("1671644824") and the duration as a number."""
    value = item.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        raise _Malformed(f"{name} is not a number")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit() and len(value) <= 12:
        return int(value)
    raise _Malformed(f"{name} is not a number")


def _event(item: object, error_codes: List[int]) -> CallEvent:
    if not isinstance(item, dict):
        raise _Malformed("not an object")
    event = _str(item, "event", required=True)
    if event not in EVENTS:
        raise _Malformed("event is not connect or terminate")
    direction = _str(item, "direction", required=True)
    if direction not in (BUSINESS_INITIATED, USER_INITIATED):
        raise _Malformed("direction is not BUSINESS_INITIATED or USER_INITIATED")
    session = None
    raw_session = item.get("session")
    if isinstance(raw_session, dict):
        session = SessionDescription(str(raw_session.get("sdp_type")), str(raw_session.get("sdp")))
    elif raw_session is not None:
        raise _Malformed("session is not an object")
    status = _str(item, "status")
    if status is not None and status not in TERMINATE_STATUSES:
        raise _Malformed("status is not COMPLETED or FAILED")
    return CallEvent(
        call_id=_str(item, "id", required=True) or "",
        event=event, direction=direction,
        from_=_str(item, "from"), to=_str(item, "to"), timestamp=_int(item, "timestamp"),
        session=session, status=status,
        start_time=_int(item, "start_time"), end_time=_int(item, "end_time"), duration=_int(item, "duration"),
        biz_opaque_callback_data=_str(item, "biz_opaque_callback_data"),
        error_codes=list(error_codes) if event == "terminate" else [],
    )


def _status(item: object) -> Optional[CallStatus]:
    if not isinstance(item, dict):
        raise _Malformed("not an object")
    if item.get("type") != "call":
        return None  # a message status under the calls field: not a call's
    status = _str(item, "status", required=True)
    if status not in CALL_STATUSES:
        raise _Malformed("status is not RINGING, ACCEPTED or REJECTED")
    return CallStatus(call_id=_str(item, "id", required=True) or "", status=status,
                      timestamp=_int(item, "timestamp"), recipient_id=_str(item, "recipient_id"),
                      biz_opaque_callback_data=_str(item, "biz_opaque_callback_data"))


# ── the permission reply (messages field) ──────────────────────────────────────────────────


@dataclass(frozen=True)
class CallPermissionReply:
    response: str  # accept | reject
    response_source: str  # user_action | automatic (the user called the business)
    expiration_timestamp: Optional[int]


def parse_permission_reply(interactive: object) -> Optional[CallPermissionReply]:
    """``message.interactive`` of type ``call_permission_reply``, or None for any other."""
    if not isinstance(interactive, dict) or interactive.get("type") != "call_permission_reply":
        return None
    reply = interactive.get("call_permission_reply")
    if not isinstance(reply, dict):
        return None
    response = reply.get("response")
    if response not in ("accept", "reject"):
        return None
    source = reply.get("response_source")
    try:
        expiration = _int(reply, "expiration_timestamp")
    except _Malformed:
        expiration = None
    return CallPermissionReply(response=response,
                               response_source=source if isinstance(source, str) else "user_action",
                               expiration_timestamp=expiration)
