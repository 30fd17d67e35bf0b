"""Health-tip broadcasts against the real simulator (in-process) and a real SQLite file:
segment, throttle measured on the simulator's receive times, per-user pacing, opt-out
mid-broadcast, every crash window, a SIGKILLed runner process resumed exactly once."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import sys
import time

import pytest
from cryptography.fernet import Fernet

from benchmarks.broadcast_bench import analyse, seed_subscribers
from benchmarks.stack import PROJECT_ROOT
from clinic.broadcasts import campaign_file
from clinic.broadcasts import tables as t
from clinic.broadcasts.runner import CampaignPaused, Runner
from clinic.broadcasts.store import BroadcastStore, CampaignError
from clinic.consent import HEALTH_TIPS, REMINDERS, ConsentStore
from clinic.db import create_schema, make_engine, make_session_factory
from clinic.language.memory import LanguageMemory
from clinic.messaging.store import WhatsAppStore
from clinic.privacy import ContactCipher
from gateway.sender import Sender
from simulator.testing import TEST_ACCESS_TOKEN, running_simulator
from tests.outbox_support import running_outbox
from whatsapp.client import GraphClient
from whatsapp.metrics import Metrics

KEY = b"broadcast-test-pseudonym-key"
PARAMS = ["Riverside Family Clinic", "Wash your hands often during flu season."]


class World:
    def __init__(self, tmp_path):
        self.url = f"sqlite:///{tmp_path / 'clinic.db'}"
        self.engine = make_engine(self.url)
        create_schema(self.engine)
        self.sessions = make_session_factory(self.engine)
        self.fernet_key = Fernet.generate_key()
        self.cipher = ContactCipher(self.fernet_key)
        self.consent = ConsentStore(self.sessions)
        self.store = BroadcastStore(self.sessions, self.consent)
        self.wa = WhatsAppStore(self.sessions)
        self.log = tmp_path / "gateway.log"

    def seed(self, count, **kwargs):
        return seed_subscribers(self.sessions, self.cipher, count, KEY, **kwargs)

    def campaign(self, name="tips", rate=50.0, template="health_tip"):
        campaign = self.store.create(name, template, "en_US", PARAMS, ["/opt_out_tips"], rate)
        self.store.enqueue_segment(campaign.id)
        return campaign

    def runner(self, sim, worker="w1", rate=None, **kwargs):
        client = GraphClient(sim.url, "v23.0", sim.config.phone_number_id, TEST_ACCESS_TOKEN,
                             rate_per_second=rate or 80, base_delay=0.05, max_delay=0.5)
        sender = Sender(client, self.wa, self.cipher, Metrics())
        return client, Runner(self.store, sender, worker, rate=rate, **kwargs)

    def statuses(self, campaign):
        return {r.contact_key: r for r in self.store.recipients(campaign.id)}


@pytest.fixture
def world(tmp_path):
    built = World(tmp_path)
    yield built
    built.engine.dispose()


async def received(sim):
    status, data = await sim.get("/_sim/messages")
    assert status == 200
    return data["messages"]


def test_segment_is_only_contacts_who_opted_in(world):
    opted = world.seed(5)
    world.seed(3, opted_in=False, start=100)
    # Opted in, then withdrew: not in the segment.
    world.consent.record(opted[0][2], HEALTH_TIPS, False, "utter_tips_opt_out_recorded@v1", "whatsapp")
    campaign = world.campaign()
    assert {r.contact_key for r in world.store.recipients(campaign.id)} == {p[2] for p in opted[1:]}
    assert world.store.enqueue_segment(campaign.id) == 0  # idempotent: unique campaign × contact
    with pytest.raises(CampaignError):
        world.campaign()  # same name twice


@pytest.mark.asyncio
async def test_throttle_never_exceeds_the_configured_rate(world):
    people = world.seed(150)
    campaign = world.campaign(rate=40)
    async with running_simulator(throughput_limit=80, pair_rate_limit=1) as sim:
        client, runner = world.runner(sim, rate=40)
        try:
            assert await runner.run(campaign.name) == t.DONE
        finally:
            await client.close()
        figures = analyse(await received(sim), people, world.store.progress(campaign.id).counts)
    # Behaviour, not timing: in no one-second window did the simulator receive more than the
    # limit (+1 for the window's two ends), and everyone got exactly one message.
    assert figures["busiest_second"] <= 41, figures
    assert figures["received"] == figures["distinct_received"] == 150
    assert figures["duplicates"] == figures["not_received"] == figures["pacing_violations"] == 0
    assert figures["rejected"] == {}
    assert figures["rows"] == {t.SENT: 150}
    assert figures["throughput_per_s"] <= 40.5
    sent = world.store.recipients(campaign.id)
    assert all(r.wamid and r.wamid.startswith("wamid.") for r in sent)


@pytest.mark.asyncio
async def test_opt_out_mid_broadcast_skips_what_was_not_sent(world):
    people = world.seed(60)
    campaign = world.campaign(rate=20)
    async with running_simulator() as sim:
        client, runner = world.runner(sim, rate=20)
        task = asyncio.create_task(runner.run(campaign.name))
        while world.store.progress(campaign.id).counts.get(t.SENT, 0) < 5:
            await asyncio.sleep(0.05)
        # (The event loop, hence the runner, waits while this test writes.) Rows not yet
        # claimed are certainly not handed over yet; opt half of them out as actions/consent.py
        # does (opt-out, then the contact's queued rows skipped)...
        waiting = [r.contact_key for r in world.store.recipients(campaign.id) if r.status == t.PENDING]
        assert len(waiting) >= 10
        late = waiting[:10]
        for key in late[:5]:
            world.consent.record(key, HEALTH_TIPS, False, "utter_tips_opt_out_recorded@v1", "whatsapp")
            world.store.skip_opted_out(key)
        # ...and the other half only in the consent table: the runner's own check before each
        # send must catch them.
        for key in late[5:]:
            world.consent.record(key, (REMINDERS, HEALTH_TIPS), False, "utter_opt_out_recorded@v2", "whatsapp")
        assert await task == t.DONE
        await client.close()
        messages = await received(sim)
    wa_of = {key: wa for wa, _, key in people}
    got = {m["wa_id"] for m in messages if m.get("status") != "rejected"}
    assert not got & {wa_of[key] for key in late}
    assert got == {wa for wa, _, key in people if key not in late}
    rows = world.statuses(campaign)
    assert all(rows[key].status == t.SKIPPED and rows[key].reason == "opted_out" for key in late)
    assert world.store.progress(campaign.id).counts == {t.SENT: 50, t.SKIPPED: 10}


@pytest.mark.asyncio
async def test_every_crash_window_is_settled_without_a_second_message(world):
    """Rows a killed runner left ``sending``, one per window of runner.py's docstring."""
    people = world.seed(4)
    campaign = world.campaign()
    rows = world.store.claim(campaign.id, "dead-runner", 10)  # the dead runner's claims
    assert len(rows) == 4
    world.store.take_lease(campaign.id, "dead-runner", dt.timedelta(seconds=-1))  # expired lease
    never, sent_before, in_call, refused = rows
    wa = world.wa
    # Handed to the sender, Meta answered, the wamid recorded; the runner died before its update.
    outbound = wa.queue_outbound(sent_before.conversation_id, t.outbound_kind(sent_before.id), {"x": 1})
    wa.outbound_sent(outbound, "wamid.BEFORE-CRASH", 1)
    # Recorded, Graph call in flight when the process died: Meta may or may not have it.
    wa.queue_outbound(in_call.conversation_id, t.outbound_kind(in_call.id), {"x": 1})
    # The sender dead-lettered it before the crash.
    dead = wa.queue_outbound(refused.conversation_id, t.outbound_kind(refused.id), {"x": 1})
    wa.outbound_failed(dead, "dead", 131026, "131026: undeliverable", 1)
    async with running_simulator() as sim:
        client, runner = world.runner(sim)
        assert await runner.run(campaign.name) == t.DONE
        await client.close()
        messages = await received(sim)
    wa_of = {key: wa for wa, _, key in people}
    assert [m["wa_id"] for m in messages] == [wa_of[never.contact_key]]  # only the never-sent row goes out
    rows = world.statuses(campaign)
    assert rows[never.contact_key].status == t.SENT
    assert (rows[sent_before.contact_key].status, rows[sent_before.contact_key].wamid) == (t.SENT, "wamid.BEFORE-CRASH")
    assert rows[in_call.contact_key].status == t.UNKNOWN  # at most once: not resent
    assert rows[refused.contact_key].status == t.FAILED
    assert runner.figures.reconciled == {t.PENDING: 1, t.SENT: 1, t.UNKNOWN: 1, t.FAILED: 1}
    # The operator may choose to resend the unknown one.
    assert world.store.requeue_unknown(campaign.id) == 1


