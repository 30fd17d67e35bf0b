"""What a turn costs Rasa's own process early and late in one long conversation, in CPU time
(issue 15): a profile that a busy machine does not blur.

    PYTHONPATH=. .venv/bin/python -m benchmarks.turn_growth [--turns 200] [--window 20] [--top 30]

Rasa's agent runs in this process with the project's tracker store (encrypted SQL on a
temporary SQLite file, as `make run` has it) and the real action server in its own process;
the conversation repeats turn_bench's 10-turn cycle. For the first and the last window of
turns it prints the median CPU time per turn of this process (``time.process_time``: time
spent waiting for the CPU or for the action server is not in it) and, with ``--top``, the
functions whose cumulative CPU time per turn grew most between the two windows (cProfile).
The action server's CPU per turn is read from /proc (10 ms ticks: a mean over the window).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import os
import pstats
import statistics
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Tuple

import yaml

from benchmarks.stack import PROJECT_ROOT, Stack
from benchmarks.turn_bench import PROJECT_TURNS, cpu_seconds


def _cumulative(profile: cProfile.Profile) -> Dict[Tuple[str, int, str], float]:
    stats = pstats.Stats(profile)
    return {key: value[3] for key, value in stats.stats.items()}  # type: ignore[attr-defined]


def _label(key: Tuple[str, int, str]) -> str:
    path, line, name = key
    for marker in ("site-packages/", str(PROJECT_ROOT) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path}:{line})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=PROJECT_ROOT / "models" / "assistant.tar.gz")
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--window", type=int, default=20)
    parser.add_argument("--top", type=int, default=0,
                        help="profile the two windows and print the N functions that grew most "
                             "(the profiler slows Python-level loops most: the ratio is then higher)")
    args = parser.parse_args()

    from rasa.core.agent import Agent
    from rasa.core.channels.channel import UserMessage
    from rasa.core.tracker_store import TrackerStore
    from rasa.utils.endpoints import EndpointConfig, read_endpoint_config
    from rasa.utils.log_utils import configure_structlog

    logging.getLogger().setLevel(logging.WARNING)
    configure_structlog(logging.WARNING)
    settings = yaml.safe_load((PROJECT_ROOT / "endpoints.yml").read_text(encoding="utf-8"))["action_endpoint"]
    options = {key: value for key, value in settings.items() if key != "url"}
    early = range(1, 1 + args.window)
    late = range(args.turns - args.window + 1, args.turns + 1)
    cpu: Dict[int, float] = {}
    server: Dict[str, float] = {"early": 0.0, "late": 0.0}  # the action server's CPU per window
    profiles: Dict[str, cProfile.Profile] = {"early": cProfile.Profile(), "late": cProfile.Profile()}

    with tempfile.TemporaryDirectory() as folder:
        stack = Stack(Path(folder), args.model)
        os.environ.update(stack.env)  # the tracker store's keys, as Rasa's process has them
        stack.start_actions()
        actions_pid = stack.processes["actions"].pid

        async def conversation() -> None:
            store = TrackerStore.create(read_endpoint_config(str(stack.endpoints), "tracker_store"))
            agent = Agent.load(str(args.model), tracker_store=store,
                               action_endpoint=EndpointConfig(f"{stack.url('actions')}/webhook", **options))
            # First inferences build TensorFlow graphs, the action server loads its search:
            # not a steady state (turn_bench warms up the same way).
            for text in PROJECT_TURNS:
                await agent.handle_message(UserMessage(text, sender_id="warm-up", metadata={"language": "en"}))
            for n in range(1, args.turns + 1):
                message = UserMessage(PROJECT_TURNS[(n - 1) % len(PROJECT_TURNS)], sender_id="growth",
                                      metadata={"language": "en"})
                window = "early" if n in early else "late" if n in late else None
                started, server_started = time.process_time(), cpu_seconds([actions_pid])
                profiled = window is not None and args.top > 0
                if profiled:
                    profiles[window].enable()
                await agent.handle_message(message)
                if profiled:
                    profiles[window].disable()
                cpu[n] = time.process_time() - started
                if window:
                    server[window] += cpu_seconds([actions_pid]) - server_started

        try:
            asyncio.run(conversation())
        finally:
            stack.stop()

    first = statistics.median(cpu[n] for n in early) * 1000
    last = statistics.median(cpu[n] for n in late) * 1000
    print(f"Rasa's CPU per turn (median{', profiler on' if args.top else ''}): turns {early.start}-{early.stop - 1} "
          f"{first:.1f} ms, turns {late.start}-{late.stop - 1} {last:.1f} ms: ratio {last / first:.2f}")
    first, last = (server[w] / args.window * 1000 for w in ("early", "late"))
    print(f"The action server's CPU per turn (mean): {first:.1f} ms, {last:.1f} ms: ratio {last / first:.2f}")
    if args.top:
        a, b = _cumulative(profiles["early"]), _cumulative(profiles["late"])
        grown: List[Tuple[float, str, float, float]] = []
        for key in set(a) | set(b):
            before, after = a.get(key, 0.0) / args.window * 1000, b.get(key, 0.0) / args.window * 1000
            grown.append((after - before, _label(key), before, after))
        print(f"\n{'early':>8} {'late':>8}  ms per turn (cumulative), most grown first")
        for _, label, before, after in sorted(grown, reverse=True)[: args.top]:
            print(f"{before:8.2f} {after:8.2f}  {label}")
        print(f"\n{'early':>8} {'late':>8}  ms per turn (cumulative), the heaviest in the late window")
        for _, label, before, after in sorted(grown, key=lambda row: -row[3])[: args.top]:
            print(f"{before:8.2f} {after:8.2f}  {label}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
