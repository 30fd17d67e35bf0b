"""The static types hold where a message enters: mypy, strict, on whatsapp/ and gateway/
(configuration in pyproject.toml, [tool.mypy]; `make lint` runs the same check)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _mypy(*args: str, cache: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(cache), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_whatsapp_and_gateway_are_type_clean(tmp_path) -> None:
    result = _mypy(cache=tmp_path / "cache")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout


def test_the_check_is_strict_enough_to_catch_a_missing_annotation(tmp_path) -> None:
    # The same configuration on a file with an unannotated function must fail: proof that
    # the check above is strict, not merely running.
    (tmp_path / "gateway").mkdir()
    sample = tmp_path / "gateway" / "sample.py"
    sample.write_text("def f(x):\n    return x\n", encoding="utf-8")
    result = _mypy("--config-file", str(ROOT / "pyproject.toml"), str(sample), cache=tmp_path / "cache")
    assert result.returncode == 1
    assert "no-untyped-def" in result.stdout