@pytest.mark.asyncio
async def test_sigkilled_runner_process_resumes_exactly_once(world):
    people = world.seed(240)
    campaign = world.campaign(rate=40)
    async with running_simulator(throughput_limit=80, pair_rate_limit=1) as sim:
        env = {**os.environ, "CLINIC_DATABASE_URL": world.url, "CLINIC_ENCRYPTION_KEY": world.fernet_key.decode(),
               "WHATSAPP_ACCESS_TOKEN": TEST_ACCESS_TOKEN, "WHATSAPP_PHONE_NUMBER_ID": sim.config.phone_number_id,
               "WHATSAPP_API_BASE_URL": sim.url, "WHATSAPP_API_VERSION": "v23.0"}
        command = [sys.executable, "-m", "clinic.broadcasts", "run", campaign.name, "--progress-every", "1"]
        # The command queues into the outbox; the process that owns it sends (as in make run).
        async with running_outbox(env, world.log):

            async def start():
                return await asyncio.create_subprocess_exec(*command, cwd=PROJECT_ROOT, env=env,
                                                            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)

            first = await start()
            for _ in range(600):
                await asyncio.sleep(0.05)
                if world.store.progress(campaign.id).counts.get(t.SENT, 0) >= 60:
                    break
            first.send_signal(signal.SIGKILL)
            await first.wait()
            at_kill = world.store.progress(campaign.id).counts
            assert at_kill.get(t.PENDING, 0) > 0, at_kill  # killed mid-campaign
            second = await start()
            output, _ = await asyncio.wait_for(second.communicate(), 120)
            assert second.returncode == 0, output.decode()[-2000:]
        figures = analyse(await received(sim), people, world.store.progress(campaign.id).counts)
    rows = figures["rows"]
    assert figures["duplicates"] == 0 and figures["unexpected"] == 0 and figures["pacing_violations"] == 0
    assert set(rows) <= {t.SENT, t.UNKNOWN} and sum(rows.values()) == 240
    assert rows.get(t.UNKNOWN, 0) <= 8  # at most the runner's concurrency was inside a Graph call
    # Every row marked sent was received once; an unknown one at most once, never twice.
    assert figures["received"] - rows[t.SENT] in range(0, rows.get(t.UNKNOWN, 0) + 1)
    assert b"done" in output


