"""WhatsApp voice calls in the gateway, the one process that talks to Meta (issue 19, item 1).

Two halves:

- **What Meta reports** (the door, :meth:`CallDesk.record_webhook`): the ``calls`` field of a
  webhook (whatsapp/calls.py) is written to ``wa_calls`` (clinic/messaging/calls.py) before
  the 200: a patient's call (``connect`` with their SDP offer) becomes a ringing call for
  the team the conversation belongs to, routed like a chat (the open ticket's team, else
  the team of the patient's last request for a person, else reception) with a ticket
  opened through the handoff service if none is open; the patient's answer to a staff
  call (``connect`` with the SDP answer), ``RINGING`` / ``ACCEPTED`` / ``REJECTED``, and the
  ``terminate`` with outcome and duration. Unlike messages these are not journalled first:
  a call rings for 30-60 seconds, so a webhook the database could not take is answered 500
  and Meta's redelivery tries again, rather than queued behind the journal.
- **What staff ask for** (:meth:`CallDesk.drain`): the inbox queues call actions in
  ``wa_call_actions``; this loop, on the gateway's processing loop with its Graph client,
  sends each to ``POST /{phone_number_id}/calls`` (``connect`` to the patient's address,
  decrypted only here) and records the outcome.

Logs name call rows, actions and error codes: never a number, an SDP or a name.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any, Callable, Optional

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from clinic.clock import utcnow
from clinic.handoff.hours import team_hours
from clinic.handoff.requests import HandoffRequests, Reason
from clinic.handoff.tables import HandoffRequest
from clinic.handoff.teams import FALLBACK_TEAM, Team
from clinic.inbox.model import TicketState
from clinic.inbox.tables import TicketRow
from clinic.messaging import identities
from clinic.messaging.calls import CallAction, CallStore, opaque_for
from clinic.messaging.store import ContactRow, WhatsAppStore
from clinic.privacy import ContactCipher, contact_key
from clinic.settings import ClinicSettings, load_settings
from gateway.identities import bsuid_of, phone_of
from gateway.render import CHANNEL_NAME
from whatsapp.calls import (
    BUSINESS_INITIATED,
    USER_INITIATED,
    CallActionError,
    CallEvent,
    action_payload,
    calling_settings_payload,
    connect_payload,
    parse_call_webhook,
    parse_permission_reply,
)
from whatsapp.client import GraphClient
from whatsapp.errors import GraphError
from whatsapp.inbound import InboundMessage, UnknownInteractive
from whatsapp.metrics import Metrics
from whatsapp.users import is_bsuid

logger = logging.getLogger(__name__)
POLL_SECONDS = 0.2  # a staff member is waiting for the phone to ring


def _moment(seconds: Optional[int]) -> Optional[dt.datetime]:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc) if seconds is not None else None


class CallDesk:
    def __init__(self, sessions: sessionmaker[Any], client: GraphClient, cipher: ContactCipher,
                 conversation_id: Callable[[str], str], pseudonym_key: bytes, metrics: Metrics) -> None:
        self.store = CallStore(sessions)
        self._sessions = sessions
        self._messages = WhatsAppStore(sessions)
        self._client = client
        self._cipher = cipher
        self._conversation_id = conversation_id
        self._pseudonym_key = pseudonym_key
        self._metrics = metrics
        self._drainer: Optional[asyncio.Task[None]] = None

    # ── what Meta reports ──────────────────────────────────────────────────────────────
    def record_webhook(self, payload: object) -> int:
        """Runs in a worker thread; returns how many call items were recorded."""
        batch = parse_call_webhook(payload)
        for problem in batch.problems:
            logger.warning("Call webhook item skipped: %s", problem)  # names fields, never values
        for status in batch.statuses:
            self.store.status(status.call_id, status.status, status.biz_opaque_callback_data)
        for event in batch.events:
            self._record_event(event, batch.user_ids)
        if batch:
            self._metrics.increment("call_webhooks")
        return len(batch.events) + len(batch.statuses)

    @staticmethod
    def permission_replies(messages: list[InboundMessage]) -> list[InboundMessage]:
        """The patients' answers to a call-permission request among a webhook's messages."""
        return [m for m in messages if isinstance(m, UnknownInteractive)
                and m.interactive_type == "call_permission_reply"]

    def record_permission_replies(self, messages: list[InboundMessage]) -> None:
        """Runs in a worker thread: each answer recorded for its conversation (the patient
        tapped *Allow* or *Don't allow*; WhatsApp shows them their choice, the assistant
        need not answer it)."""
        for message in messages:
            reply = parse_permission_reply(message.raw.get("interactive"))
            if reply is None or not message.sender_key:
                continue
            conversation_id = self._settled(phone_of(message), bsuid_of(message))
            self.store.record_permission(conversation_id, reply.response,
                                         reply.response_source, _moment(reply.expiration_timestamp),
                                         _moment(message.timestamp))
            self._metrics.increment(f"call_permission_{reply.response}")

    def _record_event(self, event: CallEvent, user_ids: dict[str, str]) -> None:
        if event.event == "terminate":
            completed = event.status == "COMPLETED"
            call = self.store.terminated(event.call_id, completed=completed, start=_moment(event.start_time),
                                         end=_moment(event.end_time), duration=event.duration,
                                         opaque=event.biz_opaque_callback_data,
                                         error=", ".join(str(c) for c in event.error_codes) or None)
            self._metrics.increment("calls_ended")
            if call is not None:
                logger.info("Call %s ended (%s, %ss)", call.id, call.outcome, call.duration_seconds)
            return
        if event.session is None:
            return
        if event.direction == BUSINESS_INITIATED and event.session.sdp_type == "answer":
            call = self.store.answered(event.call_id, event.session.sdp, event.biz_opaque_callback_data)
            if call is not None:
                logger.info("Call %s answered by the patient", call.id)
        elif event.direction == USER_INITIATED and event.session.sdp_type == "offer" and event.user_wa_id:
            # The conversation of the patient's chat, found as the door finds it: by their
            # BSUID or their number, whichever is linked (clinic/messaging/identities.py).
            caller = event.user_wa_id
            conversation_id = self._settled(None if is_bsuid(caller) else caller,
                                            caller if is_bsuid(caller) else user_ids.get(caller))
            self._remember_address(conversation_id, event.user_wa_id)
            team, ticket_id = self._route(conversation_id)
            call = self.store.incoming(event.call_id, conversation_id, event.session.sdp, team=team,
                                       ticket_id=ticket_id)
            if call is not None:
                self._metrics.increment("calls_incoming")
                logger.info("Call %s from a patient rings for the %s team", call.id, team)

    def _settled(self, phone: Optional[str], bsuid: Optional[str]) -> str:
        """The patient's one conversation, by the identifiers WhatsApp gave (linked as the
        door links a message's)."""
        identity = identities.Identity(bsuid_key=self._conversation_id(bsuid) if bsuid else None,
                                       phone_key=self._conversation_id(phone) if phone else None)
        default = identity.bsuid_key or identity.phone_key or ""
        with self._sessions() as session, session.begin():
            return identities.resolve(session, identity, default)

    def _remember_address(self, conversation_id: str, wa_id: str) -> None:
        """A patient who calls before ever writing: their address, encrypted, so staff can
        call back and write (the same record a message makes)."""
        if self._messages.contact(conversation_id) is None:
            with self._sessions() as session, session.begin():
                if session.get(ContactRow, conversation_id) is None:
                    session.add(ContactRow(conversation_id=conversation_id,
                                           address_encrypted=self._cipher.encrypt(wa_id), created_at=utcnow()))

    def _route(self, conversation_id: str) -> tuple[str, Optional[int]]:
        """The team a patient's call rings for, routed like their chat: the open ticket's,
        else their last request for a person's, else reception; a ticket is opened (the
        handoff service, reason patient_request) so the call is recorded where staff look."""
        key = contact_key(conversation_id, CHANNEL_NAME, self._pseudonym_key)
        with self._sessions() as session:
            ticket = session.scalars(select(TicketRow).where(
                TicketRow.conversation_id == conversation_id, TicketRow.state != TicketState.RESOLVED.value)
                .order_by(TicketRow.id.desc()).limit(1)).first()
            if ticket is not None:
                return str(ticket.team), int(ticket.id)
            last = session.scalars(select(HandoffRequest.team).where(HandoffRequest.contact_key == key)
                                   .order_by(HandoffRequest.id.desc()).limit(1)).first()
        team = Team(last) if last in {t.value for t in Team} else FALLBACK_TEAM
        HandoffRequests(self._sessions).record(key, team, Reason.PATIENT_REQUEST, conversation_id=conversation_id)
        with self._sessions() as session:
            ticket_id = session.scalars(select(TicketRow.id).where(
                TicketRow.conversation_id == conversation_id, TicketRow.state != TicketState.RESOLVED.value)
                .order_by(TicketRow.id.desc()).limit(1)).first()
        return team.value, None if ticket_id is None else int(ticket_id)

    # ── what staff ask for ─────────────────────────────────────────────────────────────
    def start_draining(self, poll_seconds: float = POLL_SECONDS) -> None:
        if self._drainer is None:
            self._drainer = asyncio.get_running_loop().create_task(self._drain_forever(poll_seconds))

    async def stop(self) -> None:
        if self._drainer is not None:
            self._drainer.cancel()
            try:
                await self._drainer
            except asyncio.CancelledError:
                pass
            self._drainer = None

    # ── the number's calling settings ──────────────────────────────────────────────────
    @staticmethod
    def calling_settings(settings: ClinicSettings) -> dict[str, Any]:
        """Calling on or off, the call icon, and the calling hours: the hours some team is
        staffed (content/clinic.yml), when a patient's call can ring for someone."""
        by_day: dict[int, list[tuple[dt.time, dt.time]]] = {}
        for team in Team:
            for day, team_windows in team_hours(settings, team).windows.items():
                by_day.setdefault(day, []).extend(team_windows)
        weekly: list[tuple[int, str, str]] = []
        for day, windows in sorted(by_day.items()):
            merged: list[list[dt.time]] = []
            for start, end in sorted(windows):
                if merged and start <= merged[-1][1]:
                    merged[-1][1] = max(merged[-1][1], end)
                else:
                    merged.append([start, end])
            if len(merged) > 2:  # Meta takes two per day: one span from the first to the last
                merged = [[merged[0][0], merged[-1][1]]]
            weekly += [(day, start.strftime("%H%M"), end.strftime("%H%M")) for start, end in merged]
        return calling_settings_payload(settings.calling, settings.call_icon_visibility, settings.timezone.key, weekly)

    async def apply_calling_settings(self, settings: Optional[ClinicSettings] = None) -> bool:
        """Tell Meta the clinic's calling settings (at the gateway's start). Best effort: a
        failure is logged and the previous settings stay at Meta."""
        try:
            payload = self.calling_settings(settings or load_settings())
            applied = await self._client.update_settings(payload)
        except (GraphError, CallActionError, ValueError) as error:
            logger.warning("The calling settings were not applied (%s)", type(error).__name__)
            return False
        logger.info("Calling settings applied (calling %s, icon %s)", payload["calling"]["status"],
                    payload["calling"]["call_icon_visibility"])
        return applied

    async def _drain_forever(self, poll_seconds: float) -> None:
        await self.apply_calling_settings()
        while True:
            try:
                while await self.drain_one():
                    pass
            except Exception:  # noqa: BLE001 - e.g. the database is down: the next round retries
                logger.exception("Sending call actions failed; retrying")
            await asyncio.sleep(poll_seconds)

    async def drain_one(self) -> bool:
        """Send the next queued call action; False when there is none."""
        action = await asyncio.to_thread(self.store.claim_next_action)
        if action is None:
            return False
        try:
            payload = await asyncio.to_thread(self._payload, action)
            answer = await self._client.call_action(payload)
        except (CallActionError, LookupError) as error:
            await asyncio.to_thread(self.store.action_failed, action.id, str(error))
            logger.warning("Call %s: %s not sent (%s)", action.call.id, action.action, type(error).__name__)
            return True
        except GraphError as error:
            detail = f"WhatsApp refused the call ({error.code or error.http_status}): {error.message}"
            await asyncio.to_thread(self.store.action_failed, action.id, detail)
            self._metrics.increment("call_actions_failed")
            logger.warning("Call %s: %s refused (http=%s code=%s)", action.call.id, action.action,
                           error.http_status, error.code)
            return True
        call_id: Optional[str] = None
        calls = answer.get("calls")
        if isinstance(calls, list) and calls and isinstance(calls[0], dict) and isinstance(calls[0].get("id"), str):
            call_id = calls[0]["id"]
        await asyncio.to_thread(self.store.action_sent, action.id, call_id)
        self._metrics.increment("call_actions_sent")
        logger.info("Call %s: %s sent", action.call.id, action.action)
        return True

    def _payload(self, action: CallAction) -> dict[str, Any]:
        call = action.call
        if action.action == "connect":
            contact = self._messages.contact(call.conversation_id)
            if contact is None:
                raise LookupError("no WhatsApp address for this conversation")
            address = self._cipher.decrypt(contact[0])
            # A patient known only by their username is called by their BSUID ("recipient").
            return connect_payload(address, action.sdp or "", opaque_for(call.id), recipient_is_bsuid=is_bsuid(address))
        if not call.call_id:
            raise LookupError("WhatsApp has not named this call yet")
        return action_payload(call.call_id, action.action, action.sdp,
                              opaque_for(call.id) if action.action == "accept" else None)
