"""Training benchmark: wall time of a cold `rasa train` and the size of the model.

Cold means Rasa's training cache is empty (a temporary RASA_CACHE_DIRECTORY), so every
component really trains. Target: <= 180 s on 2 cores.

    make benchmark
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 180


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        env = {**os.environ, "RASA_CACHE_DIRECTORY": str(Path(tmp) / "cache")}
        command = [
            sys.executable, "-m", "rasa", "train", "--domain", "domain", "--data", "data",
            "--config", "config.yml", "--fixed-model-name", "benchmark", "--out", tmp,
        ]
        print("Training from scratch (empty cache)...", flush=True)
        started = time.monotonic()
        result = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        wall = time.monotonic() - started
        if result.returncode != 0:
            print(result.stderr[-3000:], file=sys.stderr)
            return result.returncode
        model = Path(tmp) / "benchmark.tar.gz"
        size_mb = model.stat().st_size / 1e6
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    print(f"cores: {os.cpu_count()}")
    print(f"rasa train wall time: {wall:.1f} s (target <= {TARGET_SECONDS} s: "
          f"{'met' if wall <= TARGET_SECONDS else 'NOT met'})")
    print(f"model size: {size_mb:.1f} MB")
    print(f"peak memory of the training process: {peak_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
