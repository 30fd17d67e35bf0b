"""Where a turn's time goes in Rasa, early and late in a long conversation (issue 15).

Starts the action server and `rasa run` (REST) like `make benchmark-turn`, drives one
conversation with the benchmark's message mix, and records py-spy profiles of the Rasa
process while turns FIRST..FIRST+19 and LAST-19..LAST are answered. Prints, per window, the
share of Rasa's sampled CPU under the functions that matter (inclusive), and writes the raw
collapsed stacks (flame graph input) to --out.

    .venv/bin/python -m benchmarks.turn_profile --py-spy PATH [--lean 0|1] [--out DIR]
py-spy: `pip install py-spy` (a standalone binary). Needs ptrace rights on the process.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from benchmarks.stack import PROJECT_ROOT, Stack
from benchmarks.turn_bench import PROJECT_TURNS, turn

# (label, substring of a py-spy frame "function (file:line)"); inclusive share per window.
WATCH = [
    ("tracker store retrieve (SQL load + replay)", "retrieve (rasa/core/tracker_store.py"),
    ("  DialogueStateTracker.from_dict/from_events (replay)", "from_events (rasa/shared/core/trackers.py"),
    ("tracker store save", "save (rasa/core/tracker_store.py"),
    ("policy ensemble prediction (all policies)", "_predict_next_with_tracker (rasa/core/processor.py"),
    ("  states_for_tracker_history (past_states)", "states_for_tracker_history (rasa/shared/core/domain.py"),
    ("    applied_events", "applied_events (rasa/shared/core/trackers.py"),
    ("  RulePolicy", "(rasa/core/policies/rule_policy.py"),
    ("    RulePolicy._get_possible_keys", "_get_possible_keys (rasa/core/policies/rule_policy.py"),
    ("  MemoizationPolicy", "predict_action_probabilities (rasa/core/policies/memoization.py"),
    ("  TEDPolicy", "predict_action_probabilities (rasa/core/policies/ted_policy.py"),
    ("    TED featurisation", "_featurize_for_prediction (rasa/core/policies/policy.py"),
    ("    TensorFlow (TED run_inference)", "run_inference (rasa/utils/tensorflow/models.py"),
    ("NLU (parse_message)", "parse_message (rasa/core/processor.py"),
    ("custom action call (action server)", "run (rasa/core/actions/action.py"),
    ("  tracker serialised for the action server", "current_state (rasa/shared/core/trackers.py"),
]


def analyse(path: Path) -> tuple[int, dict]:
    """Inclusive sample counts per WATCH entry from py-spy's raw (collapsed) output."""
    total, hits = 0, collections.Counter()
    for raw in path.read_text(errors="replace").splitlines():
        stack, _, count = raw.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        for label, needle in WATCH:
            if needle in stack:
                hits[label] += n
    return total, hits


async def drive(url: str, sender: str, start: int, stop: int) -> list:
    latencies = []
    async with aiohttp.ClientSession() as session:
        bot = type("B", (), {"url": url, "name": "project"})()
        for i in range(start, stop):
            latencies.append(await turn(session, bot, sender, PROJECT_TURNS[i % len(PROJECT_TURNS)]))
    return latencies


async def main_async(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="turn-profile-") as tmp:
        stack = Stack(Path(tmp), PROJECT_ROOT / "models" / "assistant.tar.gz")
        stack.env["LEAN_TURNS"] = args.lean
        stack.start_actions()
        stack.start_rasa()
        pid = stack.processes["rasa"].pid
        # The action server's share of a turn too (written beside Rasa's, not analysed here).
        actions_pid = stack.processes["actions"].pid
        try:
            await drive(stack.url("rasa"), "warm", 0, 10)
            sender, done = "profiled", 0
            windows = [("early", args.first), ("late", args.last - 19)]
            for name, begin in windows:
                await drive(stack.url("rasa"), sender, done, begin - 1)
                done = begin - 1
                raw = out / f"rasa-{name}-lean{args.lean}.txt"
                spies = [subprocess.Popen([args.py_spy, "record", "--pid", str(p), "--rate", "200",
                                           "--format", "raw", "--output", str(path), "--duration", "600"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                         for p, path in [(pid, raw), (actions_pid, out / f"actions-{name}-lean{args.lean}.txt")]]
                time.sleep(1.0)
                started = time.perf_counter()
                latencies = await drive(stack.url("rasa"), sender, done, done + 20)
                elapsed = time.perf_counter() - started
                done += 20
                for spy in spies:
                    spy.send_signal(signal.SIGINT)
                for spy in spies:
                    spy.wait(timeout=60)
                total, hits = analyse(raw)
                print(f"\nturns {done - 19}-{done}: median {sorted(latencies)[10]:.0f} ms, "
                      f"{elapsed / 20 * 1000:.0f} ms wall per turn, {total} samples "
                      f"({total / 200 / 20 * 1000:.0f} ms sampled per turn)")
                for label, _ in WATCH:
                    print(f"    {label:55s} {100 * hits[label] / max(total, 1):5.1f} %  "
                          f"{hits[label] / 200 / 20 * 1000:6.1f} ms/turn")
            for log in Path(tmp).glob("*.log"):
                shutil.copy(log, out / f"{log.stem}-lean{args.lean}.log")
        finally:
            stack.stop()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy")
    parser.add_argument("--lean", default="0", choices=["0", "1"], help="LEAN_TURNS for Rasa")
    parser.add_argument("--first", type=int, default=21, help="first turn of the early window")
    parser.add_argument("--last", type=int, default=200, help="last turn of the late window")
    parser.add_argument("--out", default="results/turn-profile")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
