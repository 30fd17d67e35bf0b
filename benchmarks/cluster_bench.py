"""``make benchmark-cluster``: what several Rasa replicas buy (issue 16). Prints figures; no
timed test.

One cluster of real processes (benchmarks/cluster.py: simulator → door → relay → Rasa
replicas sharing a PostgreSQL tracker store and a Redis lock store → action server), with
the most replicas asked for started once. For each count of replicas (``--replicas
1,2,3``), the relay is started again with RASA_URLS naming that many (the others stay idle),
warmed up, then a burst: ``--patients`` patients each writing ``--messages`` questions one
after the other, all at once. Per run:

- turns per second (the burst's messages / first sent → last reply at the simulator) and
  p50/p95 latency (a message sent → the last reply of its turn at the simulator);
- CPU seconds per turn of every process (utime + stime from /proc/<pid>/stat, before and
  after the burst): each Rasa replica, the action server, the relay, the door, the
  simulator, PostgreSQL (the postmaster and its backends) and Redis;
- how busy the machine's cores were.

Then the projection for Meta's throughput tiers (80 and 1,000 messages a second; here
every patient message is a turn): Rasa replicas needed (each with a core of its own, at
70 % load) and cores for the whole stack, from the CPU per turn of the 1-replica run; and
what limits the 1 → 2 ratio on this machine.

PostgreSQL and Redis are throwaway servers (tests/pg_support.py, tests/redis_support.py).
The model: CLINIC_TEST_MODEL, else models/assistant.tar.gz (``make`` trains it first).
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List

from benchmarks.cluster import QUESTIONS, Cluster, sent_to_patients, turn_of_each_reply
from benchmarks.figures import percentile
from benchmarks.stack import PROJECT_ROOT

TIERS = (80, 1000)  # Meta's messaging throughput: the default and the upgraded tier
HEADROOM = 0.7  # plan each core for 70 % load
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14 and 15 of stat


def machine_cpu() -> tuple:
    """(busy, total) jiffies of the whole machine, every process's (/proc/stat): how much of
    the cores other work took while a burst ran."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def children(pid: int) -> List[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def postmaster_pid(database_url: str) -> int:
    """The throwaway cluster's postmaster (its socket directory is its data directory)."""
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(database_url.replace("postgresql+psycopg2", "postgresql")).query)
    data = Path(query["host"][0])
    return int((data / "postmaster.pid").read_text().split()[0])


def cpu_by_process(cluster: Cluster, postmaster: int, redis_pid: int) -> Dict[str, float]:
    figures = {name: cpu_seconds(process.pid) for name, process in cluster.stack.processes.items()}
    figures["postgresql"] = cpu_seconds(postmaster) + sum(cpu_seconds(pid) for pid in children(postmaster))
    figures["redis"] = cpu_seconds(redis_pid)
    return figures


def burst(cluster: Cluster, prefix: str, patients: int, messages: int) -> Dict[str, float]:
    """Turns/s and latencies of one burst, measured at the simulator."""
    wa_ids = [f"{prefix}{n:04d}" for n in range(patients)]
    sent_at: Dict[str, float] = {}
    before = {m["wamid"] for m in sent_to_patients(cluster)}

    def write(wa_id: str) -> None:
        for m in range(messages):
            moment = time.time()
            sent_at[cluster.stack.say(wa_id, QUESTIONS[m % len(QUESTIONS)])["wamid"]] = moment

    started = time.time()
    with ThreadPoolExecutor(max_workers=patients) as pool:
        list(pool.map(write, wa_ids))
    total = patients * messages
    clinic_url = cluster.env["CLINIC_DATABASE_URL"]
    deadline = time.monotonic() + 600
    while True:
        turns = turn_of_each_reply(clinic_url)
        answered = {turns[m["wamid"]][0] for m in sent_to_patients(cluster)
                    if m["wamid"] not in before and m["wamid"] in turns and turns[m["wamid"]][0] in sent_at}
        if len(answered) >= total and _outbox_idle(clinic_url):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(answered)} of {total} answered after 600 s")
        time.sleep(0.3)
    last_reply: Dict[str, float] = {}
    for message in sent_to_patients(cluster):
        turn = turns.get(message["wamid"], (None, 0))[0]
        if turn in sent_at:
            last_reply[turn] = max(last_reply.get(turn, 0.0), message["created_at"])
    latencies = [last_reply[w] - sent_at[w] for w in sent_at]
    elapsed = max(last_reply.values()) - started
    return {"turns": total, "seconds": elapsed, "turns_per_second": total / elapsed,
            "p50": percentile(latencies, 50), "p95": percentile(latencies, 95)}


def _outbox_idle(clinic_url: str) -> bool:
    from sqlalchemy import create_engine, text

    engine = create_engine(clinic_url, future=True)
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT count(*) FROM wa_outbound WHERE state != 'sent'")).scalar_one() == 0
    finally:
        engine.dispose()


def role(name: str) -> str:
    return {"ingress": "door", "actions": "action server"}.get(name, name)


