"""NLU evaluation for the data team: k-fold cross-validation on the project's own data.

Writes Rasa's reports and plots to results/nlu/ (intent_report.json, intent_confusion_matrix.png,
intent_histogram.png, response selection reports, errors) and prints intent accuracy and
macro F1, plus the response selector's figures for the FAQ answers.

    make evaluate                     # 5 folds
    python scripts/evaluate_nlu.py --folds 3 --out results/nlu-3fold
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--out", default="results/nlu")
    parser.add_argument("--config", default="config.yml")
    args = parser.parse_args()
    if args.folds < 2:
        parser.error("--folds must be at least 2")

    out = ROOT / args.out
    out.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "rasa", "test", "nlu",
        "--nlu", "data/nlu", "--config", args.config, "--domain", "domain",
        "--cross-validation", "--folds", str(args.folds), "--out", str(out),
    ]
    print(f"Cross-validating the NLU model ({args.folds} folds); this takes a few minutes...")
    started = time.monotonic()
    result = subprocess.run(command, cwd=ROOT)
    if result.returncode != 0:
        print("rasa test nlu failed", file=sys.stderr)
        return result.returncode
    elapsed = time.monotonic() - started

    print(f"\nResults in {out.relative_to(ROOT)}/ ({elapsed:.0f} s)")
    print_report("Intents", out / "intent_report.json")
    print_report("FAQ answers (response selector)", out / "response_selection_report.json")
    for name in ("intent_confusion_matrix.png", "intent_histogram.png"):
        path = out / name
        print(f"  {'wrote' if path.exists() else 'MISSING'} {path.relative_to(ROOT)}")
    return 0


def print_report(title: str, path: Path) -> None:
    if not path.exists():
        print(f"{title}: no report at {path}")
        return
    report = json.loads(path.read_text())
    accuracy = report.get("accuracy")
    macro = report.get("macro avg", {})
    print(f"{title}: accuracy {accuracy:.3f}, macro F1 {macro.get('f1-score', 0):.3f}, "
          f"weighted F1 {report.get('weighted avg', {}).get('f1-score', 0):.3f}")
    skip = {"accuracy", "macro avg", "weighted avg", "micro avg"}
    worst = sorted(
        ((name, row) for name, row in report.items() if name not in skip and isinstance(row, dict)),
        key=lambda item: item[1].get("f1-score", 0),
    )[:5]
    for name, row in worst:
        confused = ", ".join(f"{k} ({v})" for k, v in (row.get("confused_with") or {}).items())
        print(f"    lowest F1: {name:28s} {row.get('f1-score', 0):.3f}"
              + (f"  confused with {confused}" if confused else ""))


if __name__ == "__main__":
    sys.exit(main())
