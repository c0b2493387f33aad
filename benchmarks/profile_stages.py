"""Where a worker's CPU went, per stage, from a py-spy speedscope profile.

    python benchmarks/profile_stages.py PROFILE.json [--cpu-ms-per-doc 1.84]

Each sample (every thread, idle ones left out by py-spy) is put in the first stage whose
rule matches a frame, walking from the innermost frame outwards: what a sample was doing
(decoding JSON, a produce request, a metric) wins over where it was called from (an agent).
A sample none of the rules name is event-loop and framework overhead. With the worker's
CPU ms/document from the same run, the shares become ms/document.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

# (stage, rule); a rule is (text in the file path, function names or None for any).
RULES: list[tuple[str, tuple[str, frozenset | None]]] = [
    ("model (the null engine)", ("null_worker.py", frozenset({"predict"}))),
    (
        "JSON / pydantic decode",
        ("", frozenset({"model_validate_json", "model_validate", "parse_document", "parse_message", "loads"})),
    ),
    ("JSON / pydantic decode", ("json/decoder.py", None)),
    ("JSON / pydantic build + encode", ("", frozenset({"model_dump_json", "model_dump", "model_copy", "dumps"}))),
    ("JSON / pydantic build + encode", ("json/encoder.py", None)),
    ("JSON / pydantic build + encode", ("pydantic/main.py", None)),
    ("metrics", ("prometheus_client", None)),
    ("metrics", ("finsentry/metrics.py", None)),
    ("score: entities, near-duplicates", ("models/entities.py", None)),
    ("score: entities, near-duplicates", ("alerting/dedup.py", None)),
    ("score: entities, near-duplicates", ("textnorm.py", None)),
    ("index: store write", ("/store/", None)),
    ("index: store write", ("aiosqlite", None)),
    ("index: store write", ("sqlite3", None)),
    ("detect: detector", ("alerting/detector.py", None)),
    ("detect: detector", ("alerting/stats.py", None)),
    ("detect: detector", ("alerting/buckets.py", None)),
    ("detect: table changelog", ("faust/tables", None)),
    ("observe: fan-out", ("alerting/observations.py", None)),
    ("observe: fan-out", ("alerting/watermarks.py", None)),
    ("Kafka produce", ("aiokafka/producer", None)),
    ("Kafka produce", ("faust/transport/producer", None)),
    ("Kafka produce", ("faust/topics.py", None)),
    ("Kafka produce", ("faust/channels.py", None)),
    ("Kafka consume (fetch, records)", ("aiokafka/consumer", None)),
    ("Kafka consume (fetch, records)", ("aiokafka/record", None)),
    ("Kafka consume (fetch, records)", ("faust/transport/consumer", None)),
    ("Kafka consume (fetch, records)", ("faust/transport/drivers", None)),
    ("Kafka consume (fetch, records)", ("streams/transport.py", None)),
    ("Kafka consume (fetch, records)", ("streams/offsets.py", None)),
    ("Kafka client (connection, protocol)", ("aiokafka", None)),
    ("Faust streams (take, acks, events)", ("faust/streams.py", None)),
    ("Faust streams (take, acks, events)", ("faust/events.py", None)),
    ("Faust streams (take, acks, events)", ("faust/agents", None)),
    ("Faust streams (take, acks, events)", ("faust/transport/conductor.py", None)),
    ("validate (other)", ("streams/agents/validate.py", None)),
    ("score (other)", ("streams/agents/score.py", None)),
    ("index (other)", ("streams/agents/index.py", None)),
    ("observe / detect / notify (other)", ("streams/agents/alert.py", None)),
    ("consumer lag, flow control, health", ("streams/consumer_lag.py", None)),
    ("consumer lag, flow control, health", ("streams/liveness.py", None)),
    ("consumer lag, flow control, health", ("streams/flow_control.py", None)),
]
OTHER = "event loop, Faust and other"
CLIENT = "Kafka client (connection, protocol)"  # refined by a produce or consume frame further out


def stage_of(stack: list[dict]) -> str:
    """`stack` from the outermost frame to the innermost."""
    found = None
    for frame in reversed(stack):
        path, name = frame.get("file") or "", frame.get("name") or ""
        for stage, (fragment, names) in RULES:
            if fragment in path and (names is None or name in names) and (fragment or names):
                if found is None and stage != CLIENT:
                    return stage
                if found is None:
                    found = stage
                elif stage.startswith("Kafka produce") or stage.startswith("Kafka consume"):
                    return stage
                break
    return found or OTHER


def stage_counts(profile: dict) -> Counter:
    frames = profile["shared"]["frames"]
    counts: Counter = Counter()
    for thread in profile["profiles"]:
        for sample, weight in zip(thread["samples"], thread["weights"]):
            counts[stage_of([frames[i] for i in sample])] += weight
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--cpu-ms-per-doc", type=float, help="the worker's CPU ms/document in the same run")
    args = parser.parse_args()
    counts = stage_counts(json.loads(args.profile.read_text()))
    total = sum(counts.values())
    print(f"{total:.1f} s of samples")
    print("| stage | share | ms/document |" if args.cpu_ms_per_doc else "| stage | share |")
    print("| --- | --- | --- |" if args.cpu_ms_per_doc else "| --- | --- |")
    for stage, n in counts.most_common():
        row = f"| {stage} | {n / total:.1%} |"
        if args.cpu_ms_per_doc:
            row += f" {n / total * args.cpu_ms_per_doc:.3f} |"
        print(row)


if __name__ == "__main__":
    main()