def run(args: argparse.Namespace) -> None:
    from tests.pg_support import create_database, postgres_server
    from tests.redis_support import find_redis_server, running_redis

    counts = sorted({int(n) for n in args.replicas.split(",")})
    model = Path(os.environ.get("CLINIC_TEST_MODEL") or PROJECT_ROOT / "models" / "assistant.tar.gz")
    binary = find_redis_server()
    if binary is None:
        raise SystemExit("redis-server is needed (apt-get install redis-server)")
    print(f"benchmark-cluster: {os.cpu_count()} cores; Rasa replicas {counts}; a burst of "
          f"{args.patients} patients x {args.messages} messages per run; model {model.name}")
    with postgres_server() as server_url, running_redis(binary) as redis, \
            tempfile.TemporaryDirectory(prefix="cluster-bench-") as workdir:
        clinic_url = create_database(server_url, "bench_clinic")
        tracker_url = create_database(server_url, "bench_tracker")
        cluster = Cluster(Path(workdir), model, clinic_url, tracker_url, redis.url(2),
                          replicas=max(counts), relays=1)
        started = time.monotonic()
        cluster.start()
        print(f"cluster started in {time.monotonic() - started:.0f} s: {max(counts)} Rasa replicas, "
              "1 relay, 1 door, 1 action server, simulator, PostgreSQL, Redis")
        postmaster = postmaster_pid(server_url)
        results = []
        try:
            for n in counts:
                cluster.env["RASA_URLS"] = ",".join(cluster.url(name) for name in cluster.rasa[:n])
                cluster.kill("relay0")
                cluster.restart("relay0")
                # Every replica's first turns are slow (lazy loading): warm each one up.
                burst(cluster, f"1444{n}9", patients=4 * n, messages=2)
                before, machine_before = cpu_by_process(cluster, postmaster, redis.pid), machine_cpu()
                figures = burst(cluster, f"1444{n}0", args.patients, args.messages)
                after, machine_after = cpu_by_process(cluster, postmaster, redis.pid), machine_cpu()
                figures["machine_busy"] = ((machine_after[0] - machine_before[0])
                                           / max(1, machine_after[1] - machine_before[1]))
                cpu = {name: (after[name] - before.get(name, 0.0)) / figures["turns"] for name in after}
                figures["busy"] = sum(cpu.values()) * figures["turns"] / figures["seconds"] / (os.cpu_count() or 1)
                results.append((n, figures, cpu))
                print(f"\n{n} Rasa replica(s): {figures['turns_per_second']:.1f} turns/s "
                      f"({figures['turns']} turns in {figures['seconds']:.1f} s), latency p50 "
                      f"{figures['p50'] * 1000:.0f} ms, p95 {figures['p95'] * 1000:.0f} ms; the cores "
                      f"{figures['machine_busy'] * 100:.0f} % busy, {figures['busy'] * 100:.0f} % with this "
                      "cluster's processes")
                print("  CPU ms per turn: " + ", ".join(
                    f"{role(name)} {value * 1000:.1f}" for name, value in sorted(cpu.items(), key=lambda i: -i[1])
                    if name not in cluster.rasa[n:]) + f"; total {sum(cpu.values()) * 1000:.0f}")
        finally:
            cluster.stop()
    report(results)


def report(results: list) -> None:
    cores = os.cpu_count() or 1
    one = results[0]
    n1, figures1, cpu1 = one
    rasa1 = sum(v for k, v in cpu1.items() if k.startswith("rasa"))
    total1 = sum(cpu1.values())
    ours1 = total1 - cpu1.get("simulator", 0.0)  # the simulator stands in for Meta
    print("\nScaling on this machine:")
    for n, figures, _cpu in results:
        print(f"  {n} replica(s): {figures['turns_per_second']:.1f} turns/s = "
              f"{figures['turns_per_second'] / figures1['turns_per_second']:.2f} x the {n1}-replica run")
    ceiling = cores / total1
    print(f"What limits it: the whole stack takes {total1 * 1000:.0f} ms of CPU per turn "
          f"(Rasa {rasa1 * 1000:.0f} ms of it), so {cores} cores answer at most {ceiling:.1f} turns/s "
          f"however many replicas share them; one replica alone uses at most one core (Python's GIL) "
          f"= {1 / rasa1:.1f} turns/s. A second replica helps only while the cores have room.")
    for n, figures, _cpu in results:
        ours = figures["busy"] * cores
        print(f"  {n} replica(s): the machine's cores were {figures['machine_busy']:.0%} busy, this cluster "
              f"used {ours:.2f} of the {cores} cores"
              + (" (other work took the rest: the cores, not the replicas, set the rate)"
                 if figures["machine_busy"] > 0.9 and figures["busy"] < 0.8 else ""))
    print(f"\nProjection (every patient message a turn; each core planned at {HEADROOM:.0%}), from the "
          f"{n1}-replica run's CPU per turn:")
    for tier in TIERS:
        replicas = math.ceil(tier * rasa1 / HEADROOM)
        stack = math.ceil(tier * ours1 / HEADROOM)
        print(f"  {tier:>5} msg/s: {replicas} Rasa replicas (one core each), {stack} cores for the "
              f"whole stack (Rasa, actions, gateway, PostgreSQL, Redis; {ours1 * 1000:.0f} ms a turn)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", default="1,2,3", help="counts of Rasa replicas to measure (default 1,2,3)")
    parser.add_argument("--patients", type=int, default=40)
    parser.add_argument("--messages", type=int, default=5, help="messages per patient")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