@pytest.mark.asyncio
async def test_a_recent_message_defers_the_tip_past_the_pacing_window(world):
    people = world.seed(2)
    campaign = world.campaign()
    now = dt.datetime.now(dt.timezone.utc)
    outbound = world.wa.queue_outbound(people[0][1], "text", {"x": 1})  # a reply just went out
    async with running_simulator(pair_rate_limit=1) as sim:
        client, runner = world.runner(sim, pacing_seconds=1.5)
        assert await runner.run(campaign.name) == t.DONE
        await client.close()
        messages = await received(sim)
    at = {m["wa_id"]: m["created_at"] for m in messages}
    assert set(at) == {people[0][0], people[1][0]}
    assert at[people[0][0]] - now.timestamp() >= 1.5 - 0.05  # waited for the window
    assert runner.figures.deferred == 1
    assert outbound


@pytest.mark.asyncio
async def test_a_template_meta_refuses_pauses_the_campaign_instead_of_failing_everyone(world):
    world.seed(5)
    campaign = world.campaign(template="health_tip_not_approved")
    async with running_simulator() as sim:
        client, runner = world.runner(sim)
        with pytest.raises(CampaignPaused, match="132001"):
            await runner.run(campaign.name)
        await client.close()
    progress = world.store.progress(campaign.id)
    assert progress.status == t.PAUSED and progress.counts == {t.PENDING: 5}


