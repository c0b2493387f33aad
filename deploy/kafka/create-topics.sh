#!/bin/sh
# Create finsentry's Kafka topics with their partitions, replication and retention.
#
# Runs once per `docker compose up` in the Apache Kafka image (its kafka-topics.sh and
# kafka-configs.sh), before any worker starts. Idempotent: existing topics are kept, their
# retention is brought up to date, their partition count is reported but never changed
# (adding partitions moves keys to other partitions, which would split one story's copies
# and one scope's detector state across partitions; see docs/deployment.md).
#
# Settings (the same FINSENTRY_* variables the workers read):
#   FINSENTRY_TOPIC_PREFIX, FINSENTRY_APP_ID, FINSENTRY_TOPIC_PARTITIONS,
#   FINSENTRY_TOPIC_REPLICATION
# and, for this job only:
#   KAFKA_BOOTSTRAP            bootstrap server (default kafka:9092)
#   KAFKA_BIN                  directory of the Kafka scripts (default /opt/kafka/bin)
#   KAFKA_CLIENT_CONFIG        optional client properties file (SASL/TLS) for the scripts
#   TOPIC_RETENTION_DAYS       documents in flight: raw, valid, scored, observations (7)
#   TOPIC_RETENTION_DAYS_LONG  alerts, dead letters, model updates (30)
set -eu

PREFIX="${FINSENTRY_TOPIC_PREFIX:-finsentry.}"
APP_ID="${FINSENTRY_APP_ID:-finsentry}"
PARTITIONS="${FINSENTRY_TOPIC_PARTITIONS:-4}"
REPLICATION="${FINSENTRY_TOPIC_REPLICATION:-1}"
BOOTSTRAP="${KAFKA_BOOTSTRAP:-kafka:9092}"
BIN="${KAFKA_BIN:-/opt/kafka/bin}"
DAY_MS=86400000
SHORT_MS=$(( ${TOPIC_RETENTION_DAYS:-7} * DAY_MS ))
LONG_MS=$(( ${TOPIC_RETENTION_DAYS_LONG:-30} * DAY_MS ))
FOREVER=-1

# With three or more replicas a write (acks=all) must reach two of them: one broker may
# fail without losing an acknowledged record.
if [ "$REPLICATION" -ge 3 ]; then MIN_ISR=2; else MIN_ISR=1; fi

# Word-split on purpose below: none of these values contains spaces.
CONNECT="--bootstrap-server $BOOTSTRAP"
if [ -n "${KAFKA_CLIENT_CONFIG:-}" ]; then
    CONNECT="$CONNECT --command-config $KAFKA_CLIENT_CONFIG"
fi

topic() {  # topic NAME RETENTION_MS CLEANUP_POLICY
    name=$1 retention=$2 cleanup=$3
    configs="cleanup.policy=$cleanup min.insync.replicas=$MIN_ISR"
    if [ "$cleanup" = delete ]; then configs="$configs retention.ms=$retention"; fi
    create_flags=""
    for c in $configs; do create_flags="$create_flags --config $c"; done
    # shellcheck disable=SC2086
    "$BIN/kafka-topics.sh" $CONNECT --create --if-not-exists --topic "$name" \
        --partitions "$PARTITIONS" --replication-factor "$REPLICATION" $create_flags >/dev/null
    # shellcheck disable=SC2086
    "$BIN/kafka-configs.sh" $CONNECT --alter --entity-type topics --entity-name "$name" \
        --add-config "$(echo $configs | tr ' ' ',')" >/dev/null
    # shellcheck disable=SC2086
    have=$("$BIN/kafka-topics.sh" $CONNECT --describe --topic "$name" \
           | sed -n 's/.*PartitionCount:[[:space:]]*\([0-9][0-9]*\).*/\1/p' | head -n 1)
    if [ "$have" != "$PARTITIONS" ]; then
        echo "warning: $name has ${have:-?} partitions, FINSENTRY_TOPIC_PARTITIONS is $PARTITIONS (left unchanged)" >&2
    fi
    echo "topic $name partitions=${have:-?} replication=$REPLICATION $configs"
}

# The pipeline's topics (streams/topics.py) and the detector's changelog, named as Faust
# names it ("<app id>-<table>-changelog"); compacted, so the latest state of every scope
# is kept for as long as the scope exists. tests/deploy checks this list against the app.
topic "${PREFIX}docs.raw"            "$SHORT_MS" delete
topic "${PREFIX}docs.valid"          "$SHORT_MS" delete
topic "${PREFIX}docs.scored"         "$SHORT_MS" delete
topic "${PREFIX}alerts.observations" "$SHORT_MS" delete
topic "${PREFIX}alerts"              "$LONG_MS"  delete
topic "${PREFIX}dlq"                 "$LONG_MS"  delete
topic "${PREFIX}labels"              "$FOREVER"  delete
topic "${PREFIX}model-updates"       "$LONG_MS"  delete
topic "${APP_ID}-finsentry-detector-state-changelog" "$FOREVER" compact
echo "finsentry topics ready on $BOOTSTRAP"
