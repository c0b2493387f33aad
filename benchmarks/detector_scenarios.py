"""Precision, recall, delay and false alarms of the spike detector on labelled streams.

Runs scenarios (seeds 0..N-1) through the same replay path as `finsentry alerts replay` —
near-duplicate check, fan-out, detector — and prints markdown tables (those in
docs/alerting.md):

- the streams at the rates real news arrives (benchmarks/news_rates.py: company
  bursts at base rates from 3 a day to 5 an hour, sector surges of 1-10 stories a minute,
  the traps, a week of null stream): recall on all events and on the target events (at
  least 8 distinct negative stories, 30 points above the usual share), precision, median
  delay in minutes of event time, false alarms per scope and week;
- with --dense, the project's earlier dense scenarios (30 stories a minute);
- with --sweep, the null week again at other values of FINSENTRY_ALERT_Z_THRESHOLD, the one
  setting that trades false alarms against sensitivity, beside the target recall and the
  trap alerts at that value of the other streams run (--only).

    python benchmarks/detector_scenarios.py                    # defaults from Settings, 5 seeds
    python benchmarks/detector_scenarios.py --seeds 2 --only null_week company_burst_3_per_day
    python benchmarks/detector_scenarios.py --sweep 3.5 4.5 5  # false alarms at other thresholds
    python benchmarks/detector_scenarios.py --seeds 2 --only company_burst_5_per_h negative_night --sweep 3.5 4
    FINSENTRY_ALERT_Z_THRESHOLD=4.5 python benchmarks/detector_scenarios.py
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

from alert_scenarios import SCENARIOS, rate_table, table
from news_rates import REALISTIC

from finsentry.alerting.config import DetectorConfig
from finsentry.settings import Settings

TRAPS = ("syndicated_60", "negative_night")  # streams where any alert is a false one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="runs per scenario (seeds 0..N-1)")
    parser.add_argument(
        "--only", nargs="*", choices=sorted(REALISTIC), help="streams at real rates to run (default: all)"
    )
    parser.add_argument("--dense", action="store_true", help="also the dense scenarios (30 stories a minute; slow)")
    parser.add_argument(
        "--sweep", nargs="*", type=float, default=[], help="null-week false alarms at these z thresholds"
    )
    parser.add_argument("--verbose", action="store_true", help="print each run and every false alert")
    args = parser.parse_args()
    settings = Settings()
    config = DetectorConfig.from_settings(settings)
    started = time.perf_counter()
    progress = (lambda line: print(line, file=sys.stderr)) if args.verbose else None
    markdown, outcomes = rate_table(config, REALISTIC, range(args.seeds), args.only, settings, progress)
    print(markdown)
    if args.verbose:
        for name, outcome in outcomes.items():
            for alert in outcome.false:
                print(
                    f"false in {name}: {alert.summary} episode_start={alert.episode_start.isoformat()}", file=sys.stderr
                )
    if args.sweep:
        # The other side of the trade: target recall and trap alerts of the streams run above.
        events = [name for name in outcomes if name != "null_week"]
        print(
            "\n| z threshold | null-week false alarms | scope-weeks | per scope-week "
            f"| target recall ({', '.join(events) or 'none run'}) | alerts on traps |\n"
            "| ---: | ---: | ---: | ---: | ---: | ---: |"
        )
        for z in args.sweep:
            swept = dataclasses.replace(config, defaults=dataclasses.replace(config.defaults, z=z))
            _, runs = rate_table(swept, REALISTIC, range(args.seeds), ["null_week", *events], settings)
            o = runs["null_week"]
            found, targets = sum(runs[n].target_detected for n in events), sum(runs[n].target_events for n in events)
            traps = sum(len(runs[n].false) for n in events if n in TRAPS)
            recall = f"{found}/{targets}" if targets else "–"
            print(
                f"| {z:g} | {len(o.false)} | {o.scope_weeks:.0f} | {len(o.false) / o.scope_weeks:.3f} "
                f"| {recall} | {traps} |"
            )
    if args.dense:
        dense, _ = table(config, range(args.seeds), None, progress, settings, SCENARIOS)
        print("\n" + dense)
    print(f"\n{args.seeds} seeds, {time.perf_counter() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
