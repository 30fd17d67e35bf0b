"""python -m simulator --host 127.0.0.1 --port 8081 --webhook-url http://127.0.0.1:5005/webhooks/whatsapp/webhook

Secrets come from the environment (WHATSAPP_APP_SECRET, WHATSAPP_ACCESS_TOKEN,
WHATSAPP_VERIFY_TOKEN), the same variables the connector reads.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from typing import List, Optional

from aiohttp import web

from clinic.logs import configure_logging

from .app import create_app, get_simulator
from .config import (
    DEFAULT_BUSINESS_NAME,
    DEFAULT_DISPLAY_PHONE_NUMBER,
    DEFAULT_PHONE_NUMBER_ID,
    DEFAULT_USER_NAME,
    DEFAULT_USER_WA_ID,
    DEFAULT_WABA_ID,
    DEFAULT_WEBHOOK_URL,
    ConfigError,
    SimulatorConfig,
)
from .templates import TemplateRegistry


def _env(name: str, default: Optional[str] = None) -> Optional[str]:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _optional_float(value: str) -> Optional[float]:
    return None if value.lower() in ("", "off", "none") else float(value)


def _optional_int(value: str) -> Optional[int]:
    return None if value.lower() in ("", "0", "off", "none") else int(value)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m simulator",
        description="Local WhatsApp Cloud API simulator (Graph API, signed webhooks, chat page).",
    )
    p.add_argument("--host", default=_env("SIMULATOR_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(_env("SIMULATOR_PORT", "8081")))
    p.add_argument("--webhook-url", default=_env("SIMULATOR_WEBHOOK_URL", DEFAULT_WEBHOOK_URL),
                   help="the connector's webhook (env SIMULATOR_WEBHOOK_URL); 'none' records only")
    p.add_argument("--app-secret", default=None,
                   help="signs webhooks (prefer env WHATSAPP_APP_SECRET: flags show in `ps`)")
    p.add_argument("--access-token", default=None,
                   help="the Bearer token accepted (prefer env WHATSAPP_ACCESS_TOKEN)")
    p.add_argument("--phone-number-id", default=_env("WHATSAPP_PHONE_NUMBER_ID", DEFAULT_PHONE_NUMBER_ID))
    p.add_argument("--display-phone-number",
                   default=_env("SIMULATOR_DISPLAY_PHONE_NUMBER", DEFAULT_DISPLAY_PHONE_NUMBER))
    p.add_argument("--waba-id", default=_env("SIMULATOR_WABA_ID", DEFAULT_WABA_ID))
    p.add_argument("--business-name", default=_env("SIMULATOR_BUSINESS_NAME", DEFAULT_BUSINESS_NAME))
    p.add_argument("--templates", default=_env("SIMULATOR_TEMPLATES"),
                   help="YAML/JSON file of approved templates (added to the built-in demo ones)")
    p.add_argument("--handshake", action="store_true",
                   help="on start, verify the webhook like Meta (needs WHATSAPP_VERIFY_TOKEN)")
    p.add_argument("--auto-read", type=_optional_float, default=_optional_float(_env("SIMULATOR_AUTO_READ", "off")),
                   metavar="SECONDS", help="mark business messages read after SECONDS (default: when a chat page shows them)")
    p.add_argument("--delivered-delay", type=float, default=float(_env("SIMULATOR_DELIVERED_DELAY", "0.5")),
                   metavar="SECONDS")
    p.add_argument("--retry-schedule", default=_env("SIMULATOR_RETRY_SCHEDULE", "0,1,2,4,8,16,32"),
                   help="webhook retry delays in seconds, comma-separated (then dropped)")
    p.add_argument("--webhook-timeout", type=float, default=float(_env("SIMULATOR_WEBHOOK_TIMEOUT", "20")))
    p.add_argument("--pair-rate", type=_optional_int, default=_optional_int(_env("SIMULATOR_PAIR_RATE", "off")),
                   metavar="N", help="more than N messages to one user within 6 s -> 131056 (default off)")
    p.add_argument("--throughput", type=_optional_int, default=_optional_int(_env("SIMULATOR_THROUGHPUT", "off")),
                   metavar="N", help="more than N send requests per second -> 130429 (default off; Meta: 80)")
    p.add_argument("--latency-ms", default=_env("SIMULATOR_LATENCY_MS", ""), metavar="LOW,HIGH",
                   help="Graph API latency of each message send, drawn uniformly (default: none)")
    p.add_argument("--default-user", default=_env("SIMULATOR_DEFAULT_USER", DEFAULT_USER_WA_ID),
                   help="wa_id the chat page uses without ?user=")
    p.add_argument("--default-user-name", default=_env("SIMULATOR_DEFAULT_USER_NAME", DEFAULT_USER_NAME))
    p.add_argument("--flow", action="append", default=[s for s in (_env("SIMULATOR_FLOWS") or "").split(";") if s],
                   metavar="ID,FLOW_JSON[,ENDPOINT_URL]", help="a WhatsApp Flow the phone can open (repeatable)")
    p.add_argument("--flows-public-key", default=_env("WHATSAPP_FLOWS_PUBLIC_KEY_FILE"), metavar="PEM",
                   help="the business's Flows public key (Meta: whatsapp_business_encryption)")
    p.add_argument("--log-level", default=_env("SIMULATOR_LOG_LEVEL"),
                   help="default: SIMULATOR_LOG_LEVEL, else LOG_LEVEL, else INFO")
    return p.parse_args(argv)


def build_config(args: argparse.Namespace) -> SimulatorConfig:
    webhook_url = args.webhook_url
    if webhook_url and webhook_url.lower() == "none":
        webhook_url = None
    try:
        schedule = [float(x) for x in args.retry_schedule.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--retry-schedule must be comma-separated seconds, got {args.retry_schedule!r}") from None
    try:
        latency = [float(x) for x in args.latency_ms.split(",") if x.strip()] or None
    except ValueError:
        raise ConfigError(f"--latency-ms must be LOW,HIGH milliseconds, got {args.latency_ms!r}") from None
    return SimulatorConfig(
        app_secret=args.app_secret or _env("WHATSAPP_APP_SECRET") or "",
        access_token=args.access_token or _env("WHATSAPP_ACCESS_TOKEN") or "",
        verify_token=_env("WHATSAPP_VERIFY_TOKEN"),
        webhook_url=webhook_url,
        host=args.host,
        port=args.port,
        phone_number_id=args.phone_number_id,
        display_phone_number=args.display_phone_number,
        waba_id=args.waba_id,
        business_name=args.business_name,
        templates_path=args.templates,
        delivered_delay=args.delivered_delay,
        auto_read=args.auto_read,
        retry_schedule=schedule,
        webhook_timeout=args.webhook_timeout,
        pair_rate_limit=args.pair_rate,
        throughput_limit=args.throughput,
        latency_ms=latency,
        default_user_wa_id=args.default_user,
        default_user_name=args.default_user_name,
        flows=args.flow,
        flows_public_key=args.flows_public_key,
    )


async def serve(config: SimulatorConfig, do_handshake: bool) -> None:
    app = create_app(config)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    await site.start()
    base = f"http://{config.host}:{config.port}"
    print(f"WhatsApp Cloud API simulator for {config.business_name!r}", flush=True)
    print(f"  Chat page:   {base}/  (other patients: {base}/?user=15550199999&name=Sam)", flush=True)
    print(f"  Graph API:   {base}/v23.0/{config.phone_number_id}/messages", flush=True)
    print(f"  Webhook ->   {config.webhook_url or '(none: webhooks are recorded only)'}", flush=True)
    print(f"  Control API: {base}/_sim/...  (see simulator/README.md)", flush=True)
    if do_handshake:
        result = await get_simulator(app).handshake()
        if result.get("ok"):
            print(f"  Handshake:   OK (challenge {result['challenge']} echoed)", flush=True)
        else:
            print(f"  Handshake:   FAILED - {result.get('error')}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix
            pass
    try:
        await stop.wait()
    finally:
        print("Simulator stopping.", flush=True)
        await runner.cleanup()


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    configure_logging("simulator", level=args.log_level)
    try:
        config = build_config(args)
        TemplateRegistry(config.templates_path)  # a bad templates file fails here, clearly
    except (ConfigError, OSError, ValueError, KeyError) as exc:
        print(f"simulator: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(config, args.handshake))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"simulator: cannot listen on {config.host}:{config.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
