"""Precision and recall of the spike detector on labelled synthetic scenarios.

Runs every scenario of finsentry.streams.alerting.scenarios (seeds 0..N-1) through the
same replay path as `finsentry alerts replay` — near-duplicate check, fan-out, detector —
and prints a markdown table (the one in docs/alerting.md).

    python benchmarks/detector_scenarios.py                 # defaults from Settings
    python benchmarks/detector_scenarios.py --seeds 3 --only topic_spike steady_noise
    FINSENTRY_ALERT_Z_THRESHOLD=4.5 python benchmarks/detector_scenarios.py
"""

from __future__ import annotations

import argparse
import sys
import time

from finsentry.settings import Settings
from finsentry.streams.alerting.config import DetectorConfig
from finsentry.streams.alerting.scenarios import SCENARIOS, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="runs per scenario (seeds 0..N-1)")
    parser.add_argument("--only", nargs="*", choices=sorted(SCENARIOS), help="scenarios to run (default: all)")
    parser.add_argument("--verbose", action="store_true", help="print each run and every false alert")
    args = parser.parse_args()
    config = DetectorConfig.from_settings(Settings())
    started = time.perf_counter()
    progress = (lambda line: print(line, file=sys.stderr)) if args.verbose else None
    markdown, total = table(config, range(args.seeds), args.only, progress)
    print(markdown)
    if args.verbose:
        for alert in total.false:
            print(f"false: {alert.summary} episode_start={alert.episode_start.isoformat()}", file=sys.stderr)
    print(f"\n{args.seeds} seeds, {time.perf_counter() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
