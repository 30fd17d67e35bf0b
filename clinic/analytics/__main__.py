"""``python -m clinic.analytics report [--since ISO] [--until ISO] [--out DIR]``

Prints the figures (docs/analytics.md) and writes ``report.json`` and PNG plots to DIR
(default results/analytics). Default period: the last 30 days.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

from clinic.analytics.plots import write_plots
from clinic.analytics.report import build_report, summary_lines
from clinic.db import create_schema, make_engine, make_session_factory
from clinic.privacy import load_pseudonym_key
from clinic.settings import PROJECT_ROOT


def _moment(value: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date or time: {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clinic.analytics", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["report"])
    parser.add_argument("--since", type=_moment, default=None)
    parser.add_argument("--until", type=_moment, default=None)
    parser.add_argument("--out", default=str(PROJECT_ROOT / "results" / "analytics"))
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)
    until = args.until or dt.datetime.now(dt.timezone.utc)
    since = args.since or until - dt.timedelta(days=30)
    if since >= until:
        print("error: --since must be before --until", file=sys.stderr)
        return 1
    engine = make_engine(args.database_url)
    create_schema(engine)
    report = build_report(make_session_factory(engine), since, until, load_pseudonym_key())
    for line in summary_lines(report):
        print(line)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report.as_dict(), indent=2, default=str))
    if not args.no_plots:
        for path in write_plots(report, out):
            print(f"plot: {path}")
    print(f"report: {out / 'report.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
