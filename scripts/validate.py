"""`make validate`: Rasa's data validator, with no warning left unexplained.

Rasa's validator cannot see responses that custom actions send (``response="utter_x"`` in
a form validator, the standard Rasa pattern for "that date is in the past") or that a form
asks (``utter_ask_[<form>_]<slot>``), and warns they are "not used in any story or rule".
This script runs the validator and fails on every warning or error except exactly those,
after checking each such response really is sent from actions/ or asked by a form. Any
other unused response, unknown intent or conflicting example fails.

Exit code 0 = clean. Used by `make validate` and tests/test_model.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import List, Set

# One list of the responses actions send or forms ask, shared with the quietened `rasa`
# (run as `python scripts/validate.py`, this folder is on the path).
from quiet_rasa import responses_sent_by_code

PROJECT_ROOT = Path(__file__).resolve().parent.parent

UNUSED = re.compile(r"The utterance '(\w+)' is not used in any story or rule")


def problems_in(output: str, sent_by_code: Set[str]) -> List[str]:
    problems = []
    for line in output.splitlines():
        if not ("UserWarning" in line or " WARNING " in line or "ERROR" in line):
            continue
        match = UNUSED.search(line)
        if match and match.group(1) in sent_by_code:
            continue
        problems.append(line.strip())
    return problems


def main() -> int:
    result = subprocess.run(
        [sys.executable, "-m", "rasa", "data", "validate", "--domain", "domain", "--data", "data",
         "--config", "config.yml", "--fail-on-warnings"],
        cwd=PROJECT_ROOT, capture_output=True, text=True,
    )
    output = result.stdout + result.stderr
    problems = problems_in(output, responses_sent_by_code())
    if result.returncode != 0 or problems:
        print(output[-4000:] if result.returncode != 0 else "", file=sys.stderr)
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"validate: {len(problems)} problem(s), rasa exit code {result.returncode}", file=sys.stderr)
        return 1
    print("validate: clean (responses sent by actions or asked by forms are checked against the code)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
