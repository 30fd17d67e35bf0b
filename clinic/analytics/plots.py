"""PNG plots of a report (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import List

from clinic.analytics.report import Report


def write_plots(report: Report, out: Path) -> List[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written = []

    rates = {
        "containment": report.containment_rate, "handoff": report.handoff_rate,
        "reminder\nconfirmation": report.reminder_confirmation_rate, "no-show": report.no_show_rate,
        "CSAT": report.csat,
        "delivered": report.delivery["all"].delivery_rate if "all" in report.delivery else None,
        "read": report.delivery["all"].read_rate if "all" in report.delivery else None,
    }
    fig, ax = plt.subplots(figsize=(9, 4))
    names = list(rates)
    values = [100 * (rates[n] or 0) for n in names]
    bars = ax.bar(names, values, color="#2a7ab9")
    for bar, name in zip(bars, names, strict=False):
        label = "n/a" if rates[name] is None else f"{100 * rates[name]:.1f}%"
        ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom")
    ax.set_ylim(0, 110)
    ax.set_ylabel("%")
    ax.set_title(f"Assistant outcomes {report.since:%Y-%m-%d} – {report.until:%Y-%m-%d}")
    fig.tight_layout()
    written.append(out / "rates.png")
    fig.savefig(written[-1], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    if report.first_response_minutes:
        ax.hist(report.first_response_minutes, bins=min(20, max(5, len(report.first_response_minutes))), color="#4b9e5f")
    ax.set_xlabel("minutes from ticket to first human reply")
    ax.set_ylabel("tickets")
    ax.set_title("Time to first human response")
    fig.tight_layout()
    written.append(out / "first_response.png")
    fig.savefig(written[-1], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    bottom = [0] * 5
    for source, counts in report.ratings_by_source.items():
        heights = [counts.get(str(n), 0) for n in range(1, 6)]
        ax.bar([str(n) for n in range(1, 6)], heights, bottom=bottom, label=source)
        bottom = [b + h for b, h in zip(bottom, heights, strict=False)]
    if report.ratings_by_source:
        ax.legend()
    ax.set_xlabel("rating")
    ax.set_ylabel("answers")
    ax.set_title("Satisfaction ratings")
    fig.tight_layout()
    written.append(out / "ratings.png")
    fig.savefig(written[-1], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 4))
    days = [d["day"] for d in report.daily]
    ax.plot(days, [d["conversations"] for d in report.daily], marker="o", label="conversations")
    ax.plot(days, [d["handed_off"] for d in report.daily], marker="o", label="handed to a human")
    ax.set_title("Conversations per day")
    ax.legend()
    fig.autofmt_xdate()
    fig.tight_layout()
    written.append(out / "daily.png")
    fig.savefig(written[-1], dpi=100)
    plt.close(fig)
    return written
