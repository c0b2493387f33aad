"""Write .env.example: every finsentry setting, documented, plus the stack's own variables.

    python deploy/env_example.py > .env.example      # regenerate after changing settings
    python deploy/env_example.py --check .env.example  # exit 1 if the file is out of date

The settings part comes from finsentry/settings.py (names, defaults, descriptions), so the
file cannot drift from the code; tests/deploy runs --check.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

from finsentry.settings import Settings

# Variables docker-compose.yml reads itself (interpolation), with their default and meaning.
# A value of None means: no default, the stack refuses to start until it is set.
STACK: list[tuple[str, str | None, str]] = [
    (
        "ELASTIC_PASSWORD",
        None,
        (
            "Password of Elasticsearch's `elastic` superuser. Used only by Elasticsearch and the one-shot es-user job "
            "that creates the finsentry user."
        ),
    ),
    ("GRAFANA_ADMIN_USER", "admin", "Grafana administrator login."),
    ("GRAFANA_ADMIN_PASSWORD", None, "Grafana administrator password."),
    (
        "GRAFANA_ES_USERNAME",
        "finsentry-grafana",
        (
            "Read-only Elasticsearch user of Grafana's datasources (created by the es-user job; must differ from "
            "FINSENTRY_ES_USERNAME)."
        ),
    ),
    ("GRAFANA_ES_PASSWORD", None, "Password of GRAFANA_ES_USERNAME."),
    (
        "FINSENTRY_WORKERS",
        "2",
        (
            "CPU worker replicas. Useful up to FINSENTRY_TOPIC_PARTITIONS (each partition is read by one worker of "
            "the group). With `--profile gpu`, set it to 0: the group shares partitions evenly by member, not by "
            "speed (docs/deployment.md)."
        ),
    ),
    (
        "FINSENTRY_GPU_WORKERS",
        "1",
        (
            "GPU worker replicas (`--profile gpu`); each reserves one NVIDIA GPU and gets the same partition share as "
            "any other worker of the group."
        ),
    ),
    ("FINSENTRY_GPU_MAX_BATCH", "256", "FINSENTRY_MAX_BATCH of the GPU workers (a GPU wants wider batches)."),
    (
        "FINSENTRY_WORKER_MEMORY",
        "2g",
        (
            "Memory limit of one worker container: about 0.8 GB for the model and runtime plus ~14 KB per story the "
            "near-duplicate index remembers (FINSENTRY_DEDUP_MAX_STORIES)."
        ),
    ),
    ("FINSENTRY_TRAINER_MEMORY", "6g", "Memory limit of the trainer container."),
    ("FINSENTRY_IMAGE", "finsentry:cpu", "Image of the finsentry services (built from the Dockerfile's `cpu` target)."),
    ("FINSENTRY_CUDA_IMAGE", "finsentry:cuda", "Image of the GPU workers (the Dockerfile's `cuda` target)."),
    ("FINSENTRY_ENV_FILE", ".env", "The file the finsentry containers read their settings from."),
    (
        "FINSENTRY_SOURCES_HOST_FILE",
        "./sources.example.yml",
        "Scraper source list on the host, mounted read-only into the scraper (copy sources.example.yml and edit it).",
    ),
    (
        "FINSENTRY_PRUNE_INTERVAL_S",
        "86400",
        "Seconds between two runs of the retention job (`finsentry store prune`, keeping FINSENTRY_ES_RETENTION_DAYS).",
    ),
    ("FINSENTRY_GRAFANA_ES_URL", "https://elasticsearch:9200", "Elasticsearch URL of Grafana's datasources."),
    ("KAFKA_VERSION", "3.9.1", "apache/kafka image tag (KRaft mode)."),
    (
        "KAFKA_CLUSTER_ID",
        None,
        (
            "KRaft cluster id (22 characters, base64url), your own for each cluster: `docker run --rm "
            "apache/kafka:3.9.1 /opt/kafka/bin/kafka-storage.sh random-uuid`."
        ),
    ),
    (
        "KAFKA_EXPORTER_VERSION",
        "v1.9.0",
        "danielqsj/kafka-exporter image tag (consumer lag from the broker's side, visible with every worker down).",
    ),
    ("KAFKA_HEAP_OPTS", "-Xms512m -Xmx1g", "JVM heap of the Kafka broker."),
    ("TOPIC_RETENTION_DAYS", "7", "Retention of the document topics (raw, valid, scored, observations)."),
    (
        "TOPIC_RETENTION_DAYS_LONG",
        "30",
        (
            "Retention of the alerts, dead-letter and model-update topics (labels are kept forever, the detector "
            "changelog is compacted)."
        ),
    ),
    ("ES_VERSION", "9.1.0", "Elasticsearch image tag."),
    ("ES_HEAP", "1g", "Elasticsearch JVM heap (about half the memory you give it)."),
    ("PROMETHEUS_VERSION", "v2.55.1", "prom/prometheus image tag."),
    ("PROMETHEUS_RETENTION", "30d", "How long Prometheus keeps metrics."),
    ("ALERTMANAGER_VERSION", "v0.27.0", "prom/alertmanager image tag."),
    (
        "GRAFANA_VERSION",
        "12.3.0",
        "grafana/grafana image tag: 12.3 or later with Elasticsearch 9 (docs/deployment.md, supported versions).",
    ),
]

# Settings the stack sets for its containers: shown uncommented, overridable here.
STACK_SETTINGS: dict[str, str] = {
    "broker": "kafka://kafka:9092",
    "topic_prefix": "finsentry.",
    "topic_partitions": "12",
    "topic_replication": "1",
    "app_id": "finsentry",
    "store": "https://elasticsearch:9200",
    "es_username": "finsentry",
    "es_password": "",
    "es_ca_certs": "/certs/ca/ca.crt",
    "es_replicas": "0",
    "alertmanager_url": "http://alertmanager:9093",
    "log_json": "true",
    "dedup_max_stories": "60000",
}

# Settings docker-compose.yml fixes per service (paths inside the containers, bind
# addresses on the compose network): documented here, changed in docker-compose.yml.
FIXED_BY_COMPOSE: dict[str, str] = {
    "broker_embedded": "false",
    "registry_dir": "/var/lib/finsentry/registry",
    "data_dir": "/var/lib/finsentry/data",
    "model_cache_dir": "/tmp/finsentry-model-cache",
    "outbox_path": "/var/lib/finsentry/outbox/slot-N.db (the lowest slot no running worker holds)",
    "web_host": "0.0.0.0 (workers)",
    "web_port": "6066 (workers)",
    "seen_path": "/var/lib/finsentry/seen/seen.db",
    "scrape_metrics_host": "0.0.0.0",
    "scrape_metrics_port": "6071",
    "push_host": "0.0.0.0",
    "push_port": "6070",
    "trainer_metrics_host": "0.0.0.0",
    "trainer_metrics_port": "6072",
    "train_data_dir": "/var/lib/finsentry/training/tfn",
    "train_extra_dir": "/var/lib/finsentry/training/extra",
}

HEADER = """\
# finsentry — settings of the docker compose stack. Copy to .env, then set at least
# ELASTIC_PASSWORD, GRAFANA_ADMIN_PASSWORD, GRAFANA_ES_PASSWORD, FINSENTRY_ES_PASSWORD and
# KAFKA_CLUSTER_ID (the stack refuses to start without them) and FINSENTRY_WEB_TOKEN (the
# workers' page and /api listen on the compose network).
#
# Generated by `python deploy/env_example.py > .env.example` from finsentry/settings.py;
# edit those, not this file. docs/deployment.md explains the stack.
#
# Every finsentry container reads this file (env_file), so secrets set here reach them as
# environment variables; finsentry never logs them.
"""


def comment(text: str, indent: str = "# ") -> list[str]:
    return textwrap.wrap(text, width=92, initial_indent=indent, subsequent_indent=indent)


def default_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def render() -> str:
    lines = HEADER.splitlines()
    lines += ["", "# ===== The stack (read by docker-compose.yml) " + "=" * 45, ""]
    for name, default, meaning in STACK:
        lines += comment(meaning + (" Required." if default is None else ""))
        lines.append(f"{name}={default or ''}")
        lines.append("")
    lines += [
        "# ===== finsentry settings (FINSENTRY_*) " + "=" * 52,
        "# Uncommented: what the stack uses. Commented: the built-in default, shown for",
        "# reference; uncomment to change it.",
        "",
    ]
    for name, field in Settings.model_fields.items():
        var = f"FINSENTRY_{name.upper()}"
        lines += comment(field.description or "")
        if name in FIXED_BY_COMPOSE:
            lines += comment(f"Set by docker-compose.yml: {FIXED_BY_COMPOSE[name]}.")
            lines.append(f"# {var}={default_text(field.default)}")
        elif name in STACK_SETTINGS:
            lines.append(f"{var}={STACK_SETTINGS[name]}")
        else:
            lines.append(f"# {var}={default_text(field.default)}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", type=Path, help="compare with this file instead of printing")
    args = parser.parse_args(argv)
    text = render()
    if args.check is None:
        sys.stdout.write(text)
        return 0
    if args.check.read_text() != text:
        print(f"{args.check} is out of date: run python deploy/env_example.py > {args.check}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
