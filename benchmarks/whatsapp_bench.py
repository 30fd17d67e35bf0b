"""WhatsApp path benchmark (a command, not a test): prints figures.

(a) Webhook acknowledgement latency (p50/p99) at 50, 100 and 200 messages/s offered
    (open loop: signed webhooks posted on schedule, whatever the server's pace).
(b) End-to-end: closed-loop patients through WhatsApp (simulator → webhook → gateway → Rasa
    → gateway → Graph API → simulator) and through Rasa's REST channel, same model, same
    run, alternating rounds: throughput, latency and their ratio.
(c) Outbound: the channel's sender against the simulator at the configured rate, with and
    without injected faults: rate, duplicates, losses.

    make benchmark-whatsapp            (python -m benchmarks.whatsapp_bench --help)
Only 127.0.0.1 is used; every loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from benchmarks.figures import percentile
from benchmarks.stack import PROJECT_ROOT, Stack
from whatsapp.signature import sign


def webhook_body(wa_id: str, wamid: str, text: str) -> bytes:
    payload = {"object": "whatsapp_business_account", "entry": [{"id": "0", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000000", "phone_number_id": "100000000000001"},
            "contacts": [{"profile": {"name": "Bench"}, "wa_id": wa_id}],
            "messages": [{"from": wa_id, "id": wamid, "timestamp": str(int(time.time())),
                          "type": "text", "text": {"body": text}}]}}]}]}
    return json.dumps(payload).encode()


# ── (a) acknowledgement latency ─────────────────────────────────────────────────────────
async def ack_latency(stack: Stack, rate: int, seconds: float, users: int) -> dict:
    url = stack.webhook_url()
    # These webhooks bypass the simulator: tell it the patients wrote, so replies are allowed.
    for u in range(users):
        stack.sim(f"/_sim/users/1555900{u:04d}/window", {"open": True})
    secret = stack.secrets["WHATSAPP_APP_SECRET"]
    total = int(rate * seconds)
    latencies, statuses = [], []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def post(n: int) -> None:
            body = webhook_body(f"1555900{n % users:04d}", f"wamid.BENCH{rate}x{n}", "what are your opening hours")
            started = time.perf_counter()
            async with session.post(url, data=body, headers={"X-Hub-Signature-256": sign(body, secret),
                                                             "Content-Type": "application/json"}) as resp:
                await resp.read()
                statuses.append(resp.status)
            latencies.append((time.perf_counter() - started) * 1000)

        start = time.perf_counter()
        tasks = []
        for n in range(total):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(post(n)))
        await asyncio.gather(*tasks)
        achieved = total / (time.perf_counter() - start)
    return {"offered": rate, "achieved": achieved, "n": total, "ok": statuses.count(200),
            "p50": percentile(latencies, 50), "p99": percentile(latencies, 99), "max": max(latencies)}


async def wait_inbox_drained(stack: Stack, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        inbox = stack.metrics()["inbox"]
        if not inbox.get("pending") and not inbox.get("processing"):
            return time.monotonic() - started
        await asyncio.sleep(0.5)
    return float("nan")


# ── (b) end to end, WhatsApp vs REST ────────────────────────────────────────────────────
QUESTIONS = ["what are your opening hours", "where can I park", "what should I bring",
             "do you accept my insurance", "where are you located"]


async def e2e_rest(stack: Stack, users: int, per_user: int, round_: int = 0) -> dict:
    url = f"{stack.url('rasa')}/webhooks/rest/webhook"
    latencies = []
    async with aiohttp.ClientSession() as session:
        async def patient(u: int) -> None:
            sender = f"rest-bench-{round_}-{u}"
            await session.post(url, json={"sender": sender, "message": "hi"})  # warm-up: welcome
            for i in range(per_user):
                started = time.perf_counter()
                async with session.post(url, json={"sender": sender, "message": QUESTIONS[i % len(QUESTIONS)]}) as r:
                    replies = await r.json()
                assert replies, "no reply over REST"
                latencies.append((time.perf_counter() - started) * 1000)

        start = time.perf_counter()
        await asyncio.gather(*(patient(u) for u in range(users)))
        elapsed = time.perf_counter() - start
    return summary(latencies, elapsed, users * per_user)


async def e2e_whatsapp(stack: Stack, users: int, per_user: int, round_: int = 0) -> dict:
    """Each patient listens to the simulator's event stream (as the chat page does) instead
    of polling it: the REST client waits on its socket, so this one does too, and neither
    burdens the machine with polling."""
    sim = stack.url("simulator")
    latencies = []
    timeout = aiohttp.ClientTimeout(total=None, sock_read=180)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def patient(u: int) -> None:
            wa_id = f"155580{round_}{u:04d}"
            async with session.get(f"{sim}/_sim/stream", params={"user": wa_id}) as stream:
                received = 0
                event = None

                async def wait_for(expected: int) -> None:
                    nonlocal received, event
                    while received < expected:
                        line = (await asyncio.wait_for(stream.content.readline(), 120)).decode().strip()
                        if line.startswith("event: "):
                            event = line[7:]
                        elif line.startswith("data: ") and event == "business_message":
                            received += 1

                async def say(text: str) -> None:
                    await session.post(f"{sim}/_sim/users/{wa_id}/messages",
                                       json={"text": text, "name": "Bench", "wait": "none"})

                await say("hi")
                await wait_for(2)  # warm-up: welcome + menu
                for i in range(per_user):
                    started = time.perf_counter()
                    await say(QUESTIONS[i % len(QUESTIONS)])
                    await wait_for(3 + i)
                    latencies.append((time.perf_counter() - started) * 1000)

        start = time.perf_counter()
        await asyncio.gather(*(patient(u) for u in range(users)))
        elapsed = time.perf_counter() - start
    return summary(latencies, elapsed, users * per_user)


def summary(latencies, elapsed, n) -> dict:
    return {"n": n, "elapsed": elapsed, "latencies": latencies, "throughput": n / elapsed,
            "p50": percentile(latencies, 50), "p95": percentile(latencies, 95),
            "mean": statistics.fmean(latencies)}


def pooled(results) -> dict:
    """Several rounds of one path as one: all messages over all their time."""
    return summary([x for r in results for x in r["latencies"]], sum(r["elapsed"] for r in results),
                   sum(r["n"] for r in results))


# ── (c) outbound send rate ──────────────────────────────────────────────────────────────
async def outbound(stack: Stack, messages: int, users: int, rate: float, faults: bool) -> dict:
    from clinic.db import create_schema, make_engine, make_session_factory
    from clinic.messaging.store import WhatsAppStore
    from clinic.privacy import ContactCipher
    from gateway.sender import Sender
    from whatsapp.client import GraphClient
    from whatsapp.metrics import Metrics
    from whatsapp.outbound import Text

    tag = "faults" if faults else "clean"
    engine = make_engine(f"sqlite:///{stack.workdir / f'outbound-{tag}.db'}")
    create_schema(engine)
    store = WhatsAppStore(make_session_factory(engine))
    cipher = ContactCipher(stack.env["CLINIC_ENCRYPTION_KEY"].encode())
    now = dt.datetime.now(dt.timezone.utc)
    recipients = [f"1555700{u:04d}" for u in range(users)]
    store.accept([], {f"{tag}-{r}": (cipher.encrypt(r), now) for r in recipients})
    for r in recipients:  # Meta's side of the window: these patients wrote recently
        stack.sim(f"/_sim/users/{r}/window", {"open": True})
    stack.sim("/_sim/faults", method="DELETE")
    if faults:
        stack.sim("/_sim/faults", {"faults": [
            {"http": 500, "fraction": 0.1, "seed": 1}, {"code": 130429, "fraction": 0.1, "seed": 2}]})
    client = GraphClient(stack.env["WHATSAPP_API_BASE_URL"], "v23.0", "100000000000001",
                         stack.env["WHATSAPP_ACCESS_TOKEN"], rate_per_second=rate,
                         base_delay=0.05, max_delay=2.0, max_attempts=8)
    sender = Sender(client, store, cipher, Metrics())
    seq_before = max([m["seq"] for m in stack.sim("/_sim/messages")["messages"]] or [0])
    semaphore = asyncio.Semaphore(64)

    async def one(n: int):
        async with semaphore:
            return await sender.send(f"{tag}-{recipients[n % users]}", Text(f"{tag} message {n}"), "text")

    start = time.perf_counter()
    outcomes = await asyncio.gather(*(one(n) for n in range(messages)))
    elapsed = time.perf_counter() - start
    await client.close()
    stack.sim("/_sim/faults", method="DELETE")
    accepted = [m for m in stack.sim(f"/_sim/messages?after_seq={seq_before}")["messages"]
                if not m.get("error") and (m.get("payload") or {}).get("type") == "text"
                and m["payload"]["text"]["body"].startswith(f"{tag} message")]
    bodies = [m["payload"]["text"]["body"] for m in accepted]
    return {"faults": faults, "sent": sum(o.state == "sent" for o in outcomes),
            "dead": sum(o.state == "dead" for o in outcomes), "rate": messages / elapsed,
            "duplicates": len(bodies) - len(set(bodies)), "lost": messages - len(set(bodies)),
            "injected": "10% HTTP 500 + 10% 130429" if faults else "none"}


async def main_async(args) -> int:
    model = PROJECT_ROOT / "models" / "assistant.tar.gz"
    if not model.exists():
        print("No trained model: run `make train` first.", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="wa-bench-") as tmp:
        split = args.ingress and not args.one_gateway
        stack = Stack(Path(tmp), model, ingress=args.ingress, split=split)
        arrangement = ("the WhatsApp gateway as a door process (webhooks) and a relay process (turns)"
                       if split else "the WhatsApp gateway (gateway/server.py), one process"
                       if args.ingress else "webhooks into the Rasa process")
        print(f"Starting the action server, Rasa and the simulator; {arrangement}...", flush=True)
        stack.start()
        try:
            # Steady state, not start-up: the first inferences build TensorFlow graphs.
            for n in range(10):
                stack.say(f"1555600{n:04d}", "hello", wait="none")
            await wait_inbox_drained(stack, timeout=120)

            print("\n(a) webhook acknowledgement latency (open loop, signed webhooks)")
            for rate in args.rates:
                result = await ack_latency(stack, rate, args.seconds, users=200)
                print(f"    offered {rate:>3} msg/s (achieved {result['achieved']:.0f}): "
                      f"p50 {result['p50']:.1f} ms  p99 {result['p99']:.1f} ms  max {result['max']:.1f} ms  "
                      f"200 OK {result['ok']}/{result['n']}", flush=True)
                drained = await wait_inbox_drained(stack, timeout=600)
                print(f"    inbox drained {drained:.0f} s after the burst", flush=True)

            print(f"\n(b) end to end, closed loop: {args.users} patients × {args.per_user} questions, "
                  f"{args.rounds} rounds per path")
            # ABBA rounds (REST, WhatsApp, WhatsApp, REST, ...) with new patients each round, so
            # neither path gains from going first or last (trackers and databases grow).
            rounds = {"rest": [], "wa": []}
            for number in range(args.rounds):
                order = ("rest", "wa") if number % 2 == 0 else ("wa", "rest")
                for path in order:
                    run = e2e_rest if path == "rest" else e2e_whatsapp
                    result = await run(stack, args.users, args.per_user, number)
                    rounds[path].append(result)
                    print(f"    round {number + 1} {'REST' if path == 'rest' else 'WhatsApp':8s} "
                          f"{result['throughput']:.1f} msg/s", flush=True)
            rest, wa = pooled(rounds["rest"]), pooled(rounds["wa"])
            for name, r in (("REST channel", rest), ("WhatsApp path", wa)):
                print(f"    {name:14s} {r['throughput']:.1f} msg/s  p50 {r['p50']:.0f} ms  "
                      f"p95 {r['p95']:.0f} ms  mean {r['mean']:.0f} ms")
            print(f"    throughput ratio WhatsApp/REST: {wa['throughput'] / rest['throughput']:.2f} (target ≥ 1.0)")

            print(f"\n(c) outbound sends at {args.send_rate:.0f} msg/s configured: {args.messages} messages "
                  f"to {args.recipients} patients")
            for faults in (False, True):
                r = await outbound(stack, args.messages, args.recipients, args.send_rate, faults)
                print(f"    faults {r['injected']:26s} {r['rate']:.1f} msg/s  sent {r['sent']}  "
                      f"dead letters {r['dead']}  duplicates {r['duplicates']}  lost {r['lost']}")
            counters = stack.metrics()["counters"]
            print(f"\nchannel counters: {json.dumps(counters)}")
            if split:
                print(f"door counters: {json.dumps(stack.door_metrics()['counters'])}")
        finally:
            stack.stop()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--single-process", dest="ingress", action="store_false",
                        help="webhooks into the Rasa process itself (default: the WhatsApp gateway)")
    parser.add_argument("--one-gateway", action="store_true",
                        help="the gateway as one process (default: a door process and a relay process)")
    parser.add_argument("--seconds", type=float, default=5.0, help="per offered rate")
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--per-user", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=4, help="end-to-end rounds per path (ABBA order)")
    parser.add_argument("--messages", type=int, default=800)
    parser.add_argument("--recipients", type=int, default=100)
    parser.add_argument("--send-rate", type=float, default=80.0)
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
