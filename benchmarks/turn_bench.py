"""Cost of one dialogue turn in Rasa (a command, not a test; issue 15): prints figures.

(a) Serial latency p50/p95 and turns per second of the project's bot over Rasa's REST
    channel (short conversations, one request at a time, realistic message mix).
(b) The same for the stock `rasa init` bot, trained in a temporary folder (the baseline
    every Rasa user knows).
(c) Latency of turns 1-20 versus 181-200 of one 200-turn conversation (project's bot, and
    the `rasa init` bot for reference).
(d) Throughput with 10 concurrent patients (project's bot).

The project's bot runs twice in the same run, "before" (LEAN_TURNS=0: Rasa's own code for
the dialogue policies' history, addons/lean_turns.py not applied; Rasa's default action
endpoint, the whole domain sent with every action call; --before-model serves it from an
older model, e.g. one trained with TEDPolicy) and "after" (as configured: endpoints.yml's
action_endpoint settings), so the before/after ratios compare like with like on the same
machine. --domain-cost measures what the domain adds to one action call.
Targets (issue 15): (c) ratio ≤ 1.25; (a) ≥ 3× the "before" turns per second and at least
the `rasa init` bot's.

    make benchmark-turn            (python -m benchmarks.turn_bench --help)
Only 127.0.0.1 is used; every loop is bounded. Figures are noisy on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import aiohttp
import yaml

from benchmarks.figures import percentile
from benchmarks.stack import PROJECT_ROOT, Stack, action_endpoint_options, free_port

# One cycle of a patient's conversation, shaped like the test stories (tests/stories): a
# greeting, clinic questions (FAQ answers through the action server), a booking started
# and left, the menu, thanks, goodbye. 10 turns; a long conversation repeats it.
PROJECT_TURNS = [
    "hi",
    "what are your opening hours",
    "I'd like to book an appointment",
    '/inform{"service": "gp_consultation"}',
    "never mind",
    "where can I park",
    "do you accept my insurance",
    "menu",
    "thanks!",
    "ok bye",
]
# The stock bot's intents (data/nlu.yml of `rasa init`): greet, moods, affirm/deny,
# bot_challenge, goodbye. 10 turns.
INIT_TURNS = [
    "hello",
    "I am sad",
    "yes",
    "hi",
    "great",
    "are you a bot?",
    "hey there",
    "very bad",
    "no",
    "bye",
]



class Bot:
    """A running `rasa run` (REST channel) and, for the project, its action server."""

    def __init__(self, name: str, url: str, turns: List[str], stop, pids: Sequence[int] = ()):
        self.name, self.url, self.turns, self._stop = name, url, turns, stop
        self.stack: Optional[Stack] = None
        self.pids = list(pids)  # the processes whose CPU time a turn costs (Rasa, action server)

    def stop(self) -> None:
        self._stop()


def start_project(workdir: Path, model: Path, lean: bool) -> Bot:
    """"after": as configured (endpoints.yml's action_endpoint settings); "before": Rasa's
    defaults (LEAN_TURNS=0, the whole domain sent with every action call)."""
    stack = Stack(workdir, model)  # its endpoints carry endpoints.yml's action settings
    stack.env["LEAN_TURNS"] = "1" if lean else "0"
    if not lean:
        endpoints = yaml.safe_load(stack.endpoints.read_text())
        for key in action_endpoint_options():
            endpoints["action_endpoint"].pop(key, None)
        stack.endpoints.write_text(yaml.safe_dump(endpoints))
    try:
        stack.start_actions()
        stack.start_rasa()
    except BaseException:
        stack.stop()  # no action server left running when Rasa does not start
        raise
    bot = Bot(f"project ({'after' if lean else 'before'})", stack.url("rasa"), PROJECT_TURNS, stack.stop,
              pids=[stack.processes["rasa"].pid, stack.processes["actions"].pid])
    bot.stack = stack
    return bot


async def domain_cost(bot: Bot, calls: int = 60) -> Dict[str, float]:
    """What sending the domain with an action call costs: the payload Rasa would send after the
    first 10 turns (tracker and domain read from its HTTP API as Rasa builds them), its
    size with and without the domain, json.dumps (Rasa's side, aiohttp) and ujson.loads (the
    action server's side, Sanic) of each, and the round trip of each to the live action
    server (an action name it does not know: it parses the body, then answers 404)."""
    import ujson

    stack = bot.stack
    token = stack.secrets["RASA_AUTH_TOKEN"]
    sender = "domain-cost"
    async with aiohttp.ClientSession() as session:
        for text in bot.turns:
            await turn(session, bot, sender, text)
        async with session.get(f"{bot.url}/conversations/{sender}/tracker",
                               params={"include_events": "ALL", "token": token}) as r:
            tracker = await r.json()
        async with session.get(f"{bot.url}/domain", params={"token": token},
                               headers={"Accept": "application/json"}) as r:
            domain = await r.json()
        base = {"next_action": "no_such_action", "sender_id": sender, "tracker": tracker, "version": "3.6.21"}
        payloads = {"whole domain": {**base, "domain": domain}, "no domain": base}
        out: Dict[str, float] = {}
        for name, payload in payloads.items():
            body = json.dumps(payload)
            out[f"{name}: KB"] = len(body.encode()) / 1024
            started = time.perf_counter()
            for _ in range(calls):
                json.dumps(payload)
            out[f"{name}: dumps ms"] = (time.perf_counter() - started) * 1000 / calls
            started = time.perf_counter()
            for _ in range(calls):
                ujson.loads(body)
            out[f"{name}: loads ms"] = (time.perf_counter() - started) * 1000 / calls
        trips: Dict[str, List[float]] = {name: [] for name in payloads}
        for _ in range(calls):
            for name, payload in payloads.items():  # interleaved: the machine's load hits both
                started = time.perf_counter()
                async with session.post(f"{stack.url('actions')}/webhook", json=payload) as r:
                    await r.read()
                trips[name].append((time.perf_counter() - started) * 1000)
        for name, values in trips.items():
            out[f"{name}: round trip ms"] = statistics.median(values)
    return out


def rasa_env() -> dict:
    return {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2",
            "SQLALCHEMY_SILENCE_UBER_WARNING": "1", "PYTHONWARNINGS": "ignore::DeprecationWarning"}


def init_bot_model(workdir: Path, given: Optional[Path]) -> Path:
    """`rasa init --no-prompt` (its files ship inside the rasa package) and its training."""
    if given:
        return given
    project = workdir / "rasa-init"
    project.mkdir(parents=True, exist_ok=True)  # rasa init wants an existing folder
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "rasa", "init", "--no-prompt", "--init-dir", str(project)],
                            cwd=workdir, env=rasa_env(), capture_output=True, text=True, timeout=1800)
    models = sorted((project / "models").glob("*.tar.gz")) if (project / "models").exists() else []
    if result.returncode != 0 or not models:
        raise RuntimeError(f"rasa init failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    print(f"    rasa init bot created and trained in {time.monotonic() - started:.0f} s", flush=True)
    return models[-1]


def start_init_bot(workdir: Path, model: Path) -> Bot:
    """The stock bot as `rasa run` serves it: REST channel, in-memory tracker store."""
    port = free_port()
    project = workdir / "rasa-init-run"
    project.mkdir(exist_ok=True)
    (project / "credentials.yml").write_text("rest:\n")
    (project / "endpoints.yml").write_text("")
    log = (workdir / "rasa-init.log").open("a")
    process = subprocess.Popen(
        [sys.executable, "-m", "rasa", "run", "--model", str(model), "--port", str(port),
         "--interface", "127.0.0.1", "--credentials", "credentials.yml", "--endpoints", "endpoints.yml"],
        cwd=project, env=rasa_env(), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"rasa init bot exited:\n{(workdir / 'rasa-init.log').read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/webhooks/rest/", timeout=2):
                break
        except OSError as error:
            if time.monotonic() > deadline:
                raise RuntimeError("rasa init bot not ready after 240 s") from error
            time.sleep(0.5)

    def stop() -> None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()

    return Bot("rasa init", url, INIT_TURNS, stop, pids=[process.pid])


# ── the load ───────────────────────────────────────────────────────────────────────────
async def turn(session: aiohttp.ClientSession, bot: Bot, sender: str, text: str) -> float:
    started = time.perf_counter()
    async with session.post(f"{bot.url}/webhooks/rest/webhook", json={"sender": sender, "message": text}) as r:
        replies = await r.json()
        if r.status != 200 or not isinstance(replies, list):
            raise RuntimeError(f"{bot.name}: HTTP {r.status} {replies!r}")
    return (time.perf_counter() - started) * 1000


def summary(latencies: List[float], elapsed: float) -> Dict[str, float]:
    return {"n": len(latencies), "p50": percentile(latencies, 50), "p95": percentile(latencies, 95),
            "tps": len(latencies) / elapsed if elapsed else float("nan")}


async def warm_up(bot: Bot, tag: str) -> None:
    """First inferences build TensorFlow graphs and open databases: not a steady state."""
    async with aiohttp.ClientSession() as session:
        for text in bot.turns:
            await turn(session, bot, f"warm-{tag}", text)


async def serial(bot: Bot, conversations: int, tag: str) -> Dict[str, float]:
    """(a)/(b): short conversations (one cycle each), one request at a time."""
    latencies = []
    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        for c in range(conversations):
            for text in bot.turns:
                latencies.append(await turn(session, bot, f"serial-{tag}-{c}", text))
        elapsed = time.perf_counter() - started
    return summary(latencies, elapsed)


def stat_ticks(path: str) -> int:
    """User + system CPU clock ticks from a /proc ``stat`` file (a process's or a thread's);
    0 when it is gone (or not Linux)."""
    try:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time of the processes so far (Linux /proc; 0 elsewhere)."""
    return sum(stat_ticks(f"/proc/{pid}/stat") for pid in pids) / os.sysconf("SC_CLK_TCK")


async def long_conversation(bot: Bot, turns: int, tag: str) -> Dict[str, Any]:
    """(c): one conversation of `turns` turns; median latency of the first and the last 20,
    and the CPU time per turn the bot's processes spent on each of those two windows (wall
    latency on a shared machine follows the load; CPU time much less)."""
    latencies: List[float] = []
    cpu: Dict[int, List[float]] = {}
    async with aiohttp.ClientSession() as session:
        for i in range(turns):
            if i in (0, turns - 20):
                cpu[i] = [cpu_seconds([pid]) for pid in bot.pids]
            latencies.append(await turn(session, bot, f"long-{tag}", bot.turns[i % len(bot.turns)]))
            if i in (19, turns - 1):
                cpu[i] = [cpu_seconds([pid]) for pid in bot.pids]
    first, last = statistics.median(latencies[:20]), statistics.median(latencies[-20:])
    per_process_first = [(b - a) / 20 * 1000 for a, b in zip(cpu[0], cpu[19], strict=False)]
    per_process_last = [(b - a) / 20 * 1000 for a, b in zip(cpu[turns - 20], cpu[turns - 1], strict=False)]
    cpu_first, cpu_last = sum(per_process_first), sum(per_process_last)
    return {"first": first, "last": last, "ratio": last / first, "latencies": latencies,
            "cpu_first": cpu_first, "cpu_last": cpu_last,
            "cpu_ratio": cpu_last / cpu_first if cpu_first else float("nan"),
            "cpu_per_process": list(zip(per_process_first, per_process_last, strict=False))}


async def concurrent(bot: Bot, patients: int, per_patient: int, tag: str) -> Dict[str, float]:
    """(d): `patients` conversations at once, each waiting for its reply before the next."""
    latencies = []
    async with aiohttp.ClientSession() as session:
        async def patient(p: int) -> None:
            for i in range(per_patient):
                latencies.append(await turn(session, bot, f"conc-{tag}-{p}", bot.turns[(i + p) % len(bot.turns)]))

        started = time.perf_counter()
        await asyncio.gather(*(patient(p) for p in range(patients)))
        elapsed = time.perf_counter() - started
    return summary(latencies, elapsed)


def line(label: str, r: Dict[str, float]) -> str:
    return f"    {label:22s} {r['tps']:6.1f} turns/s  p50 {r['p50']:6.0f} ms  p95 {r['p95']:6.0f} ms  (n={r['n']})"


async def measure(bot: Bot, args, tag: str, concurrency: bool) -> Dict[str, dict]:
    await warm_up(bot, tag)
    out = {"serial": await serial(bot, args.conversations, tag)}
    print(line(f"{bot.name}: serial", out["serial"]), flush=True)
    out["long"] = await long_conversation(bot, args.long_turns, tag)
    r = out["long"]
    n = args.long_turns
    print(f"    {bot.name}: one conversation, median turns 1-20 {r['first']:.0f} ms, "
          f"turns {n - 19}-{n} {r['last']:.0f} ms: ratio {r['ratio']:.2f}; CPU per turn "
          f"{r['cpu_first']:.0f} / {r['cpu_last']:.0f} ms: ratio {r['cpu_ratio']:.2f} (per process: "
          + ", ".join(f"{a:.0f} / {b:.0f}" for a, b in r["cpu_per_process"]) + ")", flush=True)
    if concurrency:
        out["concurrent"] = await concurrent(bot, args.patients, args.per_patient, tag)
        print(line(f"{bot.name}: {args.patients} patients", out["concurrent"]), flush=True)
    return out


async def main_async(args) -> int:
    model = args.model or PROJECT_ROOT / "models" / "assistant.tar.gz"
    if not model.exists():
        print("No trained model: run `make train` first.", file=sys.stderr)
        return 2
    results: Dict[str, Dict[str, dict]] = {}
    with tempfile.TemporaryDirectory(prefix="turn-bench-") as tmp:
        tmp = Path(tmp)
        if args.domain_cost or args.domain_cost_only:
            print("The domain in an action call (project bot, action server + rasa run)", flush=True)
            bot = start_project(tmp / "domain-cost", model, True)
            try:
                await warm_up(bot, "domain-cost")
                cost = await domain_cost(bot)
            finally:
                bot.stop()
            for key, value in cost.items():
                print(f"    {key:32s} {value:9.2f}", flush=True)
            if args.domain_cost_only:
                return 0
        if not args.skip_init:
            print(f"Stock `rasa init` bot: {'reusing ' + str(args.init_model) if args.init_model else 'creating and training it in a temporary folder'}...", flush=True)
            init_model = init_bot_model(tmp, args.init_model)
        variants = [] if args.only_after else [False]
        variants += [] if args.only_before else [True]
        for lean in variants:
            tag = "after" if lean else "before"
            print(f"\nProject bot, {tag} (LEAN_TURNS={int(lean)}): action server + rasa run (REST)", flush=True)
            bot = start_project(tmp / tag, model if lean else (args.before_model or model), lean)
            try:
                results[tag] = await measure(bot, args, tag, concurrency=True)
            finally:
                bot.stop()
        if not args.skip_init:
            print("\nStock `rasa init` bot: rasa run (REST), no action server", flush=True)
            bot = start_init_bot(tmp, init_model)
            try:
                results["init"] = await measure(bot, args, "init", concurrency=not args.no_init_concurrency)
            finally:
                bot.stop()
        if args.keep_latencies:
            dest = Path(args.keep_latencies)
            dest.mkdir(parents=True, exist_ok=True)
            for tag, r in results.items():
                (dest / f"long-{tag}.txt").write_text("\n".join(f"{x:.1f}" for x in r["long"]["latencies"]))
            for log in tmp.rglob("*.log"):
                shutil.copy(log, dest / f"{log.parent.name}-{log.name}")

    print("\nSummary (one run, same machine; shared CPU: figures are noisy)")
    print(f"{'':24s}{'turns/s':>9s}{'p50 ms':>9s}{'p95 ms':>9s}{'1-20 ms':>9s}{'181-200':>9s}{'ratio':>7s}"
          f"{'10 pat. t/s':>12s}{'CPU 1-20':>10s}{'181-200':>9s}{'ratio':>7s}")
    for tag, r in results.items():
        s, lo = r["serial"], r["long"]
        conc = r.get("concurrent", {}).get("tps", float("nan"))
        name = {"before": "project, before", "after": "project, after", "init": "rasa init bot"}[tag]
        print(f"{name:24s}{s['tps']:9.1f}{s['p50']:9.0f}{s['p95']:9.0f}{lo['first']:9.0f}{lo['last']:9.0f}"
              f"{lo['ratio']:7.2f}{conc:12.1f}{lo['cpu_first']:10.0f}{lo['cpu_last']:9.0f}{lo['cpu_ratio']:7.2f}")
    print()
    after = results.get("after")
    if after:
        ratio = after["long"]["ratio"]
        print(f"(c) growth ratio, turns 181-200 / 1-20 (after): {ratio:.2f} (target ≤ 1.25): "
              f"{'met' if ratio <= 1.25 else 'NOT met'}; in CPU time per turn "
              f"{after['long']['cpu_ratio']:.2f}")
        if "before" in results:
            speedup = after["serial"]["tps"] / results["before"]["serial"]["tps"]
            print(f"(a) turns/s after / before: {speedup:.2f}× (target ≥ 3×): {'met' if speedup >= 3 else 'NOT met'}")
            print(f"(d) 10 patients, after / before: "
                  f"{after['concurrent']['tps'] / results['before']['concurrent']['tps']:.2f}×")
        if "init" in results:
            versus = after["serial"]["tps"] / results["init"]["serial"]["tps"]
            print(f"(a/b) turns/s, project after / rasa init bot: {versus:.2f} (target ≥ 1): "
                  f"{'met' if versus >= 1 else 'NOT met'}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=10, help="(a)/(b): short conversations of 10 turns")
    parser.add_argument("--long-turns", type=int, default=200, help="(c): turns of the long conversation")
    parser.add_argument("--patients", type=int, default=10, help="(d): concurrent patients")
    parser.add_argument("--per-patient", type=int, default=10, help="(d): turns per patient")
    parser.add_argument("--init-model", type=Path, help="a trained `rasa init` model to reuse (skips training)")
    parser.add_argument("--skip-init", action="store_true", help="leave out the `rasa init` bot")
    parser.add_argument("--no-init-concurrency", action="store_true", help="no (d) for the rasa init bot")
    parser.add_argument("--only-before", action="store_true", help="the project's bot with LEAN_TURNS=0 only")
    parser.add_argument("--only-after", action="store_true", help="the project's bot as configured only")
    parser.add_argument("--model", type=Path, help="the project's model (default models/assistant.tar.gz)")
    parser.add_argument("--before-model", type=Path,
                        help="serve \"before\" from this model (e.g. one trained at an earlier commit)")
    parser.add_argument("--domain-cost", action="store_true",
                        help="also measure what sending the whole domain costs per action call")
    parser.add_argument("--domain-cost-only", action="store_true", help="only that measurement")
    parser.add_argument("--keep-latencies", metavar="DIR", help="write every long-conversation latency and the logs here")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
