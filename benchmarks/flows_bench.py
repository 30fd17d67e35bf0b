"""Booking Flow data endpoint benchmark (a command, not a test): how long the gateway takes
to answer WhatsApp's encrypted data requests, against the demo clinic (4 weeks of slots) on
SQLite, through ``FlowEndpoint.answer`` exactly as the HTTP route calls it (decrypt, check the
token, answer from the calendar, encrypt). WhatsApp gives an endpoint 10 seconds.

    python -m benchmarks.flows_bench [--requests 50]

Prints p50 / p95 per screen transition (ms), and the RSA/AES part alone (a ``ping``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import tempfile
import time
from zoneinfo import ZoneInfo

from clinic.booking_flow import tokens
from clinic.booking_flow.screens import BookingFlowScreens
from clinic.db import create_schema, make_engine, make_session_factory
from clinic.scheduling.demo_data import install_demo_clinic
from clinic.scheduling.sql_backend import SqlSchedulingBackend
from gateway.flow_endpoint import FlowEndpoint
from whatsapp.flows_crypto import (
    decrypt_response,
    encrypt_request,
    generate_private_key_pem,
    load_private_key,
)

TZ = ZoneInfo("Europe/Berlin")
KEY = b"benchmark-pseudonym-key"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    now = dt.datetime.now(dt.timezone.utc)
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{folder}/clinic.db")
        create_schema(engine)
        sessions = make_session_factory(engine)
        install_demo_clinic(sessions, timezone=TZ, weeks=4, now=now)
        backend = SqlSchedulingBackend(sessions)
        private = load_private_key(generate_private_key_pem())
        endpoint = FlowEndpoint(private, BookingFlowScreens(backend, TZ, KEY), "secret", KEY)
        token = tokens.issue("bench-conversation", "whatsapp", "en", KEY, now)
        day = str((now.astimezone(TZ) + dt.timedelta(days=1)).date())
        requests = {
            "ping (crypto only)": {"version": "3.0", "action": "ping"},
            "INIT -> SERVICE": {"version": "3.0", "action": "INIT", "flow_token": token},
            "SERVICE -> PRACTITIONER": {"version": "3.0", "action": "data_exchange", "screen": "SERVICE",
                                        "data": {"service": "gp_consultation"}, "flow_token": token},
            "PRACTITIONER -> DATE (28 days)": {"version": "3.0", "action": "data_exchange", "screen": "PRACTITIONER",
                                               "data": {"service": "gp_consultation", "practitioner": "any"},
                                               "flow_token": token},
            "DATE -> TIME": {"version": "3.0", "action": "data_exchange", "screen": "DATE",
                             "data": {"service": "gp_consultation", "practitioner": "any", "day": day},
                             "flow_token": token},
        }
        print(f"Booking Flow endpoint, demo clinic (4 weeks of slots, SQLite), {args.requests} requests each")
        for name, payload in requests.items():
            timings = []
            for _ in range(args.requests):
                body, aes_key, iv = encrypt_request(payload, private.public_key())
                raw = json.dumps(body).encode()
                start = time.perf_counter()
                status, text = endpoint.answer(raw)
                timings.append((time.perf_counter() - start) * 1000)
                assert status == 200, (name, status, text)
                decrypt_response(text, aes_key, iv)
            timings.sort()
            p95 = timings[max(0, int(len(timings) * 0.95) - 1)]
            print(f"  {name:32s} p50 {statistics.median(timings):7.1f} ms   p95 {p95:7.1f} ms")
        engine.dispose()


if __name__ == "__main__":
    main()