@pytest.mark.asyncio
async def test_one_runner_per_campaign(world):
    world.seed(1)
    campaign = world.campaign()
    assert world.store.take_lease(campaign.id, "other", dt.timedelta(minutes=1))
    async with running_simulator() as sim:
        client, runner = world.runner(sim)
        with pytest.raises(CampaignError, match="another runner"):
            await runner.run(campaign.name)
        await client.close()


def test_campaign_files_are_checked_for_patient_data(tmp_path):
    spec = campaign_file.load(PROJECT_ROOT / "campaigns" / "flu_season.yml")
    assert spec.template == "health_tip" and spec.rate <= 80 and spec.quick_replies == ["/opt_out_tips"]
    good = {"name": "x1", "template": "health_tip", "language": "en_US", "params": PARAMS}
    for bad_param, why in [("Call Jane on +1 555 010 9999", "long number"), ("write to a@b.org", "e-mail"),
                           ("Hi {{first_name}}", "placeholder")]:
        with pytest.raises(CampaignError, match=why):
            campaign_file.parse({**good, "params": [bad_param, "x"]})
    for change, why in [({"rate": 200}, "rate"), ({"segment": {"consent": "everyone"}}, "segment"),
                        ({"name": "Bad Name"}, "name"), ({"template": "Bad-Name"}, "template"),
                        ({"params": "text"}, "params"), ({"extra": 1}, "unknown")]:
        with pytest.raises(CampaignError, match=why):
            campaign_file.parse({**good, **change})


def test_cli_create_status_and_errors(world, capsys):
    from clinic.broadcasts.__main__ import main

    world.seed(3)
    assert main(["--database-url", world.url, "create", str(PROJECT_ROOT / "campaigns" / "flu_season.yml")]) == 0
    out = capsys.readouterr().out
    assert "3 opted-in recipients queued" in out and "in en_US, ru, zh_CN, default en_US" in out
    assert main(["--database-url", world.url, "status", "flu_season"]) == 0
    out = capsys.readouterr().out
    assert "0/3" in out and "pending=3" in out and "language_fallbacks=0" in out
    assert main(["--database-url", world.url, "status", "nope"]) == 1
    assert "no campaign named" in capsys.readouterr().err


# ── languages: each recipient's own, the campaign's default when it has no version ──────

def remember(world, people, languages):
    memory = LanguageMemory(world.sessions)
    for (_, conversation, _), language in zip(people, languages, strict=True):
        if language:
            memory.remember(conversation, language)


def sent_by_patient(messages):
    """wa_id -> (language, body params) of the sends the simulator accepted."""
    result = {}
    for message in messages:
        if message["status"] == "rejected":
            continue
        template = message["payload"]["template"]
        body = [c for c in template.get("components", []) if c["type"] == "body"]
        result[message["wa_id"]] = (template["language"]["code"],
                                    [p["text"] for p in body[0]["parameters"]] if body else [])
    return result


