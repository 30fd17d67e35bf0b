"""The process that owns the outbox, for tests whose senders only queue (the broadcast and
survey commands, the staff inbox: clinic/messaging/outbox_queue.py): a WhatsApp gateway in
the relay role (no webhooks, no Rasa needed until a patient writes), which drains the queue
with the number's one rate limit, as in ``make run``."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
import urllib.request
from pathlib import Path

from benchmarks.stack import PROJECT_ROOT, free_port


@contextlib.asynccontextmanager
async def running_outbox(env: dict, log: Path, poll_seconds: float = 0.05):
    """``env``: the database, the encryption key and the WHATSAPP_* settings of the Graph API
    (the simulator); the gateway's own secrets are added here."""
    port = free_port()
    env = {"WHATSAPP_VERIFY_TOKEN": secrets.token_urlsafe(16), "WHATSAPP_APP_SECRET": secrets.token_hex(32),
           "WHATSAPP_INTERNAL_SECRET": secrets.token_hex(32), "CLINIC_PSEUDONYM_KEY": secrets.token_hex(16),
           "WHATSAPP_OUTBOX_POLL_SECONDS": str(poll_seconds), **env}
    with log.open("ab") as output:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "--role", "relay", "--host", "127.0.0.1", "--port", str(port),
            "--rasa-url", "http://127.0.0.1:9", cwd=PROJECT_ROOT, env=env, stdout=output, stderr=output)
    try:
        for _ in range(600):
            if process.returncode is not None:
                raise RuntimeError(f"the gateway stopped at start:\n{log.read_text()[-3000:]}")
            try:
                await asyncio.to_thread(urllib.request.urlopen, f"http://127.0.0.1:{port}/webhooks/whatsapp/", None, 1)
                break
            except OSError:
                await asyncio.sleep(0.1)
        else:
            raise RuntimeError(f"the gateway did not start:\n{log.read_text()[-3000:]}")
        yield process
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 30)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()


def busiest_second(moments: list) -> int:
    """The most of ``moments`` (seconds) within any one second: what a rate limit bounds."""
    moments, left, busiest = sorted(moments), 0, 0
    for right, moment in enumerate(moments):
        while moment - moments[left] >= 1.0:
            left += 1
        busiest = max(busiest, right - left + 1)
    return busiest
