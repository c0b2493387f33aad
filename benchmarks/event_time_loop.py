"""Ten runs in a row, on a loaded machine, of the two things that lost alerts when a worker
was behind: the worker-crash reliability test and `finsentry demo --speed 0` with its
Energy / Oil alert.

    python benchmarks/event_time_loop.py [--runs 10] [--max-docs 1200]

A second process keeps one core busy for the whole loop (it is stopped at the end). Each
run prints a line; the last line says how many runs passed. Exit status 1 if any failed.
Outputs and worker logs go to var/event_time_loop/.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FINSENTRY = [sys.executable, "-m", "finsentry.cli"]
ENERGY_ALERT = "negative share on topic 'Energy / Oil'"


LOGS = ROOT / "var" / "event_time_loop"


def crash_test(run: int) -> tuple[bool, str]:
    basetemp = LOGS / f"run-{run}"  # kept: the worker logs of a failed run
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--basetemp={basetemp}",
            "tests/reliability/test_worker_crash.py",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    (LOGS / f"run-{run}-crash.txt").write_text(result.stdout + result.stderr)
    last = (result.stdout.strip().splitlines() or ["no output"])[-1]
    return result.returncode == 0, last


def demo(run: int, max_docs: int) -> tuple[bool, str]:
    from finsentry.streams.broker import free_port

    with tempfile.TemporaryDirectory() as cwd:
        result = subprocess.run(
            FINSENTRY + ["demo", "--speed", "0", "--max-docs", str(max_docs), "--web-port", str(free_port())],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=1200,
            env={**os.environ, "FINSENTRY_BACKEND": "torch"},
        )
        log = Path(cwd, "var", "demo", "worker.log")
        energy = log.exists() and ENERGY_ALERT in log.read_text(errors="replace")
        if log.exists():
            (LOGS / f"run-{run}-demo-worker.log").write_text(log.read_text(errors="replace"))
    ok = result.returncode == 0 and energy
    return ok, f"exit {result.returncode}, Energy / Oil alert {'raised' if energy else 'MISSING'}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument(
        "--max-docs",
        type=int,
        default=1200,
        help="documents the demo stores before it stops (past the Energy / Oil surge)",
    )
    args = parser.parse_args()
    LOGS.mkdir(parents=True, exist_ok=True)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    passed = {"crash": 0, "demo": 0}
    try:
        for run in range(1, args.runs + 1):
            for name, check in (("crash", lambda: crash_test(run)), ("demo", lambda: demo(run, args.max_docs))):
                started = time.monotonic()
                ok, detail = check()
                passed[name] += ok
                print(
                    f"run {run:2d} {name:5s} {'PASS' if ok else 'FAIL'} {time.monotonic() - started:6.0f}s  {detail}",
                    flush=True,
                )
    finally:
        busy.kill()
        busy.wait()
    print(
        f"worker crash test passed {passed['crash']} of {args.runs}; "
        f"demo --speed 0 with its Energy alert passed {passed['demo']} of {args.runs}",
        flush=True,
    )
    return 0 if passed["crash"] == passed["demo"] == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