@pytest.mark.asyncio
async def test_each_recipient_gets_their_language_and_a_missing_one_falls_back_recorded(world):
    people = world.seed(4)
    remember(world, people, ["ru", "zh", None, "en"])
    spec = campaign_file.load(PROJECT_ROOT / "campaigns" / "flu_season.yml")
    # This clinic's health_tip is approved in English and Russian only: Chinese falls back.
    by_language = {code: spec.params_by_language[code] for code in ("en_US", "ru")}
    campaign = world.store.create("tips", spec.template, spec.language, by_language, spec.quick_replies, 50)
    assert campaign.languages == ("en_US", "ru")
    world.store.enqueue_segment(campaign.id)
    async with running_simulator() as sim:
        client, runner = world.runner(sim)
        assert await runner.run(campaign.name) == t.DONE
        await client.close()
        messages = await received(sim)
    sent = sent_by_patient(messages)
    wa = [p[0] for p in people]
    assert sent == {wa[0]: ("ru", by_language["ru"]), wa[1]: ("en_US", by_language["en_US"]),
                    wa[2]: ("en_US", by_language["en_US"]), wa[3]: ("en_US", by_language["en_US"])}
    russian = next(m for m in messages if m["wa_id"] == wa[0])
    assert russian["rendered"]["body"].startswith("Совет о здоровье от Riverside Family Clinic: Начинается")
    rows = world.statuses(campaign)
    assert {key: (rows[key].status, rows[key].reason) for _, _, key in people} == {
        people[0][2]: (t.SENT, None),
        people[1][2]: (t.SENT, "language_fallback: zh_CN -> en_US (no approved zh_CN version)"),
        people[2][2]: (t.SENT, None),  # language not known: the default, not a fallback
        people[3][2]: (t.SENT, None)}
    progress = world.store.progress(campaign.id)
    assert progress.fallbacks == 1 and "language_fallbacks=1" in progress.line()
    assert runner.figures.fallbacks == 1


@pytest.mark.asyncio
async def test_a_listed_version_meta_lacks_is_resent_in_the_default_and_not_tried_again(world):
    people = world.seed(4)
    remember(world, people, ["ru", "ru", "ru", None])
    # hello_world exists at Meta (the simulator) in en_US only, but the campaign lists ru.
    campaign = world.store.create("hello", "hello_world", "en_US", [], languages=["en_US", "ru"], rate=50)
    world.store.enqueue_segment(campaign.id)
    async with running_simulator() as sim:
        client, runner = world.runner(sim, concurrency=1)
        assert await runner.run(campaign.name) == t.DONE  # not paused: the default went out
        await client.close()
        messages = await received(sim)
    [rejected] = [m for m in messages if m["status"] == "rejected"]  # tried once in this run
    assert rejected["error"]["code"] == 132001 and rejected["payload"]["template"]["language"]["code"] == "ru"
    assert {wa: language for wa, (language, _) in sent_by_patient(messages).items()} == {
        p[0]: "en_US" for p in people}
    [first] = [p for p in people if p[0] == rejected["wa_id"]]
    rows = world.statuses(campaign)
    assert rows[first[2]].reason == "language_fallback: ru -> en_US (Meta 132001: not approved in ru)"
    for _, _, key in people[:3]:
        if key != first[2]:
            assert rows[key].reason == "language_fallback: ru -> en_US (Meta 132001 earlier in this run)"
    assert rows[people[3][2]].reason is None
    assert all(row.status == t.SENT for row in rows.values())
    [record] = world.wa.outbound(first[1])
    assert (record.state, record.error_code) == ("sent", 132001)
    assert world.store.progress(campaign.id).fallbacks == 3


