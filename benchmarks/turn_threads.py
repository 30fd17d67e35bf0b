"""CPU time per turn of each thread of Rasa's process (issue 15): which threads a turn keeps
busy besides the event loop's.

    PYTHONPATH=. .venv/bin/python -m benchmarks.turn_threads [--turns 40] [--idle]

Starts the action server and `rasa run` (REST) as `make benchmark-turn` does, warms them
up, then reads every thread's CPU time (/proc/<pid>/task, Linux) before and after ``--turns``
turns of turn_bench's cycle (``--idle``: the same seconds without turns, to tell a pool that
spins while idle from one that works during turns). The thread named ``(main)`` runs the event
loop and all of Rasa's Python; the others without a Python name are native pools.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Dict, Tuple

import aiohttp

from benchmarks.stack import PROJECT_ROOT, Stack
from benchmarks.turn_bench import PROJECT_TURNS, stat_ticks, turn


def thread_ticks(pid: int) -> Dict[str, int]:
    """CPU clock ticks (user + system) per thread id."""
    return {tid: stat_ticks(f"/proc/{pid}/task/{tid}/stat") for tid in os.listdir(f"/proc/{pid}/task")}


async def drive(url: str, sender: str, turns: int) -> float:
    bot = type("Bot", (), {"url": url, "name": "project"})()
    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        for i in range(turns):
            await turn(session, bot, sender, PROJECT_TURNS[i % len(PROJECT_TURNS)])  # type: ignore[arg-type]
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=40)
    parser.add_argument("--idle", action="store_true", help="measure the same time without turns")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="turn-threads-") as tmp:
        stack = Stack(Path(tmp), PROJECT_ROOT / "models" / "assistant.tar.gz")
        stack.start_actions()
        stack.start_rasa()
        pid = stack.processes["rasa"].pid
        try:
            asyncio.run(drive(stack.url("rasa"), "warm-up", 20))
            before = thread_ticks(pid)
            elapsed = asyncio.run(drive(stack.url("rasa"), "measured", args.turns))
            if args.idle:
                after_turns = thread_ticks(pid)
                time.sleep(elapsed)
                before, after = after_turns, thread_ticks(pid)
            else:
                after = thread_ticks(pid)
        finally:
            stack.stop()
    tick = os.sysconf("SC_CLK_TCK")
    rows: list[Tuple[float, str]] = []
    for tid, value in after.items():
        ms = (value - before.get(tid, 0)) / tick / args.turns * 1000
        rows.append((ms, f"thread {tid}{' (main)' if tid == str(pid) else ''}"))
    what = f"{elapsed:.1f} s without turns" if args.idle else f"{args.turns} turns in {elapsed:.1f} s"
    print(f"CPU per turn of each thread of Rasa's process ({what}; {len(rows)} threads)")
    for ms, name in sorted(rows, reverse=True):
        if ms >= 0.5:
            print(f"  {ms:6.1f} ms  {name}")
    print(f"  {sum(ms for ms, _ in rows):6.1f} ms  in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
