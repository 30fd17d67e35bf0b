"""How big the tracker Rasa sends with a custom action call gets over one long conversation,
as Rasa 3.6 sends it and as addons/lean_action_calls.py trims it (issue 15).

    PYTHONPATH=. .venv/bin/python -m benchmarks.action_payload [--model PATH] [--turns 200]

The project's model in this process (Rasa's agent) and the real action server; the
conversation repeats turn_bench's 10-turn cycle. Both sizes come from the same calls: the
call is built Rasa's way and then trimmed, and the trimmed one is sent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import tempfile
from pathlib import Path
from typing import Dict

import yaml

from benchmarks.stack import PROJECT_ROOT, Stack
from benchmarks.turn_bench import PROJECT_TURNS

REPORT_AT = (10, 20, 50, 100, 200, 500)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=PROJECT_ROOT / "models" / "assistant.tar.gz")
    parser.add_argument("--turns", type=int, default=200)
    args = parser.parse_args()

    from rasa.core.actions.action import RemoteAction
    from rasa.core.agent import Agent
    from rasa.core.channels.channel import UserMessage
    from rasa.utils.endpoints import EndpointConfig
    from rasa.utils.log_utils import configure_structlog

    from addons import lean_action_calls

    logging.getLogger().setLevel(logging.WARNING)
    configure_structlog(logging.WARNING)  # Rasa's per-turn debug lines would bury the figures
    lean_action_calls.apply()
    trimmed_format = RemoteAction._action_call_format
    rasa_format = trimmed_format.__wrapped__
    last: Dict[str, int] = {}

    def measured(self, tracker, domain):
        last["rasa"] = len(json.dumps(rasa_format(self, tracker, domain)["tracker"]))
        call = trimmed_format(self, tracker, domain)
        last["trimmed"] = len(json.dumps(call["tracker"]))
        return call

    RemoteAction._action_call_format = measured
    settings = yaml.safe_load((PROJECT_ROOT / "endpoints.yml").read_text(encoding="utf-8"))["action_endpoint"]
    options = {key: value for key, value in settings.items() if key != "url"}
    with tempfile.TemporaryDirectory() as folder:
        stack = Stack(Path(folder), args.model)
        stack.start_actions()

        async def conversation() -> None:
            agent = Agent.load(str(args.model),
                               action_endpoint=EndpointConfig(f"{stack.url('actions')}/webhook", **options))
            print("after turns  Rasa's own   trimmed")
            for n in range(1, args.turns + 1):
                message = UserMessage(PROJECT_TURNS[(n - 1) % len(PROJECT_TURNS)], sender_id="payload",
                                      metadata={"language": "en"})
                await agent.handle_message(message)
                if n in REPORT_AT or n == args.turns:
                    print(f"{n:>11}  {last['rasa'] / 1024:>8.1f} KB  {last['trimmed'] / 1024:>6.1f} KB", flush=True)

        try:
            asyncio.run(conversation())
        finally:
            stack.stop()
            RemoteAction._action_call_format = trimmed_format
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