def test_campaign_languages_from_files_and_old_files_still_work(world, tmp_path):
    spec = campaign_file.load(PROJECT_ROOT / "campaigns" / "flu_season.yml")
    assert (spec.language, spec.languages) == ("en_US", ("en_US", "ru", "zh_CN"))
    assert spec.params == spec.params_by_language["en_US"] and len(set(map(len, spec.params_by_language.values()))) == 1
    old = campaign_file.parse({"name": "x1", "template": "health_tip", "language": "en_US", "params": PARAMS})
    assert (old.language, old.languages, old.params_by_language) == ("en_US", ("en_US",), {"en_US": PARAMS})
    shared = campaign_file.parse({"name": "x1", "template": "health_tip", "languages": ["ru", "en_US"],
                                  "language": "en_US", "params": PARAMS})
    assert shared.languages == ("en_US", "ru") and shared.params_by_language["ru"] == PARAMS
    implied = campaign_file.parse({"name": "x1", "template": "health_tip", "params": {"ru": PARAMS, "en_US": PARAMS}})
    assert (implied.language, implied.languages) == ("ru", ("ru", "en_US"))
    good = {"name": "x1", "template": "health_tip", "language": "en_US", "languages": ["en_US", "ru"],
            "params": {"en_US": PARAMS, "ru": PARAMS}}
    for change, why in [({"language": "zh_CN"}, "must be one of languages"),
                        ({"languages": ["en_US", "en_US"]}, "twice"), ({"languages": []}, "languages"),
                        ({"params": {"en_US": PARAMS}}, "missing"),
                        ({"params": {"en_US": PARAMS, "ru": PARAMS, "zh_CN": PARAMS}}, "not in languages"),
                        ({"params": {"en_US": PARAMS, "ru": PARAMS[:1]}}, "same number"),
                        ({"params": {"en_US": PARAMS, "ru": ["Клиника", "Позвоните +7 495 123 45 67"]}}, "long number"),
                        ({"params": {"en_US": PARAMS, "ru": ["Клиника", "Если у вас грипп, оставайтесь дома."]}},
                         "PHI guard")]:
        with pytest.raises(CampaignError, match=why):
            campaign_file.parse({**good, **change})
    # A campaign stored before languages existed (params_json a list) reads as one language.
    campaign = world.store.create("old", "health_tip", "en_US", PARAMS)
    with world.sessions() as session:
        assert json.loads(session.get(t.CampaignRow, campaign.id).params_json) == PARAMS
    assert (campaign.languages, campaign.params_for("ru")) == (("en_US",), PARAMS)
    stored = world.store.create("new", spec.template, spec.language, spec.params_by_language)
    again = world.store.campaign("new")
    assert again.languages == ("en_US", "ru", "zh_CN") and again.params == spec.params
    assert again.params_for("zh_CN") == spec.params_by_language["zh_CN"] and stored == again


def test_rows_caught_in_a_dead_outboxs_graph_calls_are_settled_in_one_wait_within_the_lease(world):
    """A dead runner's rows whose messages a dead outbox was sending: one wait for all of
    them, at most half the lease, then unknown (not resent), so the lease never runs out
    while the new runner waits."""
    from clinic.messaging.outbox_queue import PRIORITY_BROADCAST, OutboxQueue

    world.seed(4)
    campaign = world.campaign()
    rows = world.store.claim(campaign.id, "dead-runner", 10)
    for row in rows:  # each recorded and claimed by an outbox that died in the Graph call
        queued = world.wa.enqueue(row.conversation_id, t.outbound_kind(row.id), {"x": 1}, PRIORITY_BROADCAST)
        assert world.wa.claim(queued) is not None
    queue = OutboxQueue(world.wa, PRIORITY_BROADCAST, poll_seconds=0.05, settle_seconds=60)
    runner = Runner(world.store, queue, "w2", lease_ttl=dt.timedelta(seconds=2))
    started = time.monotonic()
    assert runner.reconcile(campaign) == {t.UNKNOWN: 4}
    # One wait of lease/2 = 1 s for the four rows (row by row: 4 × 60 s).
    assert 1.0 <= time.monotonic() - started < 10


def test_pacing_counts_from_when_a_message_left_not_when_it_was_queued(world):
    from sqlalchemy import update

    from clinic.messaging.outbox_queue import PRIORITY_REMINDER
    from clinic.messaging.store import OutboundRow

    conversation = "c" * 64
    now = dt.datetime.now(dt.timezone.utc)
    queued = world.wa.enqueue(conversation, "reminder", {"x": 1}, PRIORITY_REMINDER)
    # Queued a minute ago, sent just now: paced from the send, not from the queueing.
    with world.sessions() as session, session.begin():
        session.execute(update(OutboundRow).where(OutboundRow.id == queued)
                        .values(created_at=now - dt.timedelta(minutes=1), updated_at=now - dt.timedelta(minutes=1)))
    assert world.store.last_outbound_at(conversation) < now - dt.timedelta(seconds=50)
    world.wa.outbound_sent(queued, "wamid.PACED", 1)
    assert world.store.last_outbound_at(conversation) >= now - dt.timedelta(seconds=5)
    assert world.store.last_outbound_at("d" * 64) is None  # nothing ever sent
